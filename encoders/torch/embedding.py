"""Token embedding whose pad vectors are exactly zero and whose pad row gets no gradient."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from encoders.torch.checks import check_token_ids


class PaddedEmbedding(nn.Module):
    """``nn.Embedding`` with a hard guarantee: rows where ``tokens == padding_idx`` are exact zeros.

    Args:
        num_embeddings: vocabulary size ``V``; ids must lie in ``[0, V)``.
        embedding_dim: ``E``.
        padding_idx: the pad id (default 0).

    Input shape:
        tokens: integer tensor ``[B, T]`` (any integer dtype), right-padded with ``padding_idx``.

    Output shape:
        ``[B, T, E]`` float, exactly zero where ``tokens == padding_idx``.

    Padding: the output is multiplied by the non-pad mask, so the guarantee holds whatever the
    pad row of ``weight`` contains (after ``load_state_dict`` or ``from_pretrained``-style copies
    too), and the pad row's gradient is exactly zero.

    Raises:
        TypeError: ``tokens`` is not an integer tensor.
        ValueError: an id outside ``[0, num_embeddings)`` (the message names it and its position).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int = 0):
        super().__init__()
        if not 0 <= padding_idx < num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} is outside [0, {num_embeddings})")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        with torch.no_grad():
            self.weight[self.padding_idx].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        check_token_ids(tokens, self.num_embeddings)
        tokens = tokens.long()
        out = F.embedding(tokens, self.weight, padding_idx=self.padding_idx)
        return out * (tokens != self.padding_idx).unsqueeze(-1).to(out.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}"
