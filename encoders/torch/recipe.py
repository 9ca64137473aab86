"""The training recipe on the torch backend: the optimizer and lr schedule a module's
``configure_optimizers`` returns, the early-stopping and lr callbacks, and the loggers.

The schedules' values come from ``encoders.run.recipe.lr_factors`` (the Keras backend reads the same),
stepped per optimizer step by a ``LambdaLR``; plateau is torch's ``ReduceLROnPlateau`` per epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping

from encoders.config import OptimizerConfig, SchedulerConfig
from encoders.run.recipe import LR_KEY, flat_params, lr_factors, mlflow_uri, optimizer_config, plateau_patience
from encoders.tasks import monitor


@dataclass
class Recipe:
    """What ``configure_optimizers`` needs, kept on the module (not in its hparams: a checkpoint
    stays primitive and a module built without one trains with AdamW as before)."""

    optimizer: OptimizerConfig
    scheduler: SchedulerConfig
    monitor: str = "val/acc"
    mode: str = "max"


def attach(model, cfg: Any):
    """Give ``model`` the run's recipe (``cfg.optimizer``, ``cfg.scheduler``, the task's monitored metric)."""
    metric, mode = monitor(cfg.task.name)
    model.recipe = Recipe(optimizer_config(cfg), cfg.scheduler, metric, mode)
    return model


def _optimizer(params, o: OptimizerConfig) -> torch.optim.Optimizer:
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas))
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)


def configure_optimizers(module, params) -> Union[torch.optim.Optimizer, Dict[str, Any]]:
    """A Lightning ``configure_optimizers`` result for ``module`` (its ``recipe``, or AdamW with its
    hparams' ``lr``/``weight_decay`` when it has none)."""
    r: Optional[Recipe] = getattr(module, "recipe", None)
    if r is None:
        return torch.optim.AdamW(params, lr=module.hparams.lr, weight_decay=module.hparams.weight_decay)
    opt, s = _optimizer(params, r.optimizer), r.scheduler
    if s.name == "none":
        return opt
    if s.name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=r.mode, factor=s.factor, patience=plateau_patience(s.patience, "torch"), threshold=s.min_delta,
            threshold_mode="abs", min_lr=s.min_lr)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": r.monitor, "interval": "epoch"}}
    factors = lr_factors(s.name, int(module.trainer.estimated_stepping_batches), s.warmup_steps)
    last = len(factors) - 1

    def factor(step: int) -> float:  # a function, so LambdaLR keeps nothing of it in checkpoints
        return float(factors[min(step, last)])

    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor),
                                               "interval": "step"}}


class EpochLR(Callback):
    """Logs ``lr``: the learning rate each epoch starts with (so it lands in the history and loggers).

    The value is kept in checkpoints: a run resumed mid-epoch logs the lr that epoch started with."""

    def __init__(self):
        self.lr: Optional[float] = None

    def state_dict(self) -> Dict[str, Any]:
        return {"lr": self.lr}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.lr = state_dict.get("lr")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.optimizers:
            self.lr = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.lr is not None:
            pl_module.log(LR_KEY, self.lr, on_step=False, on_epoch=True, sync_dist=False)


def callbacks(cfg: Any) -> List[Callback]:
    out: List[Callback] = [EpochLR()]
    es = cfg.callbacks.early_stopping
    if es.patience is not None:
        metric, mode = monitor(cfg.task.name)
        # check_finite=False: Keras's EarlyStopping has no such rule, and both backends stop alike
        out.append(EarlyStopping(monitor=metric, mode=mode, patience=es.patience, min_delta=es.min_delta,
                                 check_finite=False))
    return out


def loggers(cfg: Any, run_dir: str) -> Union[list, bool]:
    """``logger.csv`` -> RUN_DIR/csv, ``logger.tensorboard`` -> RUN_DIR/tb, ``logger.mlflow`` -> an
    MLflow run with the config's params; False when none is on (``logger=none``)."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    lg, out = cfg.logger, []
    if lg.csv is not None:
        out.append(CSVLogger(run_dir, name="csv", version=""))
    if lg.tensorboard is not None:
        out.append(TensorBoardLogger(run_dir, name="tb", version=""))
    if lg.mlflow is not None:
        from pytorch_lightning.loggers import MLFlowLogger

        m = lg.mlflow
        mlf = MLFlowLogger(experiment_name=m.experiment_name, run_name=m.run_name, tracking_uri=mlflow_uri(cfg),
                           log_model=False)
        mlf.log_hyperparams(flat_params(cfg))
        out.append(mlf)
    return out or False


def mlflow_run_id(loggers) -> Optional[str]:
    """The MLflow run's id among a Trainer's ``loggers`` (None without one)."""
    from pytorch_lightning.loggers import MLFlowLogger

    return next((lg.run_id for lg in loggers if isinstance(lg, MLFlowLogger)), None)
