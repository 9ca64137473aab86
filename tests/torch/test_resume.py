"""Runs that die resume exactly: an exception at a chosen step, and SIGKILL, both end with the
weights of an uninterrupted run (bitwise, CPU, trainer.deterministic=true). Checkpoint writes
survive a kill in the middle."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from pytorch_lightning.callbacks import Callback

from tests.helpers import ROOT, kill_train_when, refused_resumes, run_train, two_text_files
from encoders.app import to_schema
from encoders.config import register_configs
from encoders.data.sources import load_splits
from encoders.torch import runner

STEPS_PER_EPOCH = 19  # 600 examples, batch 32
OVERRIDES = ["data.num_train=600", "data.num_val=100", "data.batch_size=32", "trainer.max_epochs=3",
             "trainer.deterministic=true", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
             "trainer.checkpoint_every_n_steps=4", "encoder=bilstm"]


def _cfg(*extra):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs"), version_base="1.3"):
        cfg = compose("train", overrides=OVERRIDES + list(extra))
    GlobalHydra.instance().clear()
    return to_schema(cfg)


def _weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), weights_only=True)["state_dict"]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs by {(a[k] - b[k]).abs().max().item()}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cfg = _cfg()
    run_dir = str(tmp_path_factory.mktemp("full"))
    metrics = runner.run(cfg, load_splits(cfg.data, cfg.seed), run_dir, "bilstm")
    assert metrics["global_step"] == 3 * STEPS_PER_EPOCH
    return {"weights": _weights(run_dir), "history": metrics["history"]}


def _assert_same_history(resumed, full):
    """metrics.json of a resumed run: every epoch, each with the train loss/acc over all its batches."""
    assert all(len(v) == 3 for v in full.values()), full
    assert resumed == full


class Crash(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise RuntimeError(f"planted crash at step {self.at_step}")


def test_exception_mid_epoch_then_resume_gives_the_same_weights_and_history(tmp_path, uninterrupted):
    cfg = _cfg()
    splits = load_splits(cfg.data, cfg.seed)
    with pytest.raises(RuntimeError, match="planted crash at step 27"):
        runner.run(cfg, splits, str(tmp_path / "a"), "bilstm", callbacks=[Crash(27)])
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 24 and ckpt["global_step"] % STEPS_PER_EPOCH, "expected a mid-epoch checkpoint"
    resumed = _cfg(f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}")
    metrics = runner.run(resumed, splits, str(tmp_path / "b"), "bilstm")
    assert metrics["global_step"] == 3 * STEPS_PER_EPOCH and metrics["epochs"] == 3
    _assert_same_weights(_weights(tmp_path / "b"), uninterrupted["weights"])
    _assert_same_history(metrics["history"], uninterrupted["history"])


def test_token_budget_run_resumes_mid_epoch_to_the_same_weights(tmp_path):
    """Token-budget batches (data.max_tokens) resume exactly too: the skipped batches are the
    same seeded ones."""
    budget = ("data.max_tokens=900",)
    cfg = _cfg(*budget)
    splits = load_splits(cfg.data, cfg.seed)
    runner.run(cfg, splits, str(tmp_path / "full"), "bilstm")
    with pytest.raises(RuntimeError, match="planted crash at step 30"):
        runner.run(cfg, splits, str(tmp_path / "a"), "bilstm", callbacks=[Crash(30)])
    resumed = _cfg(*budget, f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}")
    runner.run(resumed, splits, str(tmp_path / "b"), "bilstm")
    _assert_same_weights(_weights(tmp_path / "b"), _weights(tmp_path / "full"))


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tmp_path, uninterrupted):
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.ckpt"

    def mid_second_epoch():
        if not last.exists():
            return False
        step = torch.load(last, weights_only=True)["global_step"]  # atomic writes: always loadable
        return step > STEPS_PER_EPOCH and step % STEPS_PER_EPOCH != 0

    kill_train_when(killed, OVERRIDES, mid_second_epoch)
    resumed = tmp_path / "resumed"
    out = subprocess.run([sys.executable, "train.py", f"hydra.run.dir={resumed}", *OVERRIDES, f"ckpt_path={last}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["global_step"] == 3 * STEPS_PER_EPOCH
    _assert_same_weights(_weights(resumed), uninterrupted["weights"])
    _assert_same_history(metrics["history"], uninterrupted["history"])


WRITER = """
import sys, torch
from encoders.torch.checkpoint_io import AtomicCheckpointIO
io, i = AtomicCheckpointIO(), 0
while True:
    i += 1
    io.save_checkpoint({"step": i, "w": torch.full((2_000_000,), float(i))}, sys.argv[1])
    print(i, flush=True)
"""


def test_kill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    from encoders.torch.checkpoint_io import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    hit_a_write = False
    # at least five kills, and more until one has landed mid-write (it leaves its temp file
    # behind, never a truncated checkpoint); a write is ~1/3 of the writer's loop
    for attempt in range(20):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # one checkpoint is complete; the next writes are under way
        time.sleep(0.3 + 0.15 * (attempt % 5))
        proc.kill()
        proc.wait()
        ckpt = AtomicCheckpointIO().load_checkpoint(path)  # never truncated
        assert torch.equal(ckpt["w"], torch.full((2_000_000,), float(ckpt["step"])))
        hit_a_write = hit_a_write or any(p.startswith(".tmp-") for p in os.listdir(tmp_path))
        if attempt >= 4 and hit_a_write:
            break
    assert hit_a_write, "no kill landed during a write: the test proved nothing"


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    from encoders.torch.checkpoint_io import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2}, path)
    assert io.load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"], "no temporary file left behind"


def test_truncated_checkpoint_is_named_with_the_ones_that_load(tmp_path):
    from encoders.app import ConfigError, check_config

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"state_dict": {"w": torch.ones(1000)}, "epoch": 0}, ckpts / "best.ckpt")
    torch.save({"state_dict": {"w": torch.ones(100000)}, "epoch": 1}, ckpts / "full.ckpt")
    data = (ckpts / "full.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(data[: len(data) // 2])  # cut off mid-write by something else
    (ckpts / "full.ckpt").unlink()
    with pytest.raises(ConfigError) as err:
        check_config(_cfg(f"ckpt_path={ckpts / 'last.ckpt'}"))
    msg = str(err.value)
    assert f"{ckpts / 'last.ckpt'} is truncated or corrupt" in msg
    assert f"resume with ckpt_path={ckpts / 'best.ckpt'}" in msg
    check_config(_cfg(f"ckpt_path={ckpts / 'best.ckpt'}"))  # the intact one is accepted


def test_resume_with_another_model_or_data_or_a_weights_only_checkpoint_is_refused(tmp_path):
    from encoders.convert.runs import save_torch_classifier
    from encoders.torch import SequenceClassifier

    a, b = two_text_files(tmp_path)
    args = ["data=files", f"data.train_file={a}", "data.batch_size=32", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "encoder=gru"]
    run_train(tmp_path / "first", *args)
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    converted, plain = tmp_path / "converted.ckpt", tmp_path / "plain.ckpt"
    model = SequenceClassifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    save_torch_classifier(model, str(converted))  # what python -m encoders.convert writes
    torch.save(ckpt["state_dict"], plain)

    out = refused_resumes(args, tmp_path, {
        "hidden": ["encoder.hidden_size=32", f"ckpt_path={last}"],
        "pooling": ["model.pooling=mean", f"ckpt_path={last}"],
        "data": [f"data.train_file={b}", f"ckpt_path={last}"],
        "converted": [f"ckpt_path={converted}"],
        "plain": [f"ckpt_path={plain}"],
    })
    assert "encoder.hidden_size 64 -> 32" in out["hidden"] and "start a fresh run (drop ckpt_path)" in out["hidden"]
    assert "model.pooling 'last' -> 'mean'" in out["pooling"]
    assert "the vocabulary (vocab.json" in out["data"] and "vocabulary size" in out["data"]
    for name in ("converted", "plain"):
        assert "is not a training checkpoint" in out[name] and "optimizer_states" in out[name]
    run_train(tmp_path / "same", *args, "trainer.max_epochs=2", f"ckpt_path={last}")  # the same run continues
