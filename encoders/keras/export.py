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

import keras
import numpy as np
import tensorflow as tf


class ServingClassifier(tf.Module):
    def __init__(self, model: keras.Model, padding_idx: int, task: str = "classification"):
        super().__init__(name="sequence_classifier")
        self.model = model
        self.padding_idx = int(padding_idx)
        self.task = str(task)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="tokens"),
                                  tf.TensorSpec([None], tf.int64, name="lengths")])
    def serve(self, tokens, lengths):
        pad = tf.constant(self.padding_idx, tf.int64)
        tokens = tf.concat([tokens, tf.fill([tf.shape(tokens)[0], 1], pad)], axis=1)
        steps = tf.range(tf.shape(tokens, out_type=tf.int64)[1], dtype=tf.int64)
        real = steps[tf.newaxis, :] < lengths[:, tf.newaxis]
        tokens = tf.where(real, tokens, pad)
        logits = tf.cast(self.model(tokens, training=False), tf.float32)
        if self.task == "tagging":  # the caller's T; steps past a row's length are zero
            logits = (logits * tf.cast(real, tf.float32)[:, :, tf.newaxis])[:, :-1]
        elif self.task == "regression":
            logits = logits[:, 0]
        return {"logits": logits}


def to_savedmodel(model: keras.Model, path: str, padding_idx: int) -> None:
    """Write ``model`` as a SavedModel directory at ``path`` (signature ``serving_default``)."""
    from encoders.keras.models import spec_of

    module = ServingClassifier(model, padding_idx, spec_of(model).task)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def load_savedmodel(path: str):
    """A function ``(tokens, lengths) -> logits`` running a SavedModel's ``serving_default`` signature."""
    serve = tf.saved_model.load(path).signatures["serving_default"]

    def run(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = serve(tokens=tf.constant(tokens, tf.int64), lengths=tf.constant(lengths, tf.int64))
        return out["logits"].numpy()

    return run
