"""The Keras classifier: the same (embedding, encoder, pooling, head) as the torch backend."""
from __future__ import annotations

import keras

from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.pooling import MaskedPooling
from encoders.keras.rnn import RNNEncoder


def build_classifier(vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 64,
                     cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                     pooling: str = "last", padding_idx: int = 0) -> keras.Model:
    """``tokens[B,T] int64 -> logits[B,num_classes]``; masks flow from the embedding.

    ``pooling="last"`` uses the encoder's ``final`` (``[fw h at len-1 ; bw h at 0]``), as torch does.
    """
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = PaddedEmbedding(vocab_size, embedding_dim, padding_idx=padding_idx, name="embedding")(tokens)
    out = RNNEncoder(hidden_size, cell=cell, num_layers=num_layers, bidirectional=bidirectional,
                     dropout=dropout, name="encoder")(x)
    pooled = out["final"] if pooling == "last" else MaskedPooling(pooling, name="pool")(out["sequence"])
    logits = keras.layers.Dense(num_classes, name="head")(pooled)
    return keras.Model(tokens, logits, name="sequence_classifier")


def compile_classifier(model: keras.Model, lr: float, weight_decay: float = 0.0,
                       clipnorm: float | None = None) -> keras.Model:
    """AdamW with global-norm clipping: what ``gradient_clip_val`` does in Lightning."""
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay,
                                                   global_clipnorm=clipnorm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    return model
