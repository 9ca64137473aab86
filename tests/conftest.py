import os
import sys

# tests import the project from the checkout even when it is not installed
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


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


def write_text_csv(path, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return str(path)


def kill_train_when(run_dir, overrides, ready, timeout: float = 300):
    """Start ``train.py`` writing to ``run_dir`` and SIGKILL it as soon as ``ready()`` is true
    (polled every 50 ms); fail if the run ended on its own before that."""
    import signal
    import subprocess
    import time

    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "train.py", f"hydra.run.dir={run_dir}", *overrides], cwd=ROOT, env=env,
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
