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


def make_synthetic(n: int, seed: int, vocab_size: int = 32, max_length: int = 200) -> Dict[str, List]:
    """Columns ``tokens`` (ids in ``[2, vocab_size)``; 0 is pad, 1 unk) and ``label``."""
    if vocab_size < 4:
        raise ValueError(f"data.vocab_size must be >= 4 for the synthetic data, got {vocab_size}")
    if max_length < 2:
        raise ValueError(f"data.max_length must be >= 2 for the synthetic data, got {max_length}")
    rng = np.random.default_rng(seed)
    lengths = synthetic_lengths(n, rng, max_length)
    flat = rng.integers(2, vocab_size, size=int(lengths.sum()))
    tokens = np.split(flat, np.cumsum(lengths)[:-1]) if n else []
    return {"tokens": [t.tolist() for t in tokens], "label": [synthetic_label(t) for t in tokens]}
