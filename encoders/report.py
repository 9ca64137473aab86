"""What every run leaves in its run dir, whichever backend trained it: metrics.json and curves.png."""
from __future__ import annotations

import os
from typing import Dict, List, Mapping

from encoders.io import atomic_write_with, write_json

METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"


def finish_run(run_dir: str, backend: str, encoder: str, history: Mapping[str, List[float]], epochs: int,
               global_step: int, start: float, best_path: str, last_path: str, extra: Mapping = None) -> Dict:
    """The run's ``metrics.json`` (same keys for both backends) and ``curves.png``; returns the metrics.

    ``history`` holds per-epoch ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``; the
    reported values are those of the last epoch. ``extra`` adds keys (``test_report``'s).
    """
    import time

    last = {k: (history[k][-1] if history.get(k) else None) for k in ("val/acc", "val/loss", "train/loss")}
    metrics = {
        "backend": backend,
        "encoder": encoder,
        "val_acc": last["val/acc"],
        "val_loss": last["val/loss"],
        "train_loss": last["train/loss"],
        "best_val_acc": max(history["val/acc"]) if history.get("val/acc") else None,
        "epochs": int(epochs),
        "global_step": int(global_step),
        "wall_time_s": round(time.time() - start, 2),
        "best_checkpoint": best_path,
        "last_checkpoint": last_path,
        "history": dict(history),
        **_task_figures(history),
        **dict(extra or {}),
    }
    write_metrics(run_dir, metrics)
    plot_curves(run_dir, history)
    return metrics


def _task_figures(history: Mapping[str, List[float]]) -> Dict:
    """Other tasks' validation figures (``val/rmse`` -> ``val_rmse``, ``best_val_rmse``...): the last epoch's."""
    from encoders.tasks import MONITOR

    out = {}
    for key, values in history.items():
        if key.startswith("val/") and key not in ("val/acc", "val/loss") and values:
            out["val_" + key[4:]] = values[-1]
    for metric, mode in set(MONITOR.values()):
        if metric != "val/acc" and history.get(metric):
            out["best_" + metric.replace("/", "_")] = (max if mode == "max" else min)(history[metric])
    return out


def write_metrics(run_dir: str, metrics: Mapping) -> str:
    path = os.path.join(run_dir, METRICS_FILE)
    write_json(path, dict(metrics))
    return path


def plot_curves(run_dir: str, history: Mapping[str, List[float]]) -> str:
    """Loss and accuracy per epoch (``history`` keys like ``train/loss``, ``val/acc``)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    second = "acc" if any(k.endswith("/acc") for k in history) else "rmse"  # regression has no accuracy
    for ax, what in zip(axes, ("loss", second)):
        for key, values in sorted(history.items()):
            if key.endswith("/" + what) and values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = os.path.join(run_dir, CURVES_FILE)
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path


def epoch_history_from_csv(csv_path: str, keys: List[str]) -> Dict[str, List[float]]:
    """Per-epoch values of ``keys`` from a Lightning ``CSVLogger`` file (one value per epoch)."""
    import csv

    per_epoch: Dict[str, Dict[int, float]] = {k: {} for k in keys}
    if not os.path.exists(csv_path):
        return {k: [] for k in keys}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for k in keys:
                col = row.get(k) or row.get(k + "_epoch")
                if col:
                    per_epoch[k][epoch] = float(col)
    return {k: [v[e] for e in sorted(v)] for k, v in per_epoch.items()}


def test_report(logits, labels, num_classes: int) -> Dict[str, float]:
    """``test_acc``, ``test_loss`` and ``test_macro_f1`` of a model's test-split logits."""
    import numpy as np

    from encoders.metrics import classification_report, cross_entropy

    report = classification_report(np.asarray(labels), np.argmax(logits, axis=-1), [str(c) for c in range(num_classes)])
    return {"test_acc": report["accuracy"], "test_loss": cross_entropy(logits, labels),
            "test_macro_f1": report["macro_f1"], "test_examples": int(len(labels))}
