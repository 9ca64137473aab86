"""Checks of the values that reach torch modules at their public boundary; errors name the value.

A value check of a tensor on an accelerator (``aminmax`` then a Python ``if``) waits for the device
(a device->host sync). So a check runs where it is free, on the host: always for CPU tensors, and
for accelerator tensors unless the caller says the values were checked upstream
(:func:`checked_upstream`). The Lightning modules say so inside their steps for batches their
``transfer_batch_to_device`` checked on the CPU before moving them (``encoders.torch.batches.HostCheckedBatches``);
everyone else calling a module directly gets the checks and their clear errors wherever the tensor is.
"""
from __future__ import annotations

import contextlib
import threading

import torch

_upstream = threading.local()


@contextlib.contextmanager
def checked_upstream(on: bool = True):
    """Inside it, modules skip the value checks of accelerator tensors (their types and shapes are
    still checked): the caller has checked the values on the host already."""
    before = getattr(_upstream, "on", False)
    _upstream.on = bool(on) or before
    try:
        yield
    finally:
        _upstream.on = before


def must_check(t: torch.Tensor) -> bool:
    """Whether a value check of ``t`` is due: always on the CPU (no sync), elsewhere unless
    :func:`checked_upstream` is on."""
    return t.device.type == "cpu" or not getattr(_upstream, "on", False)


def check_token_ids(tokens: torch.Tensor, num_embeddings: int) -> None:
    """Raise TypeError/ValueError naming the problem if ``tokens`` can't index the table."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor of integer ids, got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
    if tokens.numel() == 0 or not must_check(tokens):
        return
    lo, hi = torch.aminmax(tokens)
    if lo < 0 or hi >= num_embeddings:
        bad_mask = (tokens < 0) | (tokens >= num_embeddings)
        pos = tuple(int(i) for i in bad_mask.nonzero()[0])
        raise ValueError(f"token id {int(tokens[pos])} at position {pos} is outside the vocabulary "
                         f"[0, {num_embeddings})")
