"""CoNLL-style column files for sequence tagging, read into a ``datasets.Dataset``.

A file holds one token per line, columns separated by spaces or tabs: the token first, its tag
last, any columns between them ignored. A blank line ends a sentence; ``-DOCSTART-`` lines are
document markers, not sentences. The parsing is done by pyarrow kernels over blocks of whole
sentences (``iter_conll``), so there is no Python loop per line or per token and memory stays at a
block. Training (``read_conll``) and the commands that use a run (``iter_table``) share this parser.
"""
from __future__ import annotations

import codecs
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from encoders.errors import DataError

DOCSTART = "-DOCSTART-"
BLOCK_BYTES = 16 << 20  # bytes of a file parsed at a time (then up to the next blank line)
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


def _text_blocks(path: str, block_bytes: int) -> Iterator[Tuple[int, str]]:
    """``(number of the block's first line, text)`` for blocks of whole sentences of a UTF-8 file
    (each cut after a blank line; a leading byte-order mark dropped).

    Raises:
        DataError: the file is missing, is a directory, can't be read, or is not UTF-8 (the
            message names the 1-based line of the first bad byte).
    """
    line, rest, first = 1, b"", True
    with open_bytes(path) as f:
        while True:
            try:
                chunk = f.read(max(block_bytes, len(codecs.BOM_UTF8)))
            except OSError as e:
                raise DataError(f"{path}: could not read: {e.strerror or e}") from e
            data = rest + chunk
            if first and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            first = False
            if chunk:
                blank = max(data.rfind(b"\n\n"), data.rfind(b"\n\r\n"))
                if blank < 0:  # no sentence ends in this block yet: read on
                    rest = data
                    continue
                cut = data.index(b"\n", blank + 1) + 1  # after the blank line
                data, rest = data[:cut], data[cut:]
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = line + data.count(b"\n", 0, e.start)
                raise DataError(f"{path}, line {bad}: not UTF-8 text (byte {data[e.start]:#04x}); "
                                f"re-encode the file as UTF-8") from None
            yield line, text
            line += data.count(b"\n")
            if not chunk:
                return


def split_fields(text: str) -> Tuple[pa.Array, np.ndarray, np.ndarray]:
    """Split text into lines and whitespace-separated fields, with arrow kernels.

    Args:
        text: the text; lines end with ``\\n`` (a ``\\r`` before it is whitespace).

    Returns:
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

    Args:
        path: the file: one ``token [other columns ...] tag`` line per token, separated by spaces
            or tabs; a blank line between sentences (several blank lines count as one, and the
            last sentence needs none after it); ``-DOCSTART-`` lines are skipped.

    Returns:
        A ``datasets.Dataset`` with one row per sentence and the columns ``tokens`` and ``tags``
        (lists of strings of the same length), in file order.

    Raises:
        DataError: (a ``ValueError``) the file is missing, a directory, unreadable or not UTF-8;
            a line has a single column (no tag); the file holds no sentence. Messages name the
            file and, where there is one, the 1-based line.
    """
    from datasets import Dataset

    return Dataset(pa.concat_tables(list(iter_conll(path))))


def iter_conll(path: str, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Table]:
    """The sentences of a CoNLL-style column file, a block of whole sentences at a time: the parser
    of training (``read_conll``) and of the commands that use a run (``iter_table``), so memory stays
    at a block of text however long the file.

    Args:
        path: the file, as ``read_conll`` reads it.
        block_bytes: about how many bytes of the file are parsed at a time (a block ends after a
            blank line, so it is longer when a sentence is).

    Returns:
        An iterator of ``pyarrow.Table`` with the columns ``tokens`` and ``tags`` (lists of strings),
        one row per sentence, in file order; at least one.

    Raises:
        DataError: as ``read_conll``, with the same messages and line numbers.
    """
    lines, found = 0, False
    for first_line, text in _text_blocks(path, block_bytes):
        lines += text.count("\n")
        table = _sentences(text, path, first_line)
        if table is not None:
            found = True
            yield table
    if not found:
        raise DataError(f"{path}: no sentences (every one of its {lines + 1} line(s) is blank or "
                        f"{DOCSTART}); a token line is 'TOKEN ... TAG'")


def _sentences(text: str, path: str, first_line: int) -> Optional[pa.Table]:
    """The sentences of ``text`` (whole lines, the first of them line ``first_line`` of ``path``) as a
    ``tokens``/``tags`` table; None when it holds none. The parsing is done by arrow kernels."""
    fields, starts, counts = split_fields(text)
    nonblank = np.flatnonzero(counts)
    first = fields.take(pa.array(starts[nonblank]))
    docstart = np.zeros(len(counts), dtype=bool)
    docstart[nonblank] = pc.equal(first, DOCSTART).to_numpy(zero_copy_only=False)

    single = np.flatnonzero((counts == 1) & ~docstart)
    if len(single):
        i = single[0]
        raise DataError(f"{path}, line {first_line + i}: one column ({fields[starts[i]].as_py()!r}) but a token "
                        f"line needs at least two: the token first, its tag last")
    is_token = (counts >= 2) & ~docstart
    rows = np.flatnonzero(is_token)
    if len(rows) == 0:
        return None

    # a sentence starts at a token line whose previous line is not a token line
    starts_sentence = is_token[rows] & ~np.concatenate([[False], is_token[:-1]])[rows]
    offsets = np.append(np.flatnonzero(starts_sentence), len(rows)).astype(np.int32)
    tokens = fields.take(pa.array(starts[rows])).cast(pa.string())
    tags = fields.take(pa.array(starts[rows] + counts[rows] - 1)).cast(pa.string())
    return pa.table({"tokens": pa.ListArray.from_arrays(pa.array(offsets), tokens),
                     "tags": pa.ListArray.from_arrays(pa.array(offsets), tags)})


def check_tagging_rows(tokens_lists: Sequence[Any], tags_lists: Sequence[Any], split: str, where: str) -> None:
    """Check tagging rows from any source (CoNLL, json/jsonl, parquet list columns).

    Args:
        tokens_lists: one list of token strings per row.
        tags_lists: one list of tag strings per row.
        split: the split's name (``"train"``, ``"validation"``), for the message.
        where: what the rows come from (a path, or ``"data.train_file=PATH"``), for the message.

    Raises:
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
