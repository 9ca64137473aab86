"""Score a trained run on a labelled table: accuracy, macro F1, loss, per-class figures, confusion.

What ``python -m encoders evaluate`` computes; framework-free itself (the run scores the texts).
Labels in the table are read the way training read them: through the run's label names when the
training labels were strings (``str(value)`` must be one of them), as class ids ``0..K-1`` when
they were integers. A missing label or one the run never saw is a ``DataError`` naming the row.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import numpy as np

from encoders.errors import DataError
from encoders.metrics import classification_report, cross_entropy

__all__ = ["gold_ids", "evaluate", "format_report"]


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def gold_ids(values: Sequence[Any], labels: Sequence[Any], string_labels: bool, where: str = "input",
             column: str = "label") -> np.ndarray:
    """Class ids of ``values`` (one per data row, rows counted from 1 in messages).

    Raises:
        DataError: a row without a label (null, or an empty cell), or a label the run never saw.
    """
    index = {str(name): k for k, name in enumerate(labels)}
    out = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values, 1):
        if _missing(value) or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: data row {row}: no label in column {column!r}")
        if string_labels:
            key = value if isinstance(value, str) else str(value)
            if key not in index:
                raise DataError(f"{where}: data row {row}: label {value!r} never occurs in the run's training data "
                                f"(its labels: {', '.join(map(repr, labels))})")
            out[row - 1] = index[key]
            continue
        k = _as_class_id(value)
        if k is None:
            raise DataError(f"{where}: data row {row}: label {value!r} is not an integer class id "
                            f"(the run was trained on integer labels 0..{len(labels) - 1})")
        if not 0 <= k < len(labels):
            raise DataError(f"{where}: data row {row}: label {k} never occurs in the run's training data "
                            f"(its labels are the class ids 0..{len(labels) - 1})")
        out[row - 1] = k
    return out


def _as_class_id(value: Any):
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    return None


def evaluate(run: Any, texts: Sequence[str], gold: np.ndarray, batch_size: int = 64) -> Dict[str, Any]:
    """The report of ``run`` on ``texts`` with class ids ``gold``: ``classification_report``'s keys
    (``accuracy``, ``macro_f1``, ``num_examples``, ``per_class``, ``confusion_matrix`` with rows =
    gold in the order of ``labels``, ``labels``) plus ``loss`` (mean cross-entropy, nats)."""
    if len(texts) == 0:
        raise DataError("evaluate needs at least one labelled row, the input has none")
    logits = run.logits(texts, batch_size=batch_size)
    report = classification_report(gold, logits.argmax(axis=1), run.labels)
    report["loss"] = cross_entropy(logits, gold)
    return report


def format_report(report: Dict[str, Any]) -> str:
    """A plain-text table: the overall figures, then precision/recall/f1/support per class."""
    names: List[str] = list(report["labels"])
    width = max([len("class")] + [len(n) for n in names])
    lines = [f"examples  {report['num_examples']}",
             f"accuracy  {report['accuracy']:.4f}",
             f"macro F1  {report['macro_f1']:.4f}",
             f"loss      {report['loss']:.4f}",
             "",
             f"{'class':<{width}}  {'precision':>9}  {'recall':>6}  {'f1':>6}  {'support':>7}"]
    for name in names:
        c = report["per_class"][name]
        lines.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
    return "\n".join(lines)
