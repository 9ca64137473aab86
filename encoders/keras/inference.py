"""A trained Keras classifier for prediction: loaded safely, called with ``training=False``.

The mirror of ``encoders.torch.inference``; ``encoders.load_run`` uses the one of the run's backend.
The Keras model takes tokens only: lengths come from its mask (tokens != pad), so the batches
must be right-padded with the pad id (``TokenBuffer.pad`` does that).
"""
from __future__ import annotations

from typing import Optional, Tuple

import keras
import numpy as np

from encoders.config import ClassifierSpec
from encoders.keras.checkpoint_io import load_keras_model
from encoders.keras.models import numpy_logits, spec_of


def load_classifier(path: str) -> Tuple[keras.Model, ClassifierSpec]:
    """A ``.keras`` classifier, tagger or regressor (scanned, then ``safe_mode=True``), without its
    optimizer; the spec's ``task`` says which (``spec_of``)."""
    model = load_keras_model(path, compile=False)
    return model, spec_of(model)


def batch_logits(model, tokens: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """``model(tokens, training=False)`` on one right-padded batch (``encoders.keras.models.numpy_logits``).

    Args:
        model: a model of ``load_classifier``.
        tokens: ``[B, T]`` ids, right-padded with the pad id.
        lengths: accepted for symmetry with torch and ignored: the mask says where rows end.

    Returns:
        float32 ``[B, C]`` (a tagger: ``[B, T, C]``; a regressor: ``[B]``, as the torch one, not
        Keras' ``[B, 1]``).
    """
    return numpy_logits(model, tokens, lengths)
