"""A trained run, ready to use: ``encoders.load_run(RUN_DIR)`` -> encode, predict, predict_proba.

    run = encoders.load_run("outputs/2026-11-22/10-00-00")
    run.predict(["some text", ""])          # -> ["prose", "code"] (labels as in the training data)
    run.predict_proba(["some text"])        # -> np.ndarray [N, num_classes], rows sum to 1

What ``predict`` gives follows the run's task (``run.task``):

* ``classification``: a label per text (above).
* ``tagging``: per text, a list of tags, one per whitespace-separated word of the text (an empty
  text gives ``[]``); ``predict_words`` takes lists of words instead (as the training files hold
  them). Every word gets a tag: tagging runs do not cut long texts at ``data.max_tokens_per_example``
  (the encoders are exact at any length).
* ``regression``: a float per text.

``predict_proba`` is for classification only: a tagging or regression run raises ``TaskError``
(an ``EncodersError`` that is also a ``TypeError``).

The run's best checkpoint is loaded through the safe loaders (torch ``weights_only``, Keras
``safe_mode`` after a scan), so nothing in the run dir can run code; only the run's own framework
is imported, and the model runs in eval mode (``training=False``).

Texts are encoded as training encoded them (the run's vocabulary, tokenizer, lowercasing and
``data.max_tokens``), sorted by length, cut into batches, right-padded within each batch and put
back in input order. The encoders are exact under padding, so a text's probabilities do not depend
on the batch size or on the other texts in its batch (tested to 1e-5 for batch 1 against 256).
"""
from __future__ import annotations

import os
import sys
from typing import Any, List, Optional, Sequence

import numpy as np

from encoders.config import UNK_ID
from encoders.data.flat import TokenBuffer
from encoders.errors import EncodersError, RunDirError, TaskError
from encoders.run.files import CHECKPOINT_EXT, check_run_dir, checkpoint_path, load_run_config, run_backend, vocab_file
from encoders.tasks import TASKS

__all__ = ["TrainedRun", "TaskError", "load_run", "load_vocab", "DEFAULT_BATCH_SIZE"]

DEFAULT_BATCH_SIZE = 64


def load_vocab(run_dir: str):
    """The vocabulary a run was trained with (``vocab.json``, and ``tokenizer.json`` for subwords).

    Args:
        run_dir: the run dir.

    Returns:
        The run's ``Vocab``.

    Raises:
        RunDirError: no ``vocab.json``, or one that can't be read.
    """
    from encoders.data.vocab import load_vocab as load

    path = vocab_file(run_dir)
    if not os.path.isfile(path):
        raise RunDirError(f"run {run_dir} has no vocab.json: the vocabulary is needed to encode texts "
                          f"(is it a run dir written by train.py?)")
    try:
        return load(run_dir)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{path} is corrupt ({type(e).__name__}: {e})") from None


class TrainedRun:
    """A run dir's model with its vocabulary; made by :func:`load_run`.

    Attributes:
        run_dir: the run dir.
        backend: ``"torch"`` or ``"tf"``.
        task: ``"classification"``, ``"tagging"`` or ``"regression"`` (the checkpoint's).
        labels: the class labels by class id, as they appeared in the training data (names for
            string labels, ``0..K-1`` for integer labels); a tagger's tag names by tag id; ``[]``
            for a regressor.
        checkpoint: the checkpoint file loaded.
        text_column, label_column: the run's ``data.text_column`` / ``data.label_column``.
        tokens_column, tags_column: the run's ``data.tokens_column`` / ``data.tags_column`` (tagging).
        spec: the model's ``ClassifierSpec``.
        device: where the model runs (``load_run``'s ``device``): ``"cpu"``/``"cuda:N"`` for torch,
            ``"/CPU:0"``/``"/GPU:N"`` for tf.
    """

    def __init__(self, run_dir: str, backend: str, checkpoint: str, model: Any, spec: Any, vocab: Any,
                 data_cfg: Any, device: Optional[str] = None):
        self.run_dir, self.backend, self.checkpoint = run_dir, backend, checkpoint
        self.device = device or ("cpu" if backend == "torch" else "/CPU:0")
        self.model, self.spec, self.vocab = model, spec, vocab
        self.pad_id = int(spec.padding_idx)
        self.text_column = str(data_cfg.get("text_column", "text"))
        self.label_column = str(data_cfg.get("label_column", "label"))
        self.tokens_column = str(data_cfg.get("tokens_column", "tokens"))
        self.tags_column = str(data_cfg.get("tags_column", "tags"))
        self.task = str(getattr(spec, "task", "classification") or "classification")
        if self.task not in TASKS:
            raise RunDirError(f"run {run_dir}: the checkpoint's task {self.task!r} is none of {', '.join(TASKS)}")
        self._kind = TASKS[self.task]  # what differs between the tasks
        # texts are cut as training cut them (runs older than the key used data.max_tokens for it)
        cut = data_cfg.get("max_tokens_per_example", data_cfg.get("max_tokens", None))
        self.max_tokens: Optional[int] = int(cut) if cut else None
        names = list(getattr(vocab, "labels", None) or [])
        if names and len(names) != spec.num_classes:
            raise RunDirError(f"run {run_dir}: vocab.json names {len(names)} labels but the checkpoint has "
                              f"{spec.num_classes} classes")
        self.labels: List[Any]
        self.labels, self.string_labels = self._kind.labels(names, spec.num_classes)
        if len(vocab) != spec.vocab_size:
            raise RunDirError(f"run {run_dir}: vocab.json has {len(vocab)} tokens but the checkpoint's embedding "
                              f"has {spec.vocab_size}: they are not from the same run")
        if backend == "torch":
            from encoders.torch import inference
        else:
            from encoders.keras import inference
        self._logits_of_batch = inference.batch_logits

    def __repr__(self) -> str:
        return f"TrainedRun({self.run_dir!r}, backend={self.backend!r}, task={self.task!r}, labels={self.labels!r})"

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    # -- encoding --------------------------------------------------------------------------------
    def _buffer(self, texts: Sequence[str]) -> TokenBuffer:
        """Every text's ids as training made them, in one buffer.

        A token that spells the pad token (``"<pad>"`` in whitespace text) becomes the unknown
        id: inside a text, the pad id would be read as padding.
        """
        if isinstance(texts, str):
            raise TypeError("give a list of texts; wrap a single text in a list")
        texts = ["" if t is None else t for t in texts]
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"text {bad} is {texts[bad]!r:.40} ({type(texts[bad]).__name__}), not a string")
        return self._finish(self.vocab.encode_many(texts))

    def _finish(self, buf: TokenBuffer) -> TokenBuffer:
        # a tagger tags every word: it is not cut (training cut its rows, tags included)
        if self.max_tokens and not self._kind.per_word:
            buf, _ = buf.truncate(self.max_tokens)
        values = np.where(buf.values == self.pad_id, UNK_ID, buf.values)
        return TokenBuffer(values, buf.offsets)

    def _word_buffer(self, words: Sequence[Sequence[str]]) -> TokenBuffer:
        """Ids of lists of words, each word one token (lowercased as training did), as the tagging
        files are read in training."""
        if isinstance(words, str) or any(isinstance(w, str) for w in words):
            raise TypeError("give a list of lists of words, e.g. [['The', 'cat'], []]")
        get, lower = self.vocab.index.get, bool(getattr(self.vocab, "lowercase", False))
        ids, lengths = [], []
        for i, row in enumerate(words):
            row = [] if row is None else list(row)
            bad = next((w for w in row if not isinstance(w, str)), None)
            if bad is not None:
                raise TypeError(f"row {i}: word {bad!r:.40} ({type(bad).__name__}) is not a string")
            ids.extend(get(w.lower() if lower else w, UNK_ID) for w in row)
            lengths.append(len(row))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return self._finish(TokenBuffer(np.asarray(ids, dtype=np.int32), offsets))

    def encode(self, texts: Sequence[str]) -> List[List[int]]:
        """Token ids of each text, as training made them.

        Args:
            texts: a list of strings (None counts as an empty text).

        Returns:
            One list of ids per text (an empty text gives ``[]``).

        Raises:
            TypeError: a single string, or an item that is not a string.
        """
        return self._buffer(texts).to_lists()

    # -- scoring ---------------------------------------------------------------------------------
    def _logits(self, buf: TokenBuffer, batch_size: int):
        from encoders.use.devices import device_scope

        with device_scope(self.backend, self.device):
            return self._device_logits(buf, batch_size)

    def _device_logits(self, buf: TokenBuffer, batch_size: int):
        return self._kind.logits(self._logits_of_batch, self.model, buf, self.num_classes, batch_size, self.pad_id)

    def logits_of_ids(self, ids: Sequence[Sequence[int]], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """The model's outputs of texts already encoded, in input order (length-sorted batches inside).

        Args:
            ids: one list of token ids per text.
            batch_size: rows per batch.

        Returns:
            As :meth:`logits`: float32 ``[N, C]`` for a classifier.
        """
        return self._logits(TokenBuffer.from_lists(ids), batch_size)

    def logits(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE):
        """The model's outputs (float32), in the order of ``texts``.

        Args:
            texts: a list of strings.
            batch_size: rows per batch (the outputs do not depend on it).

        Returns:
            Unnormalised scores ``[N, num_classes]`` (classification); a list of
            ``[words_i, num_tags]`` arrays, one per text (tagging); the predictions ``[N]`` (regression).
        """
        return self._logits(self._buffer(texts), batch_size)

    def word_logits(self, words: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE) -> List[np.ndarray]:
        """A tagger's scores of lists of words.

        Args:
            words: one list of words per row.
            batch_size: rows per batch.

        Returns:
            One ``[len(words_i), num_tags]`` float32 array per row.

        Raises:
            TaskError: the run is not a tagger.
        """
        if not self._kind.per_word:
            raise TaskError(f"word_logits is for tagging runs; {self.run_dir} is a {self.task} run")
        return self._logits(self._word_buffer(words), batch_size)

    def predict_proba(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Class probabilities of texts.

        Args:
            texts: a list of strings.
            batch_size: rows per batch.

        Returns:
            float32 ``[N, num_classes]``, rows summing to 1; column ``k`` is ``labels[k]``.

        Raises:
            TaskError: the run is not a classifier (a tagger's scores are per word: see ``logits``).
        """
        if not self._kind.has_probabilities:
            raise TaskError(f"predict_proba is for classification runs; {self.run_dir} is a {self.task} run "
                            f"(use predict, or logits for the raw outputs)")
        return softmax(self.logits(texts, batch_size))

    def predict(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> List[Any]:
        """What the run predicts for each text.

        Args:
            texts: a list of strings.
            batch_size: rows per batch.

        Returns:
            Classification: the most probable label of each text (a label from :attr:`labels`).
            Tagging: for each text a list of tags, one per whitespace-separated word. Regression: a
            float per text.
        """
        return self._predictions(self.logits(texts, batch_size))

    def predict_words(self, words: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE) -> List[Any]:
        """What the run predicts for lists of words (as a training file's ``data.tokens_column`` holds them).

        Args:
            words: one list of words per row.
            batch_size: rows per batch.

        Returns:
            Tagging: for each row the list of its words' tags. The other tasks: ``predict`` of the
            words joined by spaces.
        """
        if not self._kind.per_word:
            return self.predict([" ".join(map(str, row or [])) for row in words], batch_size)
        return self._predictions(self._logits(self._word_buffer(words), batch_size))

    def _predictions(self, logits) -> List[Any]:
        return self._kind.predictions(logits, self.labels)


def softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def load_run(run_dir: str, checkpoint: str = "best", device: str = "auto") -> TrainedRun:
    """Load a run dir written by ``train.py`` for prediction.

    Args:
        run_dir: the run dir (the folder ``train.py`` printed as ``run dir: ...``).
        checkpoint: ``"best"`` (on validation) or ``"last"``.
        device: ``"auto"`` (the first GPU the run's framework sees, else the CPU), ``"cpu"``,
            ``"cuda"`` or ``"cuda:N"`` (``encoders.use.devices``; ``run.device`` says which).

    Returns:
        The :class:`TrainedRun`, its model in eval mode.

    Raises:
        ConfigError: ``device`` is not one of those, or does not exist here.
        RunDirError: not a run dir, or it lacks its config, vocabulary or checkpoint, or they are
            unreadable or do not belong together.
        UnsafeLoadError: the checkpoint asks for code to run (nothing ran).
    """
    run_dir = check_run_dir(os.fspath(run_dir))
    if checkpoint not in ("best", "last"):
        raise EncodersError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    try:
        cfg = load_run_config(run_dir)
    except (FileNotFoundError, ValueError) as e:
        raise RunDirError(str(e)) from None
    name = (cfg.get("backend", None) or {}).get("name")  # the config just read; run_backend would read it again
    backend = name if name in CHECKPOINT_EXT else run_backend(run_dir)
    data_cfg = cfg.get("data", None) or {}
    from encoders.use.devices import device_scope, resolve_device

    if backend == "jax" and "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "jax")  # a jax run is used on jax unless told otherwise
    device = resolve_device(backend, device)
    vocab = load_vocab(run_dir)
    path = checkpoint_path(run_dir, checkpoint, backend)
    if backend == "torch":
        from encoders.torch import inference
    else:
        from encoders.keras import inference
    try:
        with device_scope(backend, device):
            model, spec = inference.load_classifier(path)
        if backend == "torch":
            model.to(device)
    except EncodersError:
        raise
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"cannot load {path}: {e}") from None
    return TrainedRun(run_dir, backend, path, model, spec, vocab, data_cfg, device)
