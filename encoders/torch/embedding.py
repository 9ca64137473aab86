"""Token embedding whose pad vectors are exactly zero and whose pad row gets no gradient."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


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


class PaddedEmbedding(nn.Module):
    """``nn.Embedding`` with a hard guarantee: rows where ``tokens == padding_idx`` are exact zeros.

    The output is multiplied by the non-pad mask, so the guarantee holds whatever the pad row
    of ``weight`` contains (after ``load_state_dict`` or ``from_pretrained``-style copies too),
    and the pad row's gradient is exactly zero. Ids outside ``[0, num_embeddings)`` raise
    ``ValueError`` naming the id and its position.
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
