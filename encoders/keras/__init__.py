"""Keras 3 backend: padding-correct embedding, encoder and pooling (training runs on TensorFlow).

``import encoders.keras`` never imports torch. All layers are registered for the ``.keras``
format (package "encoders") and load with ``keras.saving.load_model(path, safe_mode=True)``.
The modules mirror ``encoders.torch``: masking, checks, embedding, rnn, pooling, classifier,
batches, checkpoint_io, runtime, runner.
"""
from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.pooling import MaskedPooling
from encoders.keras.rnn import RNNEncoder

__all__ = ["PaddedEmbedding", "RNNEncoder", "MaskedPooling", "build_classifier"]


def __getattr__(name):  # the model builder is only needed for training
    if name == "build_classifier":
        from encoders.keras.models import build_classifier

        return build_classifier
    raise AttributeError(name)
