"""ONNX from a torch model: ``tokens`` int64 [B, T] + ``lengths`` int64 [B] -> ``logits``.

``logits`` is ``[B, C]`` for a classifier, ``[B, T, C]`` for a tagger (zero at ``t >= lengths[b]``:
the wrapper multiplies the head's output by the mask) and ``[B]`` for a regressor.

The mirror of ``encoders.keras.export`` (SavedModel); ``encoders.use.export.export_run`` drives both.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) with ``dynamic_axes``
for ``B`` and ``T``, tracing :class:`OnnxClassifier`: the classifier's weights through the same
padded path (the embedding, ``RNNEncoder``'s padded kernel with within-length reversal by
``index_select`` -- with its pad column where the sequence is read, without it for
``pooling="last"``, as ``forward_final`` -- the pooling and the head) without the boundary checks,
which branch on tensor values. It treats every token at ``t >= lengths[b]`` as padding (whatever id it holds)
and appends one pad column, so ``T = 0`` batches work. Why not the dynamo exporter (the default of
torch 2.13): it refuses the classifier's own ``forward`` (data-dependent checks) and, on this
wrapper, exports a correct model only for the first export in a process: a second one (another
run, or ONNX after a test) comes out with ``T`` fixed to the example's length (a shape cached
from the earlier trace of ``torch.lstm``). ``export_run`` checks the file against the run's model
on ragged batches up to 300 steps before writing it, so a regression would be refused, not written.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from encoders.errors import EncodersError

OPSET = 18


class OnnxClassifier(nn.Module):
    """A ``SequenceClassifier``'s (``SequenceTagger``'s, ``SequenceRegressor``'s) forward pass without the
    value checks, for tracing; takes explicit lengths."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.padding_idx = int(model.hparams.padding_idx)
        # the output's shape, as the model's class says (encoders.torch.models.TaskModule)
        self.per_token, self.scalar = bool(type(model).PER_TOKEN), bool(type(model).SCALAR)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        pad = tokens.new_full((tokens.shape[0], 1), self.padding_idx)
        tokens = torch.cat([tokens, pad], dim=1)  # T >= 1, so gathers at length-1 stay in range
        lengths = lengths.to(torch.long)
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        real = (steps.unsqueeze(0) < lengths.unsqueeze(1)) & (tokens != self.padding_idx)
        tokens = torch.where(real, tokens, torch.full_like(tokens, self.padding_idx))
        x = F.embedding(tokens, m.embedding.weight) * real.unsqueeze(-1).to(m.embedding.weight.dtype)
        if self.per_token:  # [B, T, C] on the caller's T; steps past a row's length are zero
            t = tokens.shape[1] - 1
            sequence = m.encoder._forward_padded(x, lengths).sequence
            return (m.head(sequence) * real.unsqueeze(-1).to(x.dtype))[:, :t]
        if m.pool is None:  # what the model's own forward_final computes
            pooled = m.encoder._final_padded(x, lengths)
        else:
            pooled = m.pool(m.encoder._forward_padded(x, lengths).sequence, lengths)
        logits = m.head(pooled)
        return logits.squeeze(-1) if self.scalar else logits


def export_model(model: nn.Module, path: str) -> None:
    """Write ``model`` as ONNX to ``path`` (the mirror of ``encoders.keras.export.export_model``).

    Args:
        model: a ``SequenceClassifier``/``SequenceTagger``/``SequenceRegressor`` (moved to the CPU,
            eval mode, traced on the padded path).
        path: the ``.onnx`` file to write.
    """
    model = model.cpu().eval()
    wrapper = OnnxClassifier(model).eval()
    vocab_size = int(model.hparams.vocab_size)
    tokens = (torch.arange(12, dtype=torch.long).view(3, 4) % max(vocab_size - 2, 1)) + min(2, vocab_size - 1)
    lengths = torch.tensor([4, 2, 1], dtype=torch.long)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python bools, the exporter's deprecation
        torch.onnx.export(wrapper, (tokens, lengths), path, dynamo=False, opset_version=OPSET,
                          input_names=["tokens", "lengths"], output_names=["logits"],
                          dynamic_axes={"tokens": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                                        "logits": {0: "batch", 1: "time"} if wrapper.per_token
                                        else {0: "batch"}})


def load_exported(path: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """An exported ONNX model as a function ``(tokens, lengths) -> logits``, run by onnxruntime.

    Args:
        path: an ``.onnx`` file ``export_model`` wrote.

    Returns:
        A function of int64 ``tokens [B, T]`` and ``lengths [B]`` giving float32 ``logits``.

    Raises:
        EncodersError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise EncodersError("checking an ONNX export needs onnxruntime: pip install 'padded-encoders[export]'") from None
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"tokens": tokens.astype(np.int64), "lengths": lengths.astype(np.int64)})[0]

    return run
