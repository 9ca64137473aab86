"""Score a trained run on a labelled table: accuracy, macro F1, loss, per-class figures, confusion.

What ``python -m encoders evaluate`` computes; framework-free itself (the run scores the texts).
Labels in the table are read the way training read them: through the run's label names when the
training labels were strings (``str(value)`` must be one of them), as class ids ``0..K-1`` when
they were integers. A missing label or one the run never saw is a ``DataError`` naming the row.

Tagging runs (``evaluate_tagging``): the figures are over real tokens (``accuracy``, ``macro_f1``
over every tag, ``per_class`` per tag, ``confusion_matrix``, ``loss`` per token) plus ``span_f1``
(entities, as conlleval counts them) when the tags are BIO-like. Regression runs
(``evaluate_regression``): ``rmse``, ``mae``, ``num_examples``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import numpy as np

from encoders.errors import DataError
from encoders.metrics import classification_report, cross_entropy, is_bio_scheme, regression_report, span_f1
from encoders.data.tables import data_row, is_missing

__all__ = ["gold_ids", "gold_tag_ids", "gold_values", "evaluate", "evaluate_tagging", "evaluate_regression",
           "format_report"]


def gold_ids(values: Sequence[Any], labels: Sequence[Any], string_labels: bool, where: str = "input",
             column: str = "label", first_row: int = 1) -> np.ndarray:
    """Class ids of a label column's cells, read as training read the labels.

    Args:
        values: the cells, one per data row.
        labels: the run's labels by class id.
        string_labels: the training labels were strings (else class ids ``0..K-1``).
        where: the input's name in messages.
        column: the column's name in messages.
        first_row: the data row of ``values[0]`` in the whole input (rows counted from 1).

    Returns:
        int64 class ids, one per value.

    Raises:
        DataError: a row without a label (null, or an empty cell), or a label the run never saw.
    """
    index = {str(name): k for k, name in enumerate(labels)}
    out = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values, first_row):
        if is_missing(value) or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: {data_row(where, row)}: no label in column {column!r}")
        if string_labels:
            key = value if isinstance(value, str) else str(value)
            if key not in index:
                raise DataError(f"{where}: {data_row(where, row)}: label {value!r} never occurs in the run's training data "
                                f"(its labels: {', '.join(map(repr, labels))})")
            out[row - first_row] = index[key]
            continue
        k = _as_class_id(value)
        if k is None:
            raise DataError(f"{where}: {data_row(where, row)}: label {value!r} is not an integer class id "
                            f"(the run was trained on integer labels 0..{len(labels) - 1})")
        if not 0 <= k < len(labels):
            raise DataError(f"{where}: {data_row(where, row)}: label {k} never occurs in the run's training data "
                            f"(its labels are the class ids 0..{len(labels) - 1})")
        out[row - first_row] = k
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
    """A classifier's report on texts held in memory.

    Args:
        run: the ``TrainedRun``.
        texts: the texts.
        gold: their class ids (:func:`gold_ids`).
        batch_size: rows per batch.

    Returns:
        ``classification_report``'s keys (``accuracy``, ``macro_f1``, ``num_examples``,
        ``per_class``, ``confusion_matrix`` with rows = gold in the order of ``labels``, ``labels``)
        plus ``loss`` (mean cross-entropy, nats).

    Raises:
        DataError: no text.
    """
    if len(texts) == 0:
        raise DataError("evaluate needs at least one labelled row, the input has none")
    logits = run.logits(texts, batch_size=batch_size)
    report = classification_report(gold, logits.argmax(axis=1), run.labels)
    report["loss"] = cross_entropy(logits, gold)
    return report


def _list_cell(value: Any):
    """A list cell as a Python list (json/jsonl lists, parquet lists or arrays); None if it is not one."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value.tolist()
    return None


def words_of(values: Sequence[Any], where: str = "input", column: str = "tokens",
             first_row: int = 1) -> List[List[str]]:
    """Lists of words of a tagging table's column.

    Args:
        values: the cells (lists of words; a missing cell is no word).
        where: the input's name in messages.
        column: the column's name in messages.
        first_row: the data row of ``values[0]`` in the whole input (rows counted from 1).

    Returns:
        One list of words per cell.

    Raises:
        DataError: a cell that is not a list of strings.
    """
    out = []
    for row, value in enumerate(values, first_row):
        cell = [] if _missing_cell(value) else _list_cell(value)
        if cell is None or any(not isinstance(w, str) for w in cell):
            raise DataError(f"{where}: {data_row(where, row)}: column {column!r} holds {value!r:.60}, not a list of words")
        out.append(cell)
    return out


def _missing_cell(value: Any) -> bool:
    return not isinstance(value, (list, tuple, np.ndarray)) and is_missing(value)


def gold_tag_ids(values: Sequence[Any], tags: Sequence[str], lengths: Sequence[int], where: str = "input",
                 column: str = "tags", first_row: int = 1) -> List[np.ndarray]:
    """Tag ids of each row of a tagging table's tags column.

    Args:
        values: the cells: a list of tags, or (csv) tags separated by spaces.
        tags: the run's tag names by tag id.
        lengths: the number of words of each row; row ``i`` must have ``lengths[i]`` tags.
        where: the input's name in messages.
        column: the column's name in messages.
        first_row: the data row of ``values[0]`` in the whole input (rows counted from 1).

    Returns:
        One int64 array of tag ids per row.

    Raises:
        DataError: a row without tags list, tags and words of different lengths, or a tag the run
            never saw (rows counted from 1).
    """
    index = {str(name): k for k, name in enumerate(tags)}
    out = []
    for row, (value, n) in enumerate(zip(values, lengths), first_row):
        cell = _list_cell(value)
        if cell is None:
            if isinstance(value, str):
                cell = value.split()
            elif is_missing(value):
                cell = []
            else:
                raise DataError(f"{where}: {data_row(where, row)}: column {column!r} holds {value!r:.60}, not a list of tags")
        if len(cell) != int(n):
            raise DataError(f"{where}: {data_row(where, row)}: {int(n)} tokens but {len(cell)} tags in column {column!r}; "
                            f"every token needs exactly one tag")
        ids = np.empty(len(cell), dtype=np.int64)
        for i, tag in enumerate(cell):
            k = index.get(tag if isinstance(tag, str) else str(tag))
            if k is None:
                raise DataError(f"{where}: {data_row(where, row)}: tag {tag!r} never occurs in the run's training data "
                                f"(its tags: {', '.join(map(repr, list(tags)[:20]))})")
            ids[i] = k
        out.append(ids)
    return out


def gold_values(values: Sequence[Any], where: str = "input", column: str = "label", first_row: int = 1) -> np.ndarray:
    """The float targets of a regression table.

    Args:
        values: the cells: numbers, or strings of numbers as csv holds them.
        where: the input's name in messages.
        column: the column's name in messages.
        first_row: the data row of ``values[0]`` in the whole input (rows counted from 1).

    Returns:
        float64 targets, one per value.

    Raises:
        DataError: a row without a value, or one that is not a finite number (rows counted from 1).
    """
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values, first_row):
        if is_missing(value) or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: {data_row(where, row)}: no value in column {column!r}")
        try:
            if isinstance(value, (bool, np.bool_)):
                raise ValueError
            x = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {data_row(where, row)}: {value!r:.60} in column {column!r} is not a number "
                            f"(the run is a regression)") from None
        if not math.isfinite(x):
            raise DataError(f"{where}: {data_row(where, row)}: {value!r} in column {column!r} is not a finite number")
        out[row - first_row] = x
    return out


def evaluate_tagging(run: Any, words: Sequence[Sequence[str]], gold: Sequence[np.ndarray],
                     batch_size: int = 64) -> Dict[str, Any]:
    """A tagger's report on lists of words held in memory.

    Args:
        run: the tagging ``TrainedRun``.
        words: one list of words per row.
        gold: their tag ids, one array per row (:func:`gold_tag_ids`).
        batch_size: rows per batch.

    Returns:
        ``accuracy`` (per token), ``macro_f1`` (over every tag), ``span_f1`` (BIO-like tags only),
        ``loss`` (cross-entropy per token), ``num_tokens``, ``num_examples`` (rows), ``per_class``
        (per tag), ``confusion_matrix`` (rows = gold tags in the order of ``labels``) and ``labels``.

    Raises:
        DataError: no tagged token.
    """
    num_tokens = int(sum(len(g) for g in gold))
    if num_tokens == 0:  # before the model runs
        raise DataError("evaluate needs at least one tagged token, the input has none")
    logits = run.word_logits(words, batch_size=batch_size)
    flat_logits = np.concatenate([x for x in logits if len(x)], axis=0)
    flat_gold = np.concatenate([g for g in gold if len(g)])
    report = classification_report(flat_gold, flat_logits.argmax(axis=1), run.labels)
    report["num_tokens"] = report.pop("num_examples")
    report["num_examples"] = len(gold)
    report["loss"] = cross_entropy(flat_logits, flat_gold)
    if is_bio_scheme(run.labels):
        names = np.asarray(run.labels, dtype=object)
        spans = span_f1([list(names[g]) for g in gold], [list(names[x.argmax(axis=1)]) if len(x) else []
                                                          for x in logits])
        report["span_f1"] = float(spans["f1"])
    return report


def evaluate_regression(run: Any, texts: Sequence[str], gold: np.ndarray, batch_size: int = 64) -> Dict[str, Any]:
    """A regressor's report on texts held in memory.

    Args:
        run: the regression ``TrainedRun``.
        texts: the texts.
        gold: their float targets (:func:`gold_values`).
        batch_size: rows per batch.

    Returns:
        ``rmse``, ``mae`` and ``num_examples``.

    Raises:
        DataError: no text.
    """
    if len(texts) == 0:
        raise DataError("evaluate needs at least one row with a target, the input has none")
    return regression_report(gold, np.asarray(run.logits(texts, batch_size=batch_size), dtype=np.float64))


def format_report(report: Dict[str, Any]) -> str:
    """A report as plain text.

    Args:
        report: what evaluate wrote (any task's).

    Returns:
        The overall figures, then precision/recall/f1/support per class (per tag).
    """
    if "rmse" in report:
        return "\n".join([f"examples  {report['num_examples']}", f"rmse      {report['rmse']:.4f}",
                           f"mae       {report['mae']:.4f}"])
    names: List[str] = list(report["labels"])
    kind = "tag" if "num_tokens" in report else "class"
    width = max([len(kind)] + [len(n) for n in names])
    lines = [f"examples  {report['num_examples']}"]
    if "num_tokens" in report:
        lines.append(f"tokens    {report['num_tokens']}")
    lines += [f"accuracy  {report['accuracy']:.4f}",
              f"macro F1  {report['macro_f1']:.4f}"]
    if "span_f1" in report:
        lines.append(f"span F1   {report['span_f1']:.4f}")
    lines += [f"loss      {report['loss']:.4f}",
              "",
              f"{kind:<{width}}  {'precision':>9}  {'recall':>6}  {'f1':>6}  {'support':>7}"]
    for name in names:
        c = report["per_class"][name]
        lines.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
    return "\n".join(lines)
