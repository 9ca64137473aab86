"""The recipe in real runs: early stopping, the lr per epoch and MLflow on both backends, the debug
experiment, Optuna sweeps, the submitit launcher and the recipe's one-line errors."""
import json
import os
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from encoders.config import register_configs
from tests.helpers import ROOT, env, run_train, train_metrics

TINY = ["data.num_train=64", "data.num_val=32", "data.batch_size=16", "data.max_length=16",
        "trainer.enable_progress_bar=false"]


def composed(*overrides, hydra_config=False):
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=os.path.join(ROOT, "configs"), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)
    finally:
        GlobalHydra.instance().clear()


def train_in_process(run_dir, *overrides):
    from encoders.app import run

    return run(composed(*overrides), str(run_dir))


def test_early_stopping_lr_schedule_and_mlflow_alike_on_both_backends(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # what encoders.run.recipe.mlflow_uri sets for a run
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    # 4 batches an epoch, an optimizer step every 2: 2 steps an epoch; min_delta=1 can never be beaten,
    # so patience=2 stops after epoch 3 of 6 whatever the model learns
    recipe = ["trainer.max_epochs=6", "scheduler=linear", "scheduler.warmup_steps=3",
              "trainer.accumulate_grad_batches=2", "callbacks.early_stopping.patience=2",
              "callbacks.early_stopping.min_delta=1", "logger=many", f"logger.mlflow.tracking_uri={store}"]
    # subprocesses: a torch run in this process would keep TensorBoard off TensorFlow (torch/runner.py)
    runs = {b: train_metrics(tmp_path / b, f"backend={b}", *TINY, *recipe)[0] for b in ("torch", "tf")}
    for backend, m in runs.items():
        assert m["epochs"] == 3 and m["global_step"] == 6, backend
        assert m["stop_reason"] == "early_stopping" and m["early_stopping"]["stopped_epoch"] == 3
        assert (tmp_path / backend / "csv" / "metrics.csv").is_file() and (tmp_path / backend / "tb").is_dir()
    # the lr each epoch started with: steps 0, 2, 4 of 12 with 3 of warm-up
    expected = [0.0, 0.003 * 2 / 3, 0.003 * (1 - 1 / 9)]
    for backend in runs:
        assert runs[backend]["history"]["lr"] == pytest.approx(expected, abs=1e-7), backend

    client = MlflowClient(tracking_uri=f"file:{store}")
    (experiment,) = client.search_experiments()
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 2
    names = []
    for r in found:
        assert r.info.status == "FINISHED"
        assert r.data.params["optimizer.lr"] == "0.003" and r.data.params["scheduler.name"] == "linear"
        assert len(client.get_metric_history(r.info.run_id, "val/acc")) == 3
        assert [m.value for m in client.get_metric_history(r.info.run_id, "lr")] == pytest.approx(expected, abs=1e-7)
        names.append({k for k in r.data.metrics if not k.endswith("_step") and k != "epoch"})
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"metrics.json", "vocab.json", "checkpoints"} <= artifacts
    assert names[0] == names[1] == {"train/loss", "train/acc", "val/loss", "val/acc", "lr"}


def test_debug_experiment_overfits_a_few_batches(tmp_path):
    m = train_in_process(tmp_path / "run", "experiment=debug")
    assert m["history"]["train/acc"][-1] == 1.0 and m["history"]["train/loss"][-1] < 0.1
    assert m["epochs"] == 6 and not (tmp_path / "run" / "tb").exists()  # experiment=debug logs to csv only


def test_real_data_experiment_needs_its_files_and_composes_with_them(tmp_path):
    from encoders.app import check_config, to_schema

    cfg = to_schema(composed("experiment=text_classification", "data.train_file=train.csv"))
    check_config(cfg)
    assert (cfg.data.source, cfg.encoder.cell, cfg.scheduler.name) == ("files", "gru", "cosine")
    assert cfg.callbacks.early_stopping.patience == 3 and cfg.optimizer.weight_decay == 0.01


def sweep(tmp_path, *overrides):
    # no data.batch_size: a key given on the command line is no longer searched
    tiny = [o for o in TINY if not o.startswith("data.batch_size")]
    return subprocess.run([sys.executable, "train.py", "-m", f"hydra.sweep.dir={tmp_path}", *tiny, "logger=none",
                           "trainer.max_epochs=1", *overrides], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_optuna_sweep_writes_the_best_parameters(tmp_path, backend):
    proc = sweep(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3", f"backend={backend}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"optimizer.lr", "encoder.hidden_size", "encoder.dropout",
                                           "data.batch_size"}
    trials = [json.loads((tmp_path / str(i) / "metrics.json").read_text()) for i in range(3)]
    assert {t["backend"] for t in trials} == {backend}
    # train.py returned each trial's best val/acc, and the sweeper maximised it
    assert results["best_value"] == pytest.approx(max(t["best_val_acc"] for t in trials))


def test_optuna_direction_follows_the_task():
    for task, direction in (("classification", "maximize"), ("regression", "minimize")):
        cfg = composed("hparams_search=optuna", f"task={task}", hydra_config=True)
        assert cfg.hydra.sweeper.direction == direction


def test_submitit_local_launcher_runs_two_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=1,2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads((tmp_path / str(i) / "metrics.json").read_text()) for i in range(2)]
    assert all(r["epochs"] == 1 for r in runs)
    seeds = [yaml.safe_load((tmp_path / str(i) / ".hydra" / "config.yaml").read_text())["seed"] for i in range(2)]
    assert sorted(seeds) == [1, 2]


@pytest.mark.parametrize("overrides, message", [
    (["optimizer=lamb"], "ConfigError: optimizer=lamb: no such optimizer config; choose one of adam, adamw, sgd"),
    (["experiment=text_classification"], "DataConfigError: data.source=files needs data.train_file=PATH"),
    (["logger=mlflow", "logger.mlflow.tracking_uri={blocked}/mlruns"], "can't write there"),
    ([*TINY, "scheduler=cosine", "scheduler.warmup_steps=100"],
     "ConfigError: scheduler.warmup_steps=100 does not fit the run's 12 optimizer steps"),
])
def test_recipe_errors_are_one_line_and_exit_2(tmp_path, overrides, message):
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    proc = run_train(tmp_path / "run", *(o.format(blocked=blocked) for o in overrides), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr  # Hydra's log goes to stdout, its own config errors to stderr
    lines = [line for line in out.splitlines() if message in line]
    assert len(lines) == 1 and "Traceback" not in out, out[-2000:]
