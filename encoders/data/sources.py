"""Data sources, all through Hugging Face ``datasets``: synthetic, local files, the hub.

Every source ends as two ``datasets.Dataset`` splits with the columns ``tokens`` (list of int
ids, 0 = pad, 1 = unk) and ``label`` (int class id), plus what the model needs to know.
Errors in the data (missing file or column, null labels, ...) are raised here, before training.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from encoders.config import DataConfig
from encoders.data.synthetic import make_synthetic
from encoders.data.vocab import Vocab
from encoders.errors import DataError

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class Splits:
    train: Any  # datasets.Dataset with columns tokens, label
    validation: Any
    num_classes: int
    vocab_size: int
    vocab: Optional[Vocab] = None  # None for pre-tokenised (synthetic) data

    def lengths(self, split: str) -> np.ndarray:
        ds = getattr(self, split)
        return np.fromiter((len(t) for t in ds["tokens"]), dtype=np.int64, count=len(ds))


def load_splits(cfg: Any, seed: int) -> Splits:
    """Load the ``train`` and ``validation`` splits described by a ``DataConfig``."""
    DataConfig.validate(cfg)
    if cfg.source == "synthetic":
        return _synthetic(cfg, seed)
    raw = _files(cfg, seed) if cfg.source == "files" else _hub(cfg)
    return _tokenize(raw, cfg)


def _synthetic(cfg: Any, seed: int) -> Splits:
    from datasets import Dataset

    def split(n: int, which: int):
        return Dataset.from_dict(make_synthetic(n, [seed, which], cfg.vocab_size, cfg.max_length))

    return Splits(split(cfg.num_train, 0), split(cfg.num_val, 1), num_classes=2, vocab_size=cfg.vocab_size)


def _builder_for(path: str, key: str) -> str:
    if not os.path.isfile(path):
        raise DataError(f"{key}: no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FILE_BUILDERS:
        raise DataError(f"{key}: unknown extension {ext!r} of {path}; use one of {sorted(FILE_BUILDERS)}")
    return FILE_BUILDERS[ext]


def _has_no_rows(path: str, builder: str) -> bool:
    """True for an empty file, a csv with only a header, ``[]`` json or a 0-row parquet."""
    try:
        if os.path.getsize(path) == 0:
            return True
        if builder == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows == 0
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 16)
        if builder == "csv":
            return len(text) < (1 << 16) and sum(1 for line in text.splitlines() if line.strip()) <= 1
        return text.strip() in ("", "[]")
    except Exception:
        return False


def _files(cfg: Any, seed: int) -> Dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files never need the network
    from datasets import load_dataset

    out = {}
    for split, key, path in (("train", "data.train_file", cfg.train_file),
                             ("validation", "data.validation_file", cfg.validation_file)):
        if split == "validation" and not path:
            continue
        builder = _builder_for(path, key)
        kwargs = {"delimiter": "\t"} if path.lower().endswith(".tsv") else {}
        try:
            out[split] = load_dataset(builder, data_files={split: os.path.abspath(path)}, split=split, **kwargs)
        except Exception as e:  # parser errors from pyarrow/pandas: say which file
            if _has_no_rows(path, builder):  # the builders fail on these with unhelpful messages
                raise DataError(f"{split} split is empty: {key}={path} has no rows") from e
            raise DataError(f"{key}: could not read {path} as {builder}: {e}") from e
    if "validation" not in out:
        # no validation file: hold out 10% of the training file, seeded
        if len(out["train"]) < 2:
            raise DataError(f"data.train_file={cfg.train_file} has {len(out['train'])} row(s): too few to "
                            f"hold out a validation split; add rows or set data.validation_file")
        parts = out["train"].train_test_split(test_size=0.1, seed=seed)
        out = {"train": parts["train"], "validation": parts["test"]}
    return out


def _hub(cfg: Any) -> Dict[str, Any]:
    from datasets import load_dataset

    out = {}
    for split in (cfg.train_split, cfg.validation_split):
        try:
            out[split] = load_dataset(cfg.name, cfg.subset, split=split)
        except Exception as e:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
            hint = ("HF_HUB_OFFLINE is set" if offline else
                    "is the network reachable? Offline, use data=files with local files")
            raise DataError(f"could not load hub dataset {cfg.name!r} split {split!r} ({hint}): "
                            f"{type(e).__name__}: {e}") from e
    return {"train": out[cfg.train_split], "validation": out[cfg.validation_split]}


def _label_names(train: Any, column: str) -> Optional[List[str]]:
    """Names for string labels (sorted, so ids are reproducible); None when labels are ints."""
    feature = train.features[column]
    if hasattr(feature, "names"):  # ClassLabel: already ints
        return None
    values = train[column]
    if any(isinstance(v, str) for v in values):
        return sorted({str(v) for v in values if v is not None})
    return None


def _tokenize(raw: Dict[str, Any], cfg: Any) -> Splits:
    text_col, label_col = cfg.text_column, cfg.label_column
    for split, ds in raw.items():
        missing = [c for c in (text_col, label_col) if c not in ds.column_names]
        if missing:
            raise DataError(f"{split} split has no column(s) {missing} (columns: {ds.column_names}); "
                            f"set data.text_column / data.label_column")
        if len(ds) == 0:
            raise DataError(f"{split} split is empty")

    names = _label_names(raw["train"], label_col)
    vocab = Vocab.build(raw["train"][text_col], cfg.tokenizer, cfg.lowercase, cfg.min_freq, cfg.max_vocab_size)
    vocab.labels = names or []
    label_ids = {n: i for i, n in enumerate(names)} if names else None
    max_tokens = cfg.max_tokens

    def to_label(value: Any, split: str, row: int) -> int:
        if value is None:
            raise DataError(f"{split} row {row}: label is null")
        if label_ids is not None:
            if str(value) not in label_ids:
                raise DataError(f"{split} row {row}: label {value!r} never occurs in the training split")
            return label_ids[str(value)]
        if isinstance(value, float) and not value.is_integer():
            raise DataError(f"{split} row {row}: label {value!r} is not an integer class id")
        try:
            label = int(value)
        except (TypeError, ValueError):
            raise DataError(f"{split} row {row}: label {value!r} is not an integer class id") from None
        if label < 0:
            raise DataError(f"{split} row {row}: label {label} is negative")
        return label

    def encode(batch: Dict[str, List], indices: List[int], split: str) -> Dict[str, List]:
        tokens = [vocab.encode(t) for t in batch[text_col]]
        if max_tokens:
            tokens = [t[:max_tokens] for t in tokens]
        labels = [to_label(v, split, i) for v, i in zip(batch[label_col], indices)]
        return {"tokens": tokens, "label": labels}

    from datasets import Features, Value
    try:
        from datasets import List as ListFeature  # datasets >= 4
    except ImportError:  # datasets 3
        from datasets import Sequence as ListFeature
    # explicit features: without them map() keeps the input column's type for an output column of
    # the same name, so string labels ("pos") came back as the strings "0"/"1", float labels as floats
    features = Features({"tokens": ListFeature(Value("int64")), "label": Value("int64")})
    out = {}
    for split, ds in raw.items():
        out[split] = ds.map(encode, batched=True, with_indices=True, fn_kwargs={"split": split},
                            remove_columns=ds.column_names, features=features, desc=f"tokenize {split}")
    train_labels = set(out["train"]["label"])
    num_classes = len(names) if names else max(train_labels) + 1
    if not names:  # integer labels are class ids: 0..K-1, each of them in the training split
        absent = next((c for c in range(num_classes) if c not in train_labels), None)
        if absent is not None:
            raise DataError(f"integer labels must be the class ids 0..K-1, but class {absent} never occurs in "
                            f"the training split (labels seen: {sorted(train_labels)[:20]}); renumber the labels")
    unseen = sorted(set(out["validation"]["label"]) - train_labels)
    if unseen:
        raise DataError(f"validation label {unseen[0]} never occurs in the training split "
                        f"(training labels are 0..{num_classes - 1})")
    if num_classes < 2:
        raise DataError(f"the training split has a single class ({num_classes}); need at least 2")
    return Splits(out["train"], out["validation"], num_classes=num_classes, vocab_size=len(vocab), vocab=vocab)
