"""What every run leaves in its run dir, whichever backend trained it: metrics.json and curves.png."""
from __future__ import annotations

import os
from typing import Dict, List, Mapping

from encoders.io import atomic_write_with, write_json
from encoders.run.files import CURVES_FILE, METRICS_FILE


def finish_run(run_dir: str, backend: str, encoder: str, history: Mapping[str, List[float]], epochs: int,
               global_step: int, start: float, best_path: str, last_path: str, extra: Mapping = None) -> Dict:
    """Write the run's ``metrics.json`` (same keys for both backends) and ``curves.png``.

    Args:
        run_dir: the run dir.
        backend: the run's ``backend.name``.
        encoder: the encoder's name (e.g. ``"lstm"``).
        history: per-epoch ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc`` (and the
            task's own figures); the reported values are those of the last epoch.
        epochs: epochs trained, resumes included.
        global_step: optimizer steps taken.
        start: ``time.time()`` when the run started.
        best_path: the best checkpoint's path.
        last_path: the last checkpoint's path.
        extra: more keys (``test_report``'s, the task's).

    Returns:
        The metrics written.
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
    """Write ``RUN_DIR/metrics.json`` (atomically); returns its path."""
    path = os.path.join(run_dir, METRICS_FILE)
    write_json(path, dict(metrics))
    return path


def plot_curves(run_dir: str, history: Mapping[str, List[float]]) -> str:
    """Plot loss and accuracy (or RMSE) per epoch to ``RUN_DIR/curves.png``.

    Args:
        run_dir: the run dir.
        history: per-epoch figures, keys like ``train/loss``, ``val/acc``.

    Returns:
        The plot's path.
    """
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


def test_report(logits, labels, num_classes: int) -> Dict[str, float]:
    """The test figures of a classifier.

    Args:
        logits: ``[N, num_classes]`` logits of the test split.
        labels: ``[N]`` gold class ids.
        num_classes: the number of classes.

    Returns:
        ``test_acc``, ``test_loss``, ``test_macro_f1`` and ``test_examples``.
    """
    import numpy as np

    from encoders.metrics import classification_report, cross_entropy

    report = classification_report(np.asarray(labels), np.argmax(logits, axis=-1), [str(c) for c in range(num_classes)])
    return {"test_acc": report["accuracy"], "test_loss": cross_entropy(logits, labels),
            "test_macro_f1": report["macro_f1"], "test_examples": int(len(labels))}


def plot_confusion(path: str, matrix: List[List[int]], labels: List[str]) -> str:
    """Write a confusion matrix as a PNG.

    Args:
        path: the PNG to write.
        matrix: counts, rows = gold class, columns = predicted, in the order of ``labels``.
        labels: the class names.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64).reshape(len(labels), len(labels))
    size = min(3 + 0.5 * len(labels), 20)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(labels)), [str(n) for n in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [str(n) for n in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if len(labels) <= 30:
        high = counts.max() if counts.size else 0
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                        color="white" if high and counts[i, j] > high / 2 else "black")
    fig.tight_layout()
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path
