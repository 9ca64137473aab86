"""Sharding of the bucketed batches over ranks, and real multi-process runs (gloo on CPU)."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import SequentialSampler

from tests.helpers import ROOT
from encoders.torch.batches import BucketBatchSampler

SMALL = ["data.num_train=1200", "data.num_val=300", "data.batch_size=32", "trainer.max_epochs=2",
         "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), batch_size=st.integers(4, 40), world=st.integers(1, 4), epoch=st.integers(0, 3),
       pool=st.integers(1, 5), seed=st.integers(0, 99))
def test_every_example_once_per_epoch_across_ranks(n, batch_size, world, epoch, pool, seed):
    n = max(n, world)
    lengths = np.random.default_rng(seed).integers(0, 50, n)
    samplers = [BucketBatchSampler(SequentialSampler(range(n)), batch_size, False, lengths, seed=seed,
                                   pool_batches=pool, num_replicas=world, rank=r) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    per_rank = [list(s) for s in samplers]
    steps = {len(b) for b in per_rank}
    assert len(steps) == 1 and steps == {len(samplers[0])}, "every rank must run the same number of steps"
    assert all(len(batch) >= 1 for batches in per_rank for batch in batches), "no rank may get an empty step"
    seen = sorted(i for batches in per_rank for batch in batches for i in batch)
    assert seen == list(range(n)), "each example exactly once per epoch, on one rank"
    # a global step never exceeds the global batch, except the merged remainder (< world rows more)
    for step in zip(*per_rank):
        assert sum(len(b) for b in step) < batch_size + world


def test_fewer_examples_than_ranks_is_refused():
    with pytest.raises(ValueError, match="3 examples can't give each of 4 processes"):
        BucketBatchSampler(SequentialSampler(range(3)), 8, False, [1] * 3, num_replicas=4, rank=0)


def test_global_batch_smaller_than_world_is_refused():
    with pytest.raises(ValueError, match="global batch"):
        BucketBatchSampler(SequentialSampler(range(10)), 2, False, [1] * 10, num_replicas=4, rank=0)


def _train(run_dir, *overrides, env=None):
    proc = subprocess.run([sys.executable, "train.py", f"hydra.run.dir={run_dir}", *overrides], cwd=ROOT,
                          env=env or dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_two_process_run_matches_single_process_accuracy(tmp_path, strategy):
    single = _train(tmp_path / "single", *SMALL, "trainer.max_epochs=3")
    multi = _train(tmp_path / "multi", *SMALL, "trainer.max_epochs=3", "trainer.devices=2",
                   f"trainer.strategy={strategy}")
    # same global batch, so the same number of optimizer steps
    assert multi["global_step"] == single["global_step"]
    assert abs(multi["val_acc"] - single["val_acc"]) < 0.08, (single["val_acc"], multi["val_acc"])
    assert multi["val_acc"] > 0.7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_with_torchrun(tmp_path):
    port = _free_port()
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                               f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}",
                               "train.py", f"hydra.run.dir={run_dir}", *SMALL, "trainer.num_nodes=2",
                               "trainer.devices=1", "trainer.strategy=ddp"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for node in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0.0 <= metrics["val_acc"] <= 1.0
    # 1200 examples, global batch 32 -> 38 steps per epoch, whatever the number of processes
    assert metrics["global_step"] == 2 * 38


def test_two_tasks_under_slurm_environment_variables(tmp_path):
    """What `srun --ntasks=2 python train.py ...` gives each task: Lightning's SLURM environment
    takes ranks and world size from these variables (no launcher of its own)."""
    port, run_dir = _free_port(), tmp_path / "run"
    slurm = dict(SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0",
                 SLURM_JOB_ID="4242", SLURM_JOB_NAME="train", SLURM_NODELIST="localhost",
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "train.py", f"hydra.run.dir={run_dir}", *SMALL, "trainer.devices=2",
                               "trainer.strategy=ddp"], cwd=ROOT,
                              env=dict(os.environ, **slurm, SLURM_PROCID=str(i), SLURM_LOCALID=str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in outs[0] and "GLOBAL_RANK: 1, MEMBER: 2/2" in outs[1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 2 * 38 and metrics["val_acc"] > 0.7


def test_two_process_tagging_sums_validation_over_ranks(tmp_path):
    """Each rank tallies its share of the validation rows and the tallies are summed over ranks:
    that must give the figures of the whole split. The validation file is also the test file,
    which rank 0 scores alone after fit with the run's only (so best) checkpoint. 61 rows: the
    ranks get 31 and 30, none repeated."""
    from tests.helpers import case_tagging_rows, write_jsonl

    rows = case_tagging_rows(301)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:240])
    val = write_jsonl(tmp_path / "val.jsonl", rows[240:])
    m = _train(tmp_path / "run", "task=tagging", "data=files", f"data.train_file={train}",
               f"data.validation_file={val}", f"data.test_file={val}", "data.batch_size=16", "trainer.max_epochs=1",
               "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
               "trainer.enable_progress_bar=false")
    assert m["test_tokens"] == sum(len(r["tags"]) for r in rows[240:])
    for key in ("acc", "macro_f1", "loss"):
        assert m[f"val_{key}"] == pytest.approx(m[f"test_{key}"], abs=1e-5), key
