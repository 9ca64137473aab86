"""Tables read and written a chunk of rows at a time, for ``encoders predict`` on inputs of any size.

``iter_table`` yields the same rows, columns and cell values as :func:`encoders.data.tables.read_table`
(chunk by chunk, with each chunk's first data row number for messages); ``TableWriter`` appends
chunks and ends with the bytes :func:`encoders.data.tables.write_table` writes for the whole table.
What had to be decided for the whole table is decided so here too: csv/tsv quote every field when
any cell needs it (what was written before is re-quoted then), a jsonl column of integers with a
null anywhere is read as floats in every chunk (as pandas reads the whole file), parquet likewise.
CoNLL files are parsed by training's parser a block of whole sentences at a time. Held in memory
whole: ``.json`` arrays read, and ``.parquet`` written.
"""
from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from typing import IO, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from encoders.data.reader import check_file, csv_options, format_of
from encoders.data.tables import (CONLL_COLUMNS, STDIN_NAME, _format_of, conll_frames, delimited_chunk, header_of,
                                  json_record, json_rows, parse_errors, read_table,
                                  write_table)
from encoders.errors import TableError

DEFAULT_CHUNK_ROWS = 20_000  # rows per chunk: a few MB of text, many batches to sort by length


def iter_table(path: str, text_column: str = "text", chunk_rows: int = DEFAULT_CHUNK_ROWS,
               stdin: Optional[IO] = None, conll_columns: Sequence[str] = CONLL_COLUMNS
               ) -> Iterator[Tuple[int, pd.DataFrame]]:
    """The rows of a table, a chunk at a time.

    Args:
        path: the file (its extension picks the format, as :func:`read_table`'s; a CoNLL file gives
            a row per sentence), or ``"-"`` for standard input.
        text_column: the column name given to the lines read from standard input.
        chunk_rows: the most data rows in a chunk.
        stdin: the stream that ``"-"`` reads; ``sys.stdin`` when None.
        conll_columns: the names of a CoNLL file's token and tag columns.

    Returns:
        ``(first_row, chunk)`` pairs: ``chunk`` holds data rows ``first_row ..`` (counted from 1) of
        ``path``, at most ``chunk_rows`` of them, with a fresh ``RangeIndex``. The first chunk always
        comes (maybe with no rows: it names the columns).

    Raises:
        TableError: as :func:`read_table`'s.
        ValueError: ``chunk_rows`` < 1.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if path == "-":
        return _numbered(_stdin_chunks(sys.stdin if stdin is None else stdin, text_column, chunk_rows))
    check_file(path)
    fmt = format_of(path)
    if fmt in ("csv", "tsv"):
        chunks = _delimited_chunks(path, fmt, chunk_rows)
    elif fmt == "parquet":
        chunks = _parquet_chunks(path, chunk_rows)
    elif fmt == "conll":
        chunks = conll_frames(path, conll_columns, chunk_rows)
    elif fmt == "json" and _starts_array(path):
        chunks = _slices(read_table(path, text_column), chunk_rows)  # an array is parsed whole
    else:
        chunks = _jsonl_chunks(path, chunk_rows)
    return _numbered(chunks, path)


def _numbered(chunks: Iterator[pd.DataFrame], path: str = STDIN_NAME) -> Iterator[Tuple[int, pd.DataFrame]]:
    first = 1
    try:
        for i, chunk in enumerate(chunks):
            if i == 0 and chunk.shape[1] == 0:
                raise TableError(f"{path}: the table has no columns")
            yield first, chunk.reset_index(drop=True)
            first += len(chunk)
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: not UTF-8 text ({e})") from None
    except OSError as e:
        raise TableError(f"{path}: cannot read ({e.strerror or e})") from None


def _slices(df: pd.DataFrame, chunk_rows: int) -> Iterator[pd.DataFrame]:
    yield df.iloc[:chunk_rows]
    for start in range(chunk_rows, len(df), chunk_rows):
        yield df.iloc[start:start + chunk_rows]


def _stdin_chunks(stream: IO, text_column: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Lines as :func:`encoders.data.tables._read_lines` splits them: at ``\\n`` only, one ``\\r`` before
    it dropped, no row after a final newline, a byte-order mark at the start dropped."""
    lines: List[str] = []
    sent = False
    for i, line in enumerate(getattr(stream, "buffer", stream)):
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if i == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.endswith("\n"):
            line = line[:-1]
            line = line[:-1] if line.endswith("\r") else line
        lines.append(line)
        if len(lines) == chunk_rows:
            yield pd.DataFrame({text_column: pd.Series(lines, dtype=str)})
            lines, sent = [], True
    if lines or not sent:
        yield pd.DataFrame({text_column: pd.Series(lines, dtype=str)})


def _delimited_chunks(path: str, fmt: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    header: Optional[list] = None
    with parse_errors(path, fmt):
        # as tables._read_delimited: header=None so duplicate names are seen, every cell a string
        with pd.read_csv(path, header=None, encoding="utf-8", chunksize=chunk_rows, **csv_options(fmt)) as reader:
            for raw in reader:
                if header is None:
                    header = header_of(raw, path)
                    raw = raw.iloc[1:]
                raw.columns = header
                yield raw


def _starts_array(path: str) -> bool:
    with open(path, encoding="utf-8-sig") as f:
        while True:
            block = f.read(1 << 16)
            if not block or block.strip():
                return block.lstrip().startswith("[")


def _jsonl_chunks(path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """JSON lines in chunks. A first pass checks every line (the errors come before any output) and
    finds the columns, in order of first use, and which are floats: pandas reads a whole file's column
    of numbers as floats when it has a float or a null (or a row without it) anywhere."""
    columns: dict = {}  # name -> [rows holding it, a null or float seen, numbers only]
    rows = 0
    for rec in _records(path):
        rows += 1
        for key, value in rec.items():
            seen = columns.setdefault(key, [0, False, True])
            seen[0] += 1
            seen[1] = seen[1] or value is None or isinstance(value, float)
            seen[2] = seen[2] and (value is None or isinstance(value, (int, float)) and not isinstance(value, bool))
    floats = [k for k, (n, nullish, numbers) in columns.items() if numbers and (nullish or n < rows)]
    names = list(columns)
    records: list = []
    sent = False
    for rec in _records(path):
        records.append(rec)
        if len(records) == chunk_rows:
            yield _records_frame(records, names, floats)
            records, sent = [], True
    if records or not sent:
        yield _records_frame(records, names, floats)


def _records(path: str) -> Iterator[dict]:
    """The objects of a JSON lines file, blank lines skipped; an invalid line is an error naming its line."""
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield json_record(line, path, lineno)


def _records_frame(records: list, names: list, floats: list) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=names) if records else pd.DataFrame(columns=names)
    for name in floats:  # ints, or only nulls in this chunk
        df[name] = df[name].astype(np.float64)
    return df


def _parquet_chunks(path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        # pyarrow gives an integer column with a null as floats: decided per chunk unless told
        floats = [f.name for f in schema if pa.types.is_integer(f.type)
                  and pf.read(columns=[f.name]).column(0).null_count > 0]
        batches = pf.iter_batches(batch_size=chunk_rows)
        first = True
        for batch in batches:
            yield _parquet_frame(pa.Table.from_batches([batch], schema=schema).to_pandas(), floats)
            first = False
        if first:
            yield _parquet_frame(schema.empty_table().to_pandas(), floats)
    except OSError:
        raise
    except TableError:
        raise
    except Exception as e:  # pyarrow's ArrowInvalid & co.
        raise TableError(f"{path}: cannot read as Parquet: {e}") from None


def _parquet_frame(df: pd.DataFrame, floats: list) -> pd.DataFrame:
    """As tables._read_parquet leaves a table: lists for arrays, a stored index kept as columns."""
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = [v.tolist() if isinstance(v, np.ndarray) else v for v in df[col]]
    for name in floats:
        if name in df.columns and df[name].dtype.kind in "iu":
            df[name] = df[name].astype(np.float64)
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    return df.reset_index(drop=True)


class TableWriter:
    """Writes a table chunk by chunk to ``path`` (its extension picks the format; None or ``"-"``: csv on
    ``stream``), ending with the bytes :func:`write_table` writes for all the chunks together. The
    file is assembled beside ``path`` and renamed over it by :meth:`close`; standard output gets the
    table once it is complete (a late cell may require every field quoted)."""

    def __init__(self, path: Optional[str], stream: Optional[IO[str]] = None):
        self.path, self.rows = path, 0
        self.name = path if path not in (None, "-") else "<stdout>"
        self.fmt = "csv" if path in (None, "-") else _format_of(path)
        if path not in (None, "-") and os.path.isdir(path):
            raise TableError(f"{path}: is a directory, not a table file")
        self.stream = stream
        self.quote_all = self.started = False
        self.held: List[pd.DataFrame] = []  # parquet: written whole at the end
        self.file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")

    def write(self, df: pd.DataFrame) -> None:
        if df.columns.duplicated().any():
            dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
            raise TableError(f"{self.name}: duplicate column name(s) {dupes}; a written table needs unique names")
        first_row, self.rows = self.rows + 1, self.rows + len(df)
        started, self.started = self.started, True
        if self.fmt == "parquet":  # an empty chunk only names the columns: it must not set their types
            if len(df) or not self.held:
                self.held = [c for c in self.held if len(c)] + [df]
        elif self.fmt in ("csv", "tsv"):
            sep = "," if self.fmt == "csv" else "\t"
            text, quote_all = delimited_chunk(df, sep, self.name, first_row, header=not started,
                                              quote_all=self.quote_all)
            if quote_all and not self.quote_all:
                self._requote(sep)
            self.quote_all = quote_all
            self.file.write(text)
        else:
            rows = json_rows(df)
            if self.fmt == "jsonl":
                self.file.write("".join(r + "\n" for r in rows))
            elif rows:
                self.file.write(("[\n" if first_row == 1 else ",\n") + ",\n".join(rows))  # first_row 1: none before

    def _requote(self, sep: str) -> None:
        """What was written with minimal quoting, now with every field quoted."""
        self.file.seek(0)
        out = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
        writer = csv.writer(out, delimiter=sep, lineterminator="\n", quoting=csv.QUOTE_ALL)
        for fields in csv.reader(self.file, delimiter=sep):
            writer.writerow(fields)
        self.file.close()
        self.file = out

    def close(self) -> None:
        """Finish the table and put it in place."""
        from encoders.io import atomic_write_with

        if self.fmt == "parquet":
            write_table(pd.concat(self.held, ignore_index=True) if self.held else pd.DataFrame(), self.path)
            return
        if self.fmt == "json":
            self.file.write("\n]\n" if self.rows else "[]\n")
        self.file.seek(0)
        if self.path in (None, "-"):
            shutil.copyfileobj(self.file, sys.stdout if self.stream is None else self.stream)
            self.file.close()
            return

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                shutil.copyfileobj(self.file, f, 1 << 20)

        try:
            atomic_write_with(self.path, write)
        except OSError as e:
            raise TableError(f"{self.path}: cannot write ({e.strerror or e})") from None
        finally:
            self.file.close()
