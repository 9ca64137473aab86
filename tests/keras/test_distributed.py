"""Real tf.distribute runs on CPU: MirroredStrategy over 2 logical CPU devices, and two workers
(two processes with TF_CONFIG) under MultiWorkerMirroredStrategy on localhost."""
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.helpers import ROOT, train_metrics

SMALL = ["backend=tf", "data.num_train=1200", "data.num_val=300", "data.batch_size=32", "trainer.max_epochs=2",
         "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
STEPS = 2 * 38  # 1200 examples, global batch 32 -> 38 steps an epoch, whatever the number of replicas


def _env(**extra):
    return dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1", **extra)


_train = train_metrics


def test_mirrored_on_two_logical_cpus_matches_single_device(tmp_path):
    single, _ = _train(tmp_path / "single", *SMALL)
    mirrored, log = _train(tmp_path / "mirrored", *SMALL, "trainer.devices=2")
    assert "MirroredStrategy over ['/cpu:0', '/cpu:1']" in log
    # data.batch_size is the global batch: same number of optimizer steps as one device
    assert mirrored["global_step"] == single["global_step"] == STEPS
    assert abs(mirrored["val_acc"] - single["val_acc"]) < 0.08, (single["val_acc"], mirrored["val_acc"])
    assert mirrored["val_acc"] > 0.7


def test_mirrored_tagging_reports_the_whole_validation_split(tmp_path):
    """Tagging under MirroredStrategy: the validation figures are those of the whole split. The
    validation file is also the test file, scored after fit with the run's only checkpoint."""
    from tests.helpers import case_tagging_rows, write_jsonl

    rows = case_tagging_rows(301)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:240])
    val = write_jsonl(tmp_path / "val.jsonl", rows[240:])
    m, log = _train(tmp_path / "run", "backend=tf", "task=tagging", "data=files", f"data.train_file={train}",
                    f"data.validation_file={val}", f"data.test_file={val}", "data.batch_size=16",
                    "trainer.max_epochs=1", "trainer.devices=2", "trainer.accelerator=cpu",
                    "trainer.enable_progress_bar=false")
    assert "MirroredStrategy over ['/cpu:0', '/cpu:1']" in log
    assert m["test_tokens"] == sum(len(r["tags"]) for r in rows[240:])
    for key in ("acc", "macro_f1", "loss"):
        assert m[f"val_{key}"] == pytest.approx(m[f"test_{key}"], abs=1e-5), key


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_on_localhost_with_tf_config(tmp_path):
    run_dir = tmp_path / "run"
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = [subprocess.Popen([sys.executable, "train.py", f"hydra.run.dir={run_dir}", *SMALL], cwd=ROOT,
                              env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": i}})),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    assert "MultiWorkerMirroredStrategy: 2 replicas" in outs[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())  # the chief (worker 0) reports
    assert metrics["backend"] == "tf" and metrics["epochs"] == 2 and metrics["global_step"] == STEPS
    assert metrics["val_acc"] > 0.7
    # the other worker trains in step but keeps its files apart and writes no report
    assert (run_dir / "worker_1" / "csv" / "metrics.csv").is_file()
    assert not (run_dir / "worker_1" / "metrics.json").exists()
    # both workers saw the same (all-reduced) validation figures
    last = [o.strip().splitlines() for o in outs]
    val = [next(l for l in reversed(lines) if "val_acc:" in l).split("val_acc:")[1].split()[0] for lines in last]
    assert val[0] == val[1], val
