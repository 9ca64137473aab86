"""The training recipe on the Keras backend: the optimizer with its lr schedule, the early-stopping,
plateau and lr callbacks, and the MLflow logger, each meaning what it means on the torch backend.

The per-step schedules read ``encoders.run.recipe.lr_factors`` (the torch ``LambdaLR`` reads the same);
plateau is Keras's ``ReduceLROnPlateau`` per epoch with torch's semantics (``plateau_patience``).
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import keras
import numpy as np

from encoders.run.recipe import (LR_KEY, check_warmup, flat_params, lr_factors, mlflow_uri, optimizer_config,
                             optimizer_steps, plateau_patience)
from encoders.tasks import monitor

# Keras log names -> the names the torch backend logs (metrics.json, curves and loggers use these)
KERAS_TO_COMMON = {"loss": "train/loss", "acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
                   LR_KEY: LR_KEY}


def common_name(key: str) -> str:
    """``val_X`` -> ``val/X``, ``X`` -> ``train/X`` (``loss``, ``acc``, ``lr`` as named above)."""
    return KERAS_TO_COMMON.get(key) or (f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}")


@keras.saving.register_keras_serializable(package="encoders")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``base_lr * lr_factors(name, total_steps, warmup_steps)[step]``, per optimizer step: with
    gradient accumulation Keras counts batches, so the step is ``batches // accumulate``."""

    def __init__(self, name: str, base_lr: float, total_steps: int, warmup_steps: int = 0, accumulate: int = 1):
        self.name, self.base_lr, self.total_steps = name, float(base_lr), int(total_steps)
        self.warmup_steps, self.accumulate = int(warmup_steps), int(accumulate)
        self.table = (self.base_lr * lr_factors(name, self.total_steps, self.warmup_steps)).astype(np.float32)

    def __call__(self, step):
        ops = keras.ops
        i = ops.minimum(ops.floor_divide(ops.cast(step, "int32"), self.accumulate), len(self.table) - 1)
        return ops.take(ops.convert_to_tensor(self.table), i)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "accumulate": self.accumulate}


def build_optimizer(cfg: Any, steps_per_epoch: int, clipnorm: Optional[float] = None) -> keras.optimizers.Optimizer:
    """The run's optimizer (``cfg.optimizer``), its lr schedule (``cfg.scheduler``) and
    ``trainer.accumulate_grad_batches``; ``clipnorm`` is ``gradient_clip_val`` (global norm)."""
    o, s, acc = optimizer_config(cfg), cfg.scheduler, cfg.trainer.accumulate_grad_batches
    lr: Any = o.lr
    if s.name in ("cosine", "linear"):
        total = optimizer_steps(steps_per_epoch, cfg.trainer.max_epochs, acc)
        check_warmup(s.name, total, s.warmup_steps)
        lr = StepSchedule(s.name, o.lr, total, s.warmup_steps, acc)
    common = dict(learning_rate=lr, global_clipnorm=clipnorm, gradient_accumulation_steps=acc if acc > 1 else None)
    if o.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=o.weight_decay, beta_1=o.betas[0], beta_2=o.betas[1], **common)
    if o.name == "adam":
        return keras.optimizers.Adam(beta_1=o.betas[0], beta_2=o.betas[1], **common)
    return keras.optimizers.SGD(momentum=o.momentum, nesterov=o.nesterov, **common)


class EpochLR(keras.callbacks.Callback):
    """Adds ``lr`` to the epoch's logs: the learning rate the epoch started with (as on torch)."""

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None) -> None:
        if logs is not None:
            logs[LR_KEY] = self.lr


class MLflowLogger(keras.callbacks.Callback):
    """An MLflow run with the config's params and, per epoch, the metrics under the torch
    backend's names (``train/loss``, ``val/acc``, ``lr``...), stepped by optimizer steps."""

    def __init__(self, cfg: Any):
        super().__init__()
        from mlflow.tracking import MlflowClient

        m = cfg.logger.mlflow
        self.uri = mlflow_uri(cfg)
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(m.experiment_name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(m.experiment_name)
        self.run_id = self.client.create_run(exp_id, run_name=m.run_name).info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def on_epoch_end(self, epoch, logs=None) -> None:
        from mlflow.entities import Metric

        step, now = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)), int(time.time() * 1000)
        metrics = [Metric(common_name(k), float(v), now, step) for k, v in (logs or {}).items()
                   if k != "learning_rate" and np.isscalar(v)]
        metrics.append(Metric("epoch", float(epoch), now, step))
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_train_end(self, logs=None) -> None:
        self.client.set_terminated(self.run_id)


def epoch_callbacks(cfg: Any) -> List[keras.callbacks.Callback]:
    """Callbacks that add to the epoch's logs: before the CSV logger and the checkpoints."""
    return [EpochLR()]


def callbacks(cfg: Any, chief: bool = True) -> List[keras.callbacks.Callback]:
    """Plateau, early stopping and MLflow (the chief's): after the epoch's logs are complete."""
    metric, mode = monitor(cfg.task.name)
    key, out = metric.replace("/", "_"), []
    s, es = cfg.scheduler, cfg.callbacks.early_stopping
    if s.name == "plateau":
        out.append(keras.callbacks.ReduceLROnPlateau(monitor=key, mode=mode, factor=s.factor, min_delta=s.min_delta,
                                                     patience=plateau_patience(s.patience, "keras"), min_lr=s.min_lr))
    if es.patience is not None:
        out.append(keras.callbacks.EarlyStopping(monitor=key, mode=mode, patience=es.patience, min_delta=es.min_delta))
    if cfg.logger.mlflow is not None and chief:
        out.append(MLflowLogger(cfg))
    return out


def mlflow_run_id(loggers: List[keras.callbacks.Callback]) -> Optional[str]:
    """The MLflow run's id among ``fit``'s callbacks (``loggers``; None without an ``MLflowLogger``)."""
    return next((c.run_id for c in loggers if isinstance(c, MLflowLogger)), None)
