"""Data sources, all through Hugging Face ``datasets``: synthetic, local files, the hub.

Every source ends as ``Splits``: a ``Split`` per split holding its token ids as one flat buffer
(``TokenBuffer``: values + offsets, no Python object per example), its labels as one int64
array and each example's row in its file (for messages), plus what the model needs to know.
Errors in the data (a missing file or column, null labels, ...) are raised here, before training,
naming the file and the row.

Files are read by ``encoders.data.reader`` (the one reader of data files, the commands' too):
parsed by ``datasets`` into Arrow files read back a batch at a time; text columns are text:
csv cells are read as strings, so ``NA``, ``null`` or ``None`` stay words and only an empty
cell is an empty text. The tokenized splits of local files are cached (``encoders.data.cache``):
a second run on the same files with the same settings reads them back memory-mapped.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, Optional

import numpy as np

from encoders.config import DataConfig
from encoders.data.reader import ArrowFiles, Raw, read_files as _files
from encoders.data.splits import Split, Splits, hold_out as _hold_out
from encoders.errors import DataError

log = logging.getLogger(__name__)
_CHUNK = 20_000  # texts tokenized at a time: memory stays flat however many rows a file has
_LABEL_STEP = 1 << 18  # labels checked at a time: no per-row temporary of a whole split


def load_splits(cfg: Any, seed: int, task: str = "classification") -> Splits:
    """Load the splits described by a ``DataConfig`` (``test`` only when a test file/split is set)
    for ``task`` (``classification``, ``tagging``: ``encoders.data.tagging``, ``regression``)."""
    DataConfig.validate(cfg)
    if cfg.source == "synthetic":
        return _synthetic(cfg, seed)
    from encoders.data.cache import cached, uncached

    build = _BUILDS.get(task, _text_build)(cfg, seed, task)
    # ids are written to the entry as they are made, then read back memory-mapped: memory stays flat
    splits = cached(cfg, seed, build, task=task) if cfg.source == "files" else uncached(build)
    _log_shape(splits, cfg)
    return splits


def _tagging_build(cfg: Any, seed: int, task: str):
    """``build(writer)`` of a tagging run's splits: words and tags (``encoders.data.tagging``)."""
    from encoders.data.tagging import tagging_files, tokenize_tagging

    def build(writer):
        writer.save(tokenize_tagging(tagging_files(cfg) if cfg.source == "files" else _hub(cfg), cfg, seed))
    return build


def _text_build(cfg: Any, seed: int, task: str):
    """``build(writer)`` of a text run's splits: a text and a label (a class, or a number) per row."""
    def build(writer):
        raws = _files(cfg) if cfg.source == "files" else _hub(cfg)
        try:
            _tokenize(raws, cfg, seed, writer, task)
        finally:  # the tokens are in the entry now: the scratch copies go at once, not when collected
            for raw in raws.values():
                raw.release()
            _release_arrow_memory()
    return build


def _release_arrow_memory() -> None:
    """Hand the pages Arrow's allocator keeps after the columns are freed back to the system: it
    holds on to them (tens of MB per million rows of labels) while training never uses them again."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


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


# -- reading (the files: encoders.data.reader) --------------------------------------------------
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


def _label_pieces(raw: Raw, split: str, column: str, null: str = "label is null"):
    """``(first row, piece)`` over a split's label column, a record batch at a time (a file's labels
    are never copied whole); a null label is named by its row (``null``: what the message says)."""
    if isinstance(raw.ds, ArrowFiles):
        pieces = raw.ds.batches(column)
    else:
        pieces = iter(raw.ds.data.column(column).chunks)
    at = 0
    for piece in pieces:
        if piece.null_count:
            row = at + int(np.flatnonzero(piece.is_null().to_numpy(zero_copy_only=False))[0])
            raise _label_problem(raw, split, row, null)
        yield at, piece
        at += len(piece)


def _label_type(raw: Raw, column: str):
    return raw.ds.schema.field(column).type if isinstance(raw.ds, ArrowFiles) else raw.ds.data.column(column).type


def _label_values(raw: Raw, split: str, column: str):
    """``("names", None, False)`` for text labels, else ``("ids", class ids, textual)``: int32 (int64 if
    one is larger), every row checked, a piece of the column at a time. ``textual``: csv cells that
    are all canonical integers (they make class ids, but another split with names makes them names
    again, see ``_encode_labels``).

    A label is what the file says: csv cells keep their text (``01`` is not ``1``, ``True`` is not
    ``1``) unless every one is a canonical integer; typed files keep their types; booleans are the
    names ``"False"``/``"True"`` (as pandas writes them), never class ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = _label_type(raw, column)
    textual = pa.types.is_string(t) or pa.types.is_large_string(t)
    if pa.types.is_boolean(t) or (textual and raw.builder != "csv"):
        return _names(raw, split, column)
    ids = np.empty(len(raw.ds), dtype=np.int32)
    for at, piece in _label_pieces(raw, split, column):
        if not len(piece):
            continue
        if textual:
            if not pc.all(pc.match_substring_regex(piece, _CANONICAL_INT)).as_py():
                return _names(raw, split, column)
            values = piece.cast(pa.int64()).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(t):
            values = piece.cast(pa.int64()).to_numpy(zero_copy_only=False)
        elif pa.types.is_floating(t):
            floats = np.asarray(piece.to_numpy(zero_copy_only=False), dtype=np.float64)
            bad = ~np.isfinite(floats) | (floats != np.round(floats))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                value = float(floats[row])
                if math.isnan(value):
                    raise _label_problem(raw, split, at + row, "label is null")
                raise _label_problem(raw, split, at + row, f"label {value!r} is not an integer class id")
            values = floats.astype(np.int64)
        else:  # lists, structs: show the first value as the user wrote it
            raise _label_problem(raw, split, at, f"label {piece[0].as_py()!r} is not an integer class id")
        if values.min() < 0:
            row = int(np.argmax(values < 0))
            raise _label_problem(raw, split, at + row, f"label {int(values[row])} is negative")
        if values.max() > np.iinfo(ids.dtype).max:
            ids = ids.astype(np.int64)
        ids[at:at + len(values)] = values
    return "ids", ids, textual


def _names(raw: Raw, split: str, column: str):
    """A names split, once every piece is checked for nulls: a null label is named before any
    other problem of the labels, in every split, as when whole columns were checked first."""
    for _ in _label_pieces(raw, split, column):
        pass
    return "names", None, False


def _label_text(piece):
    """A piece of a names column as strings (booleans as ``"True"``/``"False"``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(piece, "True", "False") if pa.types.is_boolean(piece.type) else piece.cast(pa.string())


def _encode_labels(raws: Dict[str, Raw], column: str, train_rows: Dict[str, np.ndarray]):
    """Class ids for every split (int32 unless one is larger), the label names ([] for integer
    labels) and the class count, reading each label column a piece at a time.

    ``train_rows[split]`` marks the rows that are training data (all of the train file, or
    its rows not held out): names and classes come from those rows only.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    read = {split: _label_values(raw, split, column) for split, raw in raws.items()}
    if any(k == "names" for k, _, _ in read.values()):  # csv class ids beside names are names too
        read = {s: ("names", None, False) if textual else (k, v, textual) for s, (k, v, textual) in read.items()}
    kinds = {s: k for s, (k, _, _) in read.items()}
    if len(set(kinds.values())) > 1:
        raise DataError(f"label column {column!r} holds names in one file and numbers in another "
                        f"({', '.join(f'{s}: {k}' for s, k in kinds.items())}); use the same kind in every split")
    ids: Dict[str, np.ndarray] = {}
    if kinds["train"] == "names":
        seen = set()
        for at, piece in _label_pieces(raws["train"], "train", column):
            keep = pa.array(train_rows["train"][at:at + len(piece)])
            seen.update(pc.unique(_label_text(piece).filter(keep)).to_pylist())
        names = sorted(seen)
        value_set = pa.array(names, type=pa.string())
        for split, raw in raws.items():
            ids[split] = np.empty(len(raw.ds), dtype=np.int32)
            for at, piece in _label_pieces(raw, split, column):
                text = _label_text(piece)
                found = pc.index_in(text, value_set=value_set)
                if found.null_count:
                    row = int(np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False))[0])
                    shown = "validation" if split == "train" else split  # a held-out row of the train file
                    raise _label_problem(raw, shown, at + row,
                                         f"label {text[row].as_py()!r} never occurs in the training split")
                ids[split][at:at + len(piece)] = found.to_numpy(zero_copy_only=False)
        return ids, names, len(names)
    for split, (_, values, _) in read.items():
        ids[split] = values
    train_labels = set()
    for lo in range(0, len(ids["train"]), _LABEL_STEP):  # a step at a time: no masked copy of every label
        hi = lo + _LABEL_STEP
        train_labels.update(np.unique(ids["train"][lo:hi][train_rows["train"][lo:hi]]).tolist())
    num_classes = max(train_labels) + 1 if train_labels else 0
    absent = next((c for c in range(num_classes) if c not in train_labels), None)
    if absent is not None:
        raise DataError(f"integer labels must be the class ids 0..K-1, but class {absent} never occurs in the "
                        f"training split (labels seen: {sorted(train_labels)[:20]}); renumber the labels")
    for split, values in ids.items():
        for lo in range(0, len(values), _LABEL_STEP):
            rows = ~train_rows[split][lo:lo + _LABEL_STEP] if split == "train" else True
            unseen = np.flatnonzero(rows & (values[lo:lo + _LABEL_STEP] >= num_classes))
            if unseen.size:
                shown, row = ("validation" if split == "train" else split), lo + int(unseen[0])
                raise DataError(f"{shown} label {int(values[row])} never occurs in the training split "
                                f"(training labels are 0..{num_classes - 1}){raws[split].where(row)}")
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


def _regression_targets(raws: Dict[str, Raw], column: str) -> Dict[str, np.ndarray]:
    """task=regression: every split's ``column`` as float32, each value a finite number (named if not),
    read a piece of the column at a time (no whole-column copy beside its float64 values)."""
    import pyarrow as pa

    out = {}
    for split, raw in raws.items():
        t = _label_type(raw, column)
        textual = pa.types.is_string(t) or pa.types.is_large_string(t)  # csv cells, or text in json
        values = np.empty(len(raw.ds), dtype=np.float32)
        for at, piece in _label_pieces(raw, split, column, "regression target is null"):
            if not len(piece):
                continue
            if not (textual or pa.types.is_floating(t) or pa.types.is_integer(t)):
                raise _label_problem(raw, split, at, f"regression target {piece[0].as_py()!r} is not a number "
                                                     f"(column {column!r} holds {t})")
            try:
                floats = np.asarray(piece.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
            except pa.ArrowInvalid:  # Python's float() is more lenient (spaces): it decides, row by row
                floats = np.empty(len(piece), dtype=np.float64)
                for row, text in enumerate(piece.to_pylist()):
                    try:
                        floats[row] = float(text)
                    except ValueError:
                        raise _label_problem(raw, split, at + row,
                                             f"regression target {text!r} is not a number") from None
            bad = ~np.isfinite(floats)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])  # the value as the file has it: 'inf' in csv, inf in json
                raise _label_problem(raw, split, at + row,
                                     f"regression target {piece[row].as_py()!r} is not a finite number")
            values[at:at + len(piece)] = floats
        out[split] = values
    return out


def _class_labels(raws: Dict[str, Raw], column: str, train_rows: Dict[str, np.ndarray]):
    """Class ids, label names and the class count (at least 2) of a classification run."""
    label_ids, names, num_classes = _encode_labels(raws, column, train_rows)
    if num_classes < 2:
        raise DataError(f"the training split has a single class ({num_classes}); need at least 2")
    return label_ids, names, num_classes


def _regression_labels(raws: Dict[str, Raw], column: str, train_rows: Dict[str, np.ndarray]):
    """Float targets of a regression run (no names, one output)."""
    return _regression_targets(raws, column), [], 1


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
    label_ids, names, num_classes = _LABELS.get(task, _class_labels)(raws, label_col, train_rows)
    del train_rows

    vocab = _write_ids(cfg, raws, held, writer)
    vocab.labels = names
    for split in writer.files:
        source = "train" if held is not None and split == "validation" else split
        # class ids are kept int32 while tokenizing, written int64 (what the loaders map uncopied)
        dtype = np.int64 if label_ids[source].dtype.kind in "iu" else label_ids[source].dtype
        writer.finish_steps(split, _label_steps(label_ids[source], held if source == "train" else None,
                                                split == "validation"), dtype)
    if not writer.ends["train"]:
        raise DataError(f"text column {text_col!r} is empty in every training row{raws['train'].where(0)}: "
                        f"check data.text_column")
    writer.close(vocab, num_classes, len(vocab), dict(writer.truncated) if cfg.max_tokens_per_example else {})


def _label_steps(labels: np.ndarray, held: Optional[np.ndarray], validation: bool):
    """``(labels, file rows)`` of a split's rows, ``_LABEL_STEP`` file rows at a time: the rows held
    out (``validation``) or kept of the training file when ``held`` is set, else every row."""
    for lo in range(0, len(labels), _LABEL_STEP):
        hi = min(lo + _LABEL_STEP, len(labels))
        if held is None:
            rows = np.arange(lo, hi, dtype=np.int64)
        else:
            rows = np.flatnonzero(held[lo:hi] if validation else ~held[lo:hi]).astype(np.int64) + lo
        yield labels[rows], rows


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
        lengths = split.tokens.row_lengths()
        longest = int(np.argmax(lengths))
        n = int(lengths[longest])
        if n > max_tokens:
            raise DataError(f"{key}={max_tokens} is smaller than {name} data row {int(split.rows[longest]) + 1}, which has "
                            f"{n} tokens: truncate with data.max_tokens_per_example={max_tokens} or raise {key}")


# how each task's splits are built, and (text tasks) how their labels are read (else: as classification's)
_BUILDS = {"classification": _text_build, "tagging": _tagging_build, "regression": _text_build}
_LABELS = {"classification": _class_labels, "regression": _regression_labels}
