"""``backend=jax``: train.py trains the Keras model with Keras on jax into the same run dir as
``backend=tf``, never importing TensorFlow or torch, resumes through BackupAndRestore, and the
run is used by load_run / predict / evaluate / export like any other."""
import json
import os
import subprocess
import sys

import numpy as np

from tests.helpers import ROOT, env, real_text_rows, write_text_csv

OVERRIDES = ["backend=jax", "data=files", "data.tokenizer=char", "encoder.hidden_size=8", "model.embedding_dim=8",
             "data.batch_size=32", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
             "data.max_tokens_per_example=24", "trainer.enable_progress_bar=false"]  # few widths: few jax compiles
# train.py in a child that records (never blocks) every import of TensorFlow or torch; an audit hook
# sees real imports only, not the find_spec probes some libraries make to see what is installed
SPY = """import sys, runpy
flag = sys.argv[1]
def spy(event, args):
    if event == 'import' and args[0].split('.')[0] in ('tensorflow', 'torch'):
        open(flag, 'a').write(args[0] + '\\n')
sys.addaudithook(spy)
sys.argv = ['train.py'] + sys.argv[2:]
runpy.run_path('train.py', run_name='__main__')
"""


def train_without_tf_or_torch(tmp_path, run_dir, *overrides):
    spied = tmp_path / f"imports_{run_dir.name}.txt"
    spied.write_text("")
    proc = subprocess.run([sys.executable, "-c", SPY, str(spied), f"hydra.run.dir={run_dir}", *OVERRIDES, *overrides],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert spied.read_text() == "", f"a jax run imported {sorted(set(spied.read_text().split()))}"
    return json.loads((run_dir / "metrics.json").read_text())


def test_jax_run_files_resume_and_use(tmp_path):
    data = write_text_csv(tmp_path / "data.csv", real_text_rows(200))
    first = train_without_tf_or_torch(tmp_path, tmp_path / "first", f"data.train_file={data}", "trainer.max_epochs=1")
    run = tmp_path / "first"
    assert first["backend"] == "jax" and first["epochs"] == 1 and first["global_step"] == 3
    assert 0.0 <= first["val_acc"] <= 1.0 and np.isfinite(first["val_loss"])
    for name in ("curves.png", "vocab.json", "csv/metrics.csv", "checkpoints/best.keras", "checkpoints/last.keras"):
        assert (run / name).is_file(), name
    assert os.listdir(run / "backup")

    # ckpt_path=RUN_DIR continues from its backup: one more epoch, the step count carries on
    resumed = train_without_tf_or_torch(tmp_path, tmp_path / "resumed", f"data.train_file={data}",
                                        "trainer.max_epochs=2", f"ckpt_path={run}")
    assert resumed["epochs"] == 2 and resumed["global_step"] == 6
    assert len(resumed["history"]["val/acc"]) == 2

    # used on jax (load_run picks it for a jax run) and evaluated; exported to ONNX through the port
    code = ("import csv, sys, encoders\nfrom encoders.use.evaluation import evaluate, gold_ids\n"
            "run = encoders.load_run(sys.argv[1])\n"
            "p = run.predict_proba(['', 'def f(x):', 'The quick brown fox jumps.'], batch_size=2)\n"
            "q = run.predict_proba(['', 'def f(x):', 'The quick brown fox jumps.'], batch_size=1)\n"
            "rows = list(csv.DictReader(open(sys.argv[2])))\n"
            "rep = evaluate(run, [r['text'] for r in rows], gold_ids([r['label'] for r in rows], run.labels, True))\n"
            "import keras; print(run.backend, keras.backend.backend(), p.shape, float(abs(p - q).max()),"
            " rep['num_examples'], 'tensorflow' in sys.modules, 'torch' in sys.modules)")
    plain = {k: v for k, v in env().items() if k != "KERAS_BACKEND"}  # as a user's shell would be
    out = subprocess.run([sys.executable, "-c", code, str(run), str(data)], cwd=ROOT, env=plain, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    backend, keras_backend, rows, cols, diff, examples, tf_loaded, torch_loaded = out.stdout.split()[-8:]
    assert (backend, keras_backend, rows + cols, examples) == ("jax", "jax", "(3,2)", "200")
    assert float(diff) <= 1e-5 and tf_loaded == torch_loaded == "False"
    proc = subprocess.run([sys.executable, "-m", "encoders", "export", str(run), "--format", "onnx"], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "export" / "model.onnx").is_file()
