"""Keras tagging: embedding -> encoder -> a ``Dense`` head on every token's output, and its figures."""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np

from encoders.config import TAG_PAD_ID, ClassifierSpec
from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.rnn import RNNEncoder
from encoders.tasks import TaggingTally

MODEL_NAME = "sequence_tagger"


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
    return keras.Model(tokens, logits, name=MODEL_NAME)


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
