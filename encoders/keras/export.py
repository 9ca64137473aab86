"""A TensorFlow SavedModel from a Keras classifier: ``tokens`` + ``lengths`` -> ``{"logits": ...}``.

The mirror of ``encoders.torch.export`` (ONNX); ``encoders.use.export.export_run`` drives both.

The Keras model reads its lengths from the mask (tokens != pad). The serving function takes the
lengths explicitly, as the ONNX model does: every token at ``t >= lengths[b]`` becomes the pad id
before the model runs (so what a caller leaves in the padding never matters), and one pad column
is appended so that ``T = 0`` works. Signature ``serving_default``: ``tokens`` int64 ``[None, None]``,
``lengths`` int64 ``[None]`` -> ``{"logits": float32 [None, C]}`` (a tagger: ``[None, None, C]``, zero
at ``t >= lengths[b]``; a regressor: ``[None]``, as the ONNX export).
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf


class ServingClassifier(tf.Module):
    """A model of ``encoders.keras.models.build_model`` behind the serving signature.

    Args:
        model: the Keras model.
        padding_idx: its pad id.
        per_token: the model gives ``[B, T, C]`` (a tagger): steps past a row's length are zeroed.
        scalar: the model gives ``[B, 1]`` (a regressor): served as ``[B]``.
    """

    def __init__(self, model: keras.Model, padding_idx: int, per_token: bool = False, scalar: bool = False):
        super().__init__(name="sequence_classifier")
        self.model = model
        self.padding_idx = int(padding_idx)
        self.per_token, self.scalar = bool(per_token), bool(scalar)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="tokens"),
                                  tf.TensorSpec([None], tf.int64, name="lengths")])
    def serve(self, tokens, lengths):
        pad = tf.constant(self.padding_idx, tf.int64)
        tokens = tf.concat([tokens, tf.fill([tf.shape(tokens)[0], 1], pad)], axis=1)
        steps = tf.range(tf.shape(tokens, out_type=tf.int64)[1], dtype=tf.int64)
        real = steps[tf.newaxis, :] < lengths[:, tf.newaxis]
        tokens = tf.where(real, tokens, pad)
        logits = tf.cast(self.model(tokens, training=False), tf.float32)
        if self.per_token:  # the caller's T; steps past a row's length are zero
            logits = (logits * tf.cast(real, tf.float32)[:, :, tf.newaxis])[:, :-1]
        elif self.scalar:
            logits = logits[:, 0]
        return {"logits": logits}


def export_model(model: keras.Model, path: str) -> None:
    """Write ``model`` as a SavedModel directory at ``path`` (signature ``serving_default``; the
    mirror of ``encoders.torch.export.export_model``).

    Args:
        model: a model of ``encoders.keras.models.build_model`` (or loaded from its ``.keras`` file).
        path: the SavedModel directory to write.
    """
    from encoders.keras.models import spec_of, task_of

    task = task_of(model)
    module = ServingClassifier(model, spec_of(model).padding_idx, task.per_token, task.scalar)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def load_exported(path: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A SavedModel's ``serving_default`` signature as a function ``(tokens, lengths) -> logits``.

    Args:
        path: a SavedModel directory ``export_model`` wrote.

    Returns:
        A function of int64 ``tokens [B, T]`` and ``lengths [B]`` giving float32 ``logits``.
    """
    serve = tf.saved_model.load(path).signatures["serving_default"]

    def run(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = serve(tokens=tf.constant(tokens, tf.int64), lengths=tf.constant(lengths, tf.int64))
        return out["logits"].numpy()

    return run
