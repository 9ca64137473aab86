"""Train a ``TrainConfig`` with ``model.fit`` and leave the same run-dir files as the torch backend."""
from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any, Dict

import keras
import tensorflow as tf

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError
from encoders.keras.batches import BucketedBatches, EpochSetter
from encoders.keras.checkpoint_io import check_resume
from encoders.keras.classifier import build_classifier, compile_classifier
from encoders.keras.runtime import make_strategy, patch_fit_for_multi_worker, worker_info
from encoders.report import finish_run, test_report
from encoders.resume import vocab_fingerprint

log = logging.getLogger(__name__)
# Keras log names -> the names the torch backend logs (metrics.json and curves use these)
KERAS_TO_COMMON = {"loss": "train/loss", "acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc"}


def _resume_from(ckpt_path: str, run_dir: str) -> None:
    """``ckpt_path`` for Keras is an earlier run dir: copy its backup (and epoch log) into this one."""
    src = os.path.join(ckpt_path, "backup")
    if not os.path.isdir(src) or not os.listdir(src):
        raise ConfigError(f"ckpt_path={ckpt_path}: the tf backend resumes from a run dir with a backup/ folder "
                         "(written by BackupAndRestore); none found there")
    shutil.copytree(src, os.path.join(run_dir, "backup"), dirs_exist_ok=True)
    old_csv = os.path.join(ckpt_path, "csv", "metrics.csv")
    if os.path.isfile(old_csv):  # so history and `epochs` cover the whole run
        shutil.copyfile(old_csv, os.path.join(run_dir, "csv", "metrics.csv"))


def run(cfg: Any, splits, run_dir: str, encoder_name: str) -> Dict[str, Any]:
    start = time.time()
    strategy = make_strategy(cfg.trainer.devices, cfg.trainer.accelerator)  # before TF builds anything
    worker, is_chief = worker_info()
    if not is_chief:  # other workers of a multi-worker run keep their files apart; the chief reports
        run_dir = os.path.join(run_dir, f"worker_{worker}")
    keras.utils.set_random_seed(cfg.seed)
    if cfg.trainer.deterministic:
        tf.config.experimental.enable_op_determinism()
    d, m, t = cfg.data, cfg.model, cfg.trainer
    train = BucketedBatches.from_split(splits.train, d.batch_size, seed=cfg.seed, shuffle=True,
                                       pool_batches=d.bucket_pool_batches, max_tokens=d.max_tokens)
    val = BucketedBatches.from_split(splits.validation, d.batch_size, seed=cfg.seed, shuffle=False,
                                     pool_batches=d.bucket_pool_batches, max_tokens=d.max_tokens)
    spec = ClassifierSpec.from_config(cfg, splits.vocab_size, splits.num_classes)
    if cfg.ckpt_path:  # the same model on the same data, before anything is restored
        check_resume(cfg.ckpt_path, spec, vocab_fingerprint(run_dir))
    with strategy.scope():
        model = build_classifier(spec)
        compile_classifier(model, m.lr, m.weight_decay, t.gradient_clip_val)
    patch_fit_for_multi_worker(model, strategy, next(iter(train.batches())))

    ckpt_dir, backup_dir = os.path.join(run_dir, "checkpoints"), os.path.join(run_dir, "backup")
    os.makedirs(ckpt_dir, exist_ok=True)
    os.makedirs(os.path.join(run_dir, "csv"), exist_ok=True)
    if cfg.ckpt_path:
        _resume_from(cfg.ckpt_path, run_dir)
    best_path, last_path = os.path.join(ckpt_dir, "best.keras"), os.path.join(ckpt_dir, "last.keras")
    # Epoch-end order matters: the epoch's log row and checkpoints first, the backup last, so a
    # run killed in between resumes to an epoch whose files all exist.
    callbacks = [
        EpochSetter(train, val),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "csv", "metrics.csv"), append=True),
        keras.callbacks.ModelCheckpoint(best_path, monitor="val_acc", mode="max", save_best_only=True),
        keras.callbacks.ModelCheckpoint(last_path),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tb"), update_freq=t.log_every_n_steps),
        # kept after the run so that ckpt_path=RUN_DIR can continue it; double_checkpoint keeps the
        # previous backup too, used when the latest one is unreadable
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False, double_checkpoint=True),
    ]
    steps = len(train) if t.limit_train_batches is None else max(1, int(_limit(t.limit_train_batches, len(train))))
    val_steps = len(val) if t.limit_val_batches is None else max(1, int(_limit(t.limit_val_batches, len(val))))
    fit = model.fit(train.dataset().repeat(), validation_data=val.dataset().repeat(), epochs=t.max_epochs,
                    steps_per_epoch=steps, validation_steps=val_steps, callbacks=callbacks,
                    verbose=1 if t.enable_progress_bar else 2)
    if not is_chief:
        return {}
    history = _history_from_csv(os.path.join(run_dir, "csv", "metrics.csv"))
    # epochs from fit's own list: a resumed fit starts at the restored epoch
    extra = test_split_report(best_path, splits.test, d.batch_size) if splits.test is not None else {}
    return finish_run(run_dir, "tf", encoder_name, history, epochs=fit.epoch[-1] + 1 if fit.epoch else 0,
                      global_step=int(model.optimizer.iterations.numpy()), start=start,
                      best_path=best_path, last_path=last_path, extra=extra)


def test_split_report(best_path: str, test, batch_size: int) -> Dict[str, float]:
    """The test figures of the model chosen on validation (``best.keras``)."""
    from encoders.keras.inference import batch_logits, load_classifier
    from encoders.trained_run import buffer_logits

    model, spec = load_classifier(best_path)
    logits = buffer_logits(batch_logits, model, test.tokens, spec.num_classes, batch_size, spec.padding_idx)
    return test_report(logits, test.labels, spec.num_classes)


def _limit(limit: float, n: int) -> float:
    return limit * n if isinstance(limit, float) and limit <= 1.0 else limit


def _history_from_csv(path: str) -> Dict[str, list]:
    """Per-epoch history across resumes (CSVLogger appends; a resumed epoch replaces its earlier row)."""
    import csv

    rows: Dict[int, Dict[str, str]] = {}
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows[int(row["epoch"])] = row
    return {common: [float(rows[e][k]) for e in sorted(rows) if rows[e].get(k)]
            for k, common in KERAS_TO_COMMON.items()}
