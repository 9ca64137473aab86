"""Tagging and regression runs (torch and tf, trained once per session on real text) used after training:
encoders.load_run, ``python -m encoders predict|evaluate|export`` and the exported artefacts."""
import json

import numpy as np
import pandas as pd
import pytest

import encoders
from encoders.use.cli import main
from encoders.errors import EncodersError
from encoders.use.export import export_run, onnx_logits
from encoders.data.tables import read_table
from encoders.use.trained_run import TaskError
from tests.helpers import (case_tagging_rows, evaluate_then_predict, real_text_rows, regression_run, tagging_run,
                           task_run_data, write_jsonl)

BACKENDS = ["torch", "tf"]
MAKE = {"tagging": tagging_run, "regression": regression_run}


@pytest.fixture(params=BACKENDS)
def tagger(request, tmp_path_factory):
    return tagging_run(tmp_path_factory, request.param)


@pytest.fixture(params=BACKENDS)
def regressor(request, tmp_path_factory):
    return regression_run(tmp_path_factory, request.param)


def sentences(n=30):
    rows = case_tagging_rows(n, seed=5)
    # real sentences (original case), an empty text, spaces only, a pad token and unknown words
    return [" ".join(r["tokens"]) for r in rows] + ["", "   ", "<pad> the <pad>", "\u2603 zzzqx \u4e2d"]


def texts(n=30):
    return [t for t, _ in real_text_rows(n, seed=7)] + ["", " ", "x", "\u2603\u00e9\u4e2d"]


# -- load_run --------------------------------------------------------------------------------------
def test_a_tagging_run_tags_every_word(tagger):
    run = encoders.load_run(tagger)
    assert run.task == "tagging" and run.labels == ["Title", "UPPER", "lower", "mixed"]
    xs = sentences()
    tags = run.predict(xs)
    assert [len(t) for t in tags] == [len(x.split()) for x in xs]
    assert tags[-4] == [] and tags[-3] == [] and all(t in run.labels for row in tags for t in row)
    assert run.predict_words([x.split() for x in xs]) == tags  # lists of words, as the training files hold
    assert run.predict([]) == [] and run.predict_words([[], ["The"]])[0] == []
    with pytest.raises(TaskError, match="predict_proba is for classification") as e:
        run.predict_proba(xs)
    assert isinstance(e.value, TypeError) and isinstance(e.value, EncodersError)


def test_a_regression_run_gives_a_float_per_text(regressor):
    run = encoders.load_run(regressor)
    assert run.task == "regression" and run.labels == []
    pred = run.predict(texts())
    assert len(pred) == len(texts()) and all(type(p) is float and np.isfinite(p) for p in pred)
    np.testing.assert_allclose(pred, run.logits(texts()), atol=0)
    with pytest.raises(TypeError, match="classification"):
        run.predict_proba(texts())


@pytest.mark.parametrize("task", ["tagging", "regression"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_do_not_depend_on_the_batch(tmp_path_factory, task, backend):
    run = encoders.load_run(MAKE[task](tmp_path_factory, backend))
    xs = sentences() if task == "tagging" else texts()
    alone, together = run.logits(xs, batch_size=1), run.logits(xs, batch_size=256)
    if task == "tagging":
        assert [a.shape for a in alone] == [(len(x.split()), len(run.labels)) for x in xs]
        diff = max(float(np.abs(a - b).max()) if a.size else 0.0 for a, b in zip(alone, together))
    else:
        assert alone.shape == (len(xs),)
        diff = float(np.abs(alone - together).max())
    assert diff <= 1e-5
    if task == "tagging":
        assert run.predict(xs, batch_size=1) == run.predict(xs, batch_size=256)
    else:
        np.testing.assert_allclose(run.predict(xs, batch_size=1), run.predict(xs, batch_size=256), atol=1e-5)


# -- predict ---------------------------------------------------------------------------------------
def test_predict_tagging_from_the_tokens_column_and_from_text(tagger, tmp_path, capsys):
    run = encoders.load_run(tagger)
    df = read_table(task_run_data(tagger)).head(12).copy()
    df.insert(0, "id", [f"r{i}" for i in range(len(df))])
    df.at[2, "tokens"] = []
    df.at[2, "tags"] = []
    src = tmp_path / "in.jsonl"
    df.to_json(src, orient="records", lines=True)
    for ext in ("jsonl", "parquet"):
        out_path = tmp_path / f"out.{ext}"
        assert main(["predict", tagger, str(src), "--output", str(out_path)]) == 0
        out = read_table(str(out_path))
        assert list(out.columns) == ["id", "tokens", "tags", "prediction"]
        got = [list(p) for p in out["prediction"]]
        assert got == run.predict_words(df["tokens"].tolist()) and got[2] == []
        assert [len(p) for p in got] == [len(t) for t in df["tokens"]]
    # csv can't hold lists: the text column, split at whitespace; the tags space-joined
    texts_ = [" ".join(t) for t in df["tokens"]]
    pd.DataFrame({"text": texts_}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", tagger, str(tmp_path / "in.csv")]) == 0
    out = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert out["prediction"].tolist() == [" ".join(p) for p in run.predict(texts_)]


def test_predict_regression_writes_a_float(regressor, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "n": i} for i, t in enumerate(texts(10))])
    assert main(["predict", regressor, src, "--output", str(tmp_path / "out.jsonl")]) == 0
    out = read_table(str(tmp_path / "out.jsonl"))
    assert list(out.columns) == ["text", "n", "prediction"]
    np.testing.assert_allclose(out["prediction"].astype(float), encoders.load_run(regressor).predict(texts(10)),
                               atol=1e-6)


# -- evaluate --------------------------------------------------------------------------------------
def test_evaluate_tagging_accuracy_equals_predicts(tagger, tmp_path, capsys):
    report, printed, pred = evaluate_then_predict(tagger, task_run_data(tagger), tmp_path, capsys, "p.jsonl")
    assert "accuracy" in printed and "tokens" in printed and "Title" in printed
    gold = [t for row in pred["tags"] for t in row]
    got = [t for row in pred["prediction"] for t in row]
    assert report["accuracy"] == pytest.approx(float(np.mean(np.array(gold) == np.array(got))), abs=1e-12)
    assert report["num_tokens"] == len(gold) and report["num_examples"] == len(pred) == 300
    assert report["task"] == "tagging" and report["labels"] == ["Title", "UPPER", "lower", "mixed"]
    assert np.asarray(report["confusion_matrix"]).sum() == len(gold)
    assert set(report["per_class"]) == set(report["labels"])
    assert "span_f1" not in report  # case tags are not BIO-like
    assert 0 < report["loss"] < 5 and 0 <= report["macro_f1"] <= 1


def test_evaluate_tagging_on_csv_text_with_space_separated_tags(tmp_path_factory, tmp_path):
    run_dir = tagging_run(tmp_path_factory, "torch")
    rows = case_tagging_rows(20, seed=3)
    pd.DataFrame({"text": [" ".join(r["tokens"]) for r in rows],
                  "tags": [" ".join(r["tags"]) for r in rows]}).to_csv(tmp_path / "in.csv", index=False)
    write_jsonl(tmp_path / "in.jsonl", rows)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", run_dir, str(tmp_path / "in.csv"), "-o", str(a)]) == 0
    assert main(["evaluate", run_dir, str(tmp_path / "in.jsonl"), "-o", str(b)]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["accuracy"] == rb["accuracy"] and ra["confusion_matrix"] == rb["confusion_matrix"]


def test_evaluate_regression(regressor, tmp_path, capsys):
    data = task_run_data(regressor)
    assert main(["evaluate", regressor, data, "--output", str(tmp_path / "r.json")]) == 0
    assert "rmse" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    df = read_table(data)
    err = np.asarray(encoders.load_run(regressor).predict(df["text"].tolist())) - df["label"].astype(float).to_numpy()
    assert report["num_examples"] == 300 and report["task"] == "regression"
    assert report["rmse"] == pytest.approx(float(np.sqrt(np.mean(err ** 2))), rel=1e-6)
    assert report["mae"] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-6)
    assert not (tmp_path / "confusion_matrix.png").exists()


# -- export ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
@pytest.mark.parametrize("task", ["tagging", "regression"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_export_agrees_with_load_run(tmp_path_factory, tmp_path, backend, task, fmt):
    run_dir = MAKE[task](tmp_path_factory, backend)
    path, check = export_run(run_dir, fmt, str(tmp_path / ("m.onnx" if fmt == "onnx" else "sm")))
    if fmt == "onnx":
        artefact = onnx_logits(path)
    else:
        from encoders.keras.export import load_exported as load_savedmodel

        artefact = load_savedmodel(path)
    run = encoders.load_run(run_dir)
    xs = sentences() if task == "tagging" else texts()
    ids = run.encode(xs)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    width = int(lengths.max()) + 20
    tokens = np.random.default_rng(1).integers(1, len(run.vocab), size=(len(ids), width)).astype(np.int64)
    for b, row in enumerate(ids):
        tokens[b, :len(row)] = row  # random ids beyond each length: the artefact must ignore them
    got = np.asarray(artefact(tokens, lengths))
    expected = run.logits(xs)
    if task == "tagging":
        assert got.shape == (len(xs), width, len(run.labels))
        diff = max(float(np.abs(got[b, :n] - expected[b]).max()) if n else 0.0 for b, n in enumerate(lengths))
        past = np.arange(width)[None, :] >= lengths[:, None]
        assert np.all(got[past] == 0.0)  # documented: exactly zero past each length
        empty = np.asarray(artefact(np.zeros((2, 0), np.int64), np.zeros(2, np.int64)))
        assert empty.shape == (2, 0, len(run.labels))
    else:
        assert got.shape == (len(xs),)
        diff = float(np.abs(got - expected).max())
    print(f"\n{task} {backend} -> {fmt}: max |diff| vs load_run = {diff:.3g} (export's own check: {check:.3g})")
    assert diff <= 1e-4 and check <= 1e-4


def test_export_command_on_a_tagging_run(tmp_path_factory, tmp_path, capsys):
    run_dir = tagging_run(tmp_path_factory, "tf")
    assert main(["export", run_dir, "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 0
    assert "largest logit difference" in capsys.readouterr().out and (tmp_path / "m.onnx").is_file()


# -- what the user can fix: one line, exit 2 ------------------------------------------------------
def _jsonl(tmp_path, rows):
    return write_jsonl(tmp_path / "bad.jsonl", rows)


BAD = {
    "probabilities of a tagger": (lambda t, f: ["predict", tagging_run(f, "torch"), _jsonl(t, [{"text": "a b"}]),
                                                "--probabilities"], "TaskError", "is for classification runs"),
    "probabilities of a regressor": (lambda t, f: ["predict", regression_run(f, "tf"), _jsonl(t, [{"text": "a"}]),
                                                   "--probabilities"], "TaskError", "is a regression run"),
    "an unseen tag": (lambda t, f: ["evaluate", tagging_run(f, "tf"), _jsonl(t, [
        {"tokens": ["a"], "tags": ["lower"]}, {"tokens": ["b", "c"], "tags": ["lower", "B-PER"]}])],
        "DataError", "data row 2 (line 2): tag 'B-PER' never occurs"),
    "tokens and tags of different lengths": (lambda t, f: ["evaluate", tagging_run(f, "torch"), _jsonl(t, [
        {"tokens": ["a", "b"], "tags": ["lower", "lower"]}, {"tokens": ["b", "c"], "tags": ["lower"]}])],
        "DataError", "data row 2 (line 2): 2 tokens but 1 tags"),
    "no tags column": (lambda t, f: ["evaluate", tagging_run(f, "torch"), _jsonl(t, [{"tokens": ["a"]}])],
                       "DataError", "no tags column 'tags'"),
    "tokens that are not a list": (lambda t, f: ["predict", tagging_run(f, "torch"), _jsonl(t, [{"tokens": 3}])],
                                   "DataError", "data row 1 (line 1): column 'tokens'"),
    "a target that is not a number": (lambda t, f: ["evaluate", regression_run(f, "torch"), _jsonl(t, [
        {"text": "a", "label": 1.5}, {"text": "b", "label": "high"}])], "DataError", "data row 2 (line 2): 'high'"),
    "a row without target": (lambda t, f: ["evaluate", regression_run(f, "tf"), _jsonl(t, [{"text": "a"}, {
        "text": "b", "label": 2}])], "DataError", "data row 1 (line 1): no value in column 'label'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, tmp_path_factory, capsys):
    make, kind, text = BAD[case]
    assert main(make(tmp_path, tmp_path_factory)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {kind}: ") and text in err, err


# -- evaluate in chunks: the report of one chunk ------------------------------------------------------
@pytest.mark.parametrize("task", ["classification", "tagging", "regression"])
def test_evaluate_in_chunks_gives_the_report_of_one_chunk(tmp_path_factory, tmp_path, task):
    from encoders.use.evaluation import (evaluate, evaluate_regression, evaluate_tagging, gold_ids, gold_tag_ids,
                                     gold_values)
    from encoders.data.tables import write_table
    from tests.helpers import text_run, text_run_data

    make = {"classification": text_run, "tagging": tagging_run, "regression": regression_run}[task]
    run_dir = make(tmp_path_factory, "torch")
    df = read_table(text_run_data(run_dir) if task == "classification" else task_run_data(run_dir)).head(23)
    df = df.copy()
    if task == "tagging":  # a row without words at a chunk edge
        df.at[3, "tokens"], df.at[3, "tags"] = [], []
    else:
        df.loc[3, "text"], df.loc[6, "text"] = "", "NA"
    run = encoders.load_run(run_dir)
    for ext in ("csv", "jsonl", "parquet") if task == "classification" else ("jsonl",):
        src = str(tmp_path / f"in.{ext}")
        write_table(df, src)
        reports = []
        for chunk in ("1", "3", "1000"):
            out = tmp_path / f"{ext}-{chunk}.json"
            assert main(["evaluate", run_dir, src, "--chunk-rows", chunk, "--batch-size", "1", "-o", str(out)]) == 0
            reports.append(out.read_bytes())
        assert reports[0] == reports[1] == reports[2], ext
    # the figures of the in-memory functions (a sum rounded once may differ from numpy's mean in the last bit)
    got = json.loads(reports[0])
    if task == "tagging":
        gold = gold_tag_ids(df["tags"].tolist(), run.labels, [len(w) for w in df["tokens"]])
        want = evaluate_tagging(run, df["tokens"].tolist(), gold, batch_size=1)
    elif task == "regression":
        want = evaluate_regression(run, df["text"].tolist(), gold_values(df["label"].tolist()), batch_size=1)
    else:
        want = evaluate(run, df["text"].tolist(), gold_ids(df["label"].tolist(), run.labels, run.string_labels),
                        batch_size=1)
    for key, value in want.items():
        assert got[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
