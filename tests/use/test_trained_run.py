"""encoders.load_run: a trained run (torch and tf, trained by train.py on real text) used from Python."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import encoders
from encoders.errors import RunDirError
from tests.helpers import ROOT, real_text_rows, text_run

BACKENDS = ["torch", "tf"]


@pytest.fixture(params=BACKENDS)
def run_dir(request, tmp_path_factory):
    return text_run(tmp_path_factory, request.param)


def texts(n=40):
    # real texts of many lengths, an empty one, one space, unknown characters and a long one
    rows = [t for t, _ in real_text_rows(n, seed=7)]
    return rows[: n - 5] + ["", " ", "\u2603\u00e9\u4e2d", "x", " ".join(rows[:4])]


def test_what_a_loaded_run_holds(run_dir):
    run = encoders.load_run(run_dir)
    assert run.backend == ("tf" if "tf" in run_dir else "torch")
    assert run.labels == ["code", "prose"]
    assert run.encode(["", "ab"])[0] == [] and len(run.encode(["ab"])[0]) == 2
    ids = run.encode(texts())
    assert all(isinstance(i, int) and 1 <= i < len(run.vocab) for row in ids for i in row)
    proba = run.predict_proba(texts())
    assert proba.shape == (40, 2) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert run.predict(texts()) == [run.labels[k] for k in proba.argmax(1)]
    assert run.predict_proba([]).shape == (0, 2) and run.predict([]) == []


def test_probabilities_do_not_depend_on_the_batch(run_dir):
    """batch 1 vs 256, and each text inside batches of different company and padding."""
    run = encoders.load_run(run_dir)
    xs = texts()
    alone = run.predict_proba(xs, batch_size=1)
    together = run.predict_proba(xs, batch_size=256)
    assert np.abs(alone - together).max() <= 1e-5
    shuffled = np.random.default_rng(0).permutation(len(xs))
    mixed = run.predict_proba([xs[i] for i in shuffled], batch_size=7)
    assert np.abs(mixed - together[shuffled]).max() <= 1e-5


def test_a_pad_token_inside_a_text_is_not_padding(tmp_path_factory):
    run = encoders.load_run(text_run(tmp_path_factory, "tf"))
    assert 0 not in run.encode(["<pad> a <pad>"])[0]
    assert run.predict_proba(["<pad> a"]).shape == (1, 2)  # Keras would refuse a hole in its mask


def test_integer_labels_come_back_as_ints(tmp_path_factory):
    run = encoders.load_run(text_run(tmp_path_factory, "torch", labels="ints"))
    assert run.labels == [0, 1]
    assert all(isinstance(p, int) for p in run.predict(["import os", "A sentence of prose."]))


@pytest.mark.parametrize("backend,banned", [("torch", "tensorflow"), ("tf", "torch")])
def test_load_run_imports_only_the_runs_framework(tmp_path_factory, backend, banned):
    run_dir = text_run(tmp_path_factory, backend)
    code = (f"import sys, encoders\nrun = encoders.load_run({run_dir!r})\nrun.predict(['hello', ''])\n"
            f"print(sorted(m for m in ({banned!r}, 'keras' if {banned!r} == 'tensorflow' else 'pytorch_lightning') "
            f"if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("remove,message", [("vocab.json", "no vocab.json"), ("checkpoints", "no checkpoints/best"),
                                            (".hydra", "no run config")])
def test_a_run_dir_missing_a_piece_is_named(tmp_path, tmp_path_factory, remove, message):
    src = text_run(tmp_path_factory, "torch")
    broken = tmp_path / "run"
    shutil.copytree(src, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(RunDirError, match=message):
        encoders.load_run(str(broken))


def test_not_a_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="no such run dir"):
        encoders.load_run(str(tmp_path / "nope"))
