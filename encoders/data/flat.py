"""Token ids kept columnar: one flat values buffer and row offsets, padded without per-row Python.

A ``TokenBuffer`` is the shape Arrow (and so a ``datasets.Dataset``) already stores a list
column in, so the token column of a memory-mapped dataset can be batched without turning
every row into a Python list first.
"""
from __future__ import annotations

import mmap
import numbers
from itertools import chain
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from encoders.errors import EncodersError


class TokenBuffer:
    """Ragged rows of token ids as a flat ``values`` buffer and ``offsets``.

    Row ``i`` is ``values[offsets[i]:offsets[i + 1]]``. ``offsets[0]`` need not be 0 (a sliced
    Arrow array keeps its parent's buffer), but offsets never decrease and stay inside
    ``values``.

    Args:
        values: 1-D integer token ids of all rows laid end to end (int32 or int64 is typical;
            kept as given, so a memory-mapped buffer stays memory-mapped).
        offsets: 1-D integers, ``N + 1`` of them for ``N`` rows; stored as int64.
    """

    def __init__(self, values: Any, offsets: Any):
        values = np.asarray(values)
        offsets = np.asarray(offsets)
        if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
            raise ValueError(f"values must be a 1-D integer array, got shape {values.shape} dtype {values.dtype}")
        if values.size == 0 and values.dtype.kind not in "iu":
            values = values.astype(np.int64)
        if offsets.ndim != 1 or offsets.size < 1 or (offsets.dtype.kind not in "iu"):
            raise ValueError(f"offsets must be a 1-D integer array of N+1 >= 1 entries, got shape "
                             f"{offsets.shape} dtype {offsets.dtype}")
        offsets = offsets.astype(np.int64, copy=False)
        if offsets[0] < 0 or offsets[-1] > len(values):
            raise ValueError(f"offsets must lie in [0, {len(values)}] (len(values)), got "
                             f"{int(offsets[0])}..{int(offsets[-1])}")
        for lo, steps in _row_steps(offsets):
            if steps.size and steps.min() < 0:
                row = lo + int(np.argmax(steps < 0))
                raise ValueError(f"offsets must not decrease: row {row} has offsets "
                                 f"{int(offsets[row])}..{int(offsets[row + 1])}")
        self.values = values
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __repr__(self) -> str:
        return f"TokenBuffer(rows={len(self)}, tokens={int(self.offsets[-1] - self.offsets[0])}, dtype={self.values.dtype})"

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per row, int64 ``[N]``."""
        return np.diff(self.offsets)

    def row_lengths(self) -> np.ndarray:
        """Tokens per row in the narrowest signed type that holds them (int16 unless a row has more
        than 32767 tokens): what bucketing keeps for every row, a quarter of ``lengths``' memory.
        Read a window of offsets at a time, so no int64 copy of every row is made and a
        memory-mapped buffer's offsets are not left resident."""
        out = np.empty(len(self), dtype=np.int16)
        for lo, steps in _row_steps(self.offsets):
            longest = int(steps.max(initial=0))
            if longest > np.iinfo(out.dtype).max:
                out = out.astype(np.int32 if longest < 2**31 else np.int64)
            out[lo:lo + len(steps)] = steps
        return out

    def row(self, i: int) -> np.ndarray:
        """Row ``i``'s token ids (a view of ``values``)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        i = int(i) % n
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], dtype: Any = np.int64) -> "TokenBuffer":
        """Build from a sequence of token-id sequences (copies; for tests and small data)."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter(chain.from_iterable(rows), dtype=dtype, count=int(offsets[-1]))
        return cls(values, offsets)

    @classmethod
    def from_arrow(cls, array: Any) -> "TokenBuffer":
        """View a pyarrow ``ListArray``/``LargeListArray``/``ChunkedArray`` of integer lists.

        One chunk (or a plain array, sliced or not) is not copied: ``values`` is a view of the
        Arrow buffer, memory-mapped when the dataset is. A ``ChunkedArray`` of several chunks
        (what ``Dataset.map`` writes, one chunk per writer batch) has its values copied once
        into one array. Null rows and null ids are rejected.

        For a ``datasets.Dataset`` pass ``dataset.data.column("tokens")``; that is the
        underlying table, so a dataset with an indices mapping (after ``shuffle``/``select``)
        must be ``flatten_indices()``-ed first, or its rows looked up through that mapping.
        """
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):
            chunks = [c for c in array.chunks if len(c)] or array.chunks[:1]
            if not chunks:  # a chunked array with no chunks at all: zero rows
                return cls(np.zeros(0, dtype=_arrow_value_dtype(array.type)), np.zeros(1, dtype=np.int64))
            if len(chunks) == 1:
                return cls._from_list_array(chunks[0], 0)
            parts = [cls._from_list_array(c, i) for i, c in enumerate(chunks)]
            return cls.concat(parts)
        return cls._from_list_array(array, 0)

    @classmethod
    def _from_list_array(cls, array: Any, chunk: int) -> "TokenBuffer":
        import pyarrow as pa

        if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
            raise TypeError(f"expected a list or large_list array of integer ids, got {array.type}")
        if not pa.types.is_integer(array.type.value_type):
            raise TypeError(f"expected integer token ids, got lists of {array.type.value_type}")
        if array.null_count:
            row = int(np.argmax(~array.is_valid().to_numpy(zero_copy_only=False)))
            raise ValueError(f"row {row} (chunk {chunk}) is null; token lists must not be null")
        child = array.values  # the whole child array: offsets below are absolute into it
        if child.null_count:
            raise ValueError(f"chunk {chunk} holds null token ids; token ids must not be null")
        values = child.to_numpy(zero_copy_only=True)
        offsets = array.offsets.to_numpy(zero_copy_only=True).astype(np.int64)
        return cls(values, offsets)

    @classmethod
    def concat(cls, parts: Sequence["TokenBuffer"]) -> "TokenBuffer":
        """Rows of ``parts`` one after another (copies the values)."""
        if not parts:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))
        values = np.concatenate([p.values[p.offsets[0]:p.offsets[-1]] for p in parts])
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(values, offsets)

    def take(self, indices: Sequence[int]) -> "TokenBuffer":
        """Rows ``indices`` (in that order) as a new, compact buffer (copies their values)."""
        idx = np.asarray(indices, dtype=np.int64)
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return TokenBuffer(self.values[_gather_index(starts, lengths)], offsets)

    def length_batches(self, batch_size: int, pad_id: int = 0) -> Iterator[Tuple[np.ndarray, Dict[str, np.ndarray]]]:
        """``(indices, padded)`` over every row once, longest rows first, ``batch_size`` rows at a
        time (little padding): for inference, whose results go back to ``indices``."""
        order = np.argsort(-self.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield idx, self.pad(idx, pad_id=pad_id, sort=False)

    def to_lists(self):
        """Every row as a Python list (for looking at small data; training never needs it)."""
        return [self.row(i).tolist() for i in range(len(self))]

    def truncate(self, max_tokens: int) -> Tuple["TokenBuffer", int]:
        """Keep the first ``max_tokens`` ids of every row.

        Returns:
            ``(buffer, n_truncated)``: a new buffer (``self`` when no row is longer) and how many
            rows lost tokens.
        """
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Integral) or max_tokens < 0:
            raise ValueError(f"max_tokens must be a non-negative integer, got {max_tokens!r}")
        lengths = self.lengths
        n_truncated = int(np.count_nonzero(lengths > max_tokens))
        if not n_truncated:
            return self, 0
        kept = np.minimum(lengths, max_tokens)
        offsets = np.zeros(len(kept) + 1, dtype=np.int64)
        np.cumsum(kept, out=offsets[1:])
        return TokenBuffer(self.values[_gather_index(self.offsets[:-1], kept)], offsets), n_truncated

    def pad(self, indices: Sequence[int], pad_id: int = 0, sort: bool = True,
            labels: Optional[Any] = None, tags: Optional["TokenBuffer"] = None,
            tag_pad_id: int = -100) -> Dict[str, np.ndarray]:
        """Pad rows ``indices`` to the right, as ``encoders.data.collate.collate`` does.

        Returns ``tokens`` [B,T] int64 (``pad_id`` past each length, T >= 1), ``lengths`` [B]
        int64, ``mask`` [B,T] bool, ``restore`` [B] int64 (``x[restore]`` is input order) and,
        when ``labels`` (one per row of the buffer) is given, ``labels`` [B] (int64 for integer
        labels, float32 for float targets). ``tags`` (a buffer with the same row lengths, one tag
        id per token) adds ``tags`` [B,T] int64, ``tag_pad_id`` past each length. With
        ``sort=True`` rows are ordered longest first, ties in input order. ``indices`` may
        repeat rows and be in any order.
        """
        if isinstance(pad_id, bool) or not isinstance(pad_id, numbers.Integral) or pad_id < 0:
            raise ValueError(f"pad_id must be a non-negative integer, got {pad_id!r}")
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be a 1-D sequence of ints, got shape {idx.shape} dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"row {bad} out of range for {n} rows")

        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(idx))
        restore = np.empty_like(order)
        restore[order] = np.arange(len(order))
        lengths = lengths[order]
        T = max(int(lengths.max(initial=0)), 1)
        mask = np.arange(T)[None, :] < lengths[:, None]
        tokens = np.full((len(idx), T), pad_id, dtype=np.int64)
        # row-major order of the mask's True cells is the sorted rows laid end to end
        flat = self.values[_gather_index(starts[order], lengths)]
        if flat.size and flat.min() < 0:
            _raise_negative(flat, lengths, order, idx)
        tokens[mask] = flat
        out = {"tokens": tokens, "lengths": lengths, "mask": mask, "restore": restore.astype(np.int64)}
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n,):
                raise ValueError(f"labels must have one entry per row ({n}), got shape {labels.shape}")
            picked = labels[idx[order]]
            out["labels"] = picked.astype(np.float32 if picked.dtype.kind == "f" else np.int64)
        if tags is not None:
            tag_starts = tags.offsets[idx[order]]
            if len(tags) != n or not np.array_equal(tags.offsets[idx[order] + 1] - tag_starts, lengths):
                raise ValueError("tags must have the same rows and row lengths as the tokens")
            padded = np.full((len(idx), T), tag_pad_id, dtype=np.int64)
            padded[mask] = tags.values[_gather_index(tag_starts, lengths)]
            out["tags"] = padded
        return out


_WINDOW = 1 << 20  # rows of offsets read at a time (8 MB)


def _row_steps(offsets: np.ndarray) -> Iterator[Tuple[int, np.ndarray]]:
    """``(first row, lengths of the window's rows)`` over ``offsets``, ``_WINDOW`` rows at a time. A
    memory-mapped window's pages are handed back once read (they stay in the kernel's file cache),
    so a pass over millions of rows does not leave every offset resident in this process."""
    n = len(offsets) - 1
    for lo in range(0, n, _WINDOW):
        hi = min(lo + _WINDOW, n)
        yield lo, np.diff(offsets[lo:hi + 1])
        release_mapped(offsets, lo, hi)


def release_mapped(arr: np.ndarray, lo: int, hi: int) -> None:
    """Drop the resident pages of ``arr[lo:hi]`` (a contiguous 1-D array) when it is memory-mapped
    read-only from a file: the next read faults them back in from the file cache. A no-op for
    arrays in memory, for writeable mappings (a copy-on-write mapping would lose its changes), and
    where ``madvise`` is missing."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if (not isinstance(base, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED") or not arr.flags.c_contiguous
            or arr.flags.writeable):
        return
    start = np.frombuffer(base, dtype=np.uint8, count=1).ctypes.data  # where the mapping begins
    first = arr.ctypes.data - start + lo * arr.itemsize
    last = arr.ctypes.data - start + hi * arr.itemsize
    page = mmap.PAGESIZE
    first, last = -(-first // page) * page, last // page * page  # whole pages inside the range only
    if last > first:
        base.madvise(mmap.MADV_DONTNEED, first, last - first)


def _gather_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[r] + 0 .. starts[r] + lengths[r] - 1`` for every row, end to end."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # where each row begins in the output, minus where it begins in values
    shift = np.cumsum(lengths) - lengths - starts
    return np.arange(total, dtype=np.int64) - np.repeat(shift, lengths)


def _raise_negative(flat: np.ndarray, lengths: np.ndarray, order: np.ndarray, idx: np.ndarray) -> None:
    """Name the first example (in input order) with a negative id, as ``collate`` does."""
    ends = np.cumsum(lengths)
    bad = np.flatnonzero(flat < 0)
    sorted_rows = np.searchsorted(ends, bad, side="right")
    k = int(np.argmin(order[sorted_rows]))  # earliest in input order; its first bad id
    b, pos = int(sorted_rows[k]), int(bad[k])
    raise ValueError(f"row {int(idx[order[b]])} (example {int(order[b])} of the batch): negative token id "
                     f"{int(flat[pos])} at position {pos - int(ends[b] - lengths[b])}")


def _arrow_value_dtype(list_type: Any) -> Any:
    try:
        return np.dtype(list_type.value_type.to_pandas_dtype())
    except Exception:
        return np.int64


def buffer_logits(batch_logits, model, buf: TokenBuffer, num_classes: int, batch_size: int,
                  pad_id: int) -> np.ndarray:
    """Logits ``[N, C]`` of every row of ``buf``, in its order: length-sorted batches of
    ``batch_size`` rows through ``batch_logits(model, tokens, lengths)`` (a backend's inference).
    ``num_classes=None``: one output per row (a regressor), ``[N]``."""
    if int(batch_size) < 1:
        raise EncodersError(f"batch_size must be >= 1, got {batch_size}")
    out = np.zeros((len(buf),) if num_classes is None else (len(buf), num_classes), dtype=np.float32)
    for rows, batch in buf.length_batches(int(batch_size), pad_id):
        out[rows] = batch_logits(model, batch["tokens"], batch["lengths"])
    return out


def buffer_token_logits(batch_logits, model, buf: TokenBuffer, batch_size: int, pad_id: int) -> List[np.ndarray]:
    """A tagger's logits of every row of ``buf``, in its order: one ``[len_i, C]`` array per row (the
    real steps only), from length-sorted batches as :func:`buffer_logits`."""
    if int(batch_size) < 1:
        raise EncodersError(f"batch_size must be >= 1, got {batch_size}")
    out: List[Any] = [None] * len(buf)
    for rows, batch in buf.length_batches(int(batch_size), pad_id):
        logits = batch_logits(model, batch["tokens"], batch["lengths"])
        for b, (row, n) in enumerate(zip(rows, batch["lengths"])):
            out[int(row)] = np.ascontiguousarray(logits[b, :int(n)])
    return out
