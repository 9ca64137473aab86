"""What every data source ends as: ``Split`` (one split's token ids, labels, file rows, tags) and
``Splits`` (all of them, with what the model needs to know), and the seeded hold-out of validation
rows. Below the sources, the tagging reader and the tokens cache, which all build or read these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from encoders.data.flat import TokenBuffer
from encoders.errors import DataError

HOLD_OUT = 0.1  # share of the training file held out for validation when no validation file is given


@dataclass
class Split:
    """One split: token ids (``tokens``), class ids (``labels``; float targets for regression), each
    example's file row (``rows``) and, for tagging, one tag id per token (``tags``: a buffer with
    the same row lengths as ``tokens``)."""

    tokens: TokenBuffer
    labels: np.ndarray
    rows: np.ndarray = None
    tags: Optional[TokenBuffer] = None

    def __post_init__(self):
        if self.rows is None:
            self.rows = np.arange(len(self.tokens), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.tokens)

    column_names = ("tokens", "label")

    @property
    def lengths(self) -> np.ndarray:
        return self.tokens.lengths

    def __getitem__(self, column: str) -> list:
        """A column as Python lists (``"tokens"``, ``"label"``), to look at; training never calls this."""
        if column == "tokens":
            return [self.tokens.row(i).tolist() for i in range(len(self))]
        if column == "label":
            return self.labels.tolist()
        raise KeyError(f"a split has the columns 'tokens' and 'label', not {column!r}")

    def take(self, indices: np.ndarray) -> "Split":
        tags = self.tags.take(indices) if self.tags is not None else None
        return Split(self.tokens.take(indices), self.labels[indices], self.rows[indices], tags)


@dataclass
class Splits:
    train: Split
    validation: Split
    num_classes: int
    vocab_size: int
    vocab: Any = None  # Vocab / SubwordVocab; None for pre-tokenised (synthetic) data
    test: Optional[Split] = None
    truncated: Dict[str, int] = field(default_factory=dict)  # rows cut to data.max_tokens_per_example

    def lengths(self, split: str) -> np.ndarray:
        return getattr(self, split).lengths


def hold_out(n: int, seed: int) -> np.ndarray:
    """Rows of the training file held out for validation: a seeded 10% (at least one row)."""
    if n < 2:
        raise DataError(f"data.train_file has {n} row(s): too few to hold out a validation split; "
                        f"add rows or set data.validation_file")
    # an int32 range shuffled in place: the same rows as permutation(n) (which copies, then
    # shuffles), a quarter of its memory
    rows = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    np.random.default_rng(seed).shuffle(rows)
    held = rows[: max(1, math.ceil(HOLD_OUT * n))]
    out = np.zeros(n, dtype=bool)
    out[held] = True
    return out
