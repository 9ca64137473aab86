"""The Keras task models, one builder and compile per task: embedding -> encoder -> head.

The same embedding -> encoder -> pooling -> head as the torch backend: a classifier, a tagger (a
``Dense`` head on every token's output, and its figures) and a regressor (a ``Dense(1)`` head).
``TASKS`` is the one map from a task to how it is built, compiled, validated and reported on Keras;
the runner, the exporter and the converters ask it (the mirror of ``encoders.torch.models``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import keras
import numpy as np

from encoders.config import TAG_PAD_ID, ClassifierSpec
from encoders.data.flat import buffer_logits
from encoders.keras.batches import compile_width
from encoders.keras.embedding import PaddedEmbedding
from encoders.keras.pooling import MaskedPooling
from encoders.keras.rnn import RNNEncoder
from encoders.run.report import test_report as classification_report
from encoders.run.files import read_labels, run_dir_of
from encoders.tasks import TaggingTally, with_prefix

CLASSIFIER_NAME = "sequence_classifier"


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
    return keras.Model(tokens, logits, name=CLASSIFIER_NAME)


def spec_of(model: keras.Model) -> ClassifierSpec:
    """The ``ClassifierSpec`` a model from ``build_classifier`` was built from (read off its layers)."""
    emb, enc, head = model.get_layer("embedding"), model.get_layer("encoder"), model.get_layer("head")
    pool = next((layer for layer in model.layers if layer.name == "pool"), None)
    # the model's name says its task (each builder names its model)
    task = next((name for name, t in TASKS.items() if t.model_name == model.name), "classification")
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


def _classification_report(model: keras.Model, split, batch_size: int, tag_names) -> Dict[str, Any]:
    spec = spec_of(model)
    logits = buffer_logits(numpy_logits, model, split.tokens, spec.num_classes, batch_size, spec.padding_idx)
    return classification_report(logits, split.labels, spec.num_classes)


def _tagging_report(model: keras.Model, split, batch_size: int, tag_names) -> Dict[str, Any]:
    spec = spec_of(model)
    order = np.argsort(-split.lengths, kind="stable")
    batches = ((b["tokens"], b["tags"]) for b in (split.tokens.pad(order[i:i + batch_size], spec.padding_idx,
                                                                    sort=False, tags=split.tags)
                                                  for i in range(0, len(order), batch_size)))
    names = list(tag_names) if tag_names is not None and len(tag_names) == spec.num_classes else [
        str(i) for i in range(spec.num_classes)]
    t = tally(model, batches, names)
    return with_prefix(t.figures(), "test", ("tokens", t.tokens))


def _regression_report(model: keras.Model, split, batch_size: int, tag_names) -> Dict[str, Any]:
    from encoders.metrics import regression_report

    spec = spec_of(model)
    pred = np.zeros(len(split), dtype=np.float32)
    for idx, b in split.tokens.length_batches(batch_size, spec.padding_idx):
        pred[idx] = np.asarray(model(b["tokens"], training=False))[:, 0]
    rep = regression_report(split.labels, pred)
    return {"test_rmse": rep["rmse"], "test_mae": rep["mae"], "test_loss": rep["rmse"] ** 2,
            "test_examples": rep["num_examples"]}


def _tagging_validation(batches, tag_names: Sequence[str]) -> list:
    return [TaggingValidation(batches, tag_names)]


@dataclass(frozen=True)
class Task:
    """How one task is built, compiled, validated and reported on Keras.

    Attributes:
        model_name: the name its builder gives the model (``spec_of`` reads the task from it).
        build: ``ClassifierSpec -> keras.Model``.
        compile: ``(model, lr, weight_decay, clipnorm, optimizer) -> model``.
        report: ``(model, split, batch_size, tag_names) -> test figures``.
        validation: ``(batches, tag_names) -> callbacks`` that add the validation figures to each
            epoch's logs; None: ``fit`` validates with the compiled metrics.
        per_token: the output is ``[B, T, C]`` (a tag per token).
        scalar: the output is one number per row (``[B, 1]`` in Keras, ``[B]`` once served).
    """

    model_name: str
    build: Callable[[ClassifierSpec], keras.Model]
    compile: Callable[..., keras.Model]
    report: Callable[..., Dict[str, Any]]
    validation: Optional[Callable[..., list]] = None
    per_token: bool = False
    scalar: bool = False


TASKS: Dict[str, Task] = {
    "classification": Task(CLASSIFIER_NAME, build_classifier, compile_classifier, _classification_report),
    "tagging": Task(TAGGER_NAME, build_tagger, compile_tagger, _tagging_report, _tagging_validation, per_token=True),
    "regression": Task(REGRESSOR_NAME, build_regressor, compile_regressor, _regression_report, scalar=True),
}
_SCALAR_NAMES = frozenset(t.model_name for t in TASKS.values() if t.scalar)


def task_of(model: keras.Model) -> Task:
    """The ``Task`` entry of a model one of the builders made."""
    return TASKS[spec_of(model).task]


def build_model(spec: ClassifierSpec, cfg: Any = None, vectors: Any = None,
                tag_names: Optional[Sequence[str]] = None) -> keras.Model:
    """The untrained model of ``spec``'s task (not compiled: ``compile_model`` gives it its optimizer).

    Args:
        spec: the model's shape and task.
        cfg: the run's ``TrainConfig``: ``model.freeze_embeddings`` (the optimizer, which needs the
            epoch's step count, is ``compile_model``'s). None: a trainable table.
        vectors: ``encoders.tasks.PretrainedVectors`` copied into the embedding (its pad row zero),
            or None.
        tag_names: the tags by id, for a tagger: only checked here (a ``.keras`` file does not keep
            them; the run's ``vocab.json`` does, see ``model_tag_names``).

    Returns:
        A functional ``keras.Model`` named after its task (``TASKS[task].model_name``).

    Raises:
        ValueError: ``tag_names`` of another length than the tagger's ``num_classes``.
    """
    task = TASKS[spec.task]
    if task.per_token and tag_names is not None and len(tag_names) != spec.num_classes:
        raise ValueError(f"{len(tag_names)} tag_names for {spec.num_classes} tags")
    model = task.build(spec)
    emb = model.get_layer("embedding")
    if vectors is not None:
        vectors.matrix[spec.padding_idx] = 0.0
        emb.embeddings.assign(vectors.matrix)
    if cfg is not None and cfg.model.freeze_embeddings:
        emb.trainable = False
    return model


def compile_model(model: keras.Model, lr: float = 3e-3, weight_decay: float = 0.0, clipnorm: Optional[float] = None,
                  optimizer: Optional[keras.optimizers.Optimizer] = None) -> keras.Model:
    """Compile a model of ``build_model`` with its task's loss and metrics.

    Args:
        model: the model.
        lr, weight_decay: AdamW's, when no ``optimizer`` is given.
        clipnorm: global-norm clipping (``gradient_clip_val``).
        optimizer: the run's optimizer (``encoders.keras.recipe.build_optimizer``'s); wins over AdamW.

    Returns:
        ``model``, compiled.
    """
    return task_of(model).compile(model, lr, weight_decay, clipnorm, optimizer)


def validation_callbacks(model: keras.Model, batches, tag_names: Sequence[str]) -> list:
    """Callbacks that put the task's validation figures into each epoch's logs (first among the
    callbacks, so the loggers and checkpoints see them); empty when ``fit``'s own validation does."""
    task = task_of(model)
    return task.validation(batches, tag_names) if task.validation is not None else []


def test_report(model: keras.Model, split, batch_size: int,
                tag_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The ``test_*`` figures of ``model`` over a split with targets, as its task reports them.

    Args:
        model: a trained model of ``build_model``.
        split: an ``encoders.data.splits.Split`` with labels (or tags).
        batch_size: rows per batch.
        tag_names: a tagger's tags by id, for span F1 (ids as names when None).

    Returns:
        The figures the torch backend's ``test_report`` gives for the same task.
    """
    return task_of(model).report(model, split, batch_size, tag_names)


def model_tag_names(model: keras.Model, path: str = "") -> List[str]:
    """The names of ``model``'s output classes by id: the labels of the run's ``vocab.json`` (the run
    dir that holds ``path``, a ``RUN_DIR/checkpoints/*.keras`` file), ids as names when it has none
    that fit.

    Args:
        model: a model of ``build_model``.
        path: the model's ``.keras`` file inside its run dir.
    """
    num = spec_of(model).num_classes
    return read_labels(run_dir_of(path), num) if path else [str(i) for i in range(num)]


def numpy_logits(model: keras.Model, tokens: np.ndarray, lengths: Optional[np.ndarray] = None) -> np.ndarray:
    """``model(tokens, training=False)`` on one right-padded batch.

    Args:
        model: a model of ``build_model``.
        tokens: ``[B, T]`` ids, right-padded with the pad id (the mask says where rows end).
        lengths: accepted for symmetry with torch and ignored.

    Returns:
        float32 ``[B, C]`` (a tagger: ``[B, T, C]``; a regressor: ``[B]``, not Keras' ``[B, 1]``).
    """
    # predict_on_batch: a compiled predict step in inference mode (training=False) that Keras
    # retraces with unknown batch and time sizes after a few shapes, far faster than eager calls
    tokens = np.ascontiguousarray(tokens, dtype=np.int64)
    T = tokens.shape[1]
    if keras.backend.backend() != "tensorflow":  # jax compiles per shape: a few widths, exact at padding
        tokens = np.pad(tokens, ((0, 0), (0, compile_width(T) - T)),
                        constant_values=model.get_layer("embedding").padding_idx)
    out = np.asarray(model.predict_on_batch(tokens), dtype=np.float32)
    if out.ndim == 3:  # a tagger: back to the batch's own steps
        out = out[:, :T]
    if model.name in _SCALAR_NAMES:
        out = out.reshape(out.shape[0])
    return out
