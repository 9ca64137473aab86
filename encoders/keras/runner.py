"""Train a ``TrainConfig`` with ``model.fit`` and leave the same run-dir files as the torch backend."""
from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any, Dict, Sequence

import keras

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError
from encoders.keras.batches import BucketedBatches, EpochSetter, feed
from encoders.keras.checkpoint_io import AtomicModelCheckpoint, check_resume
from encoders.keras.models import build_model, compile_model, model_tag_names, test_report, validation_callbacks
from encoders.keras.runtime import (count_real_rows, keep_tensorflow_out, make_distribution,
                                     JaxDataParallel, patch_fit_for_multi_worker, set_seed,
                                     worker_info)
from encoders.run.report import finish_run
from encoders.run.files import BACKUP_DIR, checkpoint_file, checkpoints_dir
from encoders.run.resume import has_backup, vocab_fingerprint

log = logging.getLogger(__name__)
from encoders.keras import recipe  # noqa: E402
from encoders.keras.recipe import KERAS_TO_COMMON  # noqa: E402,F401  (Keras log names -> the common names)


def _resume_from(ckpt_path: str, run_dir: str) -> None:
    """``ckpt_path`` for Keras is an earlier run dir: copy its backup (and epoch log) into this one."""
    src = os.path.join(ckpt_path, BACKUP_DIR)
    if not has_backup(ckpt_path):
        raise ConfigError(f"ckpt_path={ckpt_path}: the tf backend resumes from a run dir with a backup/ folder "
                         "(written by BackupAndRestore); none found there")
    shutil.copytree(src, os.path.join(run_dir, BACKUP_DIR), dirs_exist_ok=True)
    old_csv = os.path.join(ckpt_path, "csv", "metrics.csv")
    if os.path.isfile(old_csv):  # so history and `epochs` cover the whole run
        shutil.copyfile(old_csv, os.path.join(run_dir, "csv", "metrics.csv"))


def run(cfg: Any, splits, run_dir: str, encoder_name: str, callbacks: Sequence[keras.callbacks.Callback] = ()
        ) -> Dict[str, Any]:
    """Fit and report (the mirror of ``encoders.torch.runner.run``).

    Args:
        cfg: the run's ``TrainConfig``.
        splits: the run's data (``encoders.data.splits.Splits``).
        run_dir: where the run's files go (``app.run`` wrote ``vocab.json`` there).
        encoder_name: the encoder config's name, for ``metrics.json``.
        callbacks: extra Keras callbacks (yours), added to ``fit``'s after the run's own and before
            ``BackupAndRestore``.

    Returns:
        The run's metrics (``metrics.json``'s content); ``{}`` on a worker other than the chief.
    """
    start = time.time()
    keep_tensorflow_out()
    strategy = make_distribution(cfg.trainer.devices, cfg.trainer.accelerator)  # before TF/jax builds anything
    worker, is_chief = worker_info()
    if not is_chief:  # other workers of a multi-worker run keep their files apart; the chief reports
        run_dir = os.path.join(run_dir, f"worker_{worker}")
    set_seed(cfg.seed)
    if cfg.trainer.deterministic and keras.backend.backend() == "tensorflow":  # jax on CPU is deterministic
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    d, m, t = cfg.data, cfg.model, cfg.trainer
    train = BucketedBatches.from_split(splits.train, d.batch_size, seed=cfg.seed, shuffle=True,
                                       pool_batches=d.bucket_pool_batches, max_tokens=d.max_tokens)
    val = BucketedBatches.from_split(splits.validation, d.eval_rows, seed=cfg.seed, shuffle=False,
                                     pool_batches=d.bucket_pool_batches)
    from encoders.tasks import embedding_dim, monitor, pretrained_vectors, tag_names, vectors_report

    task = getattr(getattr(cfg, "task", None), "name", "classification")
    vectors = pretrained_vectors(cfg, splits)
    spec = ClassifierSpec.from_config(cfg, splits.vocab_size, splits.num_classes, embedding_dim(cfg, vectors))
    if cfg.ckpt_path:  # the same model on the same data, before anything is restored
        check_resume(cfg.ckpt_path, spec, vocab_fingerprint(run_dir))
    steps = len(train) if t.limit_train_batches is None else max(1, int(_limit(t.limit_train_batches, len(train))))
    names = tag_names(splits)
    with strategy.scope():
        model = build_model(spec, cfg, vectors, names)
        compile_model(model, clipnorm=t.gradient_clip_val, optimizer=recipe.build_optimizer(cfg, steps, t.gradient_clip_val))
    patch_fit_for_multi_worker(model, strategy, next(iter(train.batches())))
    count_real_rows(model, strategy)

    ckpt_dir, backup_dir = checkpoints_dir(run_dir), os.path.join(run_dir, BACKUP_DIR)
    os.makedirs(ckpt_dir, exist_ok=True)
    os.makedirs(os.path.join(run_dir, "csv"), exist_ok=True)
    if cfg.ckpt_path:
        _resume_from(cfg.ckpt_path, run_dir)
    best_path, last_path = (checkpoint_file(run_dir, n, "keras") for n in ("best", "last"))
    # Epoch-end order matters: the epoch's log row and checkpoints first, the backup last, so a
    # run killed in between resumes to an epoch whose files all exist.
    metric, mode = monitor(task)
    # a task whose figures fit's metrics can't give (tagging: over real tokens only) validates in its
    # callbacks (first, so every callback after them sees the figures); fit then gets no validation data
    validation = validation_callbacks(model, val, names)
    extra_callbacks = list(callbacks)
    callbacks = [
        *validation,
        EpochSetter(train, val),
        *recipe.epoch_callbacks(cfg),  # lr
        keras.callbacks.CSVLogger(os.path.join(run_dir, "csv", "metrics.csv"), append=True),
        AtomicModelCheckpoint(best_path, monitor=metric.replace("/", "_"), mode=mode),
        AtomicModelCheckpoint(last_path),
        *(_tensorboard(os.path.join(run_dir, "tb"), t.log_every_n_steps) if cfg.logger.tensorboard is not None else []),
        *recipe.callbacks(cfg, is_chief),  # plateau, early stopping, MLflow
        *extra_callbacks,
        # kept after the run so that ckpt_path=RUN_DIR can continue it; double_checkpoint keeps the
        # previous backup too, used when the latest one is unreadable
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False, double_checkpoint=True),
    ]
    replicas = strategy.num_replicas_in_sync if isinstance(strategy, JaxDataParallel) else 1
    val_steps = len(val) if t.limit_val_batches is None else max(1, int(_limit(t.limit_val_batches, len(val))))
    validation_kwargs = {} if validation else dict(validation_data=feed(val, replicas), validation_steps=val_steps)
    fit = model.fit(feed(train, replicas), epochs=t.max_epochs, steps_per_epoch=steps, callbacks=callbacks,
                    verbose=1 if t.enable_progress_bar else 2, **validation_kwargs)
    if not is_chief:
        return {}
    from encoders.tasks import HISTORY_KEYS as TASK_HISTORY

    history = _history_from_csv(os.path.join(run_dir, "csv", "metrics.csv"))
    history = {k: history.get(k, []) for k in TASK_HISTORY[task]}  # the torch run's keys
    # epochs from fit's own list: a resumed fit starts at the restored epoch
    extra = _test_split_report(best_path, splits.test, d.eval_rows) if splits.test is not None else {}
    from encoders.run.recipe import mlflow_log_artifacts, stop_report

    epochs = fit.epoch[-1] + 1 if fit.epoch else 0
    extra = {"task": task, **extra, **vectors_report(vectors, m.freeze_embeddings), **stop_report(cfg, history, epochs)}
    metrics = finish_run(run_dir, cfg.backend.name, encoder_name, history, epochs=epochs,
                         global_step=int(keras.ops.convert_to_numpy(model.optimizer.iterations)), start=start,
                         best_path=best_path, last_path=last_path, extra=extra)
    run_id = recipe.mlflow_run_id(callbacks)
    if run_id and cfg.logger.mlflow.log_artifacts:
        mlflow_log_artifacts(recipe.mlflow_uri(cfg), run_id, run_dir)
    return metrics


def _test_split_report(best_path: str, test, batch_size: int) -> Dict[str, float]:
    """The test figures of the model chosen on validation (``best.keras``)."""
    from encoders.keras.checkpoint_io import load_keras_model

    model = load_keras_model(best_path, compile=False)
    return test_report(model, test, batch_size, model_tag_names(model, best_path))


def _tensorboard(folder: str, every: int) -> list:
    """Keras' TensorBoard callback writes through TensorFlow: on jax the curves are csv/ and curves.png."""
    if keras.backend.backend() != "tensorflow":
        return []
    return [keras.callbacks.TensorBoard(folder, update_freq=every)]


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
    columns = {k for r in rows.values() for k in r} - {"epoch"}
    # other tasks' columns (val_rmse, val_span_f1, ...) map the same way: val_X -> val/X, X -> train/X
    names = {k: recipe.common_name(k) for k in sorted(columns | set(KERAS_TO_COMMON))}
    return {common: [float(rows[e][k]) for e in sorted(rows) if rows[e].get(k)]
            for k, common in names.items() if common in KERAS_TO_COMMON.values() or k in columns}
