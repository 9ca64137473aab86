"""Lengths <-> masks and reversal within each row's length: the one place Keras code does this.

Everything here takes right-padded batches: row ``b`` holds real steps ``0 .. length-1`` and
padding after them. A mask that is not right-padded is refused (eagerly with the row, in graph
mode with a TF assertion), since it would make final states silently wrong.
"""
from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

from encoders.keras.checks import concrete_numpy, graph_assert

RIGHT_PADDED_MESSAGE = ("mask is not right-padded (it has holes or left padding): each row must be True "
                        "for its first `length` steps and False after")


def lengths_and_valid(mask, T):
    """Lengths [B] (int32) and the valid-step mask [B,T] of a right-padded ``mask``.

    A mask with holes or left padding raises ``ValueError`` (eager, with the offending row) or
    fails a TF assertion with the same message (graph mode): silently accepting it would make
    final states wrong.
    """
    values = concrete_numpy(mask)
    if values is not None and (values.ndim != 2 or (isinstance(T, int) and values.shape[1] != T)):
        raise ValueError(f"mask must have shape [batch, time] with time = {T}, got {tuple(values.shape)}")
    mask = ops.cast(mask, "bool")
    lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
    valid = lengths_to_mask(lengths, T)
    if values is not None:
        values = values.astype(bool)
        expected = np.arange(values.shape[1])[None, :] < values.sum(1, keepdims=True)
        bad = np.flatnonzero((values != expected).any(1))
        if bad.size:
            b = int(bad[0])
            raise ValueError(f"{RIGHT_PADDED_MESSAGE}; row {b} is {values[b].astype(int).tolist()}")
        return lengths, valid
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # the eager ValueError's line: "...; row 1 is [1, 0, 1, 0]" for the first offending row
        bad_rows = tf.reshape(tf.where(tf.reduce_any(tf.not_equal(mask, valid), axis=1)), [-1])
        b = tf.concat([bad_rows, tf.zeros([1], tf.int64)], 0)[0]
        row = tf.gather(tf.pad(tf.cast(mask, tf.int64), [[0, 1], [0, 0]]), b)
        line = tf.strings.join([f"{RIGHT_PADDED_MESSAGE}; row ", tf.strings.as_string(b), " is [",
                                tf.strings.reduce_join(tf.strings.as_string(row), separator=", "), "]"])
        lengths = graph_assert(tf.reduce_all(tf.equal(mask, valid)), "mask:", [line], then=lengths)
        valid = lengths_to_mask(lengths, T)
    return lengths, valid


def lengths_to_mask(lengths, T):
    """``mask[b, t] = t < lengths[b]``: a [B, T] bool tensor."""
    return ops.expand_dims(ops.arange(T, dtype="int32"), 0) < ops.expand_dims(ops.cast(lengths, "int32"), 1)


def reverse_index(lengths, T):
    """Index [B,T]: ``len-1-t`` for ``t < len``, else ``t``. It is its own inverse."""
    t = ops.expand_dims(ops.arange(T, dtype="int32"), 0)
    L = ops.expand_dims(lengths, 1)
    return ops.where(t < L, L - 1 - t, t)


def reverse_within_lengths(x, lengths, index=None):
    """Each row of x [B,T,F] reversed over its first ``lengths[b]`` steps (its own inverse).

    On TensorFlow ``tf.reverse_sequence`` does exactly this, and its gradient is itself: much
    cheaper than a gather, whose gradient is a scatter. ``index`` (``reverse_index``) serves the
    other backends; on jax the gather gets the same kind of gradient (``_jax_involution``)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
    index = reverse_index(lengths, ops.shape(x)[1]) if index is None else index
    return _jax_involution()(x, index) if backend == "jax" else gather_time(x, index)


@functools.lru_cache(maxsize=None)
def _jax_involution():
    """jax: ``gather_time(x, index)`` for an ``index`` that is its own inverse (``reverse_index``),
    with the same gather as its gradient. jax's own gradient of a gather is a scatter-add, which
    made a bidirectional train step on CPU 3-7% slower in two side-by-side timings; with a
    permutation each output step has one source, so the gather back is exact."""
    import jax

    @jax.custom_vjp
    def involution(x, index):
        return gather_time(x, index)

    def forward(x, index):
        return gather_time(x, index), index

    def backward(index, grad):
        return gather_time(grad, index), None  # the index gets no gradient

    involution.defvjp(forward, backward)
    return involution


def last_step(x, lengths):
    """``x[b, max(lengths[b] - 1, 0), :]`` for x [B,T,F]."""
    last = ops.maximum(lengths - 1, 0)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(x, last, axis=1, batch_dims=1)
    return ops.squeeze(gather_time(x, ops.expand_dims(last, 1)), 1)


def gather_time(x, index):
    """``x[b, index[b, t], :]`` for x [B,T,F] and index [B,T'] (the feature axis broadcasts)."""
    return ops.take_along_axis(x, ops.expand_dims(index, -1), axis=1)
