"""bench/run.py runs end to end and reports every figure (tiny sizes; never a speed threshold)."""
import json
import math
import os
import subprocess
import sys

from tests.helpers import ROOT

RATIOS = ["encoder_speedup_vs_packed", "kernel_speedup_vs_packed", "encoder_share_of_limit",
          "gru_speedup_vs_packed", "keras_speed_vs_plain", "tokens_per_second_torch", "tokens_per_second_tf"]
EFFICIENCIES = ["padding_efficiency_bucketed", "padding_efficiency_random", "padding_efficiency_longtail_bucketed"]
REQUIRED = RATIOS + EFFICIENCIES + [
    "outputs_match", "lightning_overhead", "collate_share_of_step", "peak_memory_ours_mb", "peak_memory_packed_mb",
    "padding_matters", "machine", "torch_version", "tf_version", "quick",
    # the rest of what BENCHMARKS.md publishes
    "padding_efficiency_longtail_random", "gru_kernel_speedup_vs_packed", "peak_memory_raw_kernel_mb",
    "lightning_overhead_quartiles", "lockstep_aa_bias", "lightning_ms_per_step_tiny_model", "step_ms_hand_loop", "data_fetch_share_of_step",
    "keras_speed_vs_plain_quartiles", "keras_epoch_speed_vs_plain"]


def test_bench_smoke_reports_every_figure():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "bench/run.py", "--smoke"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)  # a hang guard, not a speed test: loaded machines are slow
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    missing = [k for k in REQUIRED if k not in report]
    assert not missing, f"missing keys {missing} in {report}"
    assert report["outputs_match"] is True
    assert report["quick"] is False and isinstance(report["machine"], str) and report["tf_version"]
    for k in RATIOS:
        assert math.isfinite(report[k]) and report[k] > 0, (k, report[k])
    for k in EFFICIENCIES:
        assert 0 < report[k] <= 1, (k, report[k])
    # bucketing can only remove padding
    assert report["padding_efficiency_bucketed"] >= report["padding_efficiency_random"]
    for k in ("lightning_overhead", "lockstep_aa_bias"):
        assert math.isfinite(report[k]) and report[k] > -1, (k, report[k])
    assert math.isfinite(report["collate_share_of_step"]) and report["collate_share_of_step"] > 0
    for k in ("peak_memory_ours_mb", "peak_memory_packed_mb"):
        assert math.isfinite(report[k]) and report[k] >= 0, (k, report[k])
    pm = report["padding_matters"]
    for k in ("correct_acc", "wrong_recipe_acc"):
        assert 0 <= pm[k] <= 1, (k, pm)


def test_jax_bench_smoke_reports_jax_plain_and_torch():
    """bench/jax_bench.py on 1 batch, 2 rounds: the torch child answers every round (one before, one
    after the jax round), with the same thread count as the cores jax uses; never a speed threshold."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "-m", "bench.jax_bench", "1", "2"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    for k in ("keras_jax_speed_vs_plain", "keras_jax_vs_torch", "tokens_per_second_jax", "tokens_per_second_jax_plain",
              "tokens_per_second_torch"):
        assert math.isfinite(report[k]) and report[k] > 0, (k, report[k])
    assert len(report["keras_jax_speed_vs_plain_rounds"]) == len(report["keras_jax_vs_torch_rounds"]) == 2
    assert report["torch_threads"] == report["cpu_cores"] and report["torch_stalled_rounds"] in (0, 1, 2)


def test_contention_bench_smoke_reports_alone_pair_ddp_and_predict_beside():
    """bench/contention.py with real train.py processes (two at once, two DDP ranks) and a real
    predict beside one, cut to a few batches: every variant reports a time and every ratio is
    formed from them."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "-m", "bench.contention", "--repeats", "1", "--ddp", "--beside", "300",
                          "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                          "data.num_train=256", "data.num_val=64", "logger=csv"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    for variant in ("all_cores", "fair_share"):
        for shape in ("alone", "pair", "ddp2"):
            assert math.isfinite(report[f"{variant}_{shape}_s"]) and report[f"{variant}_{shape}_s"] > 0
        for shape in ("pair", "ddp2"):
            ratio = report[f"{variant}_{shape}_s"] / report[f"{variant}_alone_s"]
            assert abs(report[f"{variant}_{shape}_vs_alone"] - ratio) < 2e-3 * max(1.0, ratio)  # printed to 3 places
        for key in ("predict_alone", "predict_beside", "train_beside"):
            assert math.isfinite(report[f"{variant}_{key}_s"]) and report[f"{variant}_{key}_s"] > 0
        assert abs(report[f"{variant}_predict_beside_vs_alone"]
                   - report[f"{variant}_predict_beside_s"] / report[f"{variant}_predict_alone_s"]) < 2e-3 * 10
    assert report["cores"] >= 1 and report["repeats"] == 1
