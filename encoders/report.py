"""What every run leaves in its run dir, whichever backend trained it: metrics.json and curves.png."""
from __future__ import annotations

import os
from typing import Dict, List, Mapping

from encoders.io import write_json

METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"


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
    for ax, what in zip(axes, ("loss", "acc")):
        for key, values in sorted(history.items()):
            if key.endswith("/" + what) and values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = os.path.join(run_dir, CURVES_FILE)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
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
