"""Checks of the values that reach Keras layers: eagerly with numpy (the error names the bad value),
in graph mode (``tf.function``, ``model.fit``) with a TF assertion. Graph-mode checks need the
TensorFlow backend; on other backends only eager input is checked."""
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
