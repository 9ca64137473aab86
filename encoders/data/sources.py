"""Data sources, all through Hugging Face ``datasets``: synthetic, local files, the hub.

Every source ends as ``Splits``: a ``Split`` per split holding its token ids as one flat buffer
(``TokenBuffer``: values + offsets, no Python object per example), its labels as one int64
array and each example's row in its file (for messages), plus what the model needs to know.
Errors in the data (a missing file or column, null labels, ...) are raised here, before training,
naming the file and the row.

Files are parsed by ``datasets`` into Arrow files (in a scratch folder, deleted after), which
training reads back a batch at a time (``ArrowFiles``); text columns are text:
csv cells are read as strings, so ``NA``, ``null`` or ``None`` stay words and only an empty
cell is an empty text. The tokenized splits of local files are cached (``encoders.data.cache``):
a second run on the same files with the same settings reads them back memory-mapped.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from encoders.config import DataConfig
from encoders.data.flat import TokenBuffer
from encoders.errors import DataError

log = logging.getLogger(__name__)
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
# what pandas reads as missing by default: kept for label cells only (a text "NA" is the word NA)
LABEL_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
HOLD_OUT = 0.1  # share of the training file held out for validation when no validation file is given
_CHUNK = 20_000  # texts tokenized at a time: memory stays flat however many rows a file has


@dataclass
class Split:
    """One split: token ids (``tokens``), class ids (``labels``; float targets for regression), each
    example's file row (``rows``) and, for tagging, one tag id per token (``tags``: a buffer with
    the same row lengths as ``tokens``)."""

    tokens: TokenBuffer
    labels: np.ndarray
    rows: np.ndarray = None
    tags: Optional[TokenBuffer] = None

    def __post_init__(self):
        if self.rows is None:
            self.rows = np.arange(len(self.tokens), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.tokens)

    column_names = ("tokens", "label")

    @property
    def lengths(self) -> np.ndarray:
        return self.tokens.lengths

    def __getitem__(self, column: str) -> list:
        """A column as Python lists (``"tokens"``, ``"label"``), to look at; training never calls this."""
        if column == "tokens":
            return [self.tokens.row(i).tolist() for i in range(len(self))]
        if column == "label":
            return self.labels.tolist()
        raise KeyError(f"a split has the columns 'tokens' and 'label', not {column!r}")

    def take(self, indices: np.ndarray) -> "Split":
        tags = self.tags.take(indices) if self.tags is not None else None
        return Split(self.tokens.take(indices), self.labels[indices], self.rows[indices], tags)


@dataclass
class Splits:
    train: Split
    validation: Split
    num_classes: int
    vocab_size: int
    vocab: Any = None  # Vocab / SubwordVocab; None for pre-tokenised (synthetic) data
    test: Optional[Split] = None
    truncated: Dict[str, int] = field(default_factory=dict)  # rows cut to data.max_tokens_per_example

    def lengths(self, split: str) -> np.ndarray:
        return getattr(self, split).lengths


def load_splits(cfg: Any, seed: int, task: str = "classification") -> Splits:
    """Load the splits described by a ``DataConfig`` (``test`` only when a test file/split is set)
    for ``task`` (``classification``, ``tagging``: ``encoders.data.tagging``, ``regression``)."""
    DataConfig.validate(cfg)
    if cfg.source == "synthetic":
        return _synthetic(cfg, seed)
    from encoders.data.cache import cached, uncached

    if task == "tagging":
        from encoders.data.tagging import tagging_files, tokenize_tagging

        def build(writer):
            writer.save(tokenize_tagging(tagging_files(cfg) if cfg.source == "files" else _hub(cfg), cfg, seed))
    else:
        def build(writer):
            raws = _files(cfg) if cfg.source == "files" else _hub(cfg)
            try:
                _tokenize(raws, cfg, seed, writer, task)
            finally:  # the tokens are in the entry now: the scratch copies go at once, not when collected
                for raw in raws.values():
                    raw.release()
    # ids are written to the entry as they are made, then read back memory-mapped: memory stays flat
    splits = cached(cfg, seed, build, task=task) if cfg.source == "files" else uncached(build)
    _log_shape(splits, cfg)
    return splits


def _log_shape(splits: Splits, cfg: Any) -> None:
    """What the data became that the config alone doesn't say, for every task and on a cache hit
    too: the rows cut to ``data.max_tokens_per_example`` and the size a subword trainer reached."""
    if any(splits.truncated.values()):
        log.info("data.max_tokens_per_example=%d cut %s rows", cfg.max_tokens_per_example,
                 ", ".join(f"{n} {s}" for s, n in splits.truncated.items() if n))
    if cfg.tokenizer in ("bpe", "wordpiece") and not cfg.tokenizer_file:
        asked = cfg.subword_vocab_size if cfg.max_vocab_size is None else min(cfg.subword_vocab_size,
                                                                               cfg.max_vocab_size)
        log.info("data.tokenizer=%s: trained vocabulary of %d tokens (%d asked%s)", cfg.tokenizer, splits.vocab_size,
                 asked, "" if splits.vocab_size >= asked else ": the training text gave no more")


def _synthetic(cfg: Any, seed: int) -> Splits:
    from encoders.data.synthetic import synthetic_split

    def split(n: int, which: int) -> Split:
        return Split(*synthetic_split(n, [seed, which], cfg.vocab_size, cfg.max_length))

    return Splits(split(cfg.num_train, 0), split(cfg.num_val, 1), num_classes=2, vocab_size=cfg.vocab_size)


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class Raw:
    """A split as read: a ``datasets.Dataset`` and where it came from (for messages)."""

    ds: Any
    key: str  # data.train_file, data.validation_split=..., ...
    path: str = ""
    builder: str = ""

    def release(self) -> None:
        """Delete the scratch copy ``read_file`` made of the file (no-op for other datasets)."""
        getattr(self.ds, "release_scratch", lambda: None)()

    def where(self, row: int) -> str:
        """`` (data.train_file=t.csv, line 5)``: the file and the line a user finds 0-based ``row`` at
        (``encoders.data.tables.line_of``: none in json arrays and parquet); a CoNLL file's sentence."""
        from encoders.data.tables import line_of

        if not self.path:
            return f" ({self.key})"
        if self.builder == "conll":
            return f" ({self.key}={self.path}, sentence {row + 1})"
        line = line_of(self.path, row + 1)
        return f" ({self.key}={self.path}{'' if line is None else f', line {line}'})"

    def not_utf8(self) -> DataError:
        """The error for a file that is not UTF-8, naming the line of its first bad byte."""
        line, byte = _first_non_utf8(self.path) or (0, 0)
        return DataError(f"{self.key}={self.path}: not UTF-8 text (line {line}: byte {byte:#04x}); save it as UTF-8")

    def row(self, split: str, row: int) -> str:
        """``train data row 18``: a 0-based row as messages name it (data rows count from 1, as on the
        use side; ``encoders.data.tables.data_row``)."""
        return f"{split} data row {row + 1}"


def _builder_for(path: str, key: str) -> str:
    if os.path.isdir(path):
        raise DataError(f"{key}: {path} is a directory; give a file (csv, tsv, json, jsonl or parquet)")
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


def _first_non_utf8(path: str, block: int = 1 << 20) -> Optional[tuple]:
    """``(line, byte)`` of the first byte of ``path`` that is not UTF-8, or None."""
    import codecs

    decoder, line = codecs.getincrementaldecoder("utf-8")(), 1
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                return line + data.count(b"\n", 0, max(e.start, 0)), data[max(e.start, 0)] if data else 0
            if not data:
                return None
            line += data.count(b"\n")


class ArrowFiles:
    """The Arrow files ``datasets`` wrote for one file, read a batch at a time from disk (never
    memory-mapped: a mapping keeps every page it touched resident, so memory would grow with the
    rows). Offers what tokenizing needs of a ``Dataset``: ``column_names``, ``len()``,
    ``data.column(name)`` (that column alone, copied out of its batches) and ``batches(column)``."""

    def __init__(self, paths: List[str], num_rows: int):
        import pyarrow as pa

        self.paths, self.num_rows = paths, num_rows
        with pa.OSFile(paths[0]) as f:
            self.schema = pa.ipc.open_stream(f).schema
        self.column_names = self.schema.names
        self.data = self

    def __len__(self) -> int:
        return self.num_rows

    def batches(self, column: str):
        """``column`` of each record batch in row order (the batch's other columns are let go)."""
        import pyarrow as pa

        for path in self.paths:
            with pa.OSFile(path) as f:
                for batch in pa.ipc.open_stream(f):
                    yield batch.column(column)

    def column(self, name: str):
        import pyarrow as pa

        # copied, so the batch each came from (all its columns, one buffer) is freed
        return pa.chunked_array([pa.concat_arrays([c]) for c in self.batches(name)], type=self.schema.field(name).type)


def _prepared(builder: str, path: str, scratch: str, kwargs: Dict[str, Any]) -> ArrowFiles:
    """``datasets`` parses the file into Arrow files under ``scratch``; they are read as a stream."""
    import glob

    from datasets import load_dataset_builder

    b = load_dataset_builder(builder, data_files={"data": os.path.abspath(path)}, cache_dir=scratch, **kwargs)
    b.download_and_prepare()
    files = sorted(glob.glob(os.path.join(b.cache_dir, f"{b.dataset_name}-data*.arrow")))
    rows = b.info.splits["data"].num_examples
    if not files or not rows:
        raise ValueError(f"{path}: no rows")  # named by the caller as load_dataset's failures are
    return ArrowFiles(files, rows)


def read_file(path: str, key: str, text_columns: Sequence[str] = (), label_column: Optional[str] = None,
              cache_dir: Optional[str] = None, stream: bool = False) -> Raw:
    """One local file as a ``datasets.Dataset``. csv cells are read as written: ``text_columns`` as
    strings (numbers too; an empty cell is an empty text), ``NA``/``nan``/empty in the
    ``label_column`` as missing. ``stream``: an ``ArrowFiles`` instead of a ``Dataset``.

    The Arrow copy ``datasets`` makes is written to a fresh folder under the tokens cache's
    ``scratch/`` (``data.cache_dir`` when given) and deleted with the dataset: our own cache keeps
    the tokens, and ``datasets``' cache, keyed on size and modification time, could hand back an
    edited file's old rows.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files never need the network
    from datasets import load_dataset

    from encoders.data.cache import scratch_folder

    builder = _builder_for(path, key)
    kwargs: Dict[str, Any] = {}
    if builder == "csv":
        # Text is text: no "NA"/"null"/"None" -> missing; an empty cell is still missing (an empty
        # text, or a null label that is then named). Text columns are strings even if they hold numbers.
        # Labels are read as written too ("01" is not "1", "True" not 1): _label_values decides what they are.
        kwargs = dict(keep_default_na=False, na_values={label_column: LABEL_NA} if label_column else None,
                      converters={c: str for c in [*text_columns, *([label_column] if label_column else [])]})
        if path.lower().endswith(".tsv"):
            kwargs["delimiter"] = "\t"
    scratch = scratch_folder(cache_dir)
    try:
        if stream:
            ds = _prepared(builder, path, scratch, kwargs)
            ds.release_scratch = weakref.finalize(ds, shutil.rmtree, scratch, True)  # reads open files per pass
        else:
            ds = load_dataset(builder, data_files={"data": os.path.abspath(path)}, split="data", cache_dir=scratch,
                              **kwargs)
            weakref.finalize(ds, shutil.rmtree, scratch, True)  # mapped pages outlive the unlink (POSIX)
    except Exception as e:  # parser errors from pyarrow/pandas: say which file
        shutil.rmtree(scratch, ignore_errors=True)
        if _has_no_rows(path, builder):  # the builders fail on these with unhelpful messages
            raise DataError(f"{key}={path} has no rows") from e
        if builder != "parquet" and _first_non_utf8(path):  # datasets says "An error occurred while generating..."
            raise Raw(None, key, path, builder).not_utf8() from e
        raise DataError(f"{key}: could not read {path} as {builder}: {e}") from e
    return Raw(ds, key, path, builder)


def _files(cfg: Any, read=None) -> Dict[str, Raw]:
    """Every split's file that is set, read by ``read(path, key)`` (default: text and label columns)."""
    read = read or (lambda path, key: read_file(path, key, [cfg.text_column], cfg.label_column, cfg.cache_dir,
                                                stream=True))
    out = {}
    for split, key, path in (("train", "data.train_file", cfg.train_file),
                             ("validation", "data.validation_file", cfg.validation_file),
                             ("test", "data.test_file", cfg.test_file)):
        if path:
            try:
                out[split] = read(path, key)
            except DataError as e:
                if "has no rows" in str(e) or "no sentences" in str(e):
                    raise DataError(f"{split} split is empty: {e}") from None
                raise
    return out


def _hub(cfg: Any) -> Dict[str, Raw]:
    from datasets import load_dataset

    out = {}
    for split, name in (("train", cfg.train_split), ("validation", cfg.validation_split), ("test", cfg.test_split)):
        if name is None:
            continue
        try:
            ds = load_dataset(cfg.name, cfg.subset, split=name)
        except Exception as e:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
            hint = ("HF_HUB_OFFLINE is set" if offline else
                    "is the network reachable? Offline, use data=files with local files")
            raise DataError(f"could not load hub dataset {cfg.name!r} split {name!r} ({hint}): "
                            f"{type(e).__name__}: {e}") from e
        out[split] = Raw(ds, f"data.{split}_split={name}")
    return out


# -- labels ----------------------------------------------------------------------------------------
def _label_problem(raw: Raw, split: str, row: int, problem: str) -> DataError:
    return DataError(f"{raw.row(split, row)}: {problem}{raw.where(row)}")


_CANONICAL_INT = r"^(0|[1-9][0-9]{0,17})$"  # how an integer class id is written: no sign, no leading zero


def _label_values(raw: Raw, split: str, column: str):
    """("names", strings array) for text labels, else ("ids", int64 array), checking every row; and
    the labels as text where they were text (csv/tsv cells: every value a canonical integer makes
    class ids, but another split with names makes them names again, see ``_encode_labels``).

    A label is what the file says: csv cells keep their text (``01`` is not ``1``, ``True`` is not
    ``1``) unless every one is a canonical integer; typed files keep their types; booleans are the
    names ``"False"``/``"True"`` (as pandas writes them), never class ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = raw.ds.data.column(column)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise _label_problem(raw, split, row, "label is null")
    t = col.type
    if pa.types.is_boolean(t):
        return "names", pc.if_else(col, "True", "False"), None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if raw.builder == "csv" and len(col) and pc.all(pc.match_substring_regex(col, _CANONICAL_INT)).as_py():
            return "ids", np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64), col
        return "names", col, None
    if pa.types.is_integer(t):
        values = np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    elif pa.types.is_floating(t):
        floats = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = ~np.isfinite(floats) | (floats != np.round(floats))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = float(floats[row])
            if math.isnan(value):
                raise _label_problem(raw, split, row, "label is null")
            raise _label_problem(raw, split, row, f"label {value!r} is not an integer class id")
        values = floats.astype(np.int64)
    else:  # lists, structs: show the first value as the user wrote it
        raise _label_problem(raw, split, 0, f"label {col[0].as_py()!r} is not an integer class id")
    if values.size and values.min() < 0:
        row = int(np.argmax(values < 0))
        raise _label_problem(raw, split, row, f"label {int(values[row])} is negative")
    return "ids", values, None


def _encode_labels(raws: Dict[str, Raw], column: str, train_rows: Dict[str, np.ndarray]):
    """Class ids for every split, the label names ([] for integer labels) and the class count.

    ``train_rows[split]`` marks the rows that are training data (all of the train file, or
    its rows not held out): names and classes come from those rows only.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    read = {split: _label_values(raw, split, column) for split, raw in raws.items()}
    if any(k == "names" for k, _, _ in read.values()):  # csv class ids beside names are names too
        read = {s: ("names", text, None) if text is not None else (k, v, text) for s, (k, v, text) in read.items()}
    kinds = {s: (k, v) for s, (k, v, _) in read.items()}
    if len({k for k, _ in kinds.values()}) > 1:
        raise DataError(f"label column {column!r} holds names in one file and numbers in another "
                        f"({', '.join(f'{s}: {k}' for s, (k, _) in kinds.items())}); use the same kind in every split")
    kind = kinds["train"][0]
    ids: Dict[str, np.ndarray] = {}
    if kind == "names":
        train_col = kinds["train"][1]
        mask = pa.array(train_rows["train"])
        names = sorted(pc.unique(train_col.filter(mask)).to_pylist())
        value_set = pa.array(names, type=pa.string())
        for split, (_, col) in kinds.items():
            found = pc.index_in(col.cast(pa.string()), value_set=value_set)
            arr = np.asarray(found.to_numpy(zero_copy_only=False))
            missing = np.flatnonzero(np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(len(arr), bool))
            if missing.size:
                row = int(missing[0])
                shown = "validation" if split == "train" else split  # a held-out row of the train file
                raise _label_problem(raws[split], shown, row,
                                     f"label {col[row].as_py()!r} never occurs in the training split")
            ids[split] = arr.astype(np.int64)
        return ids, names, len(names)
    for split, (_, values) in kinds.items():
        ids[split] = values
    train_labels = set(np.unique(ids["train"][train_rows["train"]]).tolist())
    num_classes = max(train_labels) + 1 if train_labels else 0
    absent = next((c for c in range(num_classes) if c not in train_labels), None)
    if absent is not None:
        raise DataError(f"integer labels must be the class ids 0..K-1, but class {absent} never occurs in the "
                        f"training split (labels seen: {sorted(train_labels)[:20]}); renumber the labels")
    for split, values in ids.items():
        rows = ~train_rows[split] if split == "train" else np.ones(len(values), bool)
        unseen = np.flatnonzero(rows & (values >= num_classes))
        if unseen.size:
            shown = "validation" if split == "train" else split
            raise DataError(f"{shown} label {int(values[unseen[0]])} never occurs in the training split "
                            f"(training labels are 0..{num_classes - 1}){raws[split].where(int(unseen[0]))}")
    return ids, [], num_classes


# -- texts -----------------------------------------------------------------------------------------
def text_chunks(raw: Raw, column: str, split: str):
    """The text column as lists of Python strings, ``_CHUNK`` at a time (null -> "", numbers -> text)."""
    import pyarrow as pa

    if isinstance(raw.ds, ArrowFiles):
        t, parts = raw.ds.schema.field(column).type, raw.ds.batches(column)
    else:
        col = raw.ds.data.column(column)
        t, parts = col.type, [col]
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        if pa.types.is_nested(t) or pa.types.is_binary(t):
            raise DataError(f"{split} split: text column {column!r} holds {t}, not text{raw.where(0)}")
    for col in parts:
        col = col if pa.types.is_string(t) or pa.types.is_large_string(t) else col.cast(pa.string())
        for start in range(0, len(col), _CHUNK):
            try:
                texts = col.slice(start, _CHUNK).to_pylist()
            except UnicodeDecodeError:  # the json reader keeps bytes that are not UTF-8 as they are
                raise raw.not_utf8() from None
            yield [x if x is not None else "" for x in texts]


def _hold_out(n: int, seed: int) -> np.ndarray:
    """Rows of the training file held out for validation: a seeded 10% (at least one row)."""
    if n < 2:
        raise DataError(f"data.train_file has {n} row(s): too few to hold out a validation split; "
                        f"add rows or set data.validation_file")
    held = np.random.default_rng(seed).permutation(n)[: max(1, math.ceil(HOLD_OUT * n))]
    out = np.zeros(n, dtype=bool)
    out[held] = True
    return out


def _regression_targets(raws: Dict[str, Raw], column: str) -> Dict[str, np.ndarray]:
    """task=regression: every split's ``column`` as float32, each value a finite number (named if not)."""
    import pyarrow as pa

    out = {}
    for split, raw in raws.items():
        col = raw.ds.data.column(column)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise _label_problem(raw, split, row, "regression target is null")
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):  # csv cells, or text in json
            try:
                values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
            except pa.ArrowInvalid:  # Python's float() is more lenient (spaces): it decides, row by row
                written = col.to_pylist()
                values = np.empty(len(written), dtype=np.float64)
                for row, text in enumerate(written):
                    try:
                        values[row] = float(text)
                    except ValueError:
                        raise _label_problem(raw, split, row, f"regression target {text!r} is not a number") from None
        elif pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        else:
            raise _label_problem(raw, split, 0, f"regression target {col[0].as_py()!r} is not a number "
                                                f"(column {column!r} holds {col.type})")
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])  # the value as the file has it: 'inf' in csv, inf in json
            raise _label_problem(raw, split, row, f"regression target {col[row].as_py()!r} is not a finite number")
        out[split] = values.astype(np.float32)
    return out


def _tokenize(raws: Dict[str, Raw], cfg: Any, seed: int, writer: Any, task: str = "classification") -> None:
    """Every split's ids, labels and file rows written to ``writer`` (an ``EntryWriter``), a chunk at a time."""
    text_col, label_col = cfg.text_column, cfg.label_column
    for split, raw in raws.items():
        missing = [c for c in (text_col, label_col) if c not in raw.ds.column_names]
        if missing:
            raise DataError(f"{split} split has no column(s) {missing} (columns: {raw.ds.column_names}); "
                            f"set data.text_column / data.label_column")
        if len(raw.ds) == 0:
            raise DataError(f"{split} split is empty")
    held = None if "validation" in raws else _hold_out(len(raws["train"].ds), seed)
    train_rows = {s: np.ones(len(r.ds), bool) for s, r in raws.items()}
    if held is not None:
        train_rows["train"] = ~held
    if task == "regression":
        label_ids, names, num_classes = _regression_targets(raws, label_col), [], 1
    else:
        label_ids, names, num_classes = _encode_labels(raws, label_col, train_rows)
        if num_classes < 2:
            raise DataError(f"the training split has a single class ({num_classes}); need at least 2")
    del train_rows

    vocab = _write_ids(cfg, raws, held, writer)
    vocab.labels = names
    for split in writer.files:
        source = "train" if held is not None and split == "validation" else split
        rows = np.arange(len(label_ids[source])) if held is None or source != "train" else np.flatnonzero(
            held if split == "validation" else ~held)
        writer.finish(split, label_ids[source][rows], rows)
    if not writer.ends["train"]:
        raise DataError(f"text column {text_col!r} is empty in every training row{raws['train'].where(0)}: "
                        f"check data.text_column")
    writer.close(vocab, num_classes, len(vocab), dict(writer.truncated) if cfg.max_tokens_per_example else {})


def _routed_chunks(raws: Dict[str, Raw], column: str, held: Optional[np.ndarray]):
    """``(split, texts)`` for every split; rows of the training file that are held out go to "validation"."""
    for split, raw in raws.items():
        start = 0
        for chunk in text_chunks(raw, column, split):
            if split == "train" and held is not None:
                mask = held[start:start + len(chunk)]
                yield "train", [t for t, h in zip(chunk, mask) if not h]
                yield "validation", [t for t, h in zip(chunk, mask) if h]
            else:
                yield split, chunk
            start += len(chunk)


def _write_ids(cfg: Any, raws: Dict[str, Raw], held: Optional[np.ndarray], writer: Any):
    """The run's vocabulary (from the training rows); every split's ids appended to ``writer`` as they
    are made. Word-level ids are numbered by first sight while the words are counted and renumbered
    in place on disk once the vocabulary is known: one pass over the text, one chunk in memory."""
    from encoders.data.vocab import SubwordVocab, Vocab

    cut = cfg.max_tokens_per_example
    if cfg.tokenizer in ("whitespace", "char") and not cfg.tokenizer_file:
        vocab, remap = Vocab.build_streaming(_routed_chunks(raws, cfg.text_column, held), ("train",),
                                             lambda split, ids: writer.append(split, ids, max_tokens=cut),
                                             cfg.tokenizer, cfg.lowercase, cfg.min_freq, cfg.max_vocab_size)
        for split in writer.files:
            writer.remap(split, remap)
        return vocab
    from encoders.data.tokenizers import load_tokenizer_file, train_tokenizer

    if cfg.tokenizer_file:
        tok, kind = load_tokenizer_file(cfg.tokenizer_file), "file"
    else:
        training_texts = (t for split, chunk in _routed_chunks({"train": raws["train"]}, cfg.text_column, held)
                          if split == "train" for t in chunk)
        tok = train_tokenizer(training_texts, cfg.tokenizer, cfg.lowercase, cfg.min_freq, cfg.max_vocab_size,
                              cfg.subword_vocab_size)
        kind = cfg.tokenizer
    try:
        vocab = SubwordVocab(tok, kind)
    except ValueError as e:
        raise DataError(f"data.tokenizer_file={cfg.tokenizer_file}: {e}") from None
    for split, chunk in _routed_chunks(raws, cfg.text_column, held):
        writer.append(split, vocab.encode_many(chunk), max_tokens=cut)
    return vocab


def check_token_budget(splits: Splits, max_tokens: Optional[int], key: str = "data.max_tokens") -> None:
    """A token budget smaller than the longest example can't make a batch of it: say which and what to do."""
    if not max_tokens:
        return
    for name in ("train", "validation", "test"):
        split = getattr(splits, name)
        if split is None or not len(split):
            continue
        longest = int(np.argmax(split.lengths))
        n = int(split.lengths[longest])
        if n > max_tokens:
            raise DataError(f"{key}={max_tokens} is smaller than {name} data row {int(split.rows[longest]) + 1}, which has "
                            f"{n} tokens: truncate with data.max_tokens_per_example={max_tokens} or raise {key}")
