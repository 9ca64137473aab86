"""Checks of the values that reach Keras layers, on every Keras backend.

- Concrete values (eager calls; ``model.fit`` on Keras' torch backend, which runs eagerly): checked
  with numpy, and the error names the bad value.
- TensorFlow graph mode (``tf.function``, ``model.fit``): a TF assertion in the graph.
- JAX under ``jax.jit`` (``model.fit``/``predict`` on the jax backend): the values are tracers and
  are *not* checked; no check ever branches on a traced value. JAX has no in-graph assertion that
  XLA keeps without a host round trip per step, so ids and masks fed to a jitted model are the
  caller's to check: the project's batches (``TokenBuffer.pad``) are right-padded and in range by
  construction, and an eager call checks them all.
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
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # inside tf.function (model.fit/predict) the values are not known: the graph check runs instead
        if not tf.executing_eagerly() or not hasattr(x, "numpy"):
            return None
        return x.numpy()
    if backend == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):  # under jax.jit: values unknown until run time
            return None
    elif backend == "torch" and getattr(x, "device", None) is not None and x.device.type == "meta":
        return None  # symbolic shape inference on the torch backend
    return np.asarray(ops.convert_to_numpy(x))


def graph_checks_survive_jit() -> bool:
    """Whether a layer may let Keras compile ``fit`` with XLA: on TensorFlow no, since XLA drops the
    ``tf.debugging`` asserts that check values in graph mode; on jax yes (it checks nothing under
    jit, and without jit every step would run op by op); torch's ``jit_compile`` is off by default."""
    return keras.backend.backend() != "tensorflow"


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


def check_token_ids(ids, input_dim: int, who: str = "PaddedEmbedding"):
    """``ids`` unchanged, after checking they are integers in ``[0, input_dim)``.

    Eagerly a bad id raises ``ValueError`` naming it and its position; in graph mode the
    returned tensor carries a TF assertion that fails with the offending ids.
    """
    if not is_integer_dtype(ids.dtype):
        raise TypeError(f"{who} expects integer token ids, got dtype {keras.backend.standardize_dtype(ids.dtype)}")
    values = concrete_numpy(ids)
    if values is not None:
        bad = (values < 0) | (values >= input_dim)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"token id {int(values[pos])} at position {pos} is outside the vocabulary "
                             f"[0, {input_dim})")
        return ids
    if keras.backend.backend() != "tensorflow":
        return ids
    import tensorflow as tf

    ok = ops.logical_and(ids >= 0, ids < input_dim)
    return graph_assert(tf.reduce_all(ok), f"{who}:", [_first_bad_id_line(ids, ok, input_dim)], then=ids)


def _first_bad_id_line(ids, ok, input_dim: int):
    """In the graph: the eager ``ValueError``'s line for the first id outside the vocabulary
    (``token id 13 at position (1, 1) is outside the vocabulary [0, 10)``), as a string tensor."""
    import tensorflow as tf

    rank = ids.shape.rank
    # a row of zeros after everything, so that an all-good (or empty) batch still has a "first" position
    where = tf.concat([tf.where(tf.logical_not(ok)), tf.zeros([1, rank], tf.int64)], 0)[0]
    value = tf.gather_nd(tf.pad(ids, [[0, 1]] * rank), where)
    pos = tf.strings.reduce_join(tf.strings.as_string(where), separator=", ") + ("," if rank == 1 else "")
    return tf.strings.join(["token id ", tf.strings.as_string(value), " at position (", pos,
                            f") is outside the vocabulary [0, {input_dim})"])
