"""Length bucketing shared by the torch batch sampler and the tf.data pipeline."""
from __future__ import annotations

import numbers
from typing import Iterator, List, Optional, Sequence

import numpy as np


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens / padded tokens over ``batches`` (each padded to its longest row, at least 1)."""
    lengths = np.asarray(lengths)
    real = padded = 0
    for b in batches:
        ls = lengths[np.asarray(b, dtype=np.int64)]
        real += int(ls.sum())
        padded += max(int(ls.max(initial=0)), 1) * len(ls)
    return real / padded if padded else 1.0


class LengthBucketBatcher:
    """Seeded, per-epoch batches of examples of similar length.

    Each epoch: shuffle the indices with ``seed + epoch``, cut them into pools of
    ``pool_batches * batch_size``, sort each pool by length and cut it into batches (the
    ``batch_size`` longest rows of every pool are sorted and cut together across pools), then
    shuffle the batch order -- except that the batch with the longest row goes first, so an
    out-of-memory error shows at step one. Every index appears exactly once per epoch.
    Without ``shuffle`` (evaluation) there is no randomness to keep: all rows form one pool, sorted
    together, which pads least (0.97 real tokens instead of 0.94 on a long-tailed 100k-row split).
    ``indices`` restricts the batcher to a subset (e.g. one distributed rank's share).

    Token budget (``max_tokens`` set): all rows are sorted by length together (ties in the
    epoch's shuffled order) and cut so that rows x longest row (at least 1, as padded) <=
    ``max_tokens``, and never more than ``batch_size`` rows (``batch_size=None``: no row cap);
    the batch order is shuffled and the longest batch goes first. The number of batches is the
    same every epoch. A row longer than ``max_tokens`` is a ValueError at construction.
    ``drop_last`` is not supported with a budget (batches differ in rows by design).
    """

    def __init__(self, lengths: Sequence[int], batch_size: Optional[int], seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, pool_batches: int = 64, longest_first: bool = True,
                 max_tokens: Optional[int] = None):
        if max_tokens is not None:
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Integral) or max_tokens < 1:
                raise ValueError(f"max_tokens must be None or an integer >= 1, got {max_tokens!r}")
            if drop_last:
                raise ValueError("drop_last is not supported with max_tokens: token-budget batches "
                                 "differ in rows by design")
        if batch_size is None and max_tokens is None:
            raise ValueError("batch_size may be None only with max_tokens set")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be >= 1, got {pool_batches}")
        self.lengths = row_ints(lengths)
        if self.lengths.ndim != 1:
            raise ValueError(f"lengths must be 1-D, got shape {self.lengths.shape}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.pool_batches = int(pool_batches)
        self.longest_first = longest_first
        self.epoch = 0
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self._len_cache: dict = {}
        if self.max_tokens is not None:
            _check_budget(self.lengths, self.max_tokens)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: Optional[int] = None, indices: Optional[Sequence[int]] = None) -> List[np.ndarray]:
        epoch = self.epoch if epoch is None else int(epoch)
        # one array of the epoch's row ids, shuffled and sorted pool by pool in place; every batch
        # is a view of it (the order is that of permutation(), which copies then shuffles)
        if indices is None:
            n = len(self.lengths)
            idx = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        else:
            idx = row_ints(indices).copy()
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            rng.shuffle(idx)
        if self.max_tokens is not None:
            return self._token_batches(idx, rng)
        bs = self.batch_size
        pool = self.pool_batches * bs if self.shuffle else max(len(idx), 1)
        out: List[np.ndarray] = []
        tops: List[np.ndarray] = []
        for start in range(0, len(idx), pool):
            chunk = idx[start:start + pool]
            # stable sort on a shuffled chunk: equal lengths come out in random order
            chunk[:] = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            tops.append(chunk[:bs])
            out.extend(chunk[i:i + bs] for i in range(bs, len(chunk), bs))
        if tops:
            # The longest batch_size rows of each pool are the rare long tail: cut per pool, each
            # pool's top batch pads a few very long rows with many shorter ones (efficiency 0.92
            # instead of 0.96 on the default data). Sort the pools' tops together instead.
            # With a single pool this is exactly the per-pool cut.
            top = np.concatenate(tops)
            top = top[np.argsort(-self.lengths[top], kind="stable")]
            out[:0] = [top[i:i + bs] for i in range(0, len(top), bs)]
        if self.drop_last:
            # at most one short batch (the last pool's remainder, or the tops' when it is small)
            out = [b for b in out if len(b) == bs]
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        if self.longest_first and out:
            # every batch is sorted longest first: its first row is its longest
            first = int(np.argmax(self.lengths[[int(b[0]) for b in out]]))
            out.insert(0, out.pop(first))
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def _token_batches(self, idx: np.ndarray, rng: np.random.Generator) -> List[np.ndarray]:
        """``batches`` under a token budget; ``idx`` is already shuffled.

        All rows are sorted by length together (equal lengths in the shuffled order) and cut
        greedily; the batch order is then shuffled. The cut depends only on the multiset of
        lengths, so every epoch has the same number of batches (the loops read ``len()`` once)
        while which rows share a batch and the order of batches change with the epoch.
        """
        lengths = self.lengths
        out = self._budget_cut(idx[np.argsort(-lengths[idx], kind="stable")])
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        if self.longest_first and out:
            first = int(np.argmax([lengths[b].max(initial=0) for b in out]))
            out.insert(0, out.pop(first))
        return out

    def _budget_cut(self, rows: np.ndarray) -> List[np.ndarray]:
        """Cut rows sorted longest first into batches of rows x longest <= max_tokens."""
        # padded width of a batch starting at each row (its first row is its longest)
        fit = self.max_tokens // np.maximum(self.lengths[rows], 1).astype(np.int64)
        if self.batch_size is not None:
            fit = np.minimum(fit, self.batch_size)
        out, i = [], 0
        while i < len(rows):
            n = int(fit[i])  # >= 1: no row is longer than max_tokens
            out.append(rows[i:i + n])
            i += n
        return out

    def __len__(self) -> int:
        if self.max_tokens is not None:
            if self.epoch not in self._len_cache:
                self._len_cache = {self.epoch: len(self.batches(self.epoch))}
            return self._len_cache[self.epoch]
        n = len(self.lengths)
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.pool_batches * self.batch_size)
        return full * self.pool_batches + -(-rest // self.batch_size)


def row_ints(values: Sequence[int]) -> np.ndarray:
    """Row lengths or row ids as int32 when they fit (half the memory of int64 at millions of rows;
    sorts and shuffles give the same order), else int64; int16 (``TokenBuffer.row_lengths``) is kept."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        arr = arr.astype(np.int64)
    if arr.dtype == np.int16:
        return arr
    if arr.dtype != np.int32 and (arr.size == 0 or (arr.min() >= -2**31 and arr.max() < 2**31)):
        return arr.astype(np.int32)
    return arr


def _check_budget(lengths: np.ndarray, max_tokens: int) -> None:
    too_long = np.flatnonzero(lengths > max_tokens)
    if too_long.size:
        row = int(too_long[np.argmax(lengths[too_long])])
        more = f" ({too_long.size} rows are longer; the longest is shown)" if too_long.size > 1 else ""
        raise ValueError(f"row {row} has {int(lengths[row])} tokens, more than max_tokens={max_tokens}{more}: "
                         f"no batch can hold it; truncate with data.max_tokens_per_example=N (N <= {max_tokens}) "
                         f"or raise data.max_tokens to at least {int(lengths[row])}")
