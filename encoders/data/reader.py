"""The one reader of data files: which formats exist, how their cells are read, how rows are named.

Training (``encoders.data.sources``, ``encoders.data.tagging``) and the commands that use a run
(``predict``/``evaluate``: ``encoders.data.tables``, ``encoders.data.table_stream``) take from here:

* the formats, by extension (``FORMATS``: csv, tsv, json, jsonl, parquet, and CoNLL column files),
  checked by ``check_file`` and ``format_of`` with the same messages everywhere;
* the NA rule (``csv_options``): a cell is the text written in it, ``NA``, ``null``, ``None``,
  ``nan`` and an empty cell included, never a missing value; only a training label that says one
  of ``LABEL_NA`` is missing (and named as such);
* how a row is named (``line_of``, ``data_row``): ``data row N (line L)``, data rows counted from 1
  after the header, lines the file's own;
* the CoNLL parser (``encoders.data.conll``) for both sides.

For training, a file is parsed by ``datasets`` into Arrow files in a scratch folder (deleted after),
read back a batch at a time (``ArrowFiles``); ``read_file``/``read_tagging_file`` give a ``Raw``.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from encoders.data.cache import drop_scratch, scratch_folder
from encoders.errors import DataError, TableError

# every format a data file can have, by extension (lower case)
FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet",
           ".conll": "conll", ".conllu": "conll", ".bio": "conll", ".iob": "conll"}
TABLE_FORMATS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")  # tables: a column per field (and written)
CONLL_EXTENSIONS = tuple(ext for ext, fmt in FORMATS.items() if fmt == "conll")
BUILDERS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}  # datasets' reader
FILE_BUILDERS = {ext: BUILDERS[FORMATS[ext]] for ext in TABLE_FORMATS}
TAGGING_FILE_KINDS = "json, jsonl, parquet (list columns) or a CoNLL column file (.conll)"
STDIN_NAME = "<stdin>"
# what pandas reads as missing by default: kept for label cells only (a text "NA" is the word NA)
LABEL_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


# -- formats ---------------------------------------------------------------------------------------
def check_file(path: str, key: Optional[str] = None) -> None:
    """Check that ``path`` is a file there is to read.

    Args:
        path: the file.
        key: the config key that named it (``data.train_file``); None for a command's input.

    Raises:
        DataError: (``TableError`` without ``key``) the file is missing or is a directory.
    """
    if key is None:
        if not os.path.exists(path):
            raise TableError(f"{path}: no such file")
        if os.path.isdir(path):
            raise TableError(f"{path}: is a directory, not a table file")
        return
    if os.path.isdir(path):
        raise DataError(f"{key}: {path} is a directory; give a file (csv, tsv, json, jsonl or parquet)")
    if not os.path.isfile(path):
        raise DataError(f"{key}: no such file: {path}")


def format_of(path: str, key: Optional[str] = None, known: Sequence[str] = tuple(FORMATS),
              listed: Optional[Sequence[str]] = None) -> str:
    """The format of ``path`` by its extension (case-insensitive).

    Args:
        path: the file.
        key: the config key that named it; None for a command's input or output.
        known: the extensions accepted here (every format; ``TABLE_FORMATS`` where only a table will do).
        listed: the extensions the message lists (``known`` when None).

    Returns:
        ``"csv"``, ``"tsv"``, ``"json"``, ``"jsonl"``, ``"parquet"`` or ``"conll"``.

    Raises:
        DataError: (``TableError`` without ``key``) an extension not in ``known``; the message lists them.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext in known:
        return FORMATS[ext]
    listed = list(known if listed is None else listed)
    if key is not None:
        raise DataError(f"{key}: unknown extension {ext!r} of {path}; use one of {listed}")
    shown = f"extension {ext!r}" if ext else "no extension"
    raise TableError(f"{path}: unknown table format ({shown}); expected one of {', '.join(listed)}")


# -- cells -----------------------------------------------------------------------------------------
def csv_options(fmt: str, text_columns: Optional[Sequence[str]] = None,
                label_column: Optional[str] = None) -> Dict[str, Any]:
    """The ``pandas.read_csv`` keywords of every csv/tsv reader: the one NA rule.

    A cell is the text written in it: ``NA``, ``null``, ``None``, ``nan`` or an empty cell stay those
    texts (an empty cell is an empty text), numbers stay as written. Only in ``label_column`` is a
    value of ``LABEL_NA`` missing (training refuses it by name: "label is null").

    Args:
        fmt: ``"csv"`` or ``"tsv"``.
        text_columns: the columns read as text (training names them); None: every column (the
            commands that use a run, which decide about labels themselves).
        label_column: the training label column, or None.

    Returns:
        Keywords for ``pandas.read_csv`` (and ``datasets``' csv builder, which passes them on).
    """
    options: Dict[str, Any] = {"sep": "," if fmt == "csv" else "\t", "keep_default_na": False}
    if text_columns is None and label_column is None:
        options.update(dtype=str, na_filter=False)
        return options
    options.update(na_values={label_column: LABEL_NA} if label_column else None,
                   converters={c: str for c in [*(text_columns or ()), *([label_column] if label_column else [])]})
    return options


# -- rows ------------------------------------------------------------------------------------------
def line_of(path: str, row: int) -> Optional[int]:
    """The file line of 1-based data row ``row``: csv/tsv have a header line, jsonl and standard input
    one row per line; None where rows have no line of their own (json arrays, parquet, CoNLL sentences)."""
    if path in ("-", STDIN_NAME):
        return row
    ext = os.path.splitext(path)[1].lower()
    return row + 1 if ext in (".csv", ".tsv") else row if ext == ".jsonl" else None


def data_row(path: str, row: int) -> str:
    """How every message places a row of a user's file: ``data row 7 (line 8)``. Data rows count
    from 1 after the header, lines are the file's own, as an editor shows both."""
    line = line_of(path, row)
    return f"data row {row}" + (f" (line {line})" if line is not None else "")


# -- training's reading, through datasets ----------------------------------------------------------
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
        (``line_of``: none in json arrays and parquet); a CoNLL file's sentence."""
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
        use side; ``data_row``)."""
        return f"{split} data row {row + 1}"


def _builder_for(path: str, key: str) -> str:
    """The ``datasets`` builder of a training file (``FILE_BUILDERS``); errors named by ``key``."""
    check_file(path, key)
    return BUILDERS[format_of(path, key, TABLE_FORMATS, listed=sorted(FILE_BUILDERS))]


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

    builder = _builder_for(path, key)
    kwargs: Dict[str, Any] = {}
    if builder == "csv":
        kwargs = csv_options(format_of(path, key), text_columns, label_column)
    scratch = scratch_folder(cache_dir)
    try:
        if stream:
            ds = _prepared(builder, path, scratch, kwargs)
            ds.release_scratch = weakref.finalize(ds, drop_scratch, scratch)  # reads open files per pass
        else:
            ds = load_dataset(builder, data_files={"data": os.path.abspath(path)}, split="data", cache_dir=scratch,
                              **kwargs)
            weakref.finalize(ds, drop_scratch, scratch)  # mapped pages outlive the unlink (POSIX)
    except Exception as e:  # parser errors from pyarrow/pandas: say which file
        drop_scratch(scratch)
        if _has_no_rows(path, builder):  # the builders fail on these with unhelpful messages
            raise DataError(f"{key}={path} has no rows") from e
        if builder != "parquet" and _first_non_utf8(path):  # datasets says "An error occurred while generating..."
            raise Raw(None, key, path, builder).not_utf8() from e
        raise DataError(f"{key}: could not read {path} as {builder}: {e}") from e
    return Raw(ds, key, path, builder)


def read_files(cfg: Any, read=None) -> Dict[str, Raw]:
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


def read_tagging_file(path: str, key: str, tokens_column: str = "tokens", tags_column: str = "tags") -> Raw:
    """One tagging file as a ``Raw``: CoNLL by its extension, else json/jsonl/parquet with list columns."""
    ext = os.path.splitext(path)[1].lower()
    if ext in CONLL_EXTENSIONS:
        from encoders.data.conll import read_conll

        if not os.path.exists(path):
            raise DataError(f"{key}: no such file: {path}")
        ds = read_conll(path)
        renames = {k: v for k, v in (("tokens", tokens_column), ("tags", tags_column)) if k != v}
        return Raw(ds.rename_columns(renames) if renames else ds, key, path, "conll")
    if ext in (".csv", ".tsv"):
        raise DataError(f"{key}={path}: task=tagging needs lists of words and tags per row, which csv/tsv can't "
                        f"hold; use {TAGGING_FILE_KINDS}")
    return read_file(path, key)
