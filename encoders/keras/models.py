"""The Keras task models, one builder and compile per task: embedding -> encoder -> head.

The same embedding -> encoder -> pooling -> head as the torch backend: a classifier, a tagger (a
``Dense`` head on every token's output, and its figures) and a regressor (a ``Dense(1)`` head).
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np

from encoders.config import TAG_PAD_ID, ClassifierSpec
from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.pooling import MaskedPooling
from encoders.keras.rnn import RNNEncoder
from encoders.tasks import TaggingTally


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


TAGGER_NAME = "sequence_tagger"


def build_tagger(spec: ClassifierSpec) -> keras.Model:
    """A functional ``keras.Model`` ``tokens [B, T] int64 -> logits [B, T, num_classes]``.

    Layers are named ``embedding``, ``encoder`` and ``head`` (as the torch ``SequenceTagger``'s
    modules); the output carries the embedding's mask (``tokens != padding_idx``).
    """
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = PaddedEmbedding(spec.vocab_size, spec.embedding_dim, padding_idx=spec.padding_idx, name="embedding")(tokens)
    out = RNNEncoder(spec.hidden_size, cell=spec.cell, num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                     dropout=spec.dropout, name="encoder")(x)
    logits = keras.layers.Dense(spec.num_classes, name="head")(out["sequence"])
    return keras.Model(tokens, logits, name=TAGGER_NAME)


def tagging_loss() -> keras.losses.Loss:
    """Cross-entropy over real tokens only: tags equal to ``TAG_PAD_ID`` (pad positions) are skipped and
    the sum is divided by the count of real tokens (0 for a batch without any), as the torch tagger does."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=TAG_PAD_ID)


def compile_tagger(model: keras.Model, lr: float, weight_decay: float = 0.0,
                   clipnorm: Optional[float] = None, optimizer=None) -> keras.Model:
    """AdamW with global-norm clipping and the masked loss; the figures come from ``TaggingValidation``."""
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay,
                                                                global_clipnorm=clipnorm),
                  loss=tagging_loss())
    return model


def tally(model: keras.Model, batches, tag_names: Sequence[str]) -> TaggingTally:
    """A ``TaggingTally`` of ``model`` over padded ``(tokens, tags)`` batches."""
    out = TaggingTally(tag_names)
    for tokens, tags in batches:
        out.update(np.asarray(model(tokens, training=False)), tags)
    return out


class TaggingValidation(keras.callbacks.Callback):
    """Adds ``val_loss``, ``val_acc``, ``val_macro_f1`` (and ``val_span_f1``) to each epoch's logs, from
    one pass over the validation batches; put it first, so the loggers and checkpoints see them."""

    def __init__(self, batches, tag_names: Sequence[str]):
        super().__init__()
        self.batches, self.tag_names = batches, list(tag_names)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        self.batches.epoch = epoch
        for name, value in tally(self.model, self.batches.batches(), self.tag_names).figures().items():
            logs[f"val_{name}"] = float(value)


REGRESSOR_NAME = "sequence_regressor"


def build_regressor(spec: ClassifierSpec) -> keras.Model:
    """A functional ``keras.Model`` ``tokens [B, T] int64 -> [B, 1]`` (targets are fed as ``[B, 1]``)."""
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = PaddedEmbedding(spec.vocab_size, spec.embedding_dim, padding_idx=spec.padding_idx, name="embedding")(tokens)
    out = RNNEncoder(spec.hidden_size, cell=spec.cell, num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                     dropout=spec.dropout, name="encoder")(x)
    pooled = out["final"] if spec.pooling == "last" else MaskedPooling(spec.pooling, name="pool")(out["sequence"])
    return keras.Model(tokens, keras.layers.Dense(1, name="head")(pooled), name=REGRESSOR_NAME)


def compile_regressor(model: keras.Model, lr: float, weight_decay: float = 0.0,
                      clipnorm: Optional[float] = None, optimizer=None) -> keras.Model:
    """AdamW, mean squared error, and ``rmse``/``mae`` over the whole split."""
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay,
                                                                global_clipnorm=clipnorm),
                  loss=keras.losses.MeanSquaredError(),
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")])
    return model
