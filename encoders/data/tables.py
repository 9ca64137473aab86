"""Read and write the user's tables for the ``predict`` and ``evaluate`` commands.

Formats go by file extension, as training's (``encoders.data.reader.FORMATS``, the one table):
``.csv``, ``.tsv``, ``.json`` (an array of objects, or JSON lines), ``.jsonl``, ``.parquet`` and,
for reading, CoNLL column files (``.conll``, ``.conllu``, ``.bio``, ``.iob``: a row per sentence,
``tokens`` and ``tags`` lists, parsed as training parses them); ``-`` is standard input (one
text per line) or output.

Reading keeps every CSV/TSV cell the string it is in the file (``encoders.data.reader.csv_options``,
training's rule for text): no value such as ``NA``, ``null``, ``None``, ``nan``, ``N/A`` or an
empty cell is turned into a missing value. Rows are named as training names them
(``data_row``: ``data row N (line L)``). Anything
that cannot be read raises :class:`TableError` (a ``ValueError``) whose message starts with the
file's name. Writing goes through a temporary file renamed over the target, so a reader never
sees half a table.

Needs pandas and pyarrow; imports neither torch nor tensorflow.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from contextlib import contextmanager
from typing import IO, Any, Iterator, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

# the formats, the NA rule and the row names are the reader's: training's too
from encoders.data.reader import STDIN_NAME, TABLE_FORMATS, check_file, csv_options, data_row, format_of
from encoders.errors import DataError, TableError
from encoders.io import atomic_write_with

__all__ = ["TableError", "FORMATS", "read_table", "require_columns", "write_table", "texts_of"]

FORMATS = TABLE_FORMATS  # what a table is written in (and read in, besides CoNLL column files)
CONLL_COLUMNS = ("tokens", "tags")  # the columns a CoNLL file is read into, as training reads it


def _format_of(path: str) -> str:
    """The format a table is written in, by the extension of ``path``."""
    return format_of(path, known=TABLE_FORMATS)


# --------------------------------------------------------------------------- reading


def read_table(path: str, text_column: str = "text", stdin: Optional[IO] = None,
               conll_columns: Sequence[str] = CONLL_COLUMNS) -> pd.DataFrame:
    """Read one table, choosing the format by the extension of ``path``.

    * ``.csv`` / ``.tsv``: first row is the header; every cell is read as the string written
      (quoted fields may hold commas, quotes, tabs and newlines, as the ``csv`` module writes
      them; an empty cell is ``""``). Blank lines are skipped. Duplicate header names are an error.
    * ``.json``: a JSON array of objects; if the text does not start with ``[`` it is read as
      JSON lines instead. ``.jsonl``: one JSON object per line, blank lines skipped. Values
      keep their JSON types (lists stay lists, ``null`` becomes a missing value).
    * ``.parquet``: read with pyarrow; list cells come back as Python lists.
    * ``.conll`` (``.conllu``, ``.bio``, ``.iob``): one row per sentence, the lists of its tokens
      and of its tags in the columns ``conll_columns``, parsed as training parses the file
      (``encoders.data.conll.iter_conll``).
    * ``-``: standard input, one text per line, in a single column named ``text_column``. Only
      the line ending (``\\n`` or ``\\r\\n``) is stripped; an empty line is an empty text; the
      final newline does not add a row (so empty input gives zero rows); a UTF-8 byte-order
      mark at the start is dropped.

    Args:
        path: the file to read, or ``"-"`` for standard input.
        text_column: the column name given to the lines read from standard input.
        stdin: the stream that ``"-"`` reads (text or binary); ``sys.stdin`` when None.
        conll_columns: the names of a CoNLL file's token and tag columns (a run's
            ``data.tokens_column`` and ``data.tags_column``).

    Returns:
        A ``pandas.DataFrame`` with a default ``RangeIndex``.

    Raises:
        TableError: the file is missing, is a directory, has an unknown extension, cannot be
            decoded or parsed, or has no columns.
    """
    if path == "-":
        return _read_lines(sys.stdin if stdin is None else stdin, text_column)
    check_file(path)
    fmt = format_of(path)
    try:
        if fmt in ("csv", "tsv"):
            df = _read_delimited(path, fmt)
        elif fmt == "parquet":
            df = _read_parquet(path)
        elif fmt == "conll":
            df = pd.concat(list(conll_frames(path, conll_columns)), ignore_index=True)
        else:
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
            df = _read_json(text, path, lines=fmt == "jsonl" or not text.lstrip().startswith("["))
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: not UTF-8 text ({e})") from None
    except OSError as e:
        raise TableError(f"{path}: cannot read ({e.strerror or e})") from None
    if df.shape[1] == 0:
        raise TableError(f"{path}: the table has no columns")
    return df


def conll_frames(path: str, columns: Sequence[str] = CONLL_COLUMNS, chunk_rows: Optional[int] = None):
    """The sentences of a CoNLL column file as tables, ``chunk_rows`` rows each (the last maybe fewer;
    None: as the parser's blocks come), read by training's parser (``encoders.data.conll.iter_conll``).

    Args:
        path: the file.
        columns: the names of the token and the tag column.
        chunk_rows: rows per table, or None.

    Returns:
        An iterator of ``pandas.DataFrame`` with the two columns (lists of strings); at least one.

    Raises:
        TableError: the parser's ``DataError`` (a line without a tag, no sentence, not UTF-8...),
            its message unchanged.
    """
    import pyarrow as pa

    from encoders.data.conll import iter_conll

    def frame(table: "pa.Table") -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series(table.column(i).to_pylist(), dtype=object)
                             for i, name in enumerate(columns)})

    held, rows = [], 0
    try:
        for table in iter_conll(path):
            if chunk_rows is None:
                yield frame(table)
                continue
            held.append(table)
            rows += table.num_rows
            while rows >= chunk_rows:
                whole = pa.concat_tables(held)
                yield frame(whole.slice(0, chunk_rows))
                held, rows = [whole.slice(chunk_rows)], rows - chunk_rows
        if rows:
            yield frame(pa.concat_tables(held))
    except DataError as e:
        if isinstance(e, TableError):
            raise
        raise TableError(str(e)) from None


def _read_lines(stream: IO, text_column: str) -> pd.DataFrame:
    data = getattr(stream, "buffer", stream).read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TableError(f"{STDIN_NAME}: not UTF-8 text ({e})") from None
    if data.startswith("\ufeff"):
        data = data[1:]
    *lines, last = data.split("\n")  # ``last`` is what follows the final "\n"
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if last:
        lines.append(last)
    return pd.DataFrame({text_column: pd.Series(lines, dtype=str)})


@contextmanager
def parse_errors(path: str, fmt: str) -> Iterator[None]:
    """pandas' errors while parsing a csv/tsv file, as a ``TableError`` naming the file.

    Raises:
        TableError: the file is empty or cannot be parsed as ``fmt`` (bytes that are not UTF-8
            pass through as the ``UnicodeDecodeError`` they are).
    """
    try:
        yield
    except TableError:
        raise
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: the table has no columns (the file is empty)") from None
    except (pd.errors.ParserError, ValueError) as e:
        if isinstance(e, UnicodeDecodeError):
            raise
        raise TableError(f"{path}: cannot parse as {fmt.upper()}: {str(e).strip()}") from None


def header_of(raw: pd.DataFrame, path: str) -> list:
    """The column names in the first row of a table read with ``header=None``.

    Raises:
        TableError: a name appears twice (pandas would rename it "a.1" unseen).
    """
    header = raw.iloc[0].tolist()
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise TableError(f"{path}: duplicate column name(s) {', '.join(map(repr, dupes))} in the header")
    return header


def _read_delimited(path: str, fmt: str) -> pd.DataFrame:
    with parse_errors(path, fmt):
        # header=None: pandas would otherwise rename duplicate names ("a.1") and silently turn
        # a first column into the index when the data rows have one more field than the header
        raw = pd.read_csv(path, header=None, encoding="utf-8", **csv_options(fmt))
    header = header_of(raw, path)
    df = raw.iloc[1:].reset_index(drop=True)
    df.columns = header
    return df


def _read_json(text: str, path: str, lines: bool) -> pd.DataFrame:
    if not lines:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise TableError(f"{path}: cannot parse as JSON: {e}") from None
        for i, rec in enumerate(records, 1):
            if not isinstance(rec, dict):
                raise TableError(f"{path}: item {i} of the JSON array is {type(rec).__name__}, not an object")
        return pd.DataFrame(records)
    # not splitlines(): U+2028 may sit in a string
    records = [json_record(line, path, lineno) for lineno, line in enumerate(text.split("\n"), 1) if line.strip()]
    return pd.DataFrame(records)


def json_record(line: str, path: str, lineno: int) -> dict:
    """One line of a JSON lines file as its object.

    Raises:
        TableError: the line is not valid JSON, or not an object; the message names the line.
    """
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise TableError(f"{path}: line {lineno} is not valid JSON ({e}); expected one JSON object per "
                         f"line (or, in a .json file, an array of objects)") from None
    if not isinstance(rec, dict):
        raise TableError(f"{path}: line {lineno} is {type(rec).__name__}, not a JSON object")
    return rec


def _read_parquet(path: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except OSError:
        raise
    except Exception as e:  # pyarrow's ArrowInvalid & co.
        raise TableError(f"{path}: cannot read as Parquet: {e}") from None
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = [v.tolist() if isinstance(v, np.ndarray) else v for v in df[col]]
    if not isinstance(df.index, pd.RangeIndex):  # an index pandas stored (e.g. an id): keep it as columns
        df = df.reset_index()
    return df.reset_index(drop=True)


def require_columns(df: pd.DataFrame, columns: Union[str, Sequence[str]], path: str) -> None:
    """Check that ``df`` has every column in ``columns``.

    Args:
        df: the table read from ``path``.
        columns: one column name or a list of them.
        path: the file name to put in the message.

    Raises:
        TableError: naming the missing column(s), the file and the columns it has.
    """
    wanted = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        has = ", ".join(repr(c) for c in df.columns) or "none"
        raise TableError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; its columns are: {has}")


def is_missing(value: Any) -> bool:
    """A missing cell: None, pandas' NA/NaT, or a float NaN."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def texts_of(df: pd.DataFrame, column: str, path: Optional[str] = None, first_row: int = 1) -> List[str]:
    """One column as a list of Python strings.

    A missing value (``None``/``NaN``, as JSON ``null`` or an absent key or a Parquet null
    reads) becomes ``""``; ``bytes`` are decoded as UTF-8. Any other value (a number, a list,
    an object) is an error: texts are never guessed from other types.

    Args:
        df: the table.
        column: the column holding the texts.
        path: the file name to put in error messages (optional).
        first_row: the data row number of ``df``'s first row (a chunk of a larger table).

    Returns:
        ``list[str]``, one per row, in row order.

    Raises:
        TableError: the column is missing, or a value is not a string; the message gives the
            1-based data row (the header, if any, not counted), as a user counts rows in the file.
    """
    where = path if path is not None else "table"
    require_columns(df, [column], where)
    out = []
    for row, value in enumerate(df[column].tolist(), first_row):
        if isinstance(value, str):
            out.append(str(value))
        elif is_missing(value):
            out.append("")
        elif isinstance(value, bytes):
            try:
                out.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise TableError(f"{where}: {data_row(where, row)}: column {column!r} holds bytes that are not UTF-8") from None
        else:
            raise TableError(f"{where}: {data_row(where, row)}: column {column!r} holds {value!r:.60} "
                             f"({type(value).__name__}), not a text")
    return out


# --------------------------------------------------------------------------- writing


def write_table(df: pd.DataFrame, path: Optional[str], stream: Optional[IO[str]] = None) -> None:
    """Write ``df`` (without its index) in the format named by the extension of ``path``.

    * ``.csv`` / ``.tsv``: header then rows, ``\\n`` line ends, fields quoted only when needed
      (every field when some text holds a carriage return, which the ``csv`` module would
      otherwise leave unquoted); list cells are joined with single spaces (an item that is empty
      or holds whitespace is refused: it could not be split back); missing values are empty cells.
    * ``.jsonl``: one object per row. ``.json``: an array of objects, one per line. Lists stay
      lists; missing and non-finite numbers are ``null``; numpy values become plain JSON values.
      (A table with no rows writes ``[]``/nothing, which keeps no column names.)
    * ``.parquet``: with pyarrow; list cells become Parquet lists.

    The file is written to a temporary file in the same folder (created if needed) and renamed
    over ``path``, so ``path`` holds either its old content or the whole new table.

    Args:
        df: the table to write.
        path: the output file; None or ``"-"`` writes CSV to ``stream``.
        stream: text stream for None/``"-"``; ``sys.stdout`` when None.

    Raises:
        TableError: unknown extension, ``path`` is a directory, duplicate column names, or a
            table that the format cannot hold or the disk cannot take.
    """
    name = path if path not in (None, "-") else "<stdout>"
    if df.columns.duplicated().any():
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise TableError(f"{name}: duplicate column name(s) {dupes}; a written table needs unique names")
    if path in (None, "-"):
        (sys.stdout if stream is None else stream).write(_delimited_text(df, ","))
        return
    fmt = _format_of(path)
    if os.path.isdir(path):
        raise TableError(f"{path}: is a directory, not a table file")
    def write(tmp: str) -> None:
        if fmt == "parquet":
            try:
                df.rename(columns=str).to_parquet(tmp, index=False, engine="pyarrow")
            except (ValueError, TypeError, NotImplementedError) as e:  # pyarrow's ArrowInvalid/TypeError
                raise TableError(f"{path}: cannot write as Parquet: {e}") from None
            return
        text = _delimited_text(df, "," if fmt == "csv" else "\t", path) if fmt in ("csv", "tsv") else _json_text(df, fmt)
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    try:
        atomic_write_with(path, write)
    except OSError as e:
        raise TableError(f"{path}: cannot write ({e.strerror or e})") from None


def _joined(items: Any, name: str, column: Any, row: int) -> str:
    """A list cell as csv holds it: items joined by single spaces. An item that is empty or has
    whitespace would not split back into the same items (words and their tags would no longer
    match), so it is refused rather than quoted in a way no reader of these files expects."""
    items = [str(x) for x in items]
    bad = next((x for x in items if not x or any(c.isspace() for c in x)), None)
    if bad is not None:
        raise TableError(f"{name}: {data_row(name, row)}: column {column!r} holds the list item {bad!r}, which "
                         f"{'is empty' if not bad else 'has whitespace'}: csv/tsv join list items with spaces, so "
                         f"it could not be split back; write .jsonl, .json or .parquet instead")
    return " ".join(items)


def _delimited_text(df: pd.DataFrame, sep: str, name: str = "<stdout>") -> str:
    return delimited_chunk(df, sep, name)[0]


def delimited_chunk(df: pd.DataFrame, sep: str, name: str = "<stdout>", first_row: int = 1, header: bool = True,
                    quote_all: bool = False):
    """``df`` as csv/tsv text (rows numbered from ``first_row`` in messages), and whether every field
    had to be quoted (``quote_all``, or a cell that needs it: a whole table is quoted alike)."""
    flat = df.copy()
    for col in flat.columns:
        if flat[col].dtype == object:
            flat[col] = [_joined(v, name, col, row) if isinstance(v, (list, tuple, np.ndarray)) else v
                         for row, v in enumerate(flat[col], first_row)]
    has_cr = any("\r" in str(c) for c in flat.columns) or any(
        isinstance(v, str) and "\r" in v for col in flat.columns for v in flat[col].tolist())
    # one column: a whitespace-only text would be a blank line, which readers skip; quoted, it stays a row
    blank_line = len(flat.columns) == 1 and any(isinstance(v, str) and not v.strip() for v in flat.iloc[:, 0])
    quote_all = quote_all or has_cr or blank_line
    text = flat.to_csv(index=False, sep=sep, lineterminator="\n", header=header,
                       quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    return text, quote_all


def _plain(value: Any) -> Any:
    """A cell as a JSON-able Python value: lists for arrays/tuples, None for missing or non-finite."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if is_missing(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)  # timestamps, decimals and the like: their text


def json_rows(df: pd.DataFrame) -> List[str]:
    """One JSON object (text) per row of ``df``."""
    names = [str(c) for c in df.columns]
    return [json.dumps(dict(zip(names, map(_plain, row))), ensure_ascii=False)
            for row in df.itertuples(index=False, name=None)]


def _json_text(df: pd.DataFrame, fmt: str) -> str:
    rows = json_rows(df)
    if fmt == "jsonl":
        return "".join(r + "\n" for r in rows)
    return "[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n"
