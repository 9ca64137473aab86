"""The Keras classifier: the same embedding -> encoder -> pooling -> head as the torch backend."""
from __future__ import annotations

from typing import Optional

import keras

from encoders.config import ClassifierSpec
from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.pooling import MaskedPooling
from encoders.keras.rnn import RNNEncoder


def build_classifier(spec: ClassifierSpec) -> keras.Model:
    """A functional ``keras.Model`` ``tokens [B, T] int64 -> logits [B, num_classes]``.

    Layers are named ``embedding``, ``encoder``, ``pool`` (not for ``pooling="last"``) and
    ``head``; masks flow from the embedding. ``pooling="last"`` uses the encoder's ``final``
    (``[fw h at len-1 ; bw h at 0]``), as torch does.
    """
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = PaddedEmbedding(spec.vocab_size, spec.embedding_dim, padding_idx=spec.padding_idx, name="embedding")(tokens)
    out = RNNEncoder(spec.hidden_size, cell=spec.cell, num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                     dropout=spec.dropout, name="encoder")(x)
    pooled = out["final"] if spec.pooling == "last" else MaskedPooling(spec.pooling, name="pool")(out["sequence"])
    logits = keras.layers.Dense(spec.num_classes, name="head")(pooled)
    return keras.Model(tokens, logits, name="sequence_classifier")


def spec_of(model: keras.Model) -> ClassifierSpec:
    """The ``ClassifierSpec`` a model from ``build_classifier`` was built from (read off its layers)."""
    emb, enc, head = model.get_layer("embedding"), model.get_layer("encoder"), model.get_layer("head")
    pool = next((layer for layer in model.layers if layer.name == "pool"), None)
    # the model's name says its task (build_tagger / build_regressor name theirs)
    task = {"sequence_tagger": "tagging", "sequence_regressor": "regression"}.get(model.name, "classification")
    return ClassifierSpec(vocab_size=emb.input_dim, num_classes=head.units, embedding_dim=emb.output_dim,
                          hidden_size=enc.hidden_size, cell=enc.cell, num_layers=enc.num_layers,
                          bidirectional=enc.bidirectional, dropout=enc.dropout,
                          pooling=pool.mode if pool is not None else "last", padding_idx=emb.padding_idx, task=task)


def compile_classifier(model: keras.Model, lr: float, weight_decay: float = 0.0,
                       clipnorm: Optional[float] = None, optimizer=None) -> keras.Model:
    """AdamW with global-norm clipping: what ``gradient_clip_val`` does in Lightning."""
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay,
                                                                global_clipnorm=clipnorm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    return model
