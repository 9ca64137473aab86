"""Keras regression: the classifier's embedding -> encoder -> pooling, then a ``Dense(1)`` head."""
from __future__ import annotations

from typing import Optional

import keras

from encoders.config import ClassifierSpec
from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.pooling import MaskedPooling
from encoders.keras.rnn import RNNEncoder

MODEL_NAME = "sequence_regressor"


def build_regressor(spec: ClassifierSpec) -> keras.Model:
    """A functional ``keras.Model`` ``tokens [B, T] int64 -> [B, 1]`` (targets are fed as ``[B, 1]``)."""
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = PaddedEmbedding(spec.vocab_size, spec.embedding_dim, padding_idx=spec.padding_idx, name="embedding")(tokens)
    out = RNNEncoder(spec.hidden_size, cell=spec.cell, num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                     dropout=spec.dropout, name="encoder")(x)
    pooled = out["final"] if spec.pooling == "last" else MaskedPooling(spec.pooling, name="pool")(out["sequence"])
    return keras.Model(tokens, keras.layers.Dense(1, name="head")(pooled), name=MODEL_NAME)


def compile_regressor(model: keras.Model, lr: float, weight_decay: float = 0.0,
                      clipnorm: Optional[float] = None, optimizer=None) -> keras.Model:
    """AdamW, mean squared error, and ``rmse``/``mae`` over the whole split."""
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay,
                                                                global_clipnorm=clipnorm),
                  loss=keras.losses.MeanSquaredError(),
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")])
    return model
