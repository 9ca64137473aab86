"""load_vectors and vocab_coverage: formats, alignment rules, random rows, every error."""
import gzip

import numpy as np
import pytest

from encoders.data import vectors as vectors_mod
from encoders.data.sources import DataError
from encoders.data.vectors import load_vectors, vocab_coverage

TOKENS = ["<pad>", "<unk>", "the", "cat", "dog", "zebra"]
GLOVE = "the 1 2 3\ncat 0.5 -1 2e-1\nbird 4 4 4\ndog -2 0 1\n"


def write(tmp_path, text, name="vectors.txt", gz=False):
    path = tmp_path / name
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def check_glove_rows(matrix, found, dim):
    assert dim == 3 and matrix.shape == (6, 3) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[2:5], np.float32([[1, 2, 3], [0.5, -1, 0.2], [-2, 0, 1]]))
    assert found.tolist() == [False, False, True, True, True, False]


def test_glove_plain(tmp_path):
    check_glove_rows(*load_vectors(write(tmp_path, GLOVE), TOKENS))


def test_word2vec_header(tmp_path):
    check_glove_rows(*load_vectors(write(tmp_path, "4 3\n" + GLOVE, "vectors.w2v"), TOKENS))


def test_fasttext_vec_trailing_spaces_and_crlf(tmp_path):
    text = "4 3\r\n" + "".join(line + " \r\n" for line in GLOVE.splitlines())
    check_glove_rows(*load_vectors(write(tmp_path, text, "wiki.vec"), TOKENS))


@pytest.mark.parametrize("name", ["vectors.txt.gz", "vectors.txt"])  # told by magic bytes, not the name
def test_gzip(tmp_path, name):
    check_glove_rows(*load_vectors(write(tmp_path, "4 3\n" + GLOVE, name, gz=True), TOKENS))


def test_plain_file_named_gz(tmp_path):
    check_glove_rows(*load_vectors(write(tmp_path, GLOVE, "vectors.gz"), TOKENS))


def test_tabs_blank_lines_and_bom(tmp_path):
    text = "\ufeffthe\t1\t2\t3\n\ncat 0.5 -1 2e-1\n\nbird 4 4 4\ndog -2 0 1\n\n"
    check_glove_rows(*load_vectors(write(tmp_path, text), TOKENS))


@pytest.mark.parametrize("header", ["", "5 3\n"])
def test_a_repeated_word_keeps_its_first_vector_and_is_counted(tmp_path, caplog, header):
    path = write(tmp_path, header + "the 1 1 1\ncat 2 2 2\nthe 9 9 9\ndog 3 3 3\nthe 8 8 8\n")
    with caplog.at_level("WARNING"):
        matrix, found, _ = load_vectors(path, TOKENS, lowercase=False)
    np.testing.assert_array_equal(matrix[2], [1, 1, 1])
    line = 3 + bool(header)
    assert f"2 line(s) repeat a vocabulary word read before (first 'the', line {line}); the first occurrence's " \
           "vector is used" in caplog.text


def test_repeats_across_blocks_are_counted(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(vectors_mod, "BLOCK_BYTES", 16)
    path = write(tmp_path, "the 1 1\ncat 2 2\nbird 0 0\nthe 3 3\nthe 4 4\n")
    with caplog.at_level("WARNING"):
        matrix, _, _ = load_vectors(path, TOKENS)
    np.testing.assert_array_equal(matrix[2], [1, 1])
    assert "2 line(s) repeat a vocabulary word read before (words compared lowercased" in caplog.text


@pytest.mark.parametrize("first", ["new york 5 5 5\n", ""])
def test_glove_words_with_spaces_are_read_and_counted(tmp_path, caplog, first):
    # GloVe 840B: the word is everything before the last dim numbers; the first line may be one too
    text = first + "the 1 2 3\nnew  york 7 8 9\nlos angeles ca 4 4 4\ncat 0 0 0\n"
    tokens = TOKENS + ["new york", "los angeles ca"]
    with caplog.at_level("INFO"):
        matrix, found, dim = load_vectors(write(tmp_path, text), tokens, lowercase=False)
    assert dim == 3
    np.testing.assert_array_equal(matrix[6:8], [[5, 5, 5] if first else [7, 8, 9], [4, 4, 4]])
    np.testing.assert_array_equal(matrix[2], [1, 2, 3])
    assert found[[2, 3, 6, 7]].all()
    n, line = (3, 1) if first else (2, 2)
    assert f"{n} line(s) have a word with spaces (first 'new york', line {line}): the word is everything before " \
           "the last 3 numbers" in caplog.text
    # too many numbers after a one-word word is still damage, not a spaced word
    with pytest.raises(DataError, match=r"line 2: 4 numbers, but line 1 has 3"):
        load_vectors(write(tmp_path, "the 1 2 3\nbird 1 2 3 4\n", "bad.txt"), TOKENS)


def test_lowercasing_first_occurrence_wins(tmp_path):
    path = write(tmp_path, "The 1 1\nthe 2 2\nCAT 3 3\ncat 4 4\n")
    matrix, found, _ = load_vectors(path, TOKENS)
    np.testing.assert_array_equal(matrix[2:4], [[1, 1], [3, 3]])
    assert found[2:4].all()


def test_no_lowercasing_matches_exactly(tmp_path):
    path = write(tmp_path, "The 1 1\nthe 2 2\nCAT 3 3\n")
    matrix, found, _ = load_vectors(path, TOKENS, lowercase=False)
    np.testing.assert_array_equal(matrix[2], [2, 2])
    assert found.tolist() == [False, False, True, False, False, False]


def test_first_occurrence_wins_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors_mod, "BLOCK_BYTES", 8)  # a block per line or two
    path = write(tmp_path, "cat 1 1\nbird 0 0\nCat 2 2\nthe 3 3\nthe 4 4\n")
    matrix, found, _ = load_vectors(path, TOKENS)
    np.testing.assert_array_equal(matrix[2:4], [[3, 3], [1, 1]])
    assert found.tolist() == [False, False, True, True, False, False]


def test_pad_row_is_zero_even_when_the_file_has_it(tmp_path):
    matrix, found, _ = load_vectors(write(tmp_path, "<pad> 5 5\n<unk> 6 6\nthe 1 1\n"), TOKENS)
    assert not matrix[0].any() and not found[0]
    np.testing.assert_array_equal(matrix[1], [6, 6])
    assert found[1]


def test_random_rows_seeded_and_scaled(tmp_path):
    rng = np.random.default_rng(1)
    lines = [f"w{i} " + " ".join(map(str, rng.normal(0, 3.0, 20))) for i in range(300)]
    path = write(tmp_path, "the " + " ".join(["0.5"] * 20) + "\n" + "\n".join(lines) + "\n")
    tokens = ["<pad>", "<unk>", "the"] + [f"missing{i}" for i in range(500)]
    a, found, dim = load_vectors(path, tokens, seed=7)
    b, _, _ = load_vectors(path, tokens, seed=7)
    c, _, _ = load_vectors(path, tokens, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[3:], c[3:])
    np.testing.assert_array_equal(a[2], c[2])
    assert found.tolist() == [False, False, True] + [False] * 500
    assert 2.5 < a[3:].std() < 3.5  # matched to the file's vectors (std 3), not 1
    assert not a[0].any()


def test_vocab_coverage(tmp_path):
    _, found, _ = load_vectors(write(tmp_path, GLOVE), TOKENS)
    assert vocab_coverage(found) == pytest.approx(3 / 4)
    assert vocab_coverage(np.array([False, True])) == 0.0
    assert vocab_coverage(np.array([False, False, True, True])) == 1.0


def test_tokens_must_start_with_pad_and_unk(tmp_path):
    with pytest.raises(ValueError, match="must start with"):
        load_vectors(write(tmp_path, GLOVE), ["the", "cat"])


@pytest.mark.parametrize("text, message", [
    ("the 1 2 3\ncat 1 2\n", r"vectors\.txt, line 2: 2 numbers, but line 1 has 3"),
    ("the 1 2 3\nbird 1 2 3 4\n", r"vectors\.txt, line 2: 4 numbers, but line 1 has 3"),
    ("the 1 2 3\ncat 1 2 3\ndog 1 2", r"line 3: 2 numbers, but line 1 has 3"),  # truncated download
    ("the 1 2 3\ncat 1 x 3\n", r"vectors\.txt, line 2: 'x' is not a number"),
    ("the 1 2 3\ncat 1,5 2 3\n", r"line 2: '1,5' is not a number"),
    ("the 1 2 3\ncat 1 nan 3\n", r"line 2: a value is not finite"),
    ("", r"vectors\.txt: empty file, no vectors"),
    ("\n\n \n", r"vectors\.txt: empty file, no vectors"),
    ("2 3\n\n", r"vectors\.txt: no vectors after the header \(line 1\)"),
    ("2 5\nthe 1 2 3\ncat 1 2 3\n", r"vectors\.txt, line 2: 3 numbers, but the header \(line 1\) says 5"),
    ("2 0\nthe\n", r"line 1: the header says dimension 0"),
    ("the\ncat\n", r"vectors\.txt, line 1: a word without numbers"),
])
def test_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_vectors(write(tmp_path, text), TOKENS)


def test_bad_value_in_an_unread_line_is_not_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors_mod, "SAMPLE_LINES", 1)
    _, found, _ = load_vectors(write(tmp_path, "the 1 2\nbird x 2\n"), TOKENS)
    assert found[2]


def test_not_utf8_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"vectors\.txt, line 2: not UTF-8"):
        load_vectors(write(tmp_path, b"the 1 2\ncaf\xe9 1 2\n"), TOKENS)


def test_not_utf8_in_gzip_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"line 3: not UTF-8"):
        load_vectors(write(tmp_path, b"1 2\nthe 1 2\ncaf\xe9 1 2\n", gz=True), TOKENS)


def test_broken_gzip(tmp_path):
    data = gzip.compress(("the 1 2\n" * 5000).encode())
    path = write(tmp_path, data[: len(data) // 2])
    with pytest.raises(DataError, match=r"vectors\.txt: could not read \(gzip\)"):
        load_vectors(path, TOKENS)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.vec: no such file"):
        load_vectors(str(tmp_path / "nope.vec"), TOKENS)


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        load_vectors(str(tmp_path), TOKENS)


def test_unreadable_file(tmp_path, monkeypatch):
    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", path)

    path = write(tmp_path, GLOVE)
    import encoders.data.conll as files_mod  # where data files are opened (open_bytes)

    monkeypatch.setattr(files_mod, "open", denied, raising=False)  # as root, chmod 0 would not stop a read
    with pytest.raises(DataError, match=r"vectors\.txt: could not read: Permission denied"):
        load_vectors(path, TOKENS)


def test_errors_are_value_errors():
    assert issubclass(DataError, ValueError)
