"""Keras input: the same length buckets and the same ``collate`` as the torch data module, fed as
tf.data on the TensorFlow backend and as a ``keras.utils.PyDataset`` on the others (jax), so a
jax run never imports TensorFlow."""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np

from encoders.config import TAG_PAD_ID
from encoders.data.bucketing import LengthBucketBatcher
from encoders.data.flat import TokenBuffer


class BucketedBatches:
    """Padded ``(tokens, labels)`` batches, bucketed by length and reshuffled per epoch.

    ``epoch`` is set by ``EpochSetter`` at the start of each Keras epoch (so a run resumed by
    ``BackupAndRestore`` sees the same batches as an uninterrupted one), as Lightning does with
    ``set_epoch`` on the torch side.
    """

    def __init__(self, tokens, labels: Sequence[int], batch_size: int, seed: int = 0,
                 shuffle: bool = True, pool_batches: int = 64, pad_id: int = 0, max_tokens: Optional[int] = None,
                 tags: Optional[TokenBuffer] = None):
        # tokens: a TokenBuffer (what the data sources give) or a sequence of id sequences
        self.tokens = tokens if isinstance(tokens, TokenBuffer) else TokenBuffer.from_lists(tokens)
        labels = np.asarray(labels)
        # float targets (regression) stay floats, fed as [B, 1]; tags (tagging) are the targets when given
        # copy=False: memory-mapped labels from the cache stay mapped, not copied per row
        self.labels = labels.astype(np.float32 if labels.dtype.kind == "f" else np.int64, copy=False)
        self.tags = tags
        # with a token budget, batch_size is not a row count: batches are cut by padded tokens
        self.batcher = LengthBucketBatcher(self.tokens.row_lengths(), None if max_tokens else batch_size, seed=seed,
                                           shuffle=shuffle, pool_batches=pool_batches, max_tokens=max_tokens)
        self.pad_id = pad_id
        self.epoch = 0

    @classmethod
    def from_split(cls, split, batch_size: int, **kwargs) -> "BucketedBatches":
        return cls(split.tokens, split.labels, batch_size, tags=getattr(split, "tags", None), **kwargs)

    def __len__(self) -> int:
        self.batcher.set_epoch(self.epoch)  # a token budget's batch count depends on the epoch
        return len(self.batcher)

    def batches(self):
        for idx in self.batcher.batches(self.epoch):
            b = self.tokens.pad(idx, pad_id=self.pad_id, labels=self.labels, tags=self.tags)
            if self.tags is not None:
                yield b["tokens"], b["tags"]
            elif self.labels.dtype.kind == "f":
                yield b["tokens"], b["labels"][:, None]
            else:
                yield b["tokens"], b["labels"]

    def dataset(self):
        """A ``tf.data.Dataset`` of one epoch's batches (TensorFlow backend only)."""
        import tensorflow as tf

        target = (tf.TensorSpec((None, None), tf.int64) if self.tags is not None else
                  tf.TensorSpec((None, 1), tf.float32) if self.labels.dtype.kind == "f" else
                  tf.TensorSpec((None,), tf.int64))
        spec = (tf.TensorSpec((None, None), tf.int64), target)
        # from_generator re-runs `batches` for every epoch's iterator, picking up the new epoch
        return tf.data.Dataset.from_generator(self.batches, output_signature=spec).prefetch(2)


def feed(batches: BucketedBatches, replicas: int = 1):
    """What ``model.fit`` takes: the batches endlessly, each pass at the epoch set then (so give
    ``steps_per_epoch``): tf.data on TensorFlow, a ``RepeatedBatches`` PyDataset elsewhere (with
    ``replicas`` > 1, each batch padded to a multiple of it, see ``pad_rows``)."""
    if keras.backend.backend() == "tensorflow":  # tf.distribute splits uneven batches itself
        return batches.dataset().repeat()
    return RepeatedBatches(batches, replicas)


class RepeatedBatches(keras.utils.PyDataset):
    """``BucketedBatches`` as an endless ``PyDataset``: when one pass ends the next starts at the
    epoch ``EpochSetter`` set by then, as ``tf.data``'s ``from_generator(...).repeat()`` does.

    Keras asks for items in order from one thread (``workers=1``, no multiprocessing), which the
    running generator relies on; ``num_batches`` is None, so ``fit`` counts ``steps_per_epoch``.
    """

    def __init__(self, batches: BucketedBatches, replicas: int = 1):
        super().__init__(workers=1, use_multiprocessing=False)
        self.source, self._it, self.replicas = batches, None, replicas

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        for _ in range(2):  # an exhausted pass starts the next one, once
            if self._it is None:
                self._it = self.source.batches()
            try:
                batch = widen(*next(self._it), pad_id=self.source.pad_id)
            except StopIteration:
                self._it = None
                continue
            return batch if self.replicas == 1 else pad_rows(*batch, self.replicas, self.source.pad_id)
        raise ValueError("the split has no batches")


def compile_width(T: int) -> int:
    """``T`` rounded up to a few widths (multiples of 8 to 64, then 8 steps per doubling): jax compiles
    one program per input shape, and bucketed batches would otherwise bring a new T almost every step."""
    step = max(8, 1 << max(0, (T - 1).bit_length() - 3))
    return -(-T // step) * step


def widen(tokens: np.ndarray, target: np.ndarray, pad_id: int = 0):
    """A batch padded on the right to ``compile_width`` steps: more padding, the same outputs (the
    layers are exact at padding); tags (2-D targets) are padded with ``TAG_PAD_ID``, which the loss skips."""
    extra = compile_width(tokens.shape[1]) - tokens.shape[1]
    if extra == 0:
        return tokens, target
    tokens = np.pad(tokens, ((0, 0), (0, extra)), constant_values=pad_id)
    if is_tags(target):
        target = np.pad(target, ((0, 0), (0, extra)), constant_values=TAG_PAD_ID)
    return tokens, target


def is_tags(target: np.ndarray) -> bool:
    """Tag ids ``[B, T]`` (integers), as opposed to class ids ``[B]`` and regression targets
    (floats, ``[B, 1]``); a batch of one-token sentences has tags ``[B, 1]`` too."""
    return target.ndim == 2 and target.dtype.kind in "iu"


def pad_rows(tokens: np.ndarray, target: np.ndarray, replicas: int, pad_id: int = 0):
    """``(tokens, target, sample_weight)`` with the rows padded to a multiple of ``replicas``: jax
    shards a batch evenly over the devices. The added rows are empty (all ``pad_id``; the layers are
    exact for them) and weigh 0. Real rows weigh ``P/B`` (P padded rows, B real ones) so that Keras'
    ``sum_over_batch_size`` loss, which divides by P, is the mean over the B real rows: the same loss
    and gradient as the unpadded batch. Tags (2-D targets) get ``TAG_PAD_ID`` and weight 1, as their
    loss is already a mean over the real tags (their weights are per tag, [P, T]: Keras doesn't
    broadcast row weights over a 2-D loss). ``count_real_rows`` makes the logged loss and metrics
    count real rows only."""
    rows = tokens.shape[0]
    padded = -(-rows // replicas) * replicas
    tagging = is_tags(target)
    extra = ((0, padded - rows),) + ((0, 0),) * (target.ndim - 1)
    tokens = np.pad(tokens, ((0, padded - rows), (0, 0)), constant_values=pad_id)
    target = np.pad(target, extra, constant_values=TAG_PAD_ID if tagging else 0)
    weight = np.zeros(target.shape if tagging else padded, np.float32)  # tags: one weight per tag
    weight[:rows] = 1.0 if tagging else padded / rows
    return tokens, target, weight


class EpochSetter(keras.callbacks.Callback):
    """Tells the bucketed batches which epoch is starting (before Keras opens its iterator)."""

    def __init__(self, *batches: BucketedBatches):
        super().__init__()
        self.targets = batches

    def on_epoch_begin(self, epoch, logs=None):
        for b in self.targets:
            b.epoch = epoch
