"""``encoders evaluate`` over a table read in chunks: running counts and sums, no per-row results kept.

The confusion matrix, span counts and row counts are integers; the loss and the regression errors are
summed exactly (rounded once at the end), so the report does not depend on how the rows were cut into
chunks. The figures are those of :mod:`encoders.use.evaluation` on the whole table (a sum rounded once may
differ from numpy's mean in the last bit).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import numpy as np

from encoders.errors import DataError
from encoders.metrics import _per_class, _prf, is_bio_scheme, nll_values, span_f1, _label_names, _ratio


class ExactSum:
    """A float sum without rounding error until :meth:`value` (Shewchuk's partials, as ``math.fsum``)."""

    def __init__(self):
        self.partials: List[float] = []

    def add(self, values: np.ndarray) -> None:
        self.partials = [math.fsum(self.partials)] if len(self.partials) > 64 else self.partials
        for x in np.asarray(values, dtype=np.float64).tolist():
            i = 0
            for y in self.partials:
                if abs(x) < abs(y):
                    x, y = y, x
                hi = x + y
                lo = y - (hi - x)
                if lo:
                    self.partials[i] = lo
                    i += 1
                x = hi
            self.partials[i:] = [x]

    def value(self) -> float:
        return math.fsum(self.partials)


class RunningEvaluation:
    """Feed chunks with :meth:`add` (texts or words, and their gold values); :meth:`report` gives the
    report :func:`encoders.use.evaluation.evaluate` (``evaluate_tagging``, ``evaluate_regression``) gives."""

    def __init__(self, run: Any, batch_size: int):
        self.run, self.batch_size, self.task = run, batch_size, run.task
        c = len(run.labels) if self.task != "regression" else 0
        self.confusion = np.zeros((c, c), dtype=np.int64)
        self.rows = self.count = 0  # count: examples (tokens for tagging)
        self.loss, self.squares, self.absolute = ExactSum(), ExactSum(), ExactSum()
        self.spans = [0, 0, 0]  # gold, predicted, correct
        self.bio = self.task == "tagging" and is_bio_scheme(run.labels)

    def add(self, inputs: Sequence[Any], gold: Any) -> None:
        self.rows += len(inputs)
        if self.task == "regression":
            if len(inputs):
                err = np.asarray(self.run.logits(inputs, batch_size=self.batch_size), dtype=np.float64) - gold
                if not np.isfinite(err).all():
                    raise ValueError("a prediction is not a finite number")
                self.squares.add(err * err)
                self.absolute.add(np.abs(err))
                self.count += len(inputs)
            return
        if self.task == "tagging":
            if not sum(len(g) for g in gold):
                return
            logits = self.run.word_logits(inputs, batch_size=self.batch_size)
            flat_logits = np.concatenate([x for x in logits if len(x)], axis=0)
            flat_gold = np.concatenate([g for g in gold if len(g)])
            if self.bio:
                names = np.asarray(self.run.labels, dtype=object)
                s = span_f1([list(names[g]) for g in gold], [list(names[x.argmax(axis=1)]) if len(x) else []
                                                              for x in logits])
                self.spans = [a + b for a, b in zip(self.spans, (s["num_gold"], s["num_pred"], s["num_correct"]))]
        else:
            if not len(inputs):
                return
            flat_logits, flat_gold = self.run.logits(inputs, batch_size=self.batch_size), np.asarray(gold)
        c = self.confusion.shape[0]
        pred = np.asarray(flat_logits).argmax(axis=1)
        self.confusion += np.bincount(flat_gold * c + pred, minlength=c * c).reshape(c, c)
        self.loss.add(nll_values(flat_logits, flat_gold))
        self.count += len(flat_gold)

    def report(self) -> Dict[str, Any]:
        if self.count == 0:
            raise DataError({"regression": "evaluate needs at least one row with a target, the input has none",
                             "tagging": "evaluate needs at least one tagged token, the input has none"}.get(
                self.task, "evaluate needs at least one labelled row, the input has none"))
        if self.task == "regression":
            return {"rmse": math.sqrt(self.squares.value() / self.count), "mae": self.absolute.value() / self.count,
                    "num_examples": self.count}
        names = _label_names(self.run.labels)
        per_class, macro_f1 = _per_class(self.confusion, names)
        report: Dict[str, Any] = {"accuracy": _ratio(np.trace(self.confusion), self.count), "macro_f1": macro_f1,
                                  "num_examples": self.count, "per_class": per_class,
                                  "confusion_matrix": self.confusion.tolist(), "labels": names}
        if self.task == "tagging":
            report["num_tokens"] = report.pop("num_examples")
            report["num_examples"] = self.rows
        report["loss"] = self.loss.value() / self.count
        if self.bio:
            report["span_f1"] = float(_prf(self.spans[2], self.spans[0], self.spans[1])["f1"])
        return report
