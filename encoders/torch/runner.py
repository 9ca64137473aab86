"""Train a ``TrainConfig`` with Lightning and leave the run's files in ``run_dir``."""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
import types
import warnings
from typing import Any, Dict, List, Optional, Sequence

import pytorch_lightning as pl  # noqa: E402
from pytorch_lightning.callbacks import Callback, Checkpoint, ModelCheckpoint, ProgressBar, TQDMProgressBar  # noqa: E402

from encoders.config import ClassifierSpec  # noqa: E402
from encoders.run.files import checkpoint_file, checkpoints_dir  # noqa: E402
from encoders.run.report import finish_run  # noqa: E402
from encoders.tasks import HISTORY_KEYS as TASK_HISTORY_KEYS  # noqa: E402
from encoders.torch.batches import SequenceDataModule  # noqa: E402
from encoders.run.resume import VOCAB_KEY, vocab_fingerprint  # noqa: E402
from encoders.torch.checkpoint_io import AtomicCheckpointIO, check_resume, load_torch_checkpoint  # noqa: E402
from encoders.torch.models import build_model, test_report  # noqa: E402
from encoders.torch.runtime import limit_gpu_memory, set_fp32_precision  # noqa: E402

log = logging.getLogger(__name__)
# every task's per-epoch figures (a run records those its task logs)
HISTORY_KEYS = sorted({k for keys in TASK_HISTORY_KEYS.values() for k in keys})


class VocabFingerprint(Callback):
    """Stores the run's ``vocab_fingerprint`` in every checkpoint, so a resume can check its data."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint[VOCAB_KEY] = self.fingerprint


class GPUMemoryLimit(Callback):
    """Caps GPU memory on each rank's own device, before the model is moved there."""

    def __init__(self, memory_limit_mb):
        self.memory_limit_mb = memory_limit_mb

    def setup(self, trainer, pl_module, stage):
        device = trainer.strategy.root_device
        limit_gpu_memory(self.memory_limit_mb, device.index if device.type == "cuda" else None)


class Fp32Precision(Callback):
    """``trainer.fp32_precision`` in the worker processes of a ``*_spawn`` strategy, which start
    with torch's own flags (``app.run`` sets them in the launching process)."""

    def __init__(self, precision: str):
        self.precision = precision

    def setup(self, trainer, pl_module, stage):
        set_fp32_precision(self.precision)


class LastCheckpoint(Checkpoint):
    """Keeps ``checkpoints/last.ckpt`` current: after every epoch (its validation included) and,
    with ``every_n_steps``, every N optimizer steps, so a killed run loses at most N steps.

    It also keeps the run's per-epoch ``history`` (``HISTORY_KEYS``) in its state, which Lightning
    stores in every checkpoint and restores on resume: a resumed run's ``metrics.json`` and
    ``curves.png`` cover the whole run, wherever its checkpoint was moved. (A ``Checkpoint``, so
    Lightning calls its ``on_train_epoch_end`` after the module's, which logs ``train/loss``.)

    (``ModelCheckpoint(save_last=True)`` refreshes ``last`` only when it also saved a top-k
    checkpoint, i.e. only in epochs where the monitored metric improved.)
    """

    def __init__(self, path: str, every_n_steps: Optional[int] = None):
        self.path, self.every_n_steps = path, every_n_steps
        self._saved_step = -1
        self.history: List[Dict[str, float]] = []  # one row per finished epoch, with its "epoch"

    def state_dict(self) -> Dict[str, Any]:
        return {"history": [dict(row) for row in self.history]}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.history = [dict(row) for row in state_dict.get("history", [])]

    def _save(self, trainer) -> None:
        if trainer.global_step != self._saved_step and not trainer.sanity_checking:
            # every rank calls it; rank 0 writes. A full checkpoint (optimizer, loops, callbacks): saying
            # so is what ModelCheckpoint does too, and keeps Lightning from logging its default
            trainer.save_checkpoint(self.path, weights_only=False)
            self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, *args) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        row = {k: float(metrics[k]) for k in HISTORY_KEYS if k in metrics}
        self.history = [r for r in self.history if r["epoch"] < trainer.current_epoch] + [
            {"epoch": trainer.current_epoch, **row}]
        self._saved_step = -1  # the epoch-end state (next epoch, batch 0) differs from a mid-epoch one
        self._save(trainer)


def history_of(checkpoint: Dict[str, Any]) -> Dict[str, List[float]]:
    """Per-epoch ``HISTORY_KEYS`` from a checkpoint's ``LastCheckpoint`` state (``finish_run``'s form)."""
    rows = checkpoint.get("callbacks", {}).get(LastCheckpoint.__qualname__, {}).get("history", [])
    return {k: [row[k] for row in rows if k in row] for k in HISTORY_KEYS if any(k in row for row in rows)}


def build_trainer(cfg: Any, run_dir: str, callbacks: Sequence[Callback] = ()) -> pl.Trainer:
    t = cfg.trainer
    ckpt_dir = checkpoints_dir(run_dir)
    from encoders.tasks import monitor

    metric, mode = monitor(getattr(getattr(cfg, "task", None), "name", "classification"))
    checkpoints = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=metric, mode=mode,
                        auto_insert_metric_name=False),
        LastCheckpoint(checkpoint_file(run_dir, "last", "torch"), t.checkpoint_every_n_steps),
    ]
    # the default bar redraws after every batch, which costs several percent of a small model's epoch
    # (a bar among the caller's callbacks wins)
    bar = [TQDMProgressBar(refresh_rate=t.progress_bar_refresh_rate)] if t.enable_progress_bar and not any(
        isinstance(c, ProgressBar) for c in callbacks) else []
    # Lightning calls every hook on every callback (about 30 us per callback per step here): no
    # callback where there is nothing to do
    limit = [GPUMemoryLimit(cfg.gpu.memory_limit_mb)] if cfg.gpu.memory_limit_mb is not None else []
    if "spawn" in str(t.strategy):
        limit.append(Fp32Precision(t.fp32_precision))
    from encoders.torch import recipe
    kwargs: Dict[str, Any] = dict(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
        num_nodes=t.num_nodes, precision=t.precision, deterministic=t.deterministic,
        gradient_clip_val=t.gradient_clip_val, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar, default_root_dir=run_dir,
        use_distributed_sampler=False,  # BucketBatchSampler shards the global batch itself
        callbacks=[*checkpoints, *limit, *recipe.callbacks(cfg), *callbacks, *bar],  # recipe: lr per epoch, early stop
        plugins=[AtomicCheckpointIO()],
        logger=recipe.loggers(cfg, run_dir), accumulate_grad_batches=t.accumulate_grad_batches,
    )
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    if t.limit_val_batches is not None:
        kwargs["limit_val_batches"] = t.limit_val_batches
    return pl.Trainer(**kwargs)


@contextlib.contextmanager
def tensorboard_without_tensorflow():
    """TensorBoard's writer imports tensorflow when it is installed, and TF grabs GPU memory in a
    torch run. Registering ``tensorboard.compat.notf`` is TensorBoard's own switch for its TF-free
    stub; but ``tensorboard.compat.tf`` then stays the stub for the whole process, and a later tf
    run in it (``train.py -m backend=torch,tf``) fails in Keras' TensorBoard callback ("cannot
    import tensorflow 2.0 API"). So the switch is on for the torch run only, and after it
    ``tensorboard.compat`` is loaded afresh: its lazy ``tf`` then finds tensorflow again."""
    if "tensorflow" in sys.modules or "tensorboard.compat.notf" in sys.modules:
        yield  # TF is loaded already (nothing to save), or someone else set the switch
        return
    sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")
    try:
        yield
    finally:
        del sys.modules["tensorboard.compat.notf"]
        if "tensorboard.compat" in sys.modules:
            importlib.reload(sys.modules["tensorboard.compat"])


class ThreadShare(Callback):
    """At most every ``every_s`` seconds of training (at a step's start), torch's threads follow this
    process's fair share of the cores (``encoders.run.threads``) as other processes start or end.
    By time, not by steps: two runs started together must settle within a fraction of a second,
    however long their steps are (a process that counted itself alone and kept every core for 20
    steps stalls beside the other), and a check (a few file locks) costs nothing against 0.5 s.
    At module level: ddp_spawn pickles it."""

    def __init__(self, every_s: float = 0.5):
        self.every_s = every_s
        self._last = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every_s:
            from encoders.torch.runtime import follow_fair_share

            follow_fair_share()
            self._last = now


def _thread_share(cfg: Any) -> list:
    """Threads follow the fair share as processes come and go, unless the user fixed them."""
    from encoders.run.threads import fixed_threads

    return [] if fixed_threads(getattr(cfg.trainer, "num_threads", None)) else [ThreadShare()]


def run(cfg: Any, splits, run_dir: str, encoder_name: str, callbacks: Sequence[Callback] = ()) -> Dict[str, Any]:
    """Fit and report (the mirror of ``encoders.keras.runner.run``).

    Args:
        cfg: the run's ``TrainConfig``.
        splits: the run's data (``encoders.data.splits.Splits``).
        run_dir: where the run's files go (``app.run`` wrote ``vocab.json`` there).
        encoder_name: the encoder config's name, for ``metrics.json``.
        callbacks: extra Lightning callbacks (yours), added to the Trainer.

    Returns:
        The run's metrics (``metrics.json``'s content); ``{}`` on a rank other than 0.
    """
    with tensorboard_without_tensorflow():
        return _run(cfg, splits, run_dir, encoder_name, callbacks)


def _run(cfg: Any, splits, run_dir: str, encoder_name: str, callbacks: Sequence[Callback]) -> Dict[str, Any]:
    start = time.time()
    pl.seed_everything(cfg.seed, workers=True)
    d = cfg.data
    dm = SequenceDataModule(splits.train, splits.validation, batch_size=d.batch_size, seed=cfg.seed,
                            num_workers=d.num_workers, pool_batches=d.bucket_pool_batches, max_tokens=d.max_tokens,
                            eval_batch_size=d.eval_rows)
    from encoders.tasks import embedding_dim, pretrained_vectors, tag_names, vectors_report

    task = getattr(getattr(cfg, "task", None), "name", "classification")
    vectors = pretrained_vectors(cfg, splits)
    spec = ClassifierSpec.from_config(cfg, splits.vocab_size, splits.num_classes, embedding_dim(cfg, vectors))
    model = build_model(spec, cfg, vectors, tag_names(splits))
    vocab = vocab_fingerprint(run_dir)  # app.run saved vocab.json there
    if cfg.ckpt_path:  # the same model on the same data, before anything is restored
        check_resume(cfg.ckpt_path, spec, vocab)
    trainer = build_trainer(cfg, run_dir, [*callbacks, *([VocabFingerprint(vocab)] if vocab else []),
                                           *_thread_share(cfg)])
    with warnings.catch_warnings():
        # Lightning can't see that SequenceDataModule resumes mid-epoch itself (see its docstring)
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended")
        ctrl_c = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(model, datamodule=dm, ckpt_path=cfg.ckpt_path, weights_only=True)
        except SystemExit:
            if trainer.interrupted:  # Lightning turns Ctrl-C into exit code 1: give it back as what it was
                # and it leaves Ctrl-C ignored for the rest of the process (and the children it starts)
                if threading.current_thread() is threading.main_thread() and ctrl_c is not None:
                    signal.signal(signal.SIGINT, ctrl_c)
                raise KeyboardInterrupt from None
            raise
    if not trainer.is_global_zero:
        return {}
    # Read back what rank 0 wrote (the last checkpoint, with the history of the whole run, resumes
    # included): with ddp_spawn this process's Trainer never ran the loop, so its own counters are not the run's.
    last_path, best_path = (checkpoint_file(run_dir, n, "torch") for n in ("last", "best"))
    last = load_torch_checkpoint(last_path) if os.path.exists(last_path) else {}
    if splits.test is not None and trainer.strategy.root_device.type != "cpu":
        model.to(trainer.strategy.root_device)  # the test split is scored where training ran (fit moved it back)
    extra = _test_split_report(model, best_path, splits.test, d.eval_rows) if splits.test is not None else {}
    from encoders.run.recipe import mlflow_log_artifacts, mlflow_uri, stop_report
    from encoders.torch.recipe import mlflow_run_id

    history, epochs = history_of(last), last.get("epoch", -1) + 1
    extra = {"task": task, **extra, **vectors_report(vectors, cfg.model.freeze_embeddings),
             **stop_report(cfg, history, epochs)}
    metrics = finish_run(run_dir, "torch", encoder_name, history, epochs=epochs,
                         global_step=last.get("global_step", trainer.global_step), start=start,
                         best_path=best_path, last_path=last_path, extra=extra)
    run_id = mlflow_run_id(trainer.loggers)
    if run_id and cfg.logger.mlflow.log_artifacts:
        mlflow_log_artifacts(mlflow_uri(cfg), run_id, run_dir)
    return metrics


def _test_split_report(model, best_path: str, test, batch_size: int) -> Dict[str, float]:
    """The test figures of the checkpoint chosen on validation (``best.ckpt``, loaded into ``model``)."""
    model.load_state_dict(load_torch_checkpoint(best_path)["state_dict"])
    return test_report(model, test, batch_size)
