"""Keras token embedding whose pad vectors are exactly zero and whose pad row gets no gradient."""
from __future__ import annotations

import keras
from keras import ops

from encoders.config import PAD_ID
from encoders.keras.checks import check_token_ids, graph_checks_survive_jit


@keras.saving.register_keras_serializable(package="encoders")
class PaddedEmbedding(keras.layers.Layer):
    """``Embedding`` with a hard guarantee: vectors where ``ids == padding_idx`` are exact zeros.

    Args:
        input_dim: vocabulary size ``V``; ids must lie in ``[0, V)``.
        output_dim: ``E``.
        padding_idx: the pad id (default 0).
        embeddings_initializer: for the table (the pad row is then set to zero).

    Input shape:
        integer ids ``[B, T]`` (any integer dtype), right-padded with ``padding_idx``.

    Output shape:
        ``[B, T, E]``, exactly zero where ``ids == padding_idx``; ``compute_mask`` gives
        ``ids != padding_idx``, so ``RNNEncoder`` and ``MaskedPooling`` downstream see the lengths.

    Padding: the looked-up vectors are multiplied by ``ids != padding_idx``, so the guarantee
    holds whatever the pad row holds (after ``set_weights`` or a weight port too), and the pad
    row's gradient is exactly zero: it never changes under SGD/Adam (weight decay would still
    shrink it, but it is zero from ``build`` on).

    Raises:
        TypeError: non-integer ids.
        ValueError: an id outside ``[0, input_dim)``, naming it (eager); in graph mode a TF
            assertion with the same meaning fails.
    """

    def __init__(self, input_dim: int, output_dim: int, padding_idx: int = PAD_ID,
                 embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        input_dim, output_dim, padding_idx = int(input_dim), int(output_dim), int(padding_idx)
        if input_dim < 1 or output_dim < 1:
            raise ValueError(f"input_dim and output_dim must be >= 1, got {input_dim}, {output_dim}")
        if not 0 <= padding_idx < input_dim:
            raise ValueError(f"padding_idx {padding_idx} is outside [0, {input_dim})")
        self.input_dim, self.output_dim, self.padding_idx = input_dim, output_dim, padding_idx
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_jit = graph_checks_survive_jit()  # TF: keep the graph asserts off XLA

    def build(self, input_shape=None):
        if self.built:  # building twice must not add a second table
            return
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim), name="embeddings",
                                          initializer=self.embeddings_initializer, trainable=True)
        # start with a zero pad row, so the weights say what the layer does
        rows = ops.expand_dims(ops.arange(self.input_dim), -1)
        table = ops.convert_to_tensor(self.embeddings)  # jax's zeros_like takes no Keras Variable
        self.embeddings.assign(ops.where(rows == self.padding_idx, ops.zeros_like(table), table))
        self.built = True

    def call(self, inputs):
        ids = check_token_ids(inputs, self.input_dim, "PaddedEmbedding")
        out = ops.take(self.embeddings, ids, axis=0)
        keep = ops.cast(ops.not_equal(ids, self.padding_idx), out.dtype)
        return out * ops.expand_dims(keep, -1)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, self.padding_idx)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim, padding_idx=self.padding_idx,
                      embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer))
        return config
