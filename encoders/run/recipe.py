"""The training recipe, framework-free: the optimizer's settings, the learning-rate schedules, the
early-stopping rule, the sweep objective and the MLflow store.

Each idea is defined here once and both backends use it (``encoders.torch.recipe`` /
``encoders.keras.recipe``): ``lr_factors`` is the schedule a torch ``LambdaLR`` and a Keras
``LearningRateSchedule`` both read, so the two give the same learning rate at every optimizer step;
``early_stop`` replays the rule Lightning's and Keras's ``EarlyStopping`` apply (a test holds the
three to the same epoch) to say in ``metrics.json`` where and why a run stopped.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

# direction: the sweep's resolver lives with the config it resolves (no circle); importable here too
from encoders.config import OptimizerConfig, direction
from encoders.errors import ConfigError
from encoders.tasks import monitor

LR_KEY = "lr"  # the per-epoch learning rate in the history, the loggers and metrics.json


# -- optimizer ---------------------------------------------------------------------------------------
def optimizer_config(cfg: Any) -> OptimizerConfig:
    """``cfg.optimizer`` with ``model.lr`` / ``model.weight_decay`` (the older spellings) applied when set."""
    o = cfg.optimizer
    lr, wd = cfg.model.lr, cfg.model.weight_decay
    if lr is None and wd is None:
        return o
    return OptimizerConfig(name=o.name, lr=o.lr if lr is None else lr, weight_decay=o.weight_decay if wd is None else wd,
                           betas=list(o.betas), momentum=o.momentum, nesterov=o.nesterov).validate()


# -- learning-rate schedules -------------------------------------------------------------------------
def optimizer_steps(batches_per_epoch: int, epochs: int, accumulate: int = 1) -> int:
    """Optimizer steps of a run, as Lightning counts them (``estimated_stepping_batches``): an
    epoch's last, partial accumulation still steps."""
    return math.ceil(batches_per_epoch / max(1, accumulate)) * epochs


def lr_factors(name: str, total_steps: int, warmup_steps: int = 0) -> np.ndarray:
    """float64 ``[total_steps]``: the multiplier of the base lr at each optimizer step (0-based).

    ``cosine``: linear warm-up from 0 over ``warmup_steps``, then half a cosine down to 0 at the
    last step + 1; ``linear``: the same warm-up, then a straight line down to 0; ``none``/``plateau``:
    1 (plateau changes the lr per epoch, on the monitored metric).
    """
    check_warmup(name, total_steps, warmup_steps)
    step = np.arange(max(total_steps, 1), dtype=np.float64)
    if name not in ("cosine", "linear"):
        return np.ones_like(step)
    warm = step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    decay = 0.5 * (1.0 + np.cos(np.pi * progress)) if name == "cosine" else 1.0 - progress
    return np.where(step < warmup_steps, warm, np.clip(decay, 0.0, 1.0))


def check_warmup(name: str, total_steps: int, warmup_steps: int) -> None:
    if name in ("cosine", "linear") and warmup_steps >= total_steps:
        raise ConfigError(f"scheduler.warmup_steps={warmup_steps} does not fit the run's {total_steps} optimizer steps "
                          f"(scheduler={name} warms up, then decays): set scheduler.warmup_steps below {total_steps}")


def plateau_patience(patience: int, framework: str) -> int:
    """``scheduler.patience=N``: the lr is cut after N epochs without improvement. Keras's
    ``ReduceLROnPlateau`` counts that way; torch's cuts after ``patience + 1`` such epochs."""
    return patience if framework == "keras" else patience - 1


# -- early stopping ----------------------------------------------------------------------------------
def improved(value: float, best: Optional[float], mode: str, min_delta: float) -> bool:
    """Lightning's and Keras's test: better than the best by more than ``min_delta``."""
    if best is None:
        return True
    return value - min_delta > best if mode == "max" else value + min_delta < best


def early_stop(values: Sequence[float], mode: str, patience: Optional[int], min_delta: float = 0.0
               ) -> Tuple[Optional[int], int]:
    """``(stopped_epoch, best_epoch)`` (1-based) for a history of the monitored metric: the epoch
    after which ``patience`` epochs in a row did not improve, or None when training went on."""
    best, best_epoch, wait = None, 0, 0
    for epoch, value in enumerate(values, start=1):
        if improved(value, best, mode, min_delta):
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if patience is not None and wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


def stop_report(cfg: Any, history: Dict[str, List[float]], epochs: int) -> Dict[str, Any]:
    """metrics.json's ``stop_reason`` (``early_stopping`` or ``max_epochs``) and, with early stopping
    on, ``early_stopping``: the metric, the rule, the epoch it stopped at and the best epoch."""
    es = cfg.callbacks.early_stopping
    if es.patience is None:
        return {"stop_reason": "max_epochs" if epochs >= cfg.trainer.max_epochs else "interrupted"}
    metric, mode = monitor(cfg.task.name)
    stopped, best_epoch = early_stop(history.get(metric, []), mode, es.patience, es.min_delta)
    if stopped is not None and stopped != epochs:  # e.g. a resumed run that went on: the run's own count wins
        stopped = None
    reason = (f"{metric} did not improve by more than {es.min_delta} for {es.patience} epochs "
              f"(best at epoch {best_epoch})" if stopped else None)
    return {"stop_reason": "early_stopping" if stopped else "max_epochs",
            "early_stopping": {"monitor": metric, "mode": mode, "patience": es.patience, "min_delta": es.min_delta,
                               "stopped_epoch": stopped, "best_epoch": best_epoch, "reason": reason}}


# -- sweeps ------------------------------------------------------------------------------------------
def objective(metrics: Dict[str, Any], task: str) -> Optional[float]:
    """What ``train.py`` returns to a Hydra sweeper: the best epoch's value of the task's monitored
    metric (the one ``best`` checkpoints are chosen on); ``direction`` says which way is better."""
    metric, _ = monitor(task)
    value = metrics.get("best_" + metric.replace("/", "_"))
    return None if value is None else float(value)


# -- MLflow ------------------------------------------------------------------------------------------
def mlflow_uri(cfg: Any) -> Optional[str]:
    """The tracking URI of a run with ``logger=mlflow`` (None without): ``logger.mlflow.tracking_uri``,
    or the file store ``mlruns/`` in the working directory, beside ``outputs/``."""
    m = cfg.logger.mlflow
    if m is None:
        return None
    uri = m.tracking_uri or "file:" + os.path.abspath("mlruns")
    if "://" not in uri and not uri.startswith("file:"):  # a plain path, as MLflow takes it
        uri = "file:" + os.path.abspath(uri)
    if uri.startswith("file:"):
        # MLflow 3 keeps its file store only when asked to; it is the store that needs no server
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def check_mlflow(cfg: Any) -> None:
    """A file or sqlite store that can't be written is named before training starts."""
    uri = mlflow_uri(cfg)
    if uri is None:
        return
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = parsed.path
    elif parsed.scheme == "sqlite":
        path = os.path.dirname(uri[len("sqlite:///"):]) or "."
    else:
        return  # a tracking server: MLflow reports its own errors
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"logger.mlflow.tracking_uri={uri}: can't write there ({e.strerror or e}); "
                          f"set logger.mlflow.tracking_uri to a folder you can write") from None


def flat_params(cfg: Any) -> Dict[str, str]:
    """The run's config as MLflow params (``optimizer.lr`` -> ``"0.003"``), the same on both backends."""
    from dataclasses import asdict, is_dataclass

    def walk(node: Any, prefix: str, out: Dict[str, str]) -> Dict[str, str]:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.", out)
        else:
            out[prefix[:-1]] = str(node)[:500]
        return out

    return walk(asdict(cfg) if is_dataclass(cfg) else dict(cfg), "", {})


def mlflow_log_artifacts(uri: str, run_id: str, run_dir: str) -> None:
    """The run dir's files (metrics.json, curves.png, vocabulary, config, checkpoints, csv) into the
    run's artefacts; ``backup/`` (tf's resume state) and ``tb/`` stay out."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if name in ("backup", "tb", "mlruns"):
            continue
        if os.path.isdir(path):
            client.log_artifacts(run_id, path, artifact_path=name)
        else:
            client.log_artifact(run_id, path)


__all__ = ["optimizer_config", "optimizer_steps", "lr_factors", "check_warmup", "plateau_patience", "early_stop",
           "stop_report", "objective", "direction", "mlflow_uri", "check_mlflow", "flat_params", "LR_KEY"]
