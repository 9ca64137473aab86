"""encoders.data.tables: round-trips of odd values in every format, stdin, and every error message."""
import io
import json
import os
import re
import stat
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from encoders.data.table_stream import iter_table
from encoders.data.tables import FORMATS, read_table, require_columns, texts_of, write_table
from encoders.errors import TableError

NA_LIKE = ["NA", "null", "None", "nan", "N/A", "", "NaN", "#N/A", "-nan", "NULL", "n/a", "<NA>"]
ODD = NA_LIKE + ["a,b", 'say "hi"', '"', "line1\nline2", "cr\rlf", "crlf\r\nx", "tab\there", " padded ",
                 "é ü 漢字 🙂", "\u2028sep", "0001", "1e5", "True", "#comment", "=SUM(A1)"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_of_odd_strings(tmp_path, ext):
    df = pd.DataFrame({"text": ODD, "label": [str(i % 3) for i in range(len(ODD))], "": ODD[::-1]})
    path = str(tmp_path / f"t{ext}")
    write_table(df, path)
    back = read_table(path)
    assert list(back.columns) == ["text", "label", ""]
    for col in back.columns:
        assert back[col].tolist() == df[col].tolist(), col
    assert texts_of(back, "text") == ODD
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".parquet"])
def test_list_cells_round_trip(tmp_path, ext):
    tags = [["B-PER", "I-PER", "O"], [], ["O"], ["NA", "null"]]
    df = pd.DataFrame({"text": ["Ann Lee ran", "", "x", "NA null"], "tags": tags})
    path = str(tmp_path / f"t{ext}")
    write_table(df, path)
    back = read_table(path)
    assert back["tags"].tolist() == tags
    assert all(type(v) is list for v in back["tags"])


@pytest.mark.parametrize("ext, sep", [(".csv", ","), (".tsv", "\t")])
def test_list_cells_are_space_joined_in_delimited_files(tmp_path, ext, sep):
    df = pd.DataFrame({"text": ["a b", "c"], "tags": [["B-X", "I-X"], []]})
    path = str(tmp_path / f"t{ext}")
    write_table(df, path)
    with open(path, encoding="utf-8") as f:
        assert f.read() == f"text{sep}tags\na b{sep}B-X I-X\nc{sep}\n"
    assert read_table(path)["tags"].tolist() == ["B-X I-X", ""]


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".parquet"])
def test_numbers_missing_values_and_numpy_scalars(tmp_path, ext):
    df = pd.DataFrame({"text": ["a", None, "c"], "score": [0.5, float("nan"), np.float32(2.0)],
                       "n": np.array([1, 2, 3], dtype=np.int64),
                       "vec": [np.array([1.5, 2.5]), np.array([], dtype=float), np.array([3.0])]})
    path = str(tmp_path / f"t{ext}")
    write_table(df, path)
    back = read_table(path)
    assert back["n"].tolist() == [1, 2, 3]
    assert back["score"].tolist()[0] == 0.5 and np.isnan(back["score"].tolist()[1])
    assert back["vec"].tolist() == [[1.5, 2.5], [], [3.0]]
    assert texts_of(back, "text") == ["a", "", "c"]


CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@SETTINGS
@given(rows=st.lists(st.tuples(CELL | st.sampled_from(ODD), CELL), min_size=0, max_size=8),
       ext=st.sampled_from(FORMATS))
def test_round_trip_of_random_strings(tmp_path, rows, ext):
    df = pd.DataFrame({"text": [a for a, _ in rows], "other": [b for _, b in rows]}, dtype=str)
    path = str(tmp_path / f"r{ext}")
    write_table(df, path)
    if not rows and ext in (".json", ".jsonl"):
        with pytest.raises(TableError, match="no columns"):  # JSON records keep no column names
            read_table(path)
        return
    back = read_table(path)
    assert texts_of(back, "text") == df["text"].tolist()
    assert texts_of(back, "other") == df["other"].tolist()


@SETTINGS
@given(rows=st.lists(CELL | st.sampled_from(ODD), min_size=1, max_size=8), ext=st.sampled_from([".csv", ".tsv"]))
@example(rows=[" "], ext=".csv")  # once written unquoted: a blank line, which the reader skips
@example(rows=["a", "\t ", ""], ext=".tsv")
def test_single_column_delimited_keeps_empty_and_blank_texts(tmp_path, rows, ext):
    path = str(tmp_path / f"one{ext}")
    write_table(pd.DataFrame({"text": rows}, dtype=str), path)
    assert read_table(path)["text"].tolist() == rows


def test_csv_cells_are_never_missing_values(tmp_path):
    body = "text,label,note\n" + "\n".join(f"{v},{v},x" for v in NA_LIKE if v) + "\n,,\n"
    df = read_table(write_bytes(tmp_path / "na.csv", body.encode()))
    assert df["text"].tolist() == [v for v in NA_LIKE if v] + [""]
    assert df["label"].tolist() == [v for v in NA_LIKE if v] + [""]
    assert not df.isna().any().any()
    assert all(isinstance(v, str) for col in df.columns for v in df[col])


def test_csv_quoting_as_written_by_others(tmp_path):
    body = ('text,label\r\n"a, b","x"\r\n"multi\nline ""quoted""",y\r\n'
            '  spaced  ,00\r\n"",\r\n\r\nlast,z').encode()
    df = read_table(write_bytes(tmp_path / "q.csv", body))
    assert df["text"].tolist() == ["a, b", 'multi\nline "quoted"', "  spaced  ", "", "last"]
    assert df["label"].tolist() == ["x", "y", "00", "", "z"]  # "00" stays a string, blank line skipped


def test_csv_short_rows_fill_empty_strings_and_bom_is_dropped(tmp_path):
    df = read_table(write_bytes(tmp_path / "s.csv", "\ufefftext,label\nonly\n".encode("utf-8")))
    assert list(df.columns) == ["text", "label"]
    assert df.to_dict("list") == {"text": ["only"], "label": [""]}


def test_tsv_reads_tabs_not_commas(tmp_path):
    df = read_table(write_bytes(tmp_path / "t.tsv", b"text\tlabel\na, b\tNA\n"))
    assert df.to_dict("list") == {"text": ["a, b"], "label": ["NA"]}


def test_header_only_csv_is_an_empty_table(tmp_path):
    df = read_table(write_bytes(tmp_path / "h.csv", b"text,label\n"))
    assert list(df.columns) == ["text", "label"] and len(df) == 0


def test_json_array_and_json_lines_in_a_json_file(tmp_path):
    arr = read_table(write_bytes(tmp_path / "a.json", b' \n[{"text": "NA", "n": 1}, {"text": null, "x": [1]}]'))
    assert list(arr.columns) == ["text", "n", "x"]
    assert texts_of(arr, "text") == ["NA", ""]
    lines = read_table(write_bytes(tmp_path / "l.json", b'{"text": "a"}\n\n{"text": "b\\u2028c"}\n'))
    assert texts_of(lines, "text") == ["a", "b\u2028c"]
    jl = read_table(write_bytes(tmp_path / "l.jsonl", '{"text": "é"}\r\n{"text": "null"}'.encode()))
    assert texts_of(jl, "text") == ["é", "null"]


def test_json_strings_are_not_converted(tmp_path):
    df = read_table(write_bytes(tmp_path / "s.jsonl", b'{"id": "007", "d": "2020-01-01", "b": "true"}\n'))
    assert df.iloc[0].tolist() == ["007", "2020-01-01", "true"]


def test_json_output_is_records_array(tmp_path):
    path = str(tmp_path / "o.json")
    write_table(pd.DataFrame({"text": ["é", "NA"], "tags": [["O"], []]}), path)
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == [{"text": "é", "tags": ["O"]}, {"text": "NA", "tags": []}]
    path = str(tmp_path / "o.jsonl")
    write_table(pd.DataFrame({"text": ["a"], "p": [float("inf")]}), path)
    with open(path, encoding="utf-8") as f:
        assert f.read() == '{"text": "a", "p": null}\n'


# ------------------------------------------------------------------ stdin


@pytest.mark.parametrize("data, texts", [
    ("a\nb\n", ["a", "b"]),
    ("a\nb", ["a", "b"]),
    ("a\r\nb\r\n", ["a", "b"]),
    ("\n", [""]),
    ("\n\n", ["", ""]),
    ("", []),
    ("a\n\nNA\n", ["a", "", "NA"]),
    ("in\rside\n", ["in\rside"]),
    ("tail\r", ["tail\r"]),
    ("  spaced  \n\tx\n", ["  spaced  ", "\tx"]),
    ("\ufeffbom\n", ["bom"]),
    ("é,\"q\"\n", ["é,\"q\""]),
])
@pytest.mark.parametrize("kind", ["text", "bytes", "wrapper"])
def test_stdin_lines(data, texts, kind):
    if kind == "text":
        stream = io.StringIO(data, newline="")
    elif kind == "bytes":
        stream = io.BytesIO(data.encode("utf-8"))
    else:  # like sys.stdin: a text wrapper whose newline translation must be bypassed
        stream = io.TextIOWrapper(io.BytesIO(data.encode("utf-8")), encoding="utf-8")
    df = read_table("-", text_column="sentence", stdin=stream)
    assert list(df.columns) == ["sentence"]
    assert df["sentence"].tolist() == texts
    assert texts_of(df, "sentence") == texts


@SETTINGS
@given(lines=st.lists(CELL.filter(lambda s: "\n" not in s and not s.endswith("\r") and not s.startswith("\ufeff")),
                      max_size=8), crlf=st.booleans())
def test_stdin_round_trip(lines, crlf):
    end = "\r\n" if crlf else "\n"
    data = "".join(line + end for line in lines)
    assert read_table("-", stdin=io.BytesIO(data.encode("utf-8")))["text"].tolist() == lines


def test_stdin_default_is_sys_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\r\ny\n"), encoding="utf-8"))
    assert read_table("-")["text"].tolist() == ["x", "y"]


def test_stdin_not_utf8():
    with pytest.raises(TableError, match="<stdin>: not UTF-8"):
        read_table("-", stdin=io.BytesIO(b"caf\xe9\n"))


# ------------------------------------------------------------------ read errors


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.csv")
    with pytest.raises(TableError, match=f"^{path}: no such file$"):
        read_table(path)


def test_directory(tmp_path):
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(TableError, match=f"^{folder}: is a directory"):
        read_table(str(folder))


@pytest.mark.parametrize("name, shown", [("t.xlsx", "extension '.xlsx'"), ("noext", "no extension"),
                                         ("t.csv.gz", "extension '.gz'")])
def test_unknown_extension_lists_accepted_ones(tmp_path, name, shown):
    path = write_bytes(tmp_path / name, b"text\nx\n")
    with pytest.raises(TableError) as e:
        read_table(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: unknown table format ({shown})")
    for ext in FORMATS:
        assert ext in msg
    assert isinstance(e.value, ValueError)


def test_extension_is_case_insensitive(tmp_path):
    assert read_table(write_bytes(tmp_path / "UP.CSV", b"text\nx\n"))["text"].tolist() == ["x"]


UNREADABLE = [
    ("ragged.csv", b"text,label\na,b\nc,d,e\n", "cannot parse as CSV: .*Expected 2 fields in line 3, saw 3"),
    ("extra.csv", b"a,b\n1,2,3\n", "cannot parse as CSV: .*Expected 2 fields in line 2, saw 3"),
    ("quote.csv", b'text\n"never closed\n', "cannot parse as CSV: .*EOF inside string"),
    ("ragged.tsv", b"a\tb\n1\t2\t3\n", "cannot parse as TSV"),
    ("dup.csv", b"text,text\na,b\n", "duplicate column name.*'text'"),
    ("latin.csv", "text\ncaf\xe9\n".encode("latin-1"), "not UTF-8 text"),
    ("latin.jsonl", '{"text": "caf\xe9"}\n'.encode("latin-1"), "not UTF-8 text"),
    ("bad.json", b'[{"text": "a"},]', "cannot parse as JSON: .*line 1 column"),
    ("items.json", b'[{"text": "a"}, "b"]', "item 2 of the JSON array is str, not an object"),
    ("obj.json", b'{\n "text": "a"\n}', "line 1 is not valid JSON"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "line 2 is not valid JSON"),
    ("scalar.jsonl", b'{"text": "a"}\n\n[1, 2]\n', "line 3 is list, not a JSON object"),
    ("bad.parquet", b"PAR1 not really", "cannot read as Parquet"),
    ("empty.csv", b"", "has no columns"),
    ("blank.tsv", b"\n\n", "has no columns"),
    ("empty.json", b"[]", "has no columns"),
    ("emptyobj.json", b"[{}, {}]", "has no columns"),
    ("empty.jsonl", b"\n  \n", "has no columns"),
]


@pytest.mark.parametrize("name, data, match", UNREADABLE)
def test_unreadable_content_names_file_and_problem(tmp_path, name, data, match):
    path = write_bytes(tmp_path / name, data)
    with pytest.raises(TableError, match=match) as e:
        read_table(path)
    assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize("chunk_rows", [1, 1000])
@pytest.mark.parametrize("name, data, match", UNREADABLE)
def test_the_chunk_reader_refuses_what_the_whole_reader_refuses_in_its_words(tmp_path, name, data, match, chunk_rows):
    """predict and evaluate read in chunks: the same file gives the same message as read whole (a
    duplicate header is not reworded as a parse error)."""
    path = write_bytes(tmp_path / name, data)
    with pytest.raises(TableError) as whole:
        read_table(path)
    with pytest.raises(TableError, match=match) as chunked:
        for _ in iter_table(path, chunk_rows=chunk_rows):
            pass
    assert str(chunked.value).startswith(f"{path}: ")
    if name.endswith((".csv", ".tsv")):  # one parser's words (json and parquet readers word their own details)
        assert str(chunked.value) == str(whole.value)


def test_parquet_index_written_by_pandas_stays_a_column(tmp_path):
    path = str(tmp_path / "i.parquet")
    pd.DataFrame({"text": ["a", "b"]}, index=pd.Index(["x1", "x2"], name="id")).to_parquet(path)
    df = read_table(path)
    assert df.to_dict("list") == {"id": ["x1", "x2"], "text": ["a", "b"]}
    assert isinstance(df.index, pd.RangeIndex)


def test_parquet_with_zero_columns(tmp_path):
    path = str(tmp_path / "none.parquet")
    pd.DataFrame(index=range(3)).to_parquet(path)
    with pytest.raises(TableError, match="has no columns"):
        read_table(path)


# ------------------------------------------------------------------ columns and texts


def test_require_columns():
    df = pd.DataFrame({"text": ["a"], "id": ["1"]})
    require_columns(df, ["text", "id"], "in.csv")
    require_columns(df, "text", "in.csv")
    with pytest.raises(TableError) as e:
        require_columns(df, ["text", "label", "gold"], "in.csv")
    assert str(e.value) == "in.csv: missing column(s) 'label', 'gold'; its columns are: 'text', 'id'"
    with pytest.raises(ValueError, match="its columns are: none"):
        require_columns(pd.DataFrame(), "text", "x.csv")


def test_texts_of_missing_values_and_bytes():
    df = pd.DataFrame({"t": ["a", None, float("nan"), np.str_("b"), b"caf\xc3\xa9", pd.NA, ""]}, dtype=object)
    assert texts_of(df, "t") == ["a", "", "", "b", "café", "", ""]
    assert all(type(t) is str for t in texts_of(df, "t"))


@pytest.mark.parametrize("value, shown", [(5, "5 (int)"), (1.5, "1.5 (float)"), (True, "True (bool)"),
                                          (["a"], "['a'] (list)"), ({"a": 1}, "{'a': 1} (dict)")])
def test_texts_of_rejects_non_text_with_row_number(value, shown):
    df = pd.DataFrame({"t": ["ok", "fine", value]}, dtype=object)
    with pytest.raises(TableError) as e:
        texts_of(df, "t", path="in.jsonl")
    assert str(e.value) == f"in.jsonl: data row 3 (line 3): column 't' holds {shown}, not a text"


def test_texts_of_row_number_ignores_the_index_and_counts_from_one():
    df = pd.DataFrame({"t": [7, "x"]}, index=[10, 11], dtype=object)
    with pytest.raises(TableError, match="^table: data row 1: column 't' holds 7"):
        texts_of(df, "t")
    with pytest.raises(TableError, match=r"^in\.csv: missing column\(s\) 'text'"):
        texts_of(df, "text", path="in.csv")
    with pytest.raises(TableError, match="data row 1: .* bytes that are not UTF-8"):
        texts_of(pd.DataFrame({"t": [b"\xff"]}, dtype=object), "t")


def test_texts_of_json_number_is_an_error_with_file_row(tmp_path):
    path = write_bytes(tmp_path / "n.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"text": 3}\n')
    with pytest.raises(TableError, match=f"^{path}: data row 3 \\(line 3\\): column 'text' holds 3 \\(int\\)"):
        texts_of(read_table(path), "text", path=path)


# ------------------------------------------------------------------ writing


def test_none_and_dash_write_csv_to_the_stream(capsys):
    df = pd.DataFrame({"text": ["a,b", "NA", ""], "tags": [["B-X"], [], ["O", "O"]]})
    buf = io.StringIO()
    write_table(df, None, buf)
    assert buf.getvalue() == 'text,tags\n"a,b",B-X\nNA,\n,O O\n'
    write_table(df, "-")
    assert capsys.readouterr().out == buf.getvalue()  # default stream is sys.stdout at call time


def test_write_replaces_atomically_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "out.csv")
    write_bytes(tmp_path / "out.csv", b"old\n")
    write_table(pd.DataFrame({"text": ["new"]}), path)
    assert read_table(path)["text"].tolist() == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "out.parquet")
    write_table(pd.DataFrame({"text": ["old"]}), path)
    with pytest.raises(TableError, match=f"^{path}: cannot write as Parquet"):
        write_table(pd.DataFrame({"mixed": [1, "a", [2]]}, dtype=object), path)
    assert read_table(path)["text"].tolist() == ["old"]
    assert leftovers(tmp_path) == []


def test_written_file_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = str(tmp_path / "p.tsv")
        write_table(pd.DataFrame({"text": ["a"]}), path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.chmod(path, 0o600)
        write_table(pd.DataFrame({"text": ["b"]}), path)  # an existing file keeps its mode
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)


def test_write_creates_the_folder(tmp_path):
    path = str(tmp_path / "a" / "b" / "out.jsonl")
    write_table(pd.DataFrame({"text": ["x"]}), path)
    assert read_table(path)["text"].tolist() == ["x"]


def test_write_errors(tmp_path):
    df = pd.DataFrame({"text": ["x"]})
    with pytest.raises(TableError, match=r"out\.xlsx: unknown table format .*\.csv, \.tsv, \.json, \.jsonl, \.parquet"):
        write_table(df, str(tmp_path / "out.xlsx"))
    folder = tmp_path / "d.csv"
    folder.mkdir()
    with pytest.raises(TableError, match="is a directory"):
        write_table(df, str(folder))
    dup = pd.DataFrame([["a", "b"]], columns=["t", "t"])
    with pytest.raises(TableError, match="duplicate column name"):
        write_table(dup, str(tmp_path / "dup.json"))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", ["csv", "tsv", None])
@pytest.mark.parametrize("item,why", [("New York", "has whitespace"), ("", "is empty"), ("a\tb", "has whitespace")])
def test_a_list_item_that_would_not_split_back_is_refused_in_csv(tmp_path, capsys, ext, item, why):
    # a tagging prediction: words and tags must still pair up after the space-join
    df = pd.DataFrame({"tokens": [["I", "live"], ["in", item]], "prediction": [["O", "O"], ["O", "B-LOC"]]})
    path = str(tmp_path / f"out.{ext}") if ext else None
    with pytest.raises(TableError, match=rf"data row 2{' .line 3.' if ext else ''}: column 'tokens' holds the list "
                                         rf"item {re.escape(repr(item))}, which {why}: csv/tsv join list items with spaces"):
        write_table(df, path)
    assert not ext or not os.path.exists(path)
    write_table(df, str(tmp_path / "out.jsonl"))  # list-keeping formats hold it as it is
    assert read_table(str(tmp_path / "out.jsonl"))["tokens"].tolist()[1] == ["in", item]
