"""The embedded default dataset: generated from the seed, no network, no files.

Sequences of random token ids with long-tailed lengths (a few empty, a few of length 1).
The label is ``first valid token > last valid token`` (0 for an empty row or a tie): a linear
head on ``[forward h at the last *valid* step ; backward h at step 0]`` reads it off directly,
while a model that takes ``output[:, -1]`` of a padded batch, or runs the backward direction
through the padding, has neither token at hand.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np



def synthetic_label(tokens) -> int:
    if len(tokens) == 0:
        return 0
    return int(tokens[0] > tokens[-1])


def synthetic_lengths(n: int, rng: np.random.Generator, max_length: int) -> np.ndarray:
    """Log-normal lengths (median about 20, long right tail), 2% empty and 2% of length 1."""
    lengths = np.rint(rng.lognormal(mean=np.log(20.0), sigma=0.7, size=n)).astype(np.int64)
    lengths = np.clip(lengths, 2, max_length)
    special = rng.random(n)
    lengths[special < 0.02] = 0
    lengths[(special >= 0.02) & (special < 0.04)] = 1
    return lengths


def synthetic_split(n: int, seed, vocab_size: int = 32, max_length: int = 200):
    """``(TokenBuffer, labels int64)`` of ``n`` rows: ids in ``[2, vocab_size)`` (0 is pad, 1 unk)."""
    from encoders.data.flat import TokenBuffer

    if vocab_size < 4:
        raise ValueError(f"data.vocab_size must be >= 4 for the synthetic data, got {vocab_size}")
    if max_length < 2:
        raise ValueError(f"data.max_length must be >= 2 for the synthetic data, got {max_length}")
    rng = np.random.default_rng(seed)
    lengths = synthetic_lengths(n, rng, max_length)
    flat = rng.integers(2, vocab_size, size=int(lengths.sum()))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    nonempty = lengths > 0
    first = flat[np.minimum(offsets[:-1], max(flat.size - 1, 0))] if flat.size else np.zeros(n, np.int64)
    last = flat[np.maximum(offsets[1:] - 1, 0)] if flat.size else np.zeros(n, np.int64)
    labels = (nonempty & (first > last)).astype(np.int64)  # synthetic_label, for every row at once
    return TokenBuffer(flat, offsets), labels


def make_synthetic(n: int, seed, vocab_size: int = 32, max_length: int = 200) -> Dict[str, List]:
    """Columns ``tokens`` and ``label`` as Python lists (``synthetic_split``'s rows)."""
    tokens, labels = synthetic_split(n, seed, vocab_size, max_length)
    return {"tokens": tokens.to_lists(), "label": labels.tolist()}
