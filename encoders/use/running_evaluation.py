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
    """A classifier's figures on chunks fed with :meth:`add` (texts and their class ids); :meth:`report`
    gives the report :func:`encoders.use.evaluation.evaluate` gives on the whole table. The other
    tasks' tallies (``encoders.tasks.TASKS[task].running_evaluation``) change what differs.

    Args:
        run: the ``TrainedRun``.
        batch_size: rows per batch.
    """

    no_gold = "evaluate needs at least one labelled row, the input has none"

    def __init__(self, run: Any, batch_size: int):
        self.run, self.batch_size, self.task = run, batch_size, run.task
        c = len(run.labels)
        self.confusion = np.zeros((c, c), dtype=np.int64)
        self.rows = self.count = 0  # count: examples (tokens for tagging)
        self.loss = ExactSum()

    def add(self, inputs: Sequence[Any], gold: Any) -> None:
        """Score a chunk.

        Args:
            inputs: texts (a tagger: lists of words).
            gold: their gold values (``TASKS[task].gold``).
        """
        self.rows += len(inputs)
        scored = self._scores(inputs, gold)
        if scored is None:
            return
        flat_logits, flat_gold = scored
        c = self.confusion.shape[0]
        pred = np.asarray(flat_logits).argmax(axis=1)
        self.confusion += np.bincount(flat_gold * c + pred, minlength=c * c).reshape(c, c)
        self.loss.add(nll_values(flat_logits, flat_gold))
        self.count += len(flat_gold)

    def _scores(self, inputs: Sequence[Any], gold: Any):
        """``(logits [n, C], gold ids [n])`` of a chunk's examples, or None when it has none."""
        if not len(inputs):
            return None
        return self.run.logits(inputs, batch_size=self.batch_size), np.asarray(gold)

    def report(self) -> Dict[str, Any]:
        """The figures so far.

        Raises:
            DataError: no example was added.
        """
        if self.count == 0:
            raise DataError(self.no_gold)
        names = _label_names(self.run.labels)
        per_class, macro_f1 = _per_class(self.confusion, names)
        report: Dict[str, Any] = {"accuracy": _ratio(np.trace(self.confusion), self.count), "macro_f1": macro_f1,
                                  "num_examples": self.count, "per_class": per_class,
                                  "confusion_matrix": self.confusion.tolist(), "labels": names}
        self._add_figures(report)
        report["loss"] = self.loss.value() / self.count
        return report

    def _add_figures(self, report: Dict[str, Any]) -> None:
        """The task's own keys, before ``loss``."""


class RunningTagging(RunningEvaluation):
    """A tagger's figures over real tokens, with ``span_f1`` for BIO-like tags; :meth:`report` gives
    what :func:`encoders.use.evaluation.evaluate_tagging` gives."""

    no_gold = "evaluate needs at least one tagged token, the input has none"

    def __init__(self, run: Any, batch_size: int):
        super().__init__(run, batch_size)
        self.spans = [0, 0, 0]  # gold, predicted, correct
        self.bio = is_bio_scheme(run.labels)

    def _scores(self, inputs: Sequence[Any], gold: Any):
        if not sum(len(g) for g in gold):
            return None
        logits = self.run.word_logits(inputs, batch_size=self.batch_size)
        if self.bio:
            names = np.asarray(self.run.labels, dtype=object)
            s = span_f1([list(names[g]) for g in gold], [list(names[x.argmax(axis=1)]) if len(x) else []
                                                          for x in logits])
            self.spans = [a + b for a, b in zip(self.spans, (s["num_gold"], s["num_pred"], s["num_correct"]))]
        return np.concatenate([x for x in logits if len(x)], axis=0), np.concatenate([g for g in gold if len(g)])

    def report(self) -> Dict[str, Any]:
        report = super().report()
        if self.bio:
            report["span_f1"] = float(_prf(self.spans[2], self.spans[0], self.spans[1])["f1"])
        return report

    def _add_figures(self, report: Dict[str, Any]) -> None:
        report["num_tokens"] = report.pop("num_examples")
        report["num_examples"] = self.rows


class RunningRegression:
    """A regressor's ``rmse``, ``mae`` and ``num_examples``, as
    :func:`encoders.use.evaluation.evaluate_regression` gives them, over chunks of texts and targets."""

    no_gold = "evaluate needs at least one row with a target, the input has none"

    def __init__(self, run: Any, batch_size: int):
        self.run, self.batch_size, self.task = run, batch_size, run.task
        self.rows = self.count = 0
        self.squares, self.absolute = ExactSum(), ExactSum()

    def add(self, inputs: Sequence[Any], gold: Any) -> None:
        """Score a chunk of texts with their float targets.

        Raises:
            ValueError: a prediction is not a finite number.
        """
        self.rows += len(inputs)
        if len(inputs):
            err = np.asarray(self.run.logits(inputs, batch_size=self.batch_size), dtype=np.float64) - gold
            if not np.isfinite(err).all():
                raise ValueError("a prediction is not a finite number")
            self.squares.add(err * err)
            self.absolute.add(np.abs(err))
            self.count += len(inputs)

    def report(self) -> Dict[str, Any]:
        """The figures so far.

        Raises:
            DataError: no example was added.
        """
        if self.count == 0:
            raise DataError(self.no_gold)
        return {"rmse": math.sqrt(self.squares.value() / self.count), "mae": self.absolute.value() / self.count,
                "num_examples": self.count}
