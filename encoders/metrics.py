"""Evaluation figures for the ``evaluate`` command, in numpy only (no torch, no tensorflow).

Every figure comes back as plain Python (``float``/``int``/``list``/``dict``) so that a report
can go straight to ``json.dumps``.

Conventions shared by all functions here:

* A ratio whose denominator is zero is ``0.0`` (scikit-learn's ``zero_division=0``): a class
  that is never predicted has precision 0, a class that never occurs has recall 0, and a class
  with neither has f1 0.
* Macro averages run over the classes present in ``gold`` or ``pred`` (scikit-learn's
  ``f1_score(gold, pred, average="macro", zero_division=0)``): a class of ``labels`` that occurs
  in neither is listed in ``per_class`` but not averaged (an all-one-class test file that is
  predicted right scores 1.0, not 1/C). With no example at all the average is 0.0.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

__all__ = [
    "classification_report",
    "cross_entropy",
    "token_report",
    "span_f1",
    "is_bio_scheme",
    "regression_report",
]


# --------------------------------------------------------------------------- helpers


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _label_names(labels: Sequence[Any]) -> List[str]:
    names = [str(n) for n in labels]
    if not names:
        raise ValueError("labels is empty: give one name per class id")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"labels has duplicate names {dupes}")
    return names


def _class_ids(values: Any, name: str, num_classes: int, where: Any = None) -> np.ndarray:
    """``values`` as int64 whose entries (those where ``where`` is True, if given) are class ids.

    Entries outside ``where`` (padding) are neither checked nor returned: the result is
    ``values[where]``, flat. A bad entry raises a ValueError naming its index.
    """
    arr = np.asarray(values)
    checked = arr if where is None else arr[where]
    if checked.size == 0:
        return checked.astype(np.int64).reshape(-1)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= num_classes)
    if where is not None:
        bad &= where
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(pos)} = {int(arr[pos])} is not a class id in [0, {num_classes})")
    return checked.astype(np.int64).reshape(-1)


def _confusion(gold: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    flat = np.bincount(gold * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _per_class(confusion: np.ndarray, names: List[str]) -> Tuple[Dict[str, Dict[str, Any]], float]:
    """Per-class precision/recall/f1/support from a confusion matrix, and their macro f1."""
    tp = np.diag(confusion)
    support = confusion.sum(axis=1)  # gold count per class
    predicted = confusion.sum(axis=0)
    per_class = {}
    for k, name in enumerate(names):
        # f1 = 2tp / (2tp + fp + fn) = 2tp / (support + predicted): the same figure as 2pr/(p+r)
        # where both are defined, and 0 (not NaN) where neither is
        f1 = _ratio(2 * tp[k], support[k] + predicted[k])
        per_class[name] = {
            "precision": _ratio(tp[k], predicted[k]),
            "recall": _ratio(tp[k], support[k]),
            "f1": f1,
            "support": int(support[k]),
        }
    return per_class, macro_f1(confusion)


def macro_f1(confusion: np.ndarray) -> float:
    """Mean f1 over the classes present in gold or predictions, as scikit-learn averages.

    Args:
        confusion: array-like ``[C, C]`` of counts; row = gold class, column = predicted class.
            A class is present when its row or its column is not all zero.

    Returns:
        The mean of ``2 tp / (gold count + predicted count)`` over the present classes, as a
        Python float; 0.0 when no class is present.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    den = confusion.sum(axis=1) + confusion.sum(axis=0)
    present = den > 0
    return float((2 * tp[present] / den[present]).mean()) if present.any() else 0.0


# --------------------------------------------------------------------------- classification


def classification_report(gold: Any, pred: Any, labels: Sequence[Any]) -> Dict[str, Any]:
    """Accuracy, macro F1, per-class figures and the confusion matrix of one classifier run.

    Args:
        gold: int array-like of shape ``[N]``, the true class id of each example.
        pred: int array-like of shape ``[N]``, the predicted class id of each example.
        labels: the class names; ``labels[i]`` names class id ``i``. Names are turned into
            ``str`` (they become JSON keys) and must be unique.

    Returns:
        A dict with
        ``"accuracy"`` (float), ``"macro_f1"`` (float, mean f1 over the classes present in gold or
        pred, like scikit-learn's ``average="macro"``),
        ``"num_examples"`` (int ``N``),
        ``"per_class"`` (``{name: {"precision", "recall", "f1", "support"}}``, support = gold count),
        ``"confusion_matrix"`` (list of lists of int; row = gold class, column = predicted
        class, both in the order of ``labels``) and ``"labels"`` (the names as strings).

    Raises:
        ValueError: ``N == 0``, shapes that differ or are not 1-D, ids that are not integers
            or fall outside ``[0, len(labels))``, empty or duplicate ``labels``.
    """
    names = _label_names(labels)
    c = len(names)
    g, p = np.asarray(gold), np.asarray(pred)
    if g.ndim != 1 or p.ndim != 1 or g.shape != p.shape:
        raise ValueError(f"gold and pred must be 1-D of the same length, got shapes {g.shape} and {p.shape}")
    if g.size == 0:
        raise ValueError("classification_report needs at least one example, got N=0")
    g, p = _class_ids(g, "gold", c), _class_ids(p, "pred", c)
    confusion = _confusion(g, p, c)
    per_class, macro_f1 = _per_class(confusion, names)
    return {
        "accuracy": _ratio(np.trace(confusion), g.size),
        "macro_f1": macro_f1,
        "num_examples": int(g.size),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "labels": names,
    }


def cross_entropy(logits: Any, gold: Any) -> float:
    """Mean negative log-likelihood of ``gold`` under ``softmax(logits)`` (the ``loss`` figure).

    The log-softmax subtracts each row's maximum first, so large logits do not overflow.

    Args:
        logits: float array-like of shape ``[N, C]``, unnormalised scores.
        gold: int array-like of shape ``[N]``, class ids in ``[0, C)``.

    Returns:
        The mean NLL in nats, as a Python float.

    Raises:
        ValueError: ``N == 0``, shapes that do not fit, non-finite logits or ids out of range.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"logits must have shape [N, C] with C >= 1, got {x.shape}")
    g = np.asarray(gold)
    if g.shape != (x.shape[0],):
        raise ValueError(f"gold must have shape [{x.shape[0]}] to match logits {x.shape}, got {g.shape}")
    if x.shape[0] == 0:
        raise ValueError("cross_entropy needs at least one example, got N=0")
    if not np.isfinite(x).all():
        raise ValueError("logits contain NaN or infinite values")
    return float(nll_values(x, g).mean())


def nll_values(logits: Any, gold: Any) -> np.ndarray:
    """The negative log-likelihood of each example (:func:`cross_entropy` is their mean).

    Args:
        logits: float array-like of shape ``[N, C]``, unnormalised scores.
        gold: int array-like of shape ``[N]``, class ids in ``[0, C)``.

    Returns:
        float64 array ``[N]``: each example's NLL in nats.

    Raises:
        ValueError: non-finite logits, or ids that are not integers or fall outside ``[0, C)``.
    """
    x = np.asarray(logits, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("logits contain NaN or infinite values")
    g = _class_ids(np.asarray(gold), "gold", x.shape[1])
    shifted = x - x.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    return log_z - shifted[np.arange(x.shape[0]), g]


# --------------------------------------------------------------------------- tagging


def token_report(gold: Any, pred: Any, mask: Any, labels: Sequence[Any]) -> Dict[str, Any]:
    """Token-level accuracy and macro F1 of a tagger, over real (unmasked) tokens only.

    Padding positions (``mask`` False) are dropped before anything is counted, so whatever
    ``gold``/``pred`` hold there (a pad id, ``-100``, ...) never matters and is not checked.

    Args:
        gold: int array-like ``[B, T]``, true tag ids.
        pred: int array-like ``[B, T]``, predicted tag ids.
        mask: bool (or 0/1) array-like ``[B, T]``, True on real tokens.
        labels: the tag names; ``labels[i]`` names tag id ``i``.

    Returns:
        A dict with ``"accuracy"``, ``"macro_f1"`` (mean f1 over the tags present in gold or
        pred, ``"O"`` included), ``"num_tokens"``, ``"per_class"`` and ``"labels"``, shaped like
        :func:`classification_report`'s. With no real token at all (``B == 0``, ``T == 0`` or
        an all-False mask) accuracy and macro_f1 are ``0.0`` and ``num_tokens`` is 0 — never NaN.

    Raises:
        ValueError: shapes that differ or are not 2-D, a mask that is not boolean, real-token
            ids outside ``[0, len(labels))``.
    """
    names = _label_names(labels)
    g, p, m = np.asarray(gold), np.asarray(pred), np.asarray(mask)
    if g.ndim != 2 or g.shape != p.shape or g.shape != m.shape:
        raise ValueError(f"gold, pred and mask must be [B, T] of one shape, got {g.shape}, {p.shape}, {m.shape}")
    if m.dtype != bool:
        if m.size and (not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all()):
            raise ValueError(f"mask must be boolean (or 0/1), got dtype {m.dtype}")
        m = m.astype(bool)
    g = _class_ids(g, "gold", len(names), where=m)
    p = _class_ids(p, "pred", len(names), where=m)
    confusion = _confusion(g, p, len(names))
    per_class, macro_f1 = _per_class(confusion, names)
    return {
        "accuracy": _ratio(np.trace(confusion), g.size),
        "macro_f1": macro_f1,  # 0.0 with no token: every class then has f1 0
        "num_tokens": int(g.size),
        "per_class": per_class,
        "labels": names,
    }


# --------------------------------------------------------------------------- spans (conlleval)

_PREFIXES = frozenset("BIESLU")
# BILOU spells BIOES with other letters: L(ast) = E(nd), U(nit) = S(ingle)
_CANONICAL = {"L": "E", "U": "S"}


def _parse_tag(tag: Any) -> Tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``; anything else is a ValueError."""
    if not isinstance(tag, str):
        raise ValueError(f"tags must be strings, got {tag!r} ({type(tag).__name__})")
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in _PREFIXES or not kind:
        raise ValueError(f"tag {tag!r} is neither 'O' nor '<B|I|E|S|L|U>-<TYPE>'")
    return _CANONICAL.get(prefix, prefix), kind


def is_bio_scheme(tag_names: Sequence[Any]) -> bool:
    """Whether a tag set looks like IOB1/BIO/BIOES/BILOU, i.e. fit for :func:`span_f1`.

    Args:
        tag_names: the tag set (e.g. a tagger's label names).

    Returns:
        True when every tag is ``"O"`` or ``<P>-<TYPE>`` with ``P`` one of B, I, E, S, L, U and
        a non-empty ``TYPE``, and at least one tag is not ``"O"``. False otherwise (including an
        empty tag set, or one holding a padding tag such as ``"<pad>"``).
    """
    names = list(tag_names)
    try:
        parsed = [_parse_tag(t) for t in names]
    except ValueError:
        return False
    return any(prefix != "O" for prefix, _ in parsed)


def _chunk_end(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's ``endOfChunk``, with the S (single) tag of BIOES added."""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != kind


def _chunk_start(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's ``startOfChunk``, with the S (single) tag of BIOES added."""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_type != kind


def _chunks(tags: Sequence[Any]) -> List[Tuple[int, int, str]]:
    """The ``(first, last, type)`` chunks of one sentence, by conlleval's rules.

    The sentence is read between two virtual ``O`` tags, as conlleval reads it between blank
    lines: a chunk never runs across a sentence boundary, and one still open at the end closes.
    """
    out = []
    prev_tag, prev_type, start = "O", "", None
    for i, raw in enumerate(list(tags) + ["O"]):
        tag, kind = _parse_tag(raw)
        if start is not None and _chunk_end(prev_tag, tag, prev_type, kind):
            out.append((start, i - 1, prev_type))
            start = None
        if _chunk_start(prev_tag, tag, prev_type, kind):
            start = i
        prev_tag, prev_type = tag, kind
    return out


def _prf(correct: int, found_gold: int, found_pred: int) -> Dict[str, float]:
    precision, recall = _ratio(correct, found_pred), _ratio(correct, found_gold)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * precision * recall, precision + recall)}


def span_f1(gold_tag_seqs: Sequence[Sequence[str]], pred_tag_seqs: Sequence[Sequence[str]]) -> Dict[str, Any]:
    """Entity (chunk) level precision, recall and F1, as the CoNLL ``conlleval`` script counts them.

    Tags may follow IOB1, IOB2/BIO, IOE, BIOES/IOBES or BILOU (L read as E, U as S), even mixed.
    Chunk boundaries follow conlleval: an ``I-X`` after ``O`` or after another type starts a
    chunk, a change of type ends one, ``B-``/``S-`` always start one, a tag after ``E-``/``S-``
    never continues one, and each sentence is closed at its end. A predicted chunk is correct
    when a gold chunk has the same first token, last token and type.

    Args:
        gold_tag_seqs: one list of tag strings per sentence (e.g. ``[["B-PER", "I-PER", "O"]]``).
        pred_tag_seqs: the predicted tags, same number of sentences and lengths.

    Returns:
        ``{"precision", "recall", "f1", "per_type"}`` as fractions in ``[0, 1]`` (conlleval
        prints percentages), a zero denominator giving 0.0. ``per_type`` maps each entity type
        seen in gold or pred to ``{"precision", "recall", "f1", "support", "predicted"}``
        (support = gold chunks of that type, predicted = predicted chunks of that type).
        The overall dict also carries ``"num_gold"``, ``"num_pred"`` and ``"num_correct"``.

    Raises:
        ValueError: a different number of sentences, a sentence of different length, or a tag
            that is neither ``O`` nor ``<B|I|E|S|L|U>-<TYPE>``.
    """
    gold_seqs, pred_seqs = list(gold_tag_seqs), list(pred_tag_seqs)
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"gold has {len(gold_seqs)} sentences but pred has {len(pred_seqs)}")
    gold_chunks, pred_chunks = set(), set()
    for s, (g, p) in enumerate(zip(gold_seqs, pred_seqs)):
        if isinstance(g, str) or isinstance(p, str):
            raise ValueError(f"sentence {s}: expected a list of tags, got a string")
        g, p = list(g), list(p)
        if len(g) != len(p):
            raise ValueError(f"sentence {s}: gold has {len(g)} tags but pred has {len(p)}")
        gold_chunks.update((s,) + c for c in _chunks(g))
        pred_chunks.update((s,) + c for c in _chunks(p))
    correct = gold_chunks & pred_chunks
    per_type = {}
    for kind in sorted({c[3] for c in gold_chunks | pred_chunks}):
        n_gold = sum(c[3] == kind for c in gold_chunks)
        n_pred = sum(c[3] == kind for c in pred_chunks)
        per_type[kind] = dict(_prf(sum(c[3] == kind for c in correct), n_gold, n_pred),
                              support=n_gold, predicted=n_pred)
    report: Dict[str, Any] = _prf(len(correct), len(gold_chunks), len(pred_chunks))
    report.update(per_type=per_type, num_gold=len(gold_chunks), num_pred=len(pred_chunks),
                  num_correct=len(correct))
    return report


# --------------------------------------------------------------------------- regression


def regression_report(gold: Any, pred: Any) -> Dict[str, Any]:
    """Root mean squared error and mean absolute error of a regressor.

    Args:
        gold: float array-like ``[N]``, true values.
        pred: float array-like ``[N]``, predictions.

    Returns:
        ``{"rmse": float, "mae": float, "num_examples": int}``.

    Raises:
        ValueError: ``N == 0``, shapes that differ or are not 1-D, NaN or infinite values.
    """
    g, p = np.asarray(gold, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if g.ndim != 1 or g.shape != p.shape:
        raise ValueError(f"gold and pred must be 1-D of the same length, got shapes {g.shape} and {p.shape}")
    if g.size == 0:
        raise ValueError("regression_report needs at least one example, got N=0")
    for name, arr in (("gold", g), ("pred", p)):
        if not np.isfinite(arr).all():
            i = int(np.argmin(np.isfinite(arr)))
            raise ValueError(f"{name}[{i}] = {arr[i]} is not a finite number")
    err = p - g
    return {"rmse": float(np.sqrt(np.mean(err * err))), "mae": float(np.mean(np.abs(err))),
            "num_examples": int(g.size)}
