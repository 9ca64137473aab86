"""The recipe means the same on both backends: the lr at every optimizer step, the plateau cuts and
the early-stopping epoch, torch (Lightning) against Keras, for the same config and history."""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from pytorch_lightning.callbacks import EarlyStopping  # noqa: E402

from encoders.config import TrainConfig  # noqa: E402
from encoders.keras import recipe as keras_recipe  # noqa: E402
from encoders.run.recipe import early_stop, optimizer_steps  # noqa: E402
from encoders.tasks import monitor  # noqa: E402
from encoders.torch import recipe as torch_recipe  # noqa: E402


def recipe_config(task="classification", **settings) -> TrainConfig:
    cfg = TrainConfig()
    cfg.task.name = task
    for key, value in settings.items():
        part, _, name = key.partition("__")
        setattr(getattr(cfg, part), name, value)
    return cfg


def torch_optimizer(cfg, total_steps):
    """What Lightning gets from a module's configure_optimizers, with the run's step count."""
    param = torch.nn.Parameter(torch.zeros(3))
    module = torch_recipe.attach(types.SimpleNamespace(), cfg)
    module.trainer = types.SimpleNamespace(estimated_stepping_batches=total_steps)
    out = torch_recipe.configure_optimizers(module, [param])
    return (out, None) if isinstance(out, torch.optim.Optimizer) else (out["optimizer"], out["lr_scheduler"]["scheduler"])


def keras_optimizer(cfg, steps_per_epoch):
    var = keras.Variable(np.zeros(3, dtype="float32"))
    return keras_recipe.build_optimizer(cfg, steps_per_epoch), var


@pytest.mark.parametrize("scheduler, warmup", [("none", 0), ("cosine", 0), ("cosine", 7), ("linear", 5)])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("accumulate", [1, 3])
def test_lr_at_every_step_torch_equals_keras(scheduler, warmup, optimizer, accumulate):
    batches, epochs = 9, 3
    cfg = recipe_config(optimizer__name=optimizer, optimizer__lr=0.02, scheduler__name=scheduler,
                        scheduler__warmup_steps=warmup, trainer__max_epochs=epochs,
                        trainer__accumulate_grad_batches=accumulate)
    total = optimizer_steps(batches, epochs, accumulate)
    t_opt, t_sched = torch_optimizer(cfg, total)
    k_opt, var = keras_optimizer(cfg, batches)
    torch_lrs, keras_lrs = [], []
    for _ in range(total):  # Lightning: one scheduler step per optimizer step
        torch_lrs.append(t_opt.param_groups[0]["lr"])
        t_opt.step()
        if t_sched is not None:
            t_sched.step()
    for batch in range(batches * epochs // accumulate * accumulate):  # Keras: lr read per batch
        lr = float(keras.ops.convert_to_numpy(k_opt.learning_rate))
        if batch % accumulate == 0:
            keras_lrs.append(lr)
        else:  # the same lr through an accumulation
            assert lr == keras_lrs[-1]
        k_opt.apply_gradients([(keras.ops.zeros(3), var)])
    assert len(keras_lrs) == total
    np.testing.assert_allclose(keras_lrs, torch_lrs, rtol=0, atol=1e-7)
    if scheduler != "none":
        assert max(torch_lrs) == pytest.approx(0.02) and min(torch_lrs) < 0.02 / 5


def metric_histories(n, seed, mode):
    """Random per-epoch metric histories with stalls and ties (where off-by-one rules differ)."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([0.0, 0.0, 0.01, 0.05, -0.02], size=n)
    values = 0.5 + np.cumsum(steps if mode == "max" else -steps)
    return [float(v) for v in values]


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("seed", range(4))
def test_plateau_cuts_the_lr_at_the_same_epochs(task, seed):
    metric, mode = monitor(task)
    cfg = recipe_config(task, scheduler__name="plateau", scheduler__patience=2, scheduler__factor=0.5,
                        scheduler__min_delta=0.005, scheduler__min_lr=1e-4, optimizer__lr=0.01)
    values = metric_histories(30, seed, mode)
    t_opt, t_sched = torch_optimizer(cfg, 1)
    k_opt, _ = keras_optimizer(cfg, 1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=k_opt, loss="mse")
    (plateau,) = keras_recipe.callbacks(cfg)
    plateau.set_model(model)
    plateau.on_train_begin()
    torch_lrs, keras_lrs = [], []
    for epoch, value in enumerate(values):
        t_sched.step(value)
        plateau.on_epoch_end(epoch, {metric.replace("/", "_"): value})
        torch_lrs.append(t_opt.param_groups[0]["lr"])
        keras_lrs.append(float(keras.ops.convert_to_numpy(k_opt.learning_rate)))
    np.testing.assert_allclose(keras_lrs, torch_lrs, rtol=1e-6)
    assert torch_lrs[-1] < 0.01  # the histories do stall


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("patience, min_delta", [(1, 0.0), (2, 0.0), (3, 0.02)])
@pytest.mark.parametrize("seed", range(4))
def test_early_stopping_stops_at_the_same_epoch(task, patience, min_delta, seed):
    metric, mode = monitor(task)
    values = metric_histories(25, seed, mode)
    expected, _ = early_stop(values, mode, patience, min_delta)

    cfg = recipe_config(task)
    cfg.callbacks.early_stopping.patience, cfg.callbacks.early_stopping.min_delta = patience, min_delta
    (lightning,) = [c for c in torch_recipe.callbacks(cfg) if isinstance(c, EarlyStopping)]
    lightning_stop = next((e for e, v in enumerate(values, 1)
                           if lightning._evaluate_stopping_criteria(torch.tensor(v))[0]), None)

    (keras_es,) = keras_recipe.callbacks(cfg)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    keras_es.set_model(model)
    model.stop_training = False  # as fit starts
    keras_es.on_train_begin()
    keras_stop = None
    for epoch, value in enumerate(values):
        keras_es.on_epoch_end(epoch, {metric.replace("/", "_"): value})
        if model.stop_training:
            keras_stop = epoch + 1
            break
    assert lightning_stop == keras_stop == expected
