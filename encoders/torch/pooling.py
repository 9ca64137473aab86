"""Masked pooling over the time axis: 0 on an empty row, never NaN or a huge value."""
from __future__ import annotations

import torch
from torch import nn

MODES = ("last", "mean", "max", "attention")


def lengths_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class MaskedPooling(nn.Module):
    """``forward(sequence[B,T,F], lengths[B]) -> [B,F]``.

    ``last``: the row at ``lengths-1`` (for a bidirectional encoder use its ``final`` instead);
    ``mean``/``max``: over real steps only; ``attention``: a learned score per step, softmax over
    real steps. Every mode returns exact zeros for a length-0 row.
    """

    def __init__(self, mode: str = "mean", input_size: int = 0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"pooling must be one of {MODES}, got {mode!r}")
        if mode == "attention" and input_size < 1:
            raise ValueError("attention pooling needs input_size")
        self.mode = mode
        self.score = nn.Linear(input_size, 1) if mode == "attention" else None

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, _ = sequence.shape
        lengths = lengths.to(sequence.device, torch.long)
        mask = lengths_mask(lengths, T).unsqueeze(-1)  # [B,T,1]
        nonempty = (lengths > 0).view(B, 1).to(sequence.dtype)
        if self.mode == "last":
            idx = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, sequence.size(-1))
            return sequence.gather(1, idx).squeeze(1) * nonempty
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
