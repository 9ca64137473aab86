"""Masked pooling over the time axis: 0 on an empty row, never NaN or a huge value."""
from __future__ import annotations

import torch
from torch import nn

from encoders.config import POOLINGS
from encoders.torch.masking import lengths_to_mask, last_step


class MaskedPooling(nn.Module):
    """Pools a right-padded sequence over its real steps only.

    Args:
        mode: ``"mean"`` (default), ``"max"``, ``"last"`` or ``"attention"``.
        input_size: feature size ``F``; needed by ``"attention"`` (its scoring layer).

    Input shape:
        sequence: ``[B, T, F]``; values at padded steps are ignored.
        lengths: ``[B]`` int, ``0..T``.

    Output shape:
        ``[B, F]``. ``last``: the step at ``lengths-1`` (for a bidirectional encoder use its
        ``final`` instead, which reads the backward direction at step 0); ``mean``/``max``: over
        real steps; ``attention``: a learned score per step, softmax over real steps.

    Padding: every mode returns exact zeros for a length-0 row (no NaN, no -3.4e38).
    """

    def __init__(self, mode: str = "mean", input_size: int = 0):
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
        if mode == "attention" and input_size < 1:
            raise ValueError("attention pooling needs input_size")
        self.mode = mode
        self.score = nn.Linear(input_size, 1) if mode == "attention" else None

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, _ = sequence.shape
        lengths = lengths.to(sequence.device, torch.long)
        if self.mode == "last":
            return last_step(sequence, lengths)
        mask = lengths_to_mask(lengths, T).unsqueeze(-1)  # [B,T,1]
        nonempty = (lengths > 0).view(B, 1).to(sequence.dtype)
        if self.mode == "mean":
            total = sequence.masked_fill(~mask, 0.0).sum(1)
            return total / lengths.clamp(min=1).view(B, 1).to(sequence.dtype)
        if self.mode == "max":
            # masked_fill with the dtype's lowest value, then clear empty rows: never -inf or -3e38
            low = torch.finfo(sequence.dtype).min
            return sequence.masked_fill(~mask, low).amax(1) * nonempty
        scores = self.score(sequence).masked_fill(~mask, float("-inf"))  # [B,T,1]
        # an empty row would be softmax over all -inf (NaN): give it zero scores, then zero the result
        scores = torch.where(nonempty.view(B, 1, 1) > 0, scores, torch.zeros_like(scores))
        weights = torch.softmax(scores, dim=1)
        return (weights * sequence.masked_fill(~mask, 0.0)).sum(1) * nonempty


def encode_pooled(encoder: nn.Module, pool, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The ``[B, D*H]`` vector a head reads: ``encoder.forward_final(x, lengths)`` when ``pool`` is
    None (``pooling="last"``), else ``pool(encoder(x, lengths).sequence, lengths)``."""
    if pool is None:
        return encoder.forward_final(x, lengths)
    return pool(encoder(x, lengths).sequence, lengths)
