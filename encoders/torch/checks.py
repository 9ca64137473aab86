"""Checks of the values that reach torch modules at their public boundary; errors name the value."""
from __future__ import annotations

import torch


def check_token_ids(tokens: torch.Tensor, num_embeddings: int) -> None:
    """Raise TypeError/ValueError naming the problem if ``tokens`` can't index the table."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor of integer ids, got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
    if tokens.numel() == 0:
        return
    lo, hi = torch.aminmax(tokens)
    if lo < 0 or hi >= num_embeddings:
        bad_mask = (tokens < 0) | (tokens >= num_embeddings)
        pos = tuple(int(i) for i in bad_mask.nonzero()[0])
        raise ValueError(f"token id {int(tokens[pos])} at position {pos} is outside the vocabulary "
                         f"[0, {num_embeddings})")
