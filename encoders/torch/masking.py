"""Lengths <-> masks and reversal within each row's length: the one place torch code does this.

Everything here takes right-padded batches: row ``b`` holds real steps ``0 .. lengths[b]-1``
and padding after them.
"""
from __future__ import annotations

from typing import Optional

import torch

from encoders.torch.checks import must_check


def lengths_to_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``mask[b, t] = t < lengths[b]``: a [B, T] bool tensor on ``lengths``' device."""
    return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def mask_to_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Lengths [B] int64 of a right-padded [B, T] mask (True on real steps)."""
    return mask.sum(1, dtype=torch.long)


def reverse_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Index [B, T]: step ``t`` -> ``len-1-t`` for real steps, ``t`` for padding.

    It is its own inverse, so one gather reverses the input and the same gather undoes it.
    """
    t = torch.arange(T, device=lengths.device).unsqueeze(0)
    L = lengths.unsqueeze(1)
    return torch.where(t < L, L - 1 - t, t)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor, index: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Each row of ``x`` [B, T, F] reversed over its first ``lengths[b]`` steps; padding stays put.

    Applying it twice gives ``x`` back. ``index`` is ``reverse_index(lengths, T)`` when the caller
    reverses several tensors of one batch. (One ``index_select`` over the [B*T] flattened rows:
    much faster than a gather along time, and its backward too.)
    """
    B, T = x.shape[:2]
    index = reverse_index(lengths, T) if index is None else index
    flat = (index + torch.arange(B, device=x.device).unsqueeze(1) * T).reshape(-1)
    return x.reshape(B * T, -1).index_select(0, flat).view(x.shape)


def last_step(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x[b, lengths[b] - 1]`` for x [B, T, F]; zeros for a length-0 row."""
    B = x.size(0)
    idx = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, x.size(-1))
    return x.gather(1, idx).squeeze(1) * (lengths > 0).view(B, 1).to(x.dtype)


def check_lengths(lengths, batch: int, T: int, device: torch.device) -> torch.Tensor:
    """``lengths`` as int64 on ``device``; ``ValueError``/``TypeError`` naming the bad value otherwise."""
    if lengths is None:
        raise TypeError("lengths is None: pass one length per row (a [batch] int tensor), e.g. (tokens != pad).sum(1)")
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.dtype.is_complex:
        raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.numel() != batch:
        raise ValueError(f"lengths must have one entry per row: expected shape ({batch},), "
                         f"got {tuple(lengths.shape)}")
    if batch and must_check(lengths):
        lo, hi = torch.aminmax(lengths)
        if lo < 0 or hi > T:
            bad = int(((lengths < 0) | (lengths > T)).nonzero()[0])
            raise ValueError(f"lengths[{bad}] = {int(lengths[bad])} is outside 0..{T} (T = padded length)")
    # non_blocking: from the host this copy need not wait for the device (no sync)
    return lengths.to(device=device, dtype=torch.long, non_blocking=True)
