"""Keras token embedding whose pad vectors are exactly zero and whose pad row gets no gradient.

Also holds the two small helpers every layer here uses to check its input: eagerly with numpy
(the error names the bad value), in graph mode (``tf.function``, ``model.fit``) with a TF
assertion. Graph-mode checks need the TensorFlow backend; on other backends only eager input is
checked. Nothing here imports torch.
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
from keras import ops


def concrete_numpy(x) -> Optional[np.ndarray]:
    """``x`` as numpy when its values are known now (eager), else None (graph or symbolic)."""
    if x is None or isinstance(x, keras.KerasTensor):
        return None
    if isinstance(x, np.ndarray):
        return x
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # inside tf.function (model.fit/predict) the values are not known: the graph check runs instead
        if not tf.executing_eagerly() or not hasattr(x, "numpy"):
            return None
        return x.numpy()
    try:  # jax tracers and torch meta tensors refuse conversion: they are symbolic
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:
        return None


def graph_assert(condition, message: str, data: Sequence = (), then=None):
    """Add a TF assertion ``condition`` (graph mode); return ``then`` made to run after it.

    The control dependency orders the check before the op that would fail less clearly
    (a gather out of range) or silently (a gather that wraps negative ids).
    """
    if keras.backend.backend() != "tensorflow":
        return then
    import tensorflow as tf

    check = tf.debugging.Assert(condition, [message, *data], summarize=16)
    if then is None:
        return None
    with tf.control_dependencies([check]):
        return tf.identity(then)


def is_integer_dtype(dtype) -> bool:
    name = keras.backend.standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint")


@keras.saving.register_keras_serializable(package="encoders")
class PaddedEmbedding(keras.layers.Layer):
    """``Embedding`` with a hard guarantee: vectors where ``ids == padding_idx`` are exact zeros.

    The looked-up vectors are multiplied by ``ids != padding_idx``, so the guarantee holds
    whatever the pad row holds (after ``set_weights`` or a weight port too), and the pad row's
    gradient is exactly zero: it never changes under SGD/Adam (weight decay would still shrink
    it, but it is zero from ``build`` on). ``compute_mask`` gives ``ids != padding_idx``.
    Ids outside ``[0, input_dim)`` raise ``ValueError`` naming the id (eager), or fail a TF
    assertion that says so (graph mode); non-integer ids raise ``TypeError``.
    """

    def __init__(self, input_dim: int, output_dim: int, padding_idx: int = 0,
                 embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        input_dim, output_dim, padding_idx = int(input_dim), int(output_dim), int(padding_idx)
        if input_dim < 1 or output_dim < 1:
            raise ValueError(f"input_dim and output_dim must be >= 1, got {input_dim}, {output_dim}")
        if not 0 <= padding_idx < input_dim:
            raise ValueError(f"padding_idx {padding_idx} is outside [0, {input_dim})")
        self.input_dim, self.output_dim, self.padding_idx = input_dim, output_dim, padding_idx
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        # graph-mode id checks are tf.debugging asserts, which XLA drops: keep this layer off XLA
        self.supports_jit = False

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim), name="embeddings",
                                          initializer=self.embeddings_initializer, trainable=True)
        # start with a zero pad row, so the weights say what the layer does
        rows = ops.expand_dims(ops.arange(self.input_dim), -1)
        self.embeddings.assign(ops.where(rows == self.padding_idx, ops.zeros_like(self.embeddings),
                                         self.embeddings))
        self.built = True

    def _check_ids(self, ids):
        if not is_integer_dtype(ids.dtype):
            raise TypeError(f"PaddedEmbedding expects integer token ids, got dtype "
                            f"{keras.backend.standardize_dtype(ids.dtype)}")
        values = concrete_numpy(ids)
        if values is not None:
            bad = (values < 0) | (values >= self.input_dim)
            if bad.any():
                pos = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(f"token id {int(values[pos])} at position {pos} is outside the vocabulary "
                                 f"[0, {self.input_dim})")
            return ids
        ok = ops.logical_and(ids >= 0, ids < self.input_dim)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            bad_ids = tf.boolean_mask(ids, tf.logical_not(ok))
            return graph_assert(tf.reduce_all(ok),
                                f"PaddedEmbedding: token id outside the vocabulary [0, {self.input_dim}); "
                                f"offending ids:", [bad_ids], then=ids)
        return ids

    def call(self, inputs):
        ids = self._check_ids(inputs)
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
