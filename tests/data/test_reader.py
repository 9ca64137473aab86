"""encoders.data.reader: one reader for training, predict and evaluate -- the same formats (CoNLL
files included, parsed by one parser in blocks), the same NA rule, the same row and line numbers."""
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import encoders
from encoders.config import DataConfig
from encoders.data.conll import iter_conll, read_conll
from encoders.data.reader import FORMATS, TABLE_FORMATS, Raw, data_row, format_of, read_file
from encoders.data.sources import load_splits, text_chunks
from encoders.data.table_stream import iter_table
from encoders.data.tables import read_table, texts_of
from encoders.errors import DataError, TableError
from encoders.use.cli import main
from tests.helpers import case_tagging_rows, evaluate_then_predict, tagging_run, write_jsonl

NA_LIKE = ["NA", "null", "None", "nan", "N/A", "", "NaN", "#N/A", "-nan", "NULL", "n/a", "<NA>", " ", "0"]


def write_conll(path, rows, blank="\n", docstart=True):
    """``rows`` (tokens, tags) as a CoNLL file with a middle column, sentences split by ``blank``."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        if docstart:
            f.write(f"-DOCSTART- -X- O\n{blank}")
        for r in rows:
            f.write("".join(f"{w}\tX\t{t}\n" for w, t in zip(r["tokens"], r["tags"])) + blank)
    return str(path)


# -- CoNLL: one parser, in blocks, for every reader --------------------------------------------------
WORD = st.text(alphabet=st.sampled_from(list("abcé漢-_.,'")), min_size=1, max_size=4)
SENTENCE = st.lists(st.tuples(WORD, st.sampled_from(["O", "B-X", "I-X", "NA", "null"])), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(SENTENCE, min_size=1, max_size=12), blank=st.sampled_from(["\n", "\r\n", "\n\n", " \n"]),
       block=st.integers(1, 64), chunk=st.integers(1, 5))
def test_conll_in_blocks_and_chunks_reads_as_the_whole_file(tmp_path, sentences, blank, block, chunk):
    rows = [{"tokens": [w for w, _ in s], "tags": [t for _, t in s]} for s in sentences]
    path = write_conll(tmp_path / "s.conll", rows, blank)
    whole = read_conll(path)
    assert whole["tokens"] == [r["tokens"] for r in rows] and whole["tags"] == [r["tags"] for r in rows]
    blocks = list(iter_conll(path, block_bytes=block))
    assert sum((t.column("tokens").to_pylist() for t in blocks), []) == whole["tokens"]
    assert sum((t.column("tags").to_pylist() for t in blocks), []) == whole["tags"]
    chunks = list(iter_table(path, chunk_rows=chunk))
    assert [first for first, _ in chunks] == list(range(1, len(rows) + 1, chunk))
    assert all(len(df) <= chunk and list(df.columns) == ["tokens", "tags"] for _, df in chunks)
    assert pd.concat([df for _, df in chunks])["tokens"].tolist() == whole["tokens"]
    assert read_table(path)["tags"].tolist() == whole["tags"]


@pytest.mark.parametrize("block", [1, 7, 1 << 20])
@pytest.mark.parametrize("text, message", [
    ("a O\nb O\n\nc O\nd\n\ne O\n", r"s\.conll, line 5: one column \('d'\)"),
    ("a O\n\n\n\nb O\n\xff O\n", r"s\.conll, line 6: not UTF-8 text \(byte 0xff\)"),
    ("\n-DOCSTART- O\n\n\n", r"s\.conll: no sentences \(every one of its 5 line\(s\)"),
])
def test_conll_errors_name_the_same_line_whatever_the_block(tmp_path, block, text, message):
    path = tmp_path / "s.conll"
    path.write_bytes(text.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(DataError, match=message):
        list(iter_conll(str(path), block_bytes=block))
    with pytest.raises(DataError, match=message):
        read_conll(str(path))
    with pytest.raises(TableError, match=message):  # the commands' reader: the same message, a TableError
        list(iter_table(str(path), chunk_rows=2))


def test_predict_and_evaluate_read_a_conll_file_as_training_does(tmp_path_factory, tmp_path, capsys):
    run_dir = tagging_run(tmp_path_factory, "torch")
    rows = case_tagging_rows(40, seed=3)
    conll = write_conll(tmp_path / "in.conll", rows)
    report, printed, pred = evaluate_then_predict(run_dir, conll, tmp_path, capsys, "p.jsonl")
    run = encoders.load_run(run_dir)
    assert list(pred.columns) == ["tokens", "tags", "prediction"] and len(pred) == len(rows)
    assert pred["tokens"].tolist() == [r["tokens"] for r in rows] and pred["tags"].tolist() == [r["tags"] for r in rows]
    got = [list(p) for p in pred["prediction"]]
    assert got == run.predict_words([r["tokens"] for r in rows])
    gold = [t for r in rows for t in r["tags"]]
    flat = [t for p in got for t in p]
    assert report["num_examples"] == len(rows) and report["num_tokens"] == len(gold)
    assert report["accuracy"] == pytest.approx(float(np.mean(np.array(gold) == np.array(flat))), abs=1e-12)
    # the same sentences as a jsonl table: the same report; read in chunks: the same predictions
    (tmp_path / "j").mkdir()
    same, _, _ = evaluate_then_predict(run_dir, write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "j", capsys)
    assert {k: same[k] for k in ("accuracy", "loss", "confusion_matrix")} == {
        k: report[k] for k in ("accuracy", "loss", "confusion_matrix")}
    assert main(["predict", run_dir, conll, "--chunk-rows", "7", "--output", str(tmp_path / "c.jsonl")]) == 0
    assert [list(p) for p in read_table(str(tmp_path / "c.jsonl"))["prediction"]] == got


def test_a_tag_the_run_never_saw_in_a_conll_file_names_the_sentence(tmp_path_factory, tmp_path, capsys):
    run_dir = tagging_run(tmp_path_factory, "torch")
    rows = case_tagging_rows(3, seed=4)
    rows[2]["tags"][0] = "NOPE"
    assert main(["evaluate", run_dir, write_conll(tmp_path / "in.conll", rows)]) == 2
    assert "in.conll: data row 3: tag 'NOPE' never occurs" in capsys.readouterr().err


# -- the NA rule: training and predict read the same texts ------------------------------------------
def _write(path, texts, fmt):
    df = pd.DataFrame({"text": texts, "label": [f"c{i % 2}" for i in range(len(texts))]})
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    elif fmt == "jsonl":
        write_jsonl(path, df.to_dict("records"))
    else:
        df.to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
    return str(path)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_na_like_texts_are_read_alike_by_training_and_predict(tmp_path, fmt):
    texts = NA_LIKE + [t.lower() for t in NA_LIKE] + ["a NA b", "null null"]
    path = _write(tmp_path / f"t.{fmt}", texts, fmt)
    raw = read_file(path, "data.train_file", ["text"], "label")
    training = [t for chunk in text_chunks(raw, "text", "train") for t in chunk]
    predict = [t for first, df in iter_table(path, chunk_rows=5) for t in texts_of(df, "text", path, first)]
    assert training == predict == texts
    # and the vocabulary training builds encodes them as predict's run would
    s = load_splits(DataConfig(source="files", train_file=path, cache_dir=str(tmp_path / "c")), 0)
    rows = sorted(np.concatenate([s.train.rows, s.validation.rows]).tolist())
    assert rows == list(range(len(texts)))
    both = {int(r): s.train.tokens.row(i).tolist() for i, r in enumerate(s.train.rows)}
    both.update({int(r): s.validation.tokens.row(i).tolist() for i, r in enumerate(s.validation.rows)})
    assert [both[r] for r in rows] == s.vocab.encode_many(predict).to_lists()


def test_a_label_cell_that_says_na_is_missing_only_to_training(tmp_path):
    # the one exception of the rule: a training label reads LABEL_NA as missing (named), never a class
    path = tmp_path / "t.csv"
    path.write_text("text,label\nNA,a\nnull,NA\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train data row 2: label is null \(data\.train_file=.*t\.csv, line 3\)"):
        load_splits(DataConfig(source="files", train_file=str(path), validation_file=str(path), cache_dir=None), 0)
    df = read_table(str(path))
    assert df.to_dict("list") == {"text": ["NA", "null"], "label": ["a", "NA"]}


# -- formats and row names: one table --------------------------------------------------------------
def test_one_format_table_for_training_and_the_commands(tmp_path):
    assert set(TABLE_FORMATS) < set(FORMATS) and {FORMATS[e] for e in FORMATS} == {
        "csv", "tsv", "json", "jsonl", "parquet", "conll"}
    for ext in FORMATS:
        assert format_of(f"x{ext.upper()}") == FORMATS[ext]
    for ext in (".txt", ".csv.gz", ""):
        with pytest.raises(DataError, match=r"data\.train_file: unknown extension") as training:
            format_of(f"x{ext}", "data.train_file", TABLE_FORMATS)
        with pytest.raises(TableError, match=r"unknown table format") as command:
            format_of(f"x{ext}")
        assert all(e in str(training.value) and e in str(command.value) for e in TABLE_FORMATS)


@pytest.mark.parametrize("name, line", [("t.csv", 8), ("t.tsv", 8), ("t.jsonl", 7), ("t.json", None),
                                        ("t.parquet", None), ("t.conll", None)])
def test_a_row_is_named_alike_by_training_and_the_commands(name, line):
    raw = Raw(None, "data.train_file", name, "conll" if name.endswith("conll") else "x")
    assert raw.row("train", 6) == "train data row 7"
    if line is None:
        assert data_row(name, 7) == "data row 7"
    else:
        assert data_row(name, 7) == f"data row 7 (line {line})" and raw.where(6).endswith(f", line {line})")


def test_training_reads_the_same_conll_file_predict_reads(tmp_path):
    rows = case_tagging_rows(30, seed=6)
    path = write_conll(tmp_path / "t.conll", rows)
    s = load_splits(DataConfig(source="files", train_file=path, validation_file=path, cache_dir=None), 0,
                    task="tagging")
    words = pd.concat([df for _, df in iter_table(path, chunk_rows=4)])["tokens"].tolist()
    assert s.validation.tokens.to_lists() == s.vocab.encode_many([" ".join(w) for w in words]).to_lists()
    assert json.loads(json.dumps(words)) == [r["tokens"] for r in rows]
