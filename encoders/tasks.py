"""What differs between the tasks, framework-free: figures, the checkpoint metric, pretrained vectors.

Both backends use these, so a figure means the same in a torch run and a tf run:

* ``TaggingTally``: sums over real tokens (loss, confusion counts, entity counts) of any number of
  padded batches; ``figures()`` turns them into ``loss``, ``acc``, ``macro_f1`` and, for a BIO-like
  tag set, ``span_f1``. Sums, not per-batch means: the same sentences in other batches or batch
  sizes give the same figures, and ranks can add their tallies.
* ``RegressionTally``: the same for ``mse``/``rmse``/``mae``.
* ``monitor(task)``: the validation metric ``best`` checkpoints are chosen by.
* ``pretrained_vectors(cfg, splits)``: a vectors file aligned to the run's vocabulary.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from encoders.config import DEFAULT_EMBEDDING_DIM, MONITOR, TAG_PAD_ID, WORD_TOKENIZERS
from encoders.errors import ConfigError

log = logging.getLogger(__name__)

# per-epoch history in metrics.json, the same keys for both backends (lr: what each epoch started with)
HISTORY_KEYS = {
    "classification": ["train/loss", "train/acc", "val/loss", "val/acc", "lr"],
    "tagging": ["train/loss", "val/loss", "val/acc", "val/macro_f1", "val/span_f1", "lr"],
    "regression": ["train/loss", "val/loss", "val/rmse", "val/mae", "lr"],
}


def monitor(task: str) -> Tuple[str, str]:
    return MONITOR[task]


def summary(metrics: Dict[str, Any]) -> str:
    """One log line of a run's main validation figures (whichever task it was)."""
    keys = ("val_acc", "val_macro_f1", "val_span_f1", "val_rmse", "val_mae", "val_loss")
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys if isinstance(metrics.get(k), (int, float)))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class TaggingTally:
    """Sums of a tagger's figures over real tokens (``gold != TAG_PAD_ID``), batch after batch.

    ``update(logits [B,T,C], gold [B,T])`` adds a padded batch; rows may be empty and a batch may
    hold no real token at all (it adds nothing). ``vector()``/``add_vector`` expose the sums as one
    float64 array (to add the tallies of several processes).
    """

    def __init__(self, tag_names: Sequence[str]):
        from encoders.metrics import is_bio_scheme

        self.names = [str(n) for n in tag_names]
        self.num_tags = len(self.names)
        self.bio = is_bio_scheme(self.names)
        self.loss_sum, self.tokens = 0.0, 0
        self.confusion = np.zeros((self.num_tags, self.num_tags), dtype=np.int64)
        self.spans = np.zeros(3, dtype=np.int64)  # gold chunks, predicted chunks, correct chunks

    def update(self, logits: Any, gold: Any) -> None:
        logits, gold = np.asarray(logits), np.asarray(gold)
        if logits.ndim != 3 or logits.shape[:2] != gold.shape or logits.shape[2] != self.num_tags:
            raise ValueError(f"logits must be [B, T, {self.num_tags}] and gold [B, T], got {logits.shape}, {gold.shape}")
        mask = gold != TAG_PAD_ID
        if not mask.any():
            return
        g = gold[mask].astype(np.int64)
        if g.min() < 0 or g.max() >= self.num_tags:
            raise ValueError(f"tag {int(g[(g < 0) | (g >= self.num_tags)][0])} is outside [0, {self.num_tags})")
        lp = log_softmax(logits[mask])
        self.loss_sum += float(-lp[np.arange(len(g)), g].sum())
        self.tokens += int(g.size)
        pred = logits.argmax(-1)
        self.confusion += np.bincount(g * self.num_tags + pred[mask], minlength=self.num_tags ** 2).reshape(
            self.num_tags, self.num_tags)
        if self.bio:
            self.add_spans(pred, gold)

    def add_spans(self, pred: Any, gold: Any) -> None:
        """Adds the chunk counts of a padded batch of predicted and gold tag ids ([B, T], gold
        ``TAG_PAD_ID`` at pads); chunks are found per row, so this runs on the host."""
        from encoders.metrics import span_f1

        pred, gold = np.asarray(pred), np.asarray(gold)
        mask = gold != TAG_PAD_ID
        names = np.asarray(self.names, dtype=object)
        rows = [r for r in range(len(gold)) if mask[r].any()]
        rep = span_f1([list(names[gold[r][mask[r]]]) for r in rows], [list(names[pred[r][mask[r]]]) for r in rows])
        self.spans += (rep["num_gold"], rep["num_pred"], rep["num_correct"])

    def vector(self) -> np.ndarray:
        return np.concatenate([[self.loss_sum, self.tokens], self.confusion.ravel(), self.spans]).astype(np.float64)

    def set_vector(self, v: Any) -> None:
        v = np.asarray(v, dtype=np.float64)
        self.loss_sum, self.tokens = float(v[0]), int(round(v[1]))
        c = self.num_tags ** 2
        self.confusion = np.rint(v[2:2 + c]).astype(np.int64).reshape(self.num_tags, self.num_tags)
        self.spans = np.rint(v[2 + c:]).astype(np.int64)

    def figures(self) -> Dict[str, float]:
        """``loss`` (mean cross-entropy per real token), ``acc``, ``macro_f1`` (over the tags present in gold or
        predictions) and, for a BIO-like tag set, ``span_f1`` (entities, as conlleval counts them). No token: all 0.0, never NaN."""
        from encoders.metrics import macro_f1

        tp = np.diag(self.confusion).astype(np.float64)
        out = {"loss": self.loss_sum / self.tokens if self.tokens else 0.0,
               "acc": float(tp.sum() / self.tokens) if self.tokens else 0.0,
               "macro_f1": macro_f1(self.confusion)}
        if self.bio:
            n_gold, n_pred, correct = (float(x) for x in self.spans)
            p = correct / n_pred if n_pred else 0.0
            r = correct / n_gold if n_gold else 0.0
            out["span_f1"] = 2 * p * r / (p + r) if p + r else 0.0
        return out


class RegressionTally:
    """Sums of squared and absolute errors over examples, batch after batch."""

    def __init__(self):
        self.sq, self.abs, self.n = 0.0, 0.0, 0

    def update(self, pred: Any, gold: Any) -> None:
        err = np.asarray(pred, dtype=np.float64).reshape(-1) - np.asarray(gold, dtype=np.float64).reshape(-1)
        self.sq += float((err * err).sum())
        self.abs += float(np.abs(err).sum())
        self.n += int(err.size)

    def figures(self) -> Dict[str, float]:
        mse = self.sq / self.n if self.n else 0.0
        return {"loss": mse, "rmse": float(np.sqrt(mse)), "mae": self.abs / self.n if self.n else 0.0}


def with_prefix(figures: Dict[str, float], prefix: str, count: Optional[Tuple[str, int]] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {f"{prefix}_{k}": float(v) for k, v in figures.items()}
    if count is not None:
        out[f"{prefix}_{count[0]}"] = int(count[1])
    return out


# -- pretrained word vectors -------------------------------------------------------------------------
@dataclass
class PretrainedVectors:
    matrix: np.ndarray  # float32 [vocab, dim]; row 0 (pad) zero
    coverage: float  # share of the vocabulary's words (not pad/unk) found in the file
    dim: int
    path: str


def pretrained_vectors(cfg: Any, splits: Any) -> Optional[PretrainedVectors]:
    """``model.pretrained_embeddings`` aligned to the run's vocabulary, or None when none is set.

    The table's size comes from the file: an explicit ``model.embedding_dim`` that differs is a
    ``ConfigError``; only word-level vocabularies (``whitespace``/``char``) can be aligned.
    """
    from encoders.data.vectors import load_vectors, vocab_coverage
    from encoders.data.vocab import Vocab

    path = cfg.model.pretrained_embeddings
    if not path:
        return None
    vocab = splits.vocab
    if not isinstance(vocab, Vocab) or vocab.tokenizer not in WORD_TOKENIZERS:
        raise ConfigError(f"model.pretrained_embeddings is not supported with data.tokenizer="
                          f"{getattr(vocab, 'tokenizer_name', cfg.data.tokenizer)}: word vectors align to a word-level "
                          f"vocabulary (data.tokenizer=whitespace or char)")
    matrix, found, dim = load_vectors(path, vocab.tokens, lowercase=vocab.lowercase, seed=cfg.seed)
    if cfg.model.embedding_dim is not None and cfg.model.embedding_dim != dim:
        raise ConfigError(f"model.embedding_dim={cfg.model.embedding_dim} conflicts with the {dim}-dimensional vectors "
                          f"of model.pretrained_embeddings={path}: the table's size comes from the file, so drop "
                          f"model.embedding_dim (or set it to {dim})")
    coverage = vocab_coverage(found)
    log.info("pretrained vectors %s: %d-dimensional, %d of %d vocabulary words found (%.1f%%)%s", path, dim,
             int(found.sum()), max(len(vocab) - 2, 0), 100 * coverage,
             "; frozen" if cfg.model.freeze_embeddings else "")
    return PretrainedVectors(matrix.astype(np.float32), coverage, dim, path)


def embedding_dim(cfg: Any, vectors: Optional[PretrainedVectors]) -> int:
    return vectors.dim if vectors is not None else (cfg.model.embedding_dim or DEFAULT_EMBEDDING_DIM)


def vectors_report(vectors: Optional[PretrainedVectors], frozen: bool) -> Dict[str, Any]:
    if vectors is None:
        return {}
    return {"pretrained_coverage": vectors.coverage, "pretrained_embeddings": vectors.path,
            "embedding_dim": vectors.dim, "freeze_embeddings": bool(frozen)}


def tag_names(splits: Any) -> List[str]:
    vocab = splits.vocab
    names = list(getattr(vocab, "labels", []) or [])
    return names if len(names) == splits.num_classes else [str(i) for i in range(splits.num_classes)]


# -- what using a trained run does per task: load_run, predict, evaluate, export ---------------------
PREDICTION, PROBABILITY = "prediction", "probability"  # the columns predict adds


class Task:
    """What the commands that use a trained run do for one task; ``TASKS[run.task]`` is the one.

    The base class is classification; ``Tagging`` and ``Regression`` change what differs.

    Attributes:
        name: the task's name (``task.name`` of the config, ``run.task``).
        per_word: the inputs are lists of words with one output per word (tagging): a text is not
            cut at ``data.max_tokens_per_example``, and predict/evaluate read a json/jsonl/parquet
            input's ``data.tokens_column`` when it has one.
        has_labels: the outputs are classes (or tags) named by ``run.labels``; a regression has none.
        has_probabilities: ``predict_proba`` and ``predict --probabilities`` exist (classification).
        gold_key: the ``data.*`` key of the column evaluate reads the gold values from.
        gold_what: how messages call that column.
    """

    name = "classification"
    per_word = False
    has_labels = True
    has_probabilities = True
    gold_key, gold_what = "label_column", "label column"

    def __repr__(self) -> str:
        return f"TASKS[{self.name!r}]"

    def labels(self, names: Sequence[Any], num_classes: int) -> Tuple[List[Any], bool]:
        """``run.labels`` and whether they are names (else class ids ``0..K-1``).

        Args:
            names: the label names in the run's ``vocab.json`` (``[]`` for integer labels).
            num_classes: the checkpoint's number of outputs.

        Returns:
            ``(labels by class id, string_labels)``.
        """
        return list(names) or list(range(num_classes)), bool(names)

    def logits(self, batch_logits: Any, model: Any, buf: Any, num_classes: int, batch_size: int, pad_id: int):
        """The model's outputs of every row of a ``TokenBuffer``, in its order (length-sorted batches).

        Args:
            batch_logits: the backend's ``inference.batch_logits(model, tokens, lengths)``.
            model: the loaded model.
            buf: the encoded rows (``encoders.data.flat.TokenBuffer``).
            num_classes: the number of outputs per row (or per word).
            batch_size: rows per batch.
            pad_id: the padding id.

        Returns:
            float32 ``[N, num_classes]`` (a tagger: one ``[words_i, num_tags]`` array per row; a
            regressor: ``[N]``).
        """
        from encoders.data.flat import buffer_logits

        return buffer_logits(batch_logits, model, buf, num_classes, batch_size, pad_id)

    def predictions(self, logits: Any, labels: Sequence[Any]) -> List[Any]:
        """What ``run.predict`` returns for the outputs of :meth:`logits`: the best label of each row."""
        return [labels[k] for k in logits.argmax(axis=1)]

    def prediction_columns(self, labels: Sequence[Any], probabilities: bool) -> List[str]:
        """The columns ``predict`` adds to a table (``probabilities``: ``--probabilities``)."""
        return [PREDICTION, PROBABILITY] + ([f"{PROBABILITY}_{label}" for label in labels] if probabilities else [])

    def predicted(self, run: Any, inputs: Sequence[Any], batch_size: int, probabilities: bool) -> Dict[str, Any]:
        """The values of :meth:`prediction_columns` for a chunk of ``inputs`` (texts, or lists of
        words when :attr:`per_word`), column by column, in that order."""
        proba = run.predict_proba(inputs, batch_size=batch_size)
        best = proba.argmax(axis=1) if len(inputs) else []
        columns = {PREDICTION: [run.labels[k] for k in best],
                   PROBABILITY: proba.max(axis=1).astype(float) if len(inputs) else []}
        if probabilities:
            for k, label in enumerate(run.labels):
                columns[f"{PROBABILITY}_{label}"] = proba[:, k].astype(float)
        return columns

    def gold(self, run: Any, values: Sequence[Any], inputs: Sequence[Any], where: str, column: str,
             first_row: int) -> Any:
        """Evaluate's gold values of a chunk, read as training read them.

        Args:
            run: the ``TrainedRun``.
            values: the cells of the gold column.
            inputs: the chunk's texts (lists of words when :attr:`per_word`).
            where: the input's name in messages.
            column: the gold column's name.
            first_row: the chunk's first data row (counted from 1) in the whole input.

        Returns:
            What the task's running evaluation adds: class ids (a tagger: one array of tag ids per
            row; a regressor: float targets).

        Raises:
            DataError: a missing or unknown gold value, named with its row.
        """
        from encoders.use.evaluation import gold_ids

        return gold_ids(values, run.labels, run.string_labels, where, column, first_row)

    def running_evaluation(self, run: Any, batch_size: int) -> Any:
        """The tally ``evaluate`` feeds chunk by chunk (``encoders.use.running_evaluation``)."""
        from encoders.use.running_evaluation import RunningEvaluation

        return RunningEvaluation(run, batch_size)

    def exported_logits(self, logits: Any, lengths: Any, width: int) -> Any:
        """The run's own logits of a check batch as an export must give them for a batch ``width``
        steps wide (a tagger's: cut to that width, zero past each row's length)."""
        return logits


class Classification(Task):
    """A label per text: the base behaviour."""


class Tagging(Task):
    """A tag per word: inputs are lists of words, outputs one per word."""

    name = "tagging"
    per_word = True
    has_probabilities = False
    gold_key, gold_what = "tags_column", "tags column"

    def labels(self, names: Sequence[Any], num_classes: int) -> Tuple[List[Any], bool]:
        # tags are strings; the model's tag ids are positions in this list
        return [str(n) for n in (list(names) or range(num_classes))], True

    def logits(self, batch_logits: Any, model: Any, buf: Any, num_classes: int, batch_size: int, pad_id: int):
        from encoders.data.flat import buffer_token_logits

        return buffer_token_logits(batch_logits, model, buf, batch_size, pad_id)

    def predictions(self, logits: Any, labels: Sequence[Any]) -> List[Any]:
        return [[labels[k] for k in row.argmax(axis=1)] if len(row) else [] for row in logits]

    def prediction_columns(self, labels: Sequence[Any], probabilities: bool) -> List[str]:
        return [PREDICTION]

    def predicted(self, run: Any, inputs: Sequence[Any], batch_size: int, probabilities: bool) -> Dict[str, Any]:
        return {PREDICTION: run.predict_words(inputs, batch_size=batch_size)}

    def gold(self, run: Any, values: Sequence[Any], inputs: Sequence[Any], where: str, column: str,
             first_row: int) -> Any:
        from encoders.use.evaluation import gold_tag_ids

        return gold_tag_ids(values, run.labels, [len(w) for w in inputs], where, column, first_row)

    def running_evaluation(self, run: Any, batch_size: int) -> Any:
        from encoders.use.running_evaluation import RunningTagging

        return RunningTagging(run, batch_size)

    def exported_logits(self, logits: Any, lengths: Any, width: int) -> Any:
        return logits[:, :width] * (np.arange(width)[None, :] < lengths[:, None])[:, :, None]


class Regression(Task):
    """A float per text: no labels, no probabilities."""

    name = "regression"
    has_labels = False
    has_probabilities = False

    def labels(self, names: Sequence[Any], num_classes: int) -> Tuple[List[Any], bool]:
        return [], bool(names)

    def logits(self, batch_logits: Any, model: Any, buf: Any, num_classes: int, batch_size: int, pad_id: int):
        from encoders.data.flat import buffer_logits

        return buffer_logits(batch_logits, model, buf, None, batch_size, pad_id)

    def predictions(self, logits: Any, labels: Sequence[Any]) -> List[Any]:
        return [float(v) for v in logits]

    def prediction_columns(self, labels: Sequence[Any], probabilities: bool) -> List[str]:
        return [PREDICTION]

    def predicted(self, run: Any, inputs: Sequence[Any], batch_size: int, probabilities: bool) -> Dict[str, Any]:
        return {PREDICTION: [float(x) for x in run.predict(inputs, batch_size=batch_size)]}

    def gold(self, run: Any, values: Sequence[Any], inputs: Sequence[Any], where: str, column: str,
             first_row: int) -> Any:
        from encoders.use.evaluation import gold_values

        return gold_values(values, where, column, first_row)

    def running_evaluation(self, run: Any, batch_size: int) -> Any:
        from encoders.use.running_evaluation import RunningRegression

        return RunningRegression(run, batch_size)


TASKS: Dict[str, Task] = {kind.name: kind for kind in (Classification(), Tagging(), Regression())}
