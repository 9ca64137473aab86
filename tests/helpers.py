"""Helpers the tests share: the repo root, launching ``train.py`` as a user would, real text."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(**extra: str) -> Dict[str, str]:
    """The environment of a child process: this checkout importable, the hub never reached."""
    return dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1", **extra)


def train_command(run_dir, overrides: Sequence[str]) -> List[str]:
    return [sys.executable, "train.py", f"hydra.run.dir={run_dir}", *overrides]


def run_train(run_dir, *overrides: str, check: bool = True, timeout: float = 600,
              extra_env: Dict[str, str] = None) -> subprocess.CompletedProcess:
    """``python train.py hydra.run.dir=RUN_DIR OVERRIDES...`` from the repo root; with ``check`` a
    non-zero exit fails the test showing the end of its output."""
    proc = subprocess.run(train_command(run_dir, overrides), cwd=ROOT, env=env(**(extra_env or {})),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def train_metrics(run_dir, *overrides: str, **kwargs) -> Tuple[dict, str]:
    """Run ``train.py`` (must succeed) and return its ``metrics.json`` and its output."""
    proc = run_train(run_dir, *overrides, **kwargs)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f), proc.stdout + proc.stderr


def run_module(*args: str, cwd: str = ROOT, stdin: str = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m ARGS...`` (e.g. ``encoders.convert RUN_DIR``) in a child process."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env(), input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def kill_train_when(run_dir, overrides, ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start ``train.py`` writing to ``run_dir`` and SIGKILL it as soon as ``ready()`` is true
    (polled every 50 ms); fail if the run ended on its own before that."""
    proc = subprocess.Popen(train_command(run_dir, overrides), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        reached = ready()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert reached, f"the run was killed after {timeout} s without reaching the wanted point"
    assert not (run_dir / "metrics.json").exists()


def real_text_rows(n: int, seed: int = 0):
    """``n`` (text, label) rows of real text found offline: English prose from the standard
    library's docstrings ("prose") and lines of its source code ("code")."""
    import inspect
    import json as json_mod
    import random
    import textwrap

    import argparse, collections, email, logging, pathlib, typing  # noqa: E401  (text sources)

    prose, code = [], []
    for mod in (argparse, collections, email, json_mod, logging, pathlib, typing, textwrap, random):
        for _, obj in inspect.getmembers(mod):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                prose.extend(p.replace("\n", " ") for p in doc.split("\n\n") if 20 < len(p) < 200 and ">>>" not in p)
        src = inspect.getsource(mod).splitlines()
        code.extend(l.strip() for l in src if 20 < len(l.strip()) < 120 and not l.strip().startswith("#"))
    rng = random.Random(seed)
    rows = [(t, "prose") for t in sorted(set(prose))] + [(t, "code") for t in sorted(set(code))]
    rng.shuffle(rows)
    prose_rows = [r for r in rows if r[1] == "prose"][: n // 2]
    code_rows = [r for r in rows if r[1] == "code"][: n - len(prose_rows)]
    out = prose_rows + code_rows
    rng.shuffle(out)
    return out


def write_text_csv(path, rows, header=("text", "label")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


class Payload:
    """Unpickling this runs ``touch MARKER`` via os.system (the classic pickle attack)."""

    def __init__(self, marker):
        self.cmd = f"touch {marker}"

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload ran"


def _as_fixture():
    import pytest

    return pytest.fixture(name="marker")(_marker)


marker = _as_fixture()  # a fixture: import it into a test module to use it


def refused_resumes(train_args: Sequence[str], tmp_path, changes: Dict[str, Sequence[str]],
                    **kwargs) -> Dict[str, str]:
    """``train.py TRAIN_ARGS`` plus each of ``changes`` (name -> extra overrides, with a ``ckpt_path=...``)
    must stop with exit code 2 and no traceback. Returns name -> the run's output."""
    out = {}
    for name, extra in changes.items():
        proc = run_train(tmp_path / f"resume-{name}", *train_args, *extra, check=False, **kwargs)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in text, f"{name}: {proc.returncode}\n{text[-3000:]}"
        assert not (tmp_path / f"resume-{name}" / "metrics.json").exists()
        out[name] = text
    return out


def two_text_files(folder, rows: int = 240) -> Tuple[str, str]:
    """Two csv files of real text with different vocabularies (prose and code lines, as labels)."""
    a = write_text_csv(os.path.join(folder, "a.csv"), real_text_rows(rows, seed=0))
    b = write_text_csv(os.path.join(folder, "b.csv"), real_text_rows(2 * rows, seed=1)[rows:])
    return a, b


_TEXT_RUNS: Dict[Tuple[str, str], str] = {}


def text_run(tmp_path_factory, backend: str, labels: str = "names") -> str:
    """A small run of ``train.py`` on real text (400 rows, char tokenizer, 1 epoch), trained once per
    test session and shared by every test module that asks for it. ``labels="ints"`` trains on the
    class ids 0/1 instead of the names "code"/"prose". Its training data is ``data.csv`` beside the run dir (``text_run_data``)."""
    key = (backend, labels)
    if key not in _TEXT_RUNS:
        root = tmp_path_factory.mktemp(f"text_run_{backend}_{labels}")
        rows = real_text_rows(400)
        if labels == "ints":
            rows = [(t, {"code": 0, "prose": 1}[y]) for t, y in rows]
        data = write_text_csv(root / "data.csv", rows)
        run_dir = root / "run"
        run_train(run_dir, f"backend={backend}", "data=files", f"data.train_file={data}", "data.tokenizer=char",
                  "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "encoder.hidden_size=16",
                  "model.embedding_dim=16", "data.batch_size=32")
        _TEXT_RUNS[key] = str(run_dir)
    return _TEXT_RUNS[key]


def text_run_data(run_dir: str) -> str:
    """The csv a :func:`text_run` was trained on (columns text, label)."""
    return os.path.join(os.path.dirname(os.fspath(run_dir)), "data.csv")


def case_tagging_rows(n: int, seed: int = 0):
    """``n`` real-text tagging rows (capitalisation restoration): the words of standard-library
    docstring sentences, lowercased, each tagged with its original case: ``lower``, ``Title``
    (first letter upper), ``UPPER`` (all letters upper, 2+ letters) or ``mixed``."""
    def case(word: str) -> str:
        letters = [c for c in word if c.isalpha()]
        if len(letters) >= 2 and all(c.isupper() for c in letters):
            return "UPPER"
        if letters and letters[0].isupper() and all(c.islower() for c in letters[1:]):
            return "Title"
        if all(not c.isupper() for c in letters):
            return "lower"
        return "mixed"

    out = []
    for text, kind in real_text_rows(4 * n, seed):
        if kind != "prose":
            continue
        words = text.split()
        out.append({"tokens": [w.lower() for w in words], "tags": [case(w) for w in words]})
        if len(out) == n:
            break
    return out


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return str(path)


def _task_run(tmp_path_factory, task: str, backend: str) -> str:
    key = (f"{task}:{backend}", "")
    if key not in _TEXT_RUNS:
        root = tmp_path_factory.mktemp(f"{task}_run_{backend}")
        if task == "tagging":
            data = write_jsonl(root / "data.jsonl", case_tagging_rows(300))
            extra = ["task=tagging"]
        else:
            data = write_jsonl(root / "data.jsonl", regression_rows(300))
            extra = ["task=regression", "model.pooling=mean"]
        run_dir = root / "run"
        run_train(run_dir, f"backend={backend}", *extra, "data=files", f"data.train_file={data}",
                  "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "encoder.hidden_size=16",
                  "model.embedding_dim=16", "data.batch_size=32")
        _TEXT_RUNS[key] = str(run_dir)
    return _TEXT_RUNS[key]


def tagging_run(tmp_path_factory, backend: str) -> str:
    """A small ``task=tagging`` run (300 rows of :func:`case_tagging_rows`, 1 epoch), trained once per
    session; its data is ``data.jsonl`` beside the run dir (``task_run_data``), columns tokens, tags."""
    return _task_run(tmp_path_factory, "tagging", backend)


def regression_run(tmp_path_factory, backend: str) -> str:
    """A small ``task=regression`` run (300 rows of :func:`regression_rows`, mean pooling, 1 epoch),
    trained once per session; its data is ``data.jsonl`` beside the run dir, columns text, label."""
    return _task_run(tmp_path_factory, "regression", backend)


def task_run_data(run_dir: str) -> str:
    """The jsonl a :func:`tagging_run` / :func:`regression_run` was trained on."""
    return os.path.join(os.path.dirname(os.fspath(run_dir)), "data.jsonl")


def regression_rows(n: int, seed: int = 0):
    """``n`` real-text regression rows: a standard-library docstring sentence or source line and, as its
    target, its share of letters that are upper case times 10 (code lines and prose differ)."""
    out = []
    for text, _ in real_text_rows(n, seed):
        letters = [c for c in text if c.isalpha()]
        out.append({"text": text, "label": round(10 * sum(c.isupper() for c in letters) / max(len(letters), 1), 4)})
    return out


def evaluate_then_predict(run_dir: str, data: str, folder, capsys, predictions: str = "p.csv"):
    """``encoders evaluate`` then ``encoders predict`` of one file, in this process (both must exit 0):
    (the report.json, what evaluate printed, the predictions table). evaluate writes to ``folder/ev``
    and its confusion matrix plot must be there."""
    from encoders.use.cli import main
    from encoders.data.tables import read_table

    out_json = folder / "ev" / "report.json"
    assert main(["evaluate", run_dir, data, "--output", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert (folder / "ev" / "confusion_matrix.png").stat().st_size > 0
    assert main(["predict", run_dir, data, "--output", str(folder / predictions)]) == 0
    return json.loads(out_json.read_text()), printed, read_table(str(folder / predictions))
