"""Turn a list of examples into right-padded numpy arrays (framework-neutral)."""
from __future__ import annotations

import numbers
from typing import Any, Dict, Mapping, Sequence

import numpy as np


_BOOL_TYPES = frozenset({bool, np.bool_})


def _as_token_array(tokens: Any, index: int) -> np.ndarray:
    """One example's tokens as int64, or a TypeError/ValueError naming the example."""
    if type(tokens) is np.ndarray and tokens.dtype.kind == "i" and tokens.ndim == 1:
        # the loaders' own rows: sign is checked once for the whole batch in ``collate``
        return tokens.astype(np.int64, copy=False)
    if isinstance(tokens, (str, bytes)):
        raise TypeError(f"example {index}: 'tokens' must be a sequence of int ids, got a string {tokens!r:.40}")
    try:
        arr = np.asarray(tokens)
    except (TypeError, ValueError) as e:  # ragged nested lists and the like
        raise ValueError(f"example {index}: 'tokens' must be a flat sequence of int ids ({e})") from None
    if arr.ndim != 1:
        if arr.size == 0:  # [] or [[]] -> empty sequence
            return np.zeros(0, dtype=np.int64)
        raise ValueError(f"example {index}: 'tokens' must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        bad = next((t for t in tokens if isinstance(t, bool) or not isinstance(t, numbers.Integral)), arr.dtype)
        raise TypeError(f"example {index}: token ids must be integers, got {bad!r} ({type(bad).__name__})")
    if not isinstance(tokens, np.ndarray) and not _BOOL_TYPES.isdisjoint(map(type, tokens)):
        # np.asarray([1, True]) is int64: a bool among ints would pass silently as 0/1
        raise TypeError(f"example {index}: token ids must be integers, got a bool in {tokens!r:.40}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        pos = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise ValueError(f"example {index}: token id {int(arr[pos])} at position {pos} does not fit in int64")
    if arr.min() < 0:
        pos = int(np.argmax(arr < 0))
        raise ValueError(f"example {index}: negative token id {int(arr[pos])} at position {pos}")
    return arr.astype(np.int64, copy=False)


def _check_examples(examples: Sequence[Any], seqs: list, labels: list) -> None:
    """Fill ``seqs``/``labels`` example by example, raising at the first bad one."""
    for i, ex in enumerate(examples):
        if not isinstance(ex, Mapping):
            raise TypeError(f"example {i} must be a mapping with 'tokens' and 'label', got {type(ex).__name__}")
        if "tokens" not in ex:
            raise ValueError(f"example {i} has no 'tokens' (keys: {sorted(ex)})")
        seqs.append(_as_token_array(ex["tokens"], i))
        labels.append(_as_label(ex, i))


def _raise_negative(seqs: Sequence[np.ndarray]) -> None:
    for index, arr in enumerate(seqs):
        if arr.size and arr.min() < 0:
            pos = int(np.argmax(arr < 0))
            raise ValueError(f"example {index}: negative token id {int(arr[pos])} at position {pos}")


def _as_label(ex: Mapping[str, Any], index: int) -> Any:
    if "label" not in ex:
        raise ValueError(f"example {index} has no 'label' (keys: {sorted(ex)})")
    label = ex["label"]
    if label is None:
        raise ValueError(f"example {index}: label is None")
    if isinstance(label, bool) or not isinstance(label, numbers.Integral):
        raise TypeError(f"example {index}: label must be an integer class id, got {label!r} "
                        f"({type(label).__name__}); map string labels to ids first")
    label = int(label)
    if not -(2**63) <= label < 2**63:
        raise ValueError(f"example {index}: label {label} does not fit in int64")
    return label


def collate(examples: Sequence[Mapping[str, Any]], pad_id: int = 0, sort: bool = True) -> Dict[str, np.ndarray]:
    """Pad a batch of ``{"tokens": [int, ...], "label": int}`` examples to the right.

    Returns numpy arrays:
      ``tokens`` [B,T] int64 (``pad_id`` past each length), ``lengths`` [B] int64,
      ``mask`` [B,T] bool (True on real tokens), ``labels`` [B] int64 and
      ``restore`` [B] int64 such that ``x[restore]`` puts batch rows back in input order.

    With ``sort=True`` rows are ordered by length, longest first (ties keep input order).
    Empty sequences are legal; T is at least 1 so an all-empty batch still has a time axis.
    """
    if isinstance(examples, (Mapping, str, bytes)) or not isinstance(examples, Sequence):
        raise TypeError(f"collate expects a sequence of examples, got {type(examples).__name__}")
    if isinstance(pad_id, bool) or not isinstance(pad_id, numbers.Integral) or pad_id < 0:
        raise ValueError(f"pad_id must be a non-negative integer, got {pad_id!r}")
    seqs, labels = [], []
    try:
        _check_examples(examples, seqs, labels)
    except (TypeError, ValueError):
        _raise_negative(seqs)  # an earlier example's negative id is the first problem
        raise

    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(seqs))
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))

    T = max(int(lengths.max(initial=0)), 1)
    lengths = lengths[order]
    mask = np.arange(T)[None, :] < lengths[:, None]
    tokens = np.full((len(seqs), T), pad_id, dtype=np.int64)
    if len(seqs):
        # row-major order of the mask's True cells is the sorted rows laid end to end
        flat = np.concatenate([seqs[i] for i in order])
        if flat.size and flat.min() < 0:
            _raise_negative(seqs)
        tokens[mask] = flat
    return {
        "tokens": tokens,
        "lengths": lengths,
        "mask": mask,
        "labels": np.asarray(labels, dtype=np.int64)[order],
        "restore": restore.astype(np.int64),
    }
