"""Masked pooling over the time axis: 0 on an empty row, never NaN or a huge value.

Keras' own poolings get this wrong (``GlobalAveragePooling1D`` gives NaN on an all-masked row,
``GlobalMaxPooling1D`` ignores the mask, a fully masked softmax is NaN).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from encoders.config import POOLINGS
from encoders.keras.checks import graph_checks_survive_jit
from encoders.keras.masking import last_step, lengths_and_valid


@keras.saving.register_keras_serializable(package="encoders")
class MaskedPooling(keras.layers.Layer):
    """Pools a right-padded sequence over its real steps only.

    Args:
        mode: ``"mean"`` (default), ``"max"``, ``"last"`` or ``"attention"``.

    Input shape:
        sequence ``[B, T, F]`` and its ``mask`` ``[B, T]`` (right-padded; it usually arrives
        from ``RNNEncoder``'s ``sequence``); None means every step is real.

    Output shape:
        ``[B, F]``, with no mask. ``last``: the step at ``length-1`` (for a bidirectional
        encoder use its ``final`` instead); ``mean``/``max``: over real steps; ``attention``: a
        learned score per step (``Dense(1)``), softmax over real steps.

    Padding: every mode returns exact zeros for a length-0 row, with finite gradients.

    Raises:
        ValueError: a mask with holes or left padding (eager; a TF assertion in graph mode).
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"pooling mode must be one of {POOLINGS}, got {mode!r}")
        self.mode = mode
        self.supports_jit = graph_checks_survive_jit()  # TF: keep the graph asserts off XLA

    def build(self, input_shape):
        if self.mode == "attention":
            # built here so that load_model finds the scoring weights
            self.score = keras.layers.Dense(1, name="score", dtype=self.dtype_policy)
            self.score.build(tuple(input_shape))
        self.built = True

    def call(self, sequence, mask=None):
        B, T = ops.shape(sequence)[0], ops.shape(sequence)[1]
        if mask is None:
            lengths = ops.full((B,), T, dtype="int32")
            valid = ops.ones((B, T), dtype="bool")
        else:
            lengths, valid = lengths_and_valid(mask, T)
        keep = ops.expand_dims(valid, -1)  # [B,T,1]
        nonempty = ops.expand_dims(lengths > 0, -1)  # [B,1]
        zeros = ops.zeros_like(sequence)
        seq = ops.where(keep, sequence, zeros)  # padding may hold anything: never let it in
        if self.mode == "last":
            out = last_step(seq, lengths)
            return ops.where(nonempty, out, ops.zeros_like(out))
        if self.mode == "mean":
            count = ops.cast(ops.maximum(lengths, 1), seq.dtype)
            return ops.sum(seq, axis=1) / ops.expand_dims(count, -1)
        if self.mode == "max":
            # the dtype's lowest value stands in for padding, then empty rows are cleared: never -inf
            low = ops.full_like(sequence, _lowest(seq.dtype))
            out = ops.max(ops.where(keep, sequence, low), axis=1)
            return ops.where(nonempty, out, ops.zeros_like(out))
        # attention: softmax over valid steps, written out so an empty row gives weights 0, not NaN
        scores = ops.cast(self.score(seq), "float32")  # [B,T,1]; float32 so exp is safe under fp16
        low = ops.full_like(scores, -3.0e38)
        top = ops.max(ops.where(keep, scores, low), axis=1, keepdims=True)
        top = ops.stop_gradient(ops.where(ops.expand_dims(nonempty, -1), top, ops.zeros_like(top)))
        shifted = ops.where(keep, scores - top, ops.zeros_like(scores))
        e = ops.where(keep, ops.exp(shifted), ops.zeros_like(scores))
        total = ops.sum(e, axis=1, keepdims=True)
        weights = e / ops.where(total > 0, total, ops.ones_like(total))
        return ops.sum(ops.cast(weights, seq.dtype) * seq, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None  # the output has no time axis

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config


def _lowest(dtype) -> float:
    """The most negative finite value of a float dtype (numpy knows no bfloat16)."""
    name = keras.backend.standardize_dtype(dtype)
    return -3.3895e38 if name == "bfloat16" else float(np.finfo(name).min)
