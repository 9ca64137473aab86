"""CoNLL-style column files for sequence tagging, read into a ``datasets.Dataset``.

A file holds one token per line, columns separated by spaces or tabs: the token first, its tag
last, any columns between them ignored. A blank line ends a sentence; ``-DOCSTART-`` lines are
document markers, not sentences. The parsing is done by pyarrow kernels over the whole file, so
there is no Python loop per line or per token.
"""
from __future__ import annotations

import codecs
from typing import Any, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from encoders.data.sources import DataError

DOCSTART = "-DOCSTART-"
_NONE = object()


def open_bytes(path: str, gunzip: bool = False):
    """``path`` opened for reading bytes (through gzip when ``gunzip`` and it starts with gzip's
    magic bytes); a ``DataError`` naming the file when it is missing, a directory or unreadable."""
    import gzip

    try:
        if gunzip:
            with open(path, "rb") as raw:
                if raw.read(2) == b"\x1f\x8b":
                    return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except OSError as e:
        raise DataError(f"{path}: could not read: {e.strerror or e}") from e


def _read_text(path: str) -> str:
    """Read a whole UTF-8 text file (a leading byte-order mark is dropped).

    # Arguments
        path: the file.

    # Returns
        The text.

    # Raises
        DataError: the file is missing, is a directory, can't be read, or is not UTF-8 (the
            message names the 1-based line of the first bad byte).
    """
    with open_bytes(path) as f:
        try:
            raw = f.read()
        except OSError as e:
            raise DataError(f"{path}: could not read: {e.strerror or e}") from e
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {raw[e.start]:#04x}); "
                        f"re-encode the file as UTF-8") from None


def split_fields(text: str) -> Tuple[pa.Array, np.ndarray, np.ndarray]:
    """Split text into lines and whitespace-separated fields, with arrow kernels.

    # Arguments
        text: the text; lines end with ``\\n`` (a ``\\r`` before it is whitespace).

    # Returns
        ``(fields, starts, counts)``: all fields of all lines in one string array, and per line
        the index of its first field in ``fields`` and its number of fields (0 for a blank line).
    """
    lines = pc.split_pattern(pa.array([text], pa.large_string()), "\n").flatten()
    trimmed = pc.ascii_trim_whitespace(lines)
    split = pc.ascii_split_whitespace(trimmed)
    offsets = split.offsets.to_numpy()
    counts = np.diff(offsets)
    counts[pc.equal(pc.binary_length(trimmed), 0).to_numpy(zero_copy_only=False)] = 0  # "" -> [""]
    return split.values, offsets[:-1], counts


def read_conll(path: str) -> Any:
    """Read a CoNLL-style column file of tagged sentences.

    # Arguments
        path: the file: one ``token [other columns ...] tag`` line per token, separated by spaces
            or tabs; a blank line between sentences (several blank lines count as one, and the
            last sentence needs none after it); ``-DOCSTART-`` lines are skipped.

    # Returns
        A ``datasets.Dataset`` with one row per sentence and the columns ``tokens`` and ``tags``
        (lists of strings of the same length), in file order.

    # Raises
        DataError: (a ``ValueError``) the file is missing, a directory, unreadable or not UTF-8;
            a line has a single column (no tag); the file holds no sentence. Messages name the
            file and, where there is one, the 1-based line.
    """
    from datasets import Dataset

    fields, starts, counts = split_fields(_read_text(path))
    nonblank = np.flatnonzero(counts)
    first = fields.take(pa.array(starts[nonblank]))
    docstart = np.zeros(len(counts), dtype=bool)
    docstart[nonblank] = pc.equal(first, DOCSTART).to_numpy(zero_copy_only=False)

    single = np.flatnonzero((counts == 1) & ~docstart)
    if len(single):
        i = single[0]
        raise DataError(f"{path}, line {i + 1}: one column ({fields[starts[i]].as_py()!r}) but a token "
                        f"line needs at least two: the token first, its tag last")
    is_token = (counts >= 2) & ~docstart
    rows = np.flatnonzero(is_token)
    if len(rows) == 0:
        raise DataError(f"{path}: no sentences (every one of its {len(counts)} line(s) is blank or "
                        f"{DOCSTART}); a token line is 'TOKEN ... TAG'")

    # a sentence starts at a token line whose previous line is not a token line
    starts_sentence = is_token[rows] & ~np.concatenate([[False], is_token[:-1]])[rows]
    offsets = np.append(np.flatnonzero(starts_sentence), len(rows)).astype(np.int32)
    tokens = fields.take(pa.array(starts[rows])).cast(pa.string())
    tags = fields.take(pa.array(starts[rows] + counts[rows] - 1)).cast(pa.string())
    table = pa.table({"tokens": pa.ListArray.from_arrays(pa.array(offsets), tokens),
                      "tags": pa.ListArray.from_arrays(pa.array(offsets), tags)})
    return Dataset(table)


def check_tagging_rows(tokens_lists: Sequence[Any], tags_lists: Sequence[Any], split: str, where: str) -> None:
    """Check tagging rows from any source (CoNLL, json/jsonl, parquet list columns).

    # Arguments
        tokens_lists: one list of token strings per row.
        tags_lists: one list of tag strings per row.
        split: the split's name (``"train"``, ``"validation"``), for the message.
        where: what the rows come from (a path, or ``"data.train_file=PATH"``), for the message.

    # Raises
        DataError: the two sequences differ in length, or in a row (numbered from 1, as in the
            file) the tokens are not a list of strings, the tags are not a list of strings, or
            the row has a different number of tokens and tags.
    """
    if len(tokens_lists) != len(tags_lists):
        raise DataError(f"{where}: {split} split has {len(tokens_lists)} token rows but {len(tags_lists)} tag rows")
    for row, (tokens, tags) in enumerate(zip(tokens_lists, tags_lists), start=1):
        for name, values in (("tokens", tokens), ("tags", tags)):
            if not isinstance(values, (list, tuple)):
                raise DataError(f"{where}: {split} data row {row}: {name} must be a list of strings, "
                                f"got {type(values).__name__} {values!r:.80}")
            bad = next((v for v in values if not isinstance(v, str)), _NONE)
            if bad is not _NONE:
                raise DataError(f"{where}: {split} data row {row}: {name} must be strings, got {bad!r} "
                                f"({type(bad).__name__})")
        if len(tokens) != len(tags):
            raise DataError(f"{where}: {split} data row {row}: {len(tokens)} tokens but {len(tags)} tags; "
                            f"every token needs exactly one tag")
