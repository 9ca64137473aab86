"""ONNX from a torch classifier: ``tokens`` int64 [B, T] + ``lengths`` int64 [B] -> ``logits`` [B, C].

The mirror of ``encoders.keras.export`` (SavedModel); ``encoders.export.export_run`` drives both.

Exporter: ``torch.onnx.export(..., dynamo=True)`` with dynamic ``B`` and ``T``. ``torch.export``
refuses the classifier's own ``forward``, whose boundary checks branch on tensor values (id and
length ranges, the all-empty shortcut), so :class:`OnnxClassifier` runs the same weights through
the same padded path without those checks: the embedding, ``RNNEncoder``'s padded kernel (the pad
column and the within-length reversal by ``index_select``), the pooling and the head. It also
treats every token at ``t >= lengths[b]`` as padding (whatever id it holds) and appends one pad
column, so ``T = 0`` batches work. (The TorchScript exporter, ``dynamo=False``, also gives a correct
model but is deprecated.) ``export_run`` checks the file against the run's model before writing it.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

OPSET = 18


class OnnxClassifier(nn.Module):
    """A ``SequenceClassifier``'s forward pass in a form ``torch.export`` can trace (no value checks)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.padding_idx = int(model.hparams.padding_idx)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        pad = tokens.new_full((tokens.shape[0], 1), self.padding_idx)
        tokens = torch.cat([tokens, pad], dim=1)  # T >= 1, so gathers at length-1 stay in range
        lengths = lengths.to(torch.long)
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        real = (steps.unsqueeze(0) < lengths.unsqueeze(1)) & (tokens != self.padding_idx)
        tokens = torch.where(real, tokens, torch.full_like(tokens, self.padding_idx))
        x = F.embedding(tokens, m.embedding.weight) * real.unsqueeze(-1).to(m.embedding.weight.dtype)
        out = m.encoder._forward_padded(x, lengths)
        pooled = out.final if m.pool is None else m.pool(out.sequence, lengths)
        return m.head(pooled)


def to_onnx(model: nn.Module, path: str) -> None:
    """Write ``model`` (a ``SequenceClassifier`` on the padded path, eval mode) as ONNX to ``path``."""
    model = model.cpu().eval()
    wrapper = OnnxClassifier(model).eval()
    vocab_size = int(model.hparams.vocab_size)
    tokens = (torch.arange(12, dtype=torch.long).view(3, 4) % max(vocab_size - 2, 1)) + min(2, vocab_size - 1)
    lengths = torch.tensor([4, 2, 1], dtype=torch.long)
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, (tokens, lengths), dynamo=True, opset_version=OPSET,
                                    input_names=["tokens", "lengths"], output_names=["logits"],
                                    dynamic_shapes={"tokens": {0: batch, 1: time}, "lengths": {0: batch}},
                                    verbose=False)
    program.save(path)
