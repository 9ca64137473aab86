"""A trained Keras classifier for prediction: loaded safely, called with ``training=False``.

The mirror of ``encoders.torch.inference``; ``encoders.load_run`` uses the one of the run's backend.
The Keras model takes tokens only: lengths come from its mask (tokens != pad), so the batches
must be right-padded with the pad id (``TokenBuffer.pad`` does that).
"""
from __future__ import annotations

from typing import Tuple

import keras
import numpy as np

from encoders.config import ClassifierSpec
from encoders.keras.batches import compile_width
from encoders.keras.checkpoint_io import load_keras_model
from encoders.keras.models import spec_of

REGRESSOR = "sequence_regressor"  # encoders.keras.models.REGRESSOR_NAME (not imported: it pulls the layers)


def load_classifier(path: str) -> Tuple[keras.Model, ClassifierSpec]:
    """A ``.keras`` classifier, tagger or regressor (scanned, then ``safe_mode=True``), without its
    optimizer; the spec's ``task`` says which (``spec_of``)."""
    model = load_keras_model(path, compile=False)
    return model, spec_of(model)


def padding_idx(model) -> int:
    return model.get_layer("embedding").padding_idx


def batch_logits(model, tokens: np.ndarray, lengths: np.ndarray = None) -> np.ndarray:
    """``model(tokens, training=False)`` on one right-padded batch; float32 ``[B, C]`` (a tagger:
    ``[B, T, C]``; a regressor: ``[B]``, as the torch one, not Keras' ``[B, 1]``).

    ``lengths`` is accepted for symmetry with torch and ignored: the mask says where rows end.
    """
    # predict_on_batch: a compiled predict step in inference mode (training=False) that Keras
    # retraces with unknown batch and time sizes after a few shapes, far faster than eager calls
    tokens = np.ascontiguousarray(tokens, dtype=np.int64)
    T = tokens.shape[1]
    if keras.backend.backend() != "tensorflow":  # jax compiles per shape: a few widths, exact at padding
        tokens = np.pad(tokens, ((0, 0), (0, compile_width(T) - T)), constant_values=padding_idx(model))
    out = np.asarray(model.predict_on_batch(tokens), dtype=np.float32)
    if out.ndim == 3:  # a tagger: back to the batch's own steps
        out = out[:, :T]
    if model.name == REGRESSOR:
        out = out.reshape(out.shape[0])
    return out
