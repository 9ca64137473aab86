"""read_conll and check_tagging_rows: every parsing rule and every error, on small files."""
import pytest

from encoders.data.conll import check_tagging_rows, read_conll
from encoders.data.sources import DataError


def write(tmp_path, text, name="data.conll", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def rows(ds):
    return list(zip(ds["tokens"], ds["tags"]))


def test_token_first_tag_last_middle_columns_ignored(tmp_path):
    ds = read_conll(write(tmp_path, "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter\tB-PER\n"))
    assert rows(ds) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]
    assert set(ds.column_names) == {"tokens", "tags"}
    assert str(ds.features["tokens"].feature.dtype) == "string"


def test_docstart_and_the_blank_line_after_it_are_skipped(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nA B-X\nb O\n\n-DOCSTART- -X- -X- O\n\nC O\n\n-DOCSTART-\n"
    assert rows(read_conll(write(tmp_path, text))) == [(["A", "b"], ["B-X", "O"]), (["C"], ["O"])]


def test_docstart_right_before_tokens_still_splits_sentences(tmp_path):
    assert rows(read_conll(write(tmp_path, "a O\n-DOCSTART- O\nb O\n"))) == [(["a"], ["O"]), (["b"], ["O"])]


def test_last_sentence_without_trailing_blank_line(tmp_path):
    assert rows(read_conll(write(tmp_path, "a O\n\nb O\nc I"))) == [(["a"], ["O"]), (["b", "c"], ["O", "I"])]


def test_consecutive_blank_lines_make_no_empty_sentences(tmp_path):
    ds = read_conll(write(tmp_path, "\n\n  \na O\n\n\n\t\n\nb O\n\n\n"))
    assert rows(ds) == [(["a"], ["O"]), (["b"], ["O"])]


def test_crlf_line_ends_and_byte_order_mark(tmp_path):
    ds = read_conll(write(tmp_path, b"\xef\xbb\xbfa O\r\nb I\r\n\r\nc O\r\n", mode="wb"))
    assert rows(ds) == [(["a", "b"], ["O", "I"]), (["c"], ["O"])]


def test_unicode_tokens_kept_as_is(tmp_path):
    assert rows(read_conll(write(tmp_path, "Zürich B-LOC\n東京 B-LOC\n"))) == [(["Zürich", "東京"], ["B-LOC"] * 2)]


def test_single_column_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "-DOCSTART- O\n\na O\nlonely\nb O\n")
    with pytest.raises(DataError, match=r"data\.conll, line 4: one column \('lonely'\)"):
        read_conll(path)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- O\n\n"])
def test_file_without_sentences(tmp_path, text):
    with pytest.raises(DataError, match=r"data\.conll: no sentences"):
        read_conll(write(tmp_path, text))


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"a O\n\nb O\ncaf\xe9 O\n", mode="wb")
    with pytest.raises(DataError, match=r"data\.conll, line 4: not UTF-8"):
        read_conll(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.conll: no such file"):
        read_conll(str(tmp_path / "nope.conll"))


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_conll(str(tmp_path))


def test_unreadable_file(tmp_path, monkeypatch):
    from encoders.data import conll

    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", path)

    path = write(tmp_path, "a O\n")
    monkeypatch.setattr(conll, "open", denied, raising=False)  # as root, chmod 0 would not stop a read
    with pytest.raises(DataError, match=r"data\.conll: could not read: Permission denied"):
        read_conll(path)


def test_errors_are_value_errors():
    assert issubclass(DataError, ValueError)


def test_check_tagging_rows_accepts_good_rows():
    check_tagging_rows([["a", "b"], []], [["O", "O"], []], "train", "train.jsonl")
    check_tagging_rows([("a",)], [("O",)], "train", "x.parquet")


@pytest.mark.parametrize("tokens, tags, message", [
    ([["a"], ["b", "c"]], [["O"], ["O"]], r"train\.jsonl: train data row 2: 2 tokens but 1 tags"),
    ([["a"]], [[1]], r"train data row 1: tags must be strings, got 1 \(int\)"),
    ([["a"]], [[None]], r"train data row 1: tags must be strings, got None"),
    ([["a"]], [[0]], r"train data row 1: tags must be strings, got 0"),
    ([["a", 3]], [["O", "O"]], r"train data row 1: tokens must be strings, got 3"),
    (["a b"], [["O", "O"]], r"train data row 1: tokens must be a list of strings, got str"),
    ([["a"]], [None], r"train data row 1: tags must be a list of strings, got NoneType"),
    ([["a"], ["b"]], [["O"]], r"train split has 2 token rows but 1 tag rows"),
])
def test_check_tagging_rows_errors(tokens, tags, message):
    with pytest.raises(DataError, match=message):
        check_tagging_rows(tokens, tags, "train", "train.jsonl")


def test_check_tagging_rows_on_a_read_file(tmp_path):
    ds = read_conll(write(tmp_path, "a O\nb O\n\nc O\n"))
    check_tagging_rows(ds["tokens"], ds["tags"], "validation", "dev.conll")
