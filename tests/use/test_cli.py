"""python -m encoders predict|evaluate|export|convert on real runs of both backends (trained once per session)."""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import encoders
from encoders.use.cli import main
from encoders.data.tables import read_table
from tests.helpers import ROOT, evaluate_then_predict, run_module, text_run, text_run_data

BACKENDS = ["torch", "tf"]


@pytest.fixture(params=BACKENDS)
def run_dir(request, tmp_path_factory):
    return text_run(tmp_path_factory, request.param)


def sample(run_dir, tmp_path, n=25):
    df = read_table(text_run_data(run_dir)).head(n).copy()
    df.insert(0, "id", [f"row{i}" for i in range(len(df))])
    df["note"] = ["keep me"] * len(df)
    df.loc[3, "text"] = ""
    path = tmp_path / "input.csv"
    df.to_csv(path, index=False)
    return df, str(path)


def test_predict_keeps_rows_columns_and_order(run_dir, tmp_path, capsys):
    df, path = sample(run_dir, tmp_path)
    assert main(["predict", run_dir, path, "--batch-size", "4"]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "text", "label", "note", "prediction", "probability"]
    assert out["id"].tolist() == df["id"].tolist() and out["text"].tolist() == df["text"].tolist()
    run = encoders.load_run(run_dir)
    assert out["prediction"].tolist() == run.predict(df["text"].tolist())
    np.testing.assert_allclose(out["probability"].astype(float), run.predict_proba(df["text"].tolist()).max(1),
                               atol=1e-6)


@pytest.mark.parametrize("ext", ["jsonl", "json", "tsv", "parquet"])
def test_predict_output_formats_and_probabilities(tmp_path_factory, tmp_path, ext):
    run_dir = text_run(tmp_path_factory, "torch")
    df, path = sample(run_dir, tmp_path, n=10)
    out_path = str(tmp_path / f"out.{ext}")
    assert main(["predict", run_dir, path, "--output", out_path, "--probabilities"]) == 0
    out = read_table(out_path)
    assert len(out) == 10 and out["id"].tolist() == df["id"].tolist()
    assert list(out.columns)[-4:] == ["prediction", "probability", "probability_code", "probability_prose"]
    p = out[["probability_code", "probability_prose"]].astype(float).to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["probability"].astype(float), p.max(1), atol=1e-7)


def test_predict_from_stdin_one_text_per_line(tmp_path_factory):
    run_dir = text_run(tmp_path_factory, "tf")
    lines = ["import os", "", "A sentence of prose, with words.", ""]
    proc = run_module("encoders", "predict", run_dir, "-", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_csv(io.StringIO(proc.stdout), dtype=str, keep_default_na=False)
    assert out["text"].tolist() == lines  # empty lines are texts too
    assert out["prediction"].tolist() == encoders.load_run(run_dir).predict(lines)


def test_evaluate_accuracy_equals_predicts(run_dir, tmp_path, capsys):
    report, printed, pred = evaluate_then_predict(run_dir, text_run_data(run_dir), tmp_path, capsys)
    assert "accuracy" in printed and "macro F1" in printed and "prose" in printed
    accuracy = float((pred["prediction"] == pred["label"]).mean())
    assert report["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert report["num_examples"] == len(pred) and report["labels"] == ["code", "prose"]
    assert np.asarray(report["confusion_matrix"]).sum() == len(pred)
    assert set(report) >= {"accuracy", "macro_f1", "loss", "num_examples", "per_class", "confusion_matrix", "labels"}
    assert 0 < report["loss"] < 5


def test_evaluate_with_integer_labels_and_default_output(tmp_path_factory, capsys):
    run_dir = text_run(tmp_path_factory, "torch", labels="ints")
    assert main(["evaluate", run_dir, text_run_data(run_dir)]) == 0
    report = json.loads(open(os.path.join(run_dir, "evaluation.json")).read())
    assert report["labels"] == ["0", "1"] and report["num_examples"] == 400
    assert os.path.isfile(os.path.join(run_dir, "confusion_matrix.png"))


def test_export_command_both_formats(tmp_path_factory, tmp_path, capsys):
    run_dir = text_run(tmp_path_factory, "tf")
    assert main(["export", run_dir, "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 0
    assert "largest logit difference" in capsys.readouterr().out and (tmp_path / "m.onnx").is_file()


def test_help_of_each_command_and_convert_still_works(tmp_path_factory, tmp_path):
    for args in (["--help"], ["predict", "--help"], ["evaluate", "--help"], ["export", "--help"]):
        proc = run_module("encoders", *args)
        assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-1000:]
    run_dir = text_run(tmp_path_factory, "torch")
    out = tmp_path / "best.keras"
    proc = run_module("encoders", "convert", run_dir, "--out", str(out))
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    assert run_module("encoders.convert", "--help").returncode == 0


def test_every_command_takes_checkpoint_last_as_its_advice_says(run_dir, tmp_path, capsys):
    only_last = tmp_path / "only_last"
    shutil.copytree(run_dir, only_last)
    for f in os.listdir(only_last / "checkpoints"):
        if f.startswith("best."):
            os.remove(only_last / "checkpoints" / f)
    run, data = str(only_last), text_run_data(run_dir)
    assert main(["predict", run, data]) == 2
    assert "pass --checkpoint last" in capsys.readouterr().err
    assert main(["predict", run, data, "--checkpoint", "last", "--output", str(tmp_path / "p.csv")]) == 0
    assert main(["evaluate", run, data, "--checkpoint", "last", "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["checkpoint"].endswith(
        os.path.join("checkpoints", "last.ckpt" if "torch" in run_dir else "last.keras"))
    ext = ".keras" if "torch" in run_dir else ".ckpt"
    for flag in ("--output", "--out"):  # convert: --output like the others, --out kept
        out = tmp_path / f"converted{flag}{ext}"
        assert main(["convert", run, "--checkpoint", "last", flag, str(out)]) == 0 and out.is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m encoders convert")


def _broken(tmp_path, tmp_path_factory, remove):
    broken = tmp_path / "broken"
    shutil.copytree(text_run(tmp_path_factory, "torch"), broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return str(broken)


BAD = {
    "no checkpoint": (lambda t, f, d: ["predict", _broken(t, f, "checkpoints"), d], "RunDirError", "no checkpoints/best"),
    "no vocab": (lambda t, f, d: ["predict", _broken(t, f, "vocab.json"), d], "RunDirError", "no vocab.json"),
    "not a run dir": (lambda t, f, d: ["predict", str(t / "nope"), d], "RunDirError", "no such run dir"),
    "no text column": (lambda t, f, d: ["predict", text_run(f, "torch"), _write(t, "txt,label\nhi,code\n")],
                       "DataError", "'text'"),
    "no label column": (lambda t, f, d: ["evaluate", text_run(f, "torch"), _write(t, "text\nhi\n")],
                        "DataError", "no label column 'label'"),
    "a row without label": (lambda t, f, d: ["evaluate", text_run(f, "torch"), _write(t, "text,label\na,code\nb,\n")],
                            "DataError", "data row 2 (line 3): no label"),
    "an unseen label": (lambda t, f, d: ["evaluate", text_run(f, "tf"), _write(t, "text,label\na,code\nb,spam\n")],
                        "DataError", "data row 2 (line 3): label 'spam' never occurs"),
    "an unseen class id": (lambda t, f, d: ["evaluate", text_run(f, "torch", "ints"), _write(t, "text,label\na,7\n")],
                           "DataError", "data row 1 (line 2): label 7 never occurs"),
    "an unreadable file": (lambda t, f, d: ["predict", text_run(f, "torch"), _write(t, b"\xff\xfe\x00", "bin.csv")],
                           "DataError", "not UTF-8"),
    "a missing file": (lambda t, f, d: ["predict", text_run(f, "torch"), str(t / "missing.csv")],
                       "DataError", "no such file"),
    "an unknown output format": (lambda t, f, d: ["predict", text_run(f, "torch"), d, "--output", str(t / "o.txt")],
                                 "DataError", "unknown table format"),
    "an export over training files": (lambda t, f, d: ["export", text_run(f, "torch"), "--format", "onnx", "--output",
                                                       os.path.join(text_run(f, "torch"), "metrics.json")],
                                      "ExportError", "training wrote"),
}


def _write(tmp_path, content, name="in.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, tmp_path_factory, capsys):
    make, kind, text = BAD[case]
    args = make(tmp_path, tmp_path_factory, _write(tmp_path, "text\nhello\n", "good.csv"))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {kind}: ") and text in err, err


def test_unknown_format_exits_2_in_a_child(tmp_path_factory):
    proc = run_module("encoders", "export", text_run(tmp_path_factory, "torch"), "--format", "tflite")
    assert proc.returncode == 2 and "invalid choice: 'tflite'" in proc.stderr
    proc = run_module("encoders", "predict", text_run(tmp_path_factory, "torch"), "/no/such.csv")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: DataError:")


EXIT_CHILD = """
import atexit, logging, sys, threading, time
from encoders.use.cli import exit_process
out = sys.argv[1]
logging.basicConfig(filename=out + ".log", level=logging.INFO)
logging.info("logged before exit")  # a FileHandler's buffer: logging's exit handler closes it
def late():
    time.sleep(0.3)
    open(out + ".thread", "w").write("written by a thread still running at exit")
threading.Thread(target=late).start()
atexit.register(lambda: open(out + ".atexit", "w").write("exit handler ran"))
sys.stdout.write("no newline, still buffered")
exit_process(int(sys.argv[2]))
print("never reached")
"""


@pytest.mark.parametrize("code", [0, 3])
def test_exit_process_ends_only_after_what_a_normal_exit_writes(tmp_path, code):
    out = str(tmp_path / "out")
    proc = subprocess.run([sys.executable, "-c", EXIT_CHILD, out, str(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == "no newline, still buffered"
    assert open(out + ".thread").read() == "written by a thread still running at exit"
    assert open(out + ".atexit").read() == "exit handler ran"
    assert "logged before exit" in open(out + ".log").read()


def test_entry_points_end_through_exit_process():
    for path in ("train.py", "encoders/__main__.py", "encoders/convert/__main__.py"):
        assert "exit_process(" in open(os.path.join(ROOT, path)).read(), path
    assert 'encoders = "encoders.use.cli:console"' in open(os.path.join(ROOT, "pyproject.toml")).read()


def full_disk_at_fsync(monkeypatch, marker: str):
    """ENOSPC from os.fsync for files whose path contains ``marker``: where a full disk shows on
    filesystems with delayed allocation (ext4, xfs), after the bytes were accepted into the page cache."""
    import errno

    real = os.fsync

    def fsync(fd):
        if marker in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_evaluate_on_a_full_disk_says_so_in_one_line_and_keeps_the_old_report(tmp_path_factory, tmp_path, capsys,
                                                                              monkeypatch):
    run_dir = text_run(tmp_path_factory, "torch")  # the report is written alike for both backends
    out = tmp_path / "report.json"
    assert main(["evaluate", run_dir, text_run_data(run_dir), "--output", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    full_disk_at_fsync(monkeypatch, "report.json")
    assert main(["evaluate", run_dir, text_run_data(run_dir), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: StorageError: no space left on device while writing the JSON report {out}: "
                   "free some space; files written before are intact\n")
    assert out.read_bytes() == before and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


# -- predict in chunks: the same bytes as one chunk ----------------------------------------------------
def _chunk_edge_table(run_dir):
    """Texts that end up at chunk edges: empty, NA-like, whitespace-only, quotes and commas, and a carriage
    return late in the table (every csv field is then quoted, also those written before it)."""
    texts = read_table(text_run_data(run_dir))["text"].head(9).tolist()
    texts[0:0] = ["", "NA"]
    texts[4:4] = ["null", " ", 'say "hi", then go', "nan", ""]
    texts.append("a line\r\nand another")
    texts.append("None")
    ids = list(range(len(texts)))
    ids[6] = None  # jsonl: pandas reads the whole column as floats, so must every chunk
    return pd.DataFrame({"id": ids, "text": texts, "note": ["keep"] * len(texts)})


def test_predict_in_chunks_writes_the_bytes_of_one_chunk(tmp_path_factory, tmp_path, monkeypatch, capsys):
    from encoders.data.tables import write_table

    run_dir = text_run(tmp_path_factory, "torch")
    df = _chunk_edge_table(run_dir)
    inputs = {}
    for ext in ("csv", "jsonl", "parquet"):
        inputs[ext] = str(tmp_path / f"in.{ext}")
        write_table(df, inputs[ext])
    lines = [t for t in df["text"] if "\n" not in t] + ["ends without newline"]
    plan = {"csv": ("csv", "tsv", "json", "parquet", "stdout"), "jsonl": ("jsonl", "parquet"), "parquet": ("csv",),
            "stdin": ("stdout",)}
    for name, path in [*inputs.items(), ("stdin", "-")]:
        for out_ext in plan[name]:
            outputs = []
            for chunk in (1, 3, 1000):
                out = str(tmp_path / f"{name}-{chunk}.{out_ext}")
                # batches of 1: a row's float32 logits then don't depend on the rows batched with it
                args = ["predict", run_dir, path, "--chunk-rows", str(chunk), "--probabilities", "--batch-size", "1"]
                args += [] if out_ext == "stdout" else ["--output", out]
                monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines)))
                assert main(args) == 0, (name, out_ext, chunk)
                if out_ext == "stdout":
                    outputs.append(capsys.readouterr().out.encode())
                else:
                    outputs.append(open(out, "rb").read())
            assert outputs[0] == outputs[1] == outputs[2], (name, out_ext)
            if out_ext == "csv":
                assert outputs[0].startswith(b'"id","text"')  # the late carriage return quotes every field
                assert read_table(out)["text"].tolist() == df["text"].tolist()
    run = encoders.load_run(run_dir)
    got = pd.read_csv(io.BytesIO(outputs[0]), dtype=str, keep_default_na=False)
    assert got["text"].tolist() == lines and got["prediction"].tolist() == run.predict(lines)
    # default batches, built per chunk: the same labels, probabilities to float32 rounding
    out = str(tmp_path / "default.csv")
    assert main(["predict", run_dir, inputs["csv"], "--chunk-rows", "3", "--output", out]) == 0
    got, whole = read_table(out), read_table(str(tmp_path / "csv-1000.csv"))
    assert got["prediction"].tolist() == whole["prediction"].tolist()
    np.testing.assert_allclose(got["probability"].astype(float), whole["probability"].astype(float), atol=1e-6)


def test_predict_in_chunks_places_a_bad_row_in_the_whole_file(tmp_path_factory, tmp_path, capsys):
    run_dir = text_run(tmp_path_factory, "torch")
    rows = [{"text": "fine"}] * 4 + [{"text": 42}] + [{"text": "fine"}] * 3
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.csv"
    for chunk in ("1", "3"):
        assert main(["predict", run_dir, str(path), "--chunk-rows", chunk, "--output", str(out)]) == 2
        assert "data row 5 (line 5): column 'text' holds 42" in capsys.readouterr().err
        assert not out.exists()  # nothing half-written


def test_evaluate_in_chunks_places_a_bad_label_in_the_whole_file(tmp_path_factory, tmp_path, capsys):
    run_dir = text_run(tmp_path_factory, "torch")
    df = read_table(text_run_data(run_dir)).head(8).copy()
    df.loc[4, "label"] = "poetry"
    df.to_csv(tmp_path / "in.csv", index=False)
    for chunk in ("1", "3"):
        assert main(["evaluate", run_dir, str(tmp_path / "in.csv"), "--chunk-rows", chunk,
                     "-o", str(tmp_path / "e.json")]) == 2
        assert "data row 5 (line 6): label 'poetry' never occurs" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()
