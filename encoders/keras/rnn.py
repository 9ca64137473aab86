"""Keras LSTM/GRU encoder whose padded-batch outputs equal each sequence run alone.

Each layer and direction is a stock ``keras.layers.LSTM``/``GRU`` in its cuDNN-eligible
configuration (default activations, no recurrent dropout, ``unroll=False``, biases, GRU
``reset_after=True``), so TensorFlow runs the fused kernel on GPU. The backward direction runs
the forward RNN on each row reversed *within its own length* (not ``go_backwards``, which would
start inside the padding), and its outputs are reversed back with the same gather. The inner
RNNs run unmasked (see ``call``): that keeps them on cuDNN and away from all-masked rows.
"""
from __future__ import annotations

import keras
from keras import ops

from encoders.config import CELLS
from encoders.keras.checks import graph_checks_survive_jit
from encoders.keras.masking import last_step, lengths_and_valid, reverse_index, reverse_within_lengths

@keras.saving.register_keras_serializable(package="encoders")
class RNNEncoder(keras.layers.Layer):
    """LSTM/GRU encoder layer for right-padded batches whose outputs equal each row run alone.

    Args:
        hidden_size: ``H``, per direction.
        cell: ``"lstm"`` or ``"gru"``.
        num_layers: stacked layers.
        bidirectional: ``D = 2`` directions when True, else ``D = 1``.
        dropout: between stacked layers while training, as in ``torch.nn.LSTM``.

    Input shape:
        ``x`` ``[B, T, I]`` float and its ``mask`` ``[B, T]`` (propagated from ``PaddedEmbedding``
        or passed); None means every step is real. The mask must be right-padded.

    Output shape:
        ``{"sequence": [B, T, D*H], "final": [B, D*H]}``: ``sequence`` is exactly zero at
        ``t >= length`` (its mask is the input mask); ``final`` is the top layer's
        ``[forward h at length-1 ; backward h at step 0]`` (no mask).

    Padding: length-0 rows and all-empty batches (even ``T = 0``) are legal and give zeros.
    Serializable (``get_config``; registered), so a model using it saves to ``.keras``.

    Raises:
        TypeError: ``x`` is not floating-point (integer ids must be embedded first).
        ValueError: a feature size other than the one it was built for; a mask with holes or
            left padding (eager; a TF assertion in graph mode).
    """

    def __init__(self, hidden_size: int, cell: str = "lstm", num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        hidden_size, num_layers = int(hidden_size), int(num_layers)
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {hidden_size}, {num_layers}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.hidden_size, self.cell, self.num_layers = hidden_size, cell, num_layers
        self.bidirectional, self.dropout = bool(bidirectional), float(dropout)
        self.num_directions = 2 if self.bidirectional else 1
        self.supports_jit = graph_checks_survive_jit()  # TF: keep the graph asserts off XLA

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    def build(self, input_shape):
        # inner layers are built here, not on first call, so load_model can restore their weights
        input_size = input_shape[-1]
        if input_size is None:
            raise ValueError("RNNEncoder needs a known feature size (last input dimension) to build")
        rnn_cls = keras.layers.LSTM if self.cell == "lstm" else keras.layers.GRU
        extra = {"reset_after": True} if self.cell == "gru" else {}
        self.rnns = []  # [layer][direction], named like torch's parameters (l0, l0_reverse, ...)
        for layer in range(self.num_layers):
            layer_in = input_size if layer == 0 else self.output_size
            row = []
            for sfx in ("", "_reverse")[: self.num_directions]:
                rnn = rnn_cls(self.hidden_size, return_sequences=True, recurrent_dropout=0.0, unroll=False,
                              use_bias=True, name=f"{self.cell}_l{layer}{sfx}", dtype=self.dtype_policy, **extra)
                rnn.build((None, None, layer_in))
                row.append(rnn)
            self.rnns.append(row)
        self.inter_dropout = keras.layers.Dropout(self.dropout) if self.dropout > 0 and self.num_layers > 1 else None
        self.built = True

    def call(self, x, mask=None, training=None):
        if not keras.backend.is_float_dtype(x.dtype):
            raise TypeError(f"x must be a floating-point tensor (the embedded tokens), got dtype "
                            f"{keras.backend.standardize_dtype(x.dtype)}; embed integer ids first (PaddedEmbedding)")
        B, T = ops.shape(x)[0], ops.shape(x)[1]
        built_for = int(self.rnns[0][0].cell.kernel.shape[0])
        if x.shape[-1] is not None and int(x.shape[-1]) != built_for:
            raise ValueError(f"x has feature size {int(x.shape[-1])}, but this encoder was built for "
                             f"{built_for} input features")
        if isinstance(T, int) and T == 0:  # no time steps: an RNN can't run, the answer is all zeros
            return self._zeros(B, T)
        if T is not None and not isinstance(T, int) and keras.backend.backend() == "tensorflow":
            # graph mode: T is known only at run time and may be 0, where the inner RNNs fail
            import tensorflow as tf

            return tf.cond(T > 0, lambda: self._encode(x, mask, training), lambda: self._zeros(B, T))
        return self._encode(x, mask, training)

    def _zeros(self, B, T):
        D, H = self.num_directions, self.hidden_size
        return {"sequence": ops.zeros((B, T, D * H), dtype=self.compute_dtype),
                "final": ops.zeros((B, D * H), dtype=self.compute_dtype)}

    def _encode(self, x, mask, training):
        B, T = ops.shape(x)[0], ops.shape(x)[1]
        D = self.num_directions
        if mask is None:
            lengths = ops.full((B,), T, dtype="int32")
            valid = ops.ones((B, T), dtype="bool")
        else:
            lengths, valid = lengths_and_valid(mask, T)
        # The inner RNNs get no mask at all. Every row is right-padded (checked above) and the
        # backward direction runs on each row reversed *within its length*, so in both directions
        # the padding comes after a row's real steps and can't change their outputs; what the RNNs
        # compute over the padding is zeroed below, and `final` is read at the row's own last step.
        # Without a mask Keras skips its per-step masking (faster than a masked Bidirectional on
        # CPU) and on a GPU the layer stays on the cuDNN kernel with nothing it could reject: an
        # all-masked row, which makes cuDNN fail inside tf.function, can't reach it.
        # For the same reason the layers in between need no zeroing: what a layer computes over
        # the padding only ever reaches the next layer's padding.
        keep = ops.expand_dims(valid, -1)
        rev = reverse_index(lengths, T) if D == 2 and keras.backend.backend() != "tensorflow" else None
        # zeroed once on the way in: NaN/inf left in the padding would otherwise turn the zero
        # gradients that reach padding steps into NaN (0 * inf)
        layer_in = ops.where(keep, x, ops.zeros_like(x))
        for layer, row in enumerate(self.rnns):
            outs = []
            for d, rnn in enumerate(row):
                if d == 0:
                    out = rnn(layer_in, mask=None, training=training)
                else:  # reverse each row within its length, run forwards, reverse back
                    out = reverse_within_lengths(rnn(reverse_within_lengths(layer_in, lengths, rev), mask=None,
                                                     training=training), lengths, rev)
                outs.append(out)
            layer_in = outs[0] if D == 1 else ops.concatenate(outs, axis=-1)
            if self.inter_dropout is not None and layer + 1 < self.num_layers:
                layer_in = self.inter_dropout(layer_in, training=training)
        sequence = ops.where(keep, layer_in, ops.zeros_like(layer_in))
        # final: forward h at length-1, backward h at step 0 (in original order), read from the
        # top layer's direction outputs; empty rows are zeroed through `nonempty`
        final = [last_step(outs[0], lengths)]
        if D == 2:
            final.append(outs[1][:, 0, :])
        final = final[0] if D == 1 else ops.concatenate(final, axis=-1)
        nonempty = ops.expand_dims(lengths > 0, -1)
        return {"sequence": sequence, "final": ops.where(nonempty, final, ops.zeros_like(final))}

    def compute_mask(self, inputs, mask=None):
        # `final` has no time axis: it must not inherit the [B,T] mask (fit would fail in the loss)
        return {"sequence": mask, "final": None}

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        return {"sequence": (B, T, self.output_size), "final": (B, self.output_size)}

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, cell=self.cell, num_layers=self.num_layers,
                      bidirectional=self.bidirectional, dropout=self.dropout)
        return config
