"""The framework-free recipe: schedules, the early-stopping rule, the sweep objective, config errors."""
import os

import numpy as np
import pytest

from encoders.config import OptimizerConfig, SchedulerConfig, TrainConfig
from encoders.errors import ConfigError
from encoders.run.recipe import check_mlflow, direction, early_stop, lr_factors, objective, optimizer_config, stop_report


@pytest.mark.parametrize("name", ["cosine", "linear"])
@pytest.mark.parametrize("seed", range(5))
def test_warmup_then_decay_to_zero(name, seed):
    rng = np.random.default_rng(seed)
    total = int(rng.integers(2, 500))
    warmup = int(rng.integers(0, total))
    f = lr_factors(name, total, warmup)
    assert f.shape == (total,) and (f >= 0).all() and (f <= 1).all()
    np.testing.assert_allclose(f[:warmup], np.arange(warmup) / warmup)  # linear from 0
    assert f[warmup] == 1.0  # the peak, at the first step after the warm-up
    assert (np.diff(f[warmup:]) <= 1e-15).all()  # never rises again
    assert f[-1] <= 1.0 / (total - warmup) + 1e-12  # ends one step short of 0


def test_constant_schedules_and_warmup_that_does_not_fit():
    assert (lr_factors("none", 7) == 1).all() and (lr_factors("plateau", 7) == 1).all()
    with pytest.raises(ConfigError, match=r"scheduler.warmup_steps=10 does not fit the run's 10 optimizer steps"):
        lr_factors("cosine", 10, 10)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_early_stop_counts_epochs_without_improvement(mode):
    sign = 1 if mode == "max" else -1
    values = [sign * v for v in (0.5, 0.6, 0.6, 0.65, 0.64, 0.64, 0.7)]
    assert early_stop(values, mode, patience=2) == (6, 4)  # epochs 5, 6 no better than epoch 4
    assert early_stop(values, mode, patience=3) == (None, 7)
    assert early_stop(values, mode, patience=1, min_delta=0.07) == (3, 2)  # 0.6 -> 0.6 is not +0.07


def test_stop_report_and_objective_follow_the_task():
    cfg = TrainConfig()
    cfg.callbacks.early_stopping.patience = 1
    report = stop_report(cfg, {"val/acc": [0.5, 0.4]}, epochs=2)
    assert report["stop_reason"] == "early_stopping" and report["early_stopping"]["stopped_epoch"] == 2
    assert "val/acc did not improve" in report["early_stopping"]["reason"]
    assert objective({"best_val_acc": 0.9, "val_acc": 0.8}, "classification") == 0.9
    assert objective({"best_val_rmse": 0.3}, "regression") == 0.3
    assert (direction("classification"), direction("tagging"), direction("regression")) == (
        "maximize", "maximize", "minimize")


def test_model_lr_is_an_older_spelling_of_optimizer_lr():
    cfg = TrainConfig()
    assert optimizer_config(cfg) is cfg.optimizer and cfg.optimizer.lr == 3e-3  # today's AdamW values
    cfg.model.lr = 0.01
    assert optimizer_config(cfg).lr == 0.01


@pytest.mark.parametrize("part, message", [
    (OptimizerConfig(name="adam", weight_decay=0.1), "optimizer.weight_decay=0.1 needs optimizer=adamw"),
    (OptimizerConfig(lr=0.0), "optimizer.lr must be > 0"),
    (OptimizerConfig(nesterov=True), "optimizer.nesterov=true needs optimizer=sgd"),
    (OptimizerConfig(name="lamb"), "optimizer must be one of"),
    (SchedulerConfig(name="step"), "scheduler must be one of"),
    (SchedulerConfig(name="plateau", warmup_steps=5), "scheduler.warmup_steps is for scheduler=cosine or linear"),
])
def test_bad_recipe_values_are_named(part, message):
    with pytest.raises(ConfigError, match=message):
        part.validate()


def test_an_mlflow_store_that_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = TrainConfig()
    from encoders.config import MLflowLoggerConfig

    cfg.logger.mlflow = MLflowLoggerConfig(tracking_uri=str(blocker / "mlruns"))
    with pytest.raises(ConfigError, match=r"logger.mlflow.tracking_uri=file:.*mlruns: can't write there"):
        check_mlflow(cfg)
    cfg.logger.mlflow.tracking_uri = str(tmp_path / "ok")
    check_mlflow(cfg)
    assert os.path.isdir(tmp_path / "ok")
