"""Tagging data (``task=tagging``): one tag per word, from list columns or CoNLL files.

Rows hold a list of words (``data.tokens_column``) and a list of tags (``data.tags_column``) of the
same length: json/jsonl/parquet files (read through ``datasets``), ``.conll`` column files
(``encoders.data.conll.read_conll``) or a hub dataset. The word vocabulary is built from the
training rows as for classification (pad 0, unk 1, ``data.min_freq``, ``data.max_vocab_size``,
``data.lowercase``), the tag vocabulary from the training rows' tags (sorted names). Words and
tags are encoded with arrow kernels over the flattened list columns (no Python object per word)
and kept as two ``TokenBuffer``s with the same row lengths, so a batch pads both at once.

Errors name the split, the row and the file: tokens and tags of different lengths, a tag of a
validation/test row that never occurs in training, lists that are not lists of strings.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from encoders.config import UNK_ID
from encoders.data.flat import TokenBuffer
from encoders.data.reader import Raw, read_files, read_tagging_file
from encoders.data.splits import Split, Splits, hold_out as _hold_out
from encoders.errors import DataError


def tagging_files(cfg: Any) -> Dict[str, Raw]:
    """Every split's tagging file that is set, read with ``read_tagging_file``."""
    return read_files(cfg, lambda path, key: read_tagging_file(path, key, cfg.tokens_column, cfg.tags_column))


def _list_column(raw: Raw, split: str, column: str, other: str):
    """``column`` as one ``ListArray`` of strings; a row that is not a list of strings is named."""
    import pyarrow as pa

    from encoders.data.conll import check_tagging_rows

    col = raw.ds.data.column(column)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        raise DataError(f"{split} split: column {column!r} holds {t}, not lists of strings "
                        f"(one entry per word){raw.where(0)}")
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{raw.row(split, row)}: {column} is null{raw.where(row)}")
    vt = t.value_type
    if pa.types.is_null(vt) or pa.types.is_integer(vt):  # all-empty lists; ClassLabel-style int tags
        col = col.cast(pa.list_(pa.string()))
    elif not (pa.types.is_string(vt) or pa.types.is_large_string(vt)):
        # the row-by-row check names the first bad row and value (numbered from 1)
        tokens_col, tags_col = (column, other) if column < other else (other, column)
        check_tagging_rows(raw.ds[tokens_col], raw.ds[tags_col], split, raw.where(0).strip(" ()"))
        raise DataError(f"{split} split: column {column!r} holds lists of {vt}, not strings{raw.where(0)}")
    if col.flatten().null_count:
        flat_null = np.flatnonzero(col.flatten().is_null().to_numpy(zero_copy_only=False))[0]
        row = int(np.searchsorted(col.offsets.to_numpy()[1:] - col.offsets.to_numpy()[0], flat_null, side="right"))
        raise DataError(f"{raw.row(split, row)}: {column} holds a null entry{raw.where(row)}")
    return col


def _read_rows(raw: Raw, split: str, cfg: Any):
    """(words, tags, lengths) of a split: flat string arrays and per-row counts, lengths checked."""
    import pyarrow.compute as pc

    missing = [c for c in (cfg.tokens_column, cfg.tags_column) if c not in raw.ds.column_names]
    if missing:
        raise DataError(f"{split} split has no column(s) {missing} (columns: {raw.ds.column_names}); "
                        f"set data.tokens_column / data.tags_column")
    if len(raw.ds) == 0:
        raise DataError(f"{split} split is empty")
    if raw.ds._indices is not None:  # a shuffled/selected hub dataset: materialise its row order
        raw = Raw(raw.ds.flatten_indices(), raw.key, raw.path, raw.builder)
    words = _list_column(raw, split, cfg.tokens_column, cfg.tags_column)
    tags = _list_column(raw, split, cfg.tags_column, cfg.tokens_column)
    n_words = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    n_tags = pc.list_value_length(tags).to_numpy(zero_copy_only=False).astype(np.int64)
    bad = np.flatnonzero(n_words != n_tags)
    if bad.size:
        row = int(bad[0])
        raise DataError(f"{raw.row(split, row)}: {n_words[row]} tokens but {n_tags[row]} tags; every token needs "
                        f"exactly one tag{raw.where(row)}")
    return words.flatten(), tags.flatten(), n_words


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def tokenize_tagging(raws: Dict[str, Raw], cfg: Any, seed: int) -> Splits:
    """Every split's word ids and tag ids (``Split.tags``); the word and tag vocabularies from training rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from encoders.data.vocab import Vocab

    read = {split: _read_rows(raw, split, cfg) for split, raw in raws.items()}
    held: Optional[np.ndarray] = None if "validation" in raws else _hold_out(len(raws["train"].ds), seed)

    # the training rows' words and tags (the held-out rows of the train file are not training data)
    words, tags, lengths = read["train"]
    word_in_train = np.repeat(~held, lengths) if held is not None else np.ones(len(words), bool)
    lower = (lambda a: pc.utf8_lower(a)) if cfg.lowercase else (lambda a: a)  # noqa: E731
    train_words = lower(words).filter(pa.array(word_in_train))
    counts = pc.value_counts(train_words)
    vocab = Vocab.from_counts(dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())),
                              "whitespace", cfg.lowercase, cfg.min_freq, cfg.max_vocab_size)
    tag_names = sorted(pc.unique(tags.filter(pa.array(word_in_train))).to_pylist())
    if len(tag_names) < 2:
        raise DataError(f"the training split has {len(tag_names)} distinct tag(s) {tag_names}; need at least 2")
    vocab.labels = tag_names
    word_set, tag_set = pa.array(vocab.tokens, pa.string()), pa.array(tag_names, pa.string())

    out: Dict[str, Split] = {}
    truncated: Dict[str, int] = {}
    for split, (words, tags, lengths) in read.items():
        ids = pc.index_in(lower(words), value_set=word_set).fill_null(UNK_ID).to_numpy(zero_copy_only=False)
        ids = np.where(ids == 0, UNK_ID, ids).astype(np.int32)  # a literal "<pad>" word is not padding
        tag_ids = pc.index_in(tags, value_set=tag_set)
        if tag_ids.null_count:
            pos = int(np.flatnonzero(tag_ids.is_null().to_numpy(zero_copy_only=False))[0])
            row = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
            in_train_file = split == "train"
            raise DataError(f"{raws[split].row('validation' if in_train_file else split, row)}: tag {tags[pos].as_py()!r} "
                            f"never occurs in the training split (training tags: {tag_names[:20]})"
                            f"{raws[split].where(row)}")
        tag_ids = tag_ids.to_numpy(zero_copy_only=False).astype(np.int32)
        offsets = _offsets(lengths)
        tok_buf, tag_buf = TokenBuffer(ids, offsets), TokenBuffer(tag_ids, offsets)
        rows = np.arange(len(lengths), dtype=np.int64)
        parts = {split: rows}
        if split == "train" and held is not None:
            parts = {"train": np.flatnonzero(~held), "validation": np.flatnonzero(held)}
        for name, keep in parts.items():
            t, g = (tok_buf, tag_buf) if len(keep) == len(rows) else (tok_buf.take(keep), tag_buf.take(keep))
            if cfg.max_tokens_per_example:
                t, truncated[name] = t.truncate(cfg.max_tokens_per_example)
                g, _ = g.truncate(cfg.max_tokens_per_example)
            out[name] = Split(t, np.zeros(len(keep), dtype=np.int64), keep, g)
    if not out["train"].tokens.offsets[-1] > out["train"].tokens.offsets[0]:
        raise DataError(f"column {cfg.tokens_column!r} is empty in every training row{raws['train'].where(0)}")
    return Splits(out["train"], out["validation"], num_classes=len(tag_names), vocab_size=len(vocab), vocab=vocab,
                  test=out.get("test"), truncated=truncated)
