"""Lightning data module: length-bucketed batches through the shared numpy ``collate``; and the
modules' side of a batch (``HostCheckedBatches``): checked on the host, then moved, so no step
waits for the device."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from encoders.data.bucketing import LengthBucketBatcher
from encoders.data.collate import collate
from encoders.data.flat import TokenBuffer
from encoders.torch.checks import check_token_ids, checked_upstream
from encoders.torch.masking import check_lengths


class TokenDataset(Dataset):
    """``{"tokens", "label"}`` examples kept columnar: one ``TokenBuffer`` and one labels array.

    ``tokens`` is a ``TokenBuffer`` (what the data sources give) or a sequence of id sequences;
    ``__getitems__`` pads a whole batch at once from the flat buffer (the ``DataLoader`` calls it
    with the batch sampler's indices), so no Python object is made per example.
    """

    def __init__(self, tokens, labels: Sequence[int], tags: Optional[TokenBuffer] = None):
        self.tokens = tokens if isinstance(tokens, TokenBuffer) else TokenBuffer.from_lists(tokens)
        labels = np.asarray(labels)
        # float targets (regression) stay floats; tags (tagging): one id per token, padded with TAG_PAD_ID
        # copy=False: memory-mapped labels from the cache stay mapped, not copied per row
        self.labels = labels.astype(np.float32 if labels.dtype.kind == "f" else np.int64, copy=False)
        self.tags = tags
        if len(self.tokens) != len(self.labels):
            raise ValueError(f"{len(self.tokens)} token rows but {len(self.labels)} labels")
        self.lengths = self.tokens.row_lengths()  # int16 unless a row is very long

    @classmethod
    def from_split(cls, split) -> "TokenDataset":
        return cls(split.tokens, split.labels, getattr(split, "tags", None))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Dict:
        return {"tokens": self.tokens.row(i), "label": int(self.labels[i])}

    def __getitems__(self, indices: List[int]) -> Dict[str, np.ndarray]:
        return self.tokens.pad(indices, labels=self.labels, tags=self.tags)


class _EpochForwarder(Sampler):
    """The inner sampler of a ``BucketBatchSampler``. Lightning calls ``set_epoch`` on
    ``loader.sampler`` and ``loader.batch_sampler.sampler``, never on the batch sampler itself,
    so the epoch reaches the batch sampler through here."""

    def __init__(self, sampler: Sampler, owner: "BucketBatchSampler"):
        self.inner, self.owner = sampler, owner

    def __iter__(self):
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        self.owner.set_epoch(epoch)


class BucketBatchSampler(BatchSampler):
    """``BatchSampler`` over ``LengthBucketBatcher`` that shards each batch across ranks itself.

    ``batch_size`` is the *global* batch: every step, the bucketed batch is split row-wise
    (``rows[rank::num_replicas]``) over the ranks, so in an epoch each example is seen exactly
    once, on one rank (no ``DistributedSampler`` padding duplicates or drops), every rank runs
    the same number of steps, and ranks get rows of similar length. A last batch with fewer
    rows than ranks is merged into the one before it, so no rank ever gets an empty step.
    ``set_epoch`` reseeds the buckets (Lightning calls it every epoch).
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, lengths: Sequence[int],
                 seed: int = 0, shuffle: bool = True, pool_batches: int = 64, num_replicas: int = 1, rank: int = 0,
                 max_tokens: Optional[int] = None):
        super().__init__(_EpochForwarder(sampler, self), batch_size or 1, drop_last)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        if max_tokens is None and batch_size < num_replicas:
            raise ValueError(f"data.batch_size={batch_size} is the global batch and must be >= the number of "
                             f"processes ({num_replicas})")
        if 0 < len(sampler) < num_replicas:
            raise ValueError(f"{len(sampler)} examples can't give each of {num_replicas} processes a row")
        self.lengths = np.asarray(lengths)
        self.num_replicas, self.rank = num_replicas, rank
        # with a token budget, batch_size is not a row count: batches are cut by padded tokens
        self.batcher = LengthBucketBatcher(self.lengths, None if max_tokens else batch_size, seed=seed,
                                           shuffle=shuffle, drop_last=drop_last, pool_batches=pool_batches,
                                           max_tokens=max_tokens)
        self.epoch = 0
        self._cache: Optional[tuple] = None
        self._skip: Optional[tuple] = None  # (epoch, batches already trained) of a resumed run

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """The next pass over ``epoch`` starts after its first ``batches_done`` batches (once)."""
        self._skip = (int(epoch), int(batches_done)) if batches_done > 0 else None

    def global_batches(self) -> List[np.ndarray]:
        if self._cache is None or self._cache[0] != self.epoch:
            # a sequential sampler's rows are all of them: no int64 array of every row id
            inner = getattr(self.sampler, "inner", self.sampler)
            whole = isinstance(inner, SequentialSampler) and len(inner) == len(self.lengths)
            indices = None if whole else np.fromiter(iter(self.sampler), dtype=np.int64)
            batches = self.batcher.batches(self.epoch, indices)
            # every rank needs a row each step: a batch with fewer rows than ranks (the remainder
            # batch, or a token-budget batch of a few very long rows) joins its neighbour
            small = [i for i, b in enumerate(batches) if len(b) < self.num_replicas]
            for i in reversed(small):
                if len(batches) > 1:
                    b = batches.pop(i)
                    j = i - 1 if i > 0 else 0
                    batches[j] = np.concatenate([batches[j], b])
            self._cache = (self.epoch, batches)
        return self._cache[1]

    def __iter__(self) -> Iterator[List[int]]:
        batches = self.global_batches()
        if self._skip is not None and self._skip[0] == self.epoch:
            batches = batches[self._skip[1]:]
            self._skip = None
        for b in batches:
            yield b[self.rank::self.num_replicas].tolist()

    def __len__(self) -> int:
        return len(self.global_batches())


def collate_torch(examples, pad_id: int = 0) -> Dict[str, torch.Tensor]:
    """A padded batch as tensors: from ``TokenDataset.__getitems__`` (already padded numpy) or from a
    list of ``{"tokens", "label"}`` examples (padded here with ``encoders.data.collate``)."""
    out = examples if isinstance(examples, dict) else collate(examples, pad_id=pad_id)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items() if k != "mask"}


class SequenceDataModule(pl.LightningDataModule):
    """Train/validation (and test) loaders of length-bucketed, right-padded batches.

    Args:
        train, validation, test: ``encoders.data.splits.Split``s (or ``TokenDataset``s).
        batch_size: rows per step (global); with ``max_tokens`` batches are cut by padded tokens
            (rows x longest row) instead.
        eval_batch_size: rows per validation/test batch (default ``batch_size``).
        seed: seeds the buckets (reshuffled every epoch).

    ``batch_size`` is the global batch, split over the ranks of a distributed run; the Trainer
    must run with ``use_distributed_sampler=False`` (our sampler shards itself).

    Resuming mid-epoch is exact: every checkpoint records (through ``state_dict``) how many
    batches of the current epoch were trained, and a resumed run's sampler skips those of the
    same seeded order, so it sees the batches the uninterrupted run would have seen.
    """

    def __init__(self, train, validation, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                 pool_batches: int = 64, pad_id: int = 0, max_tokens: Optional[int] = None, test=None,
                 eval_batch_size: Optional[int] = None):
        super().__init__()
        as_ds = lambda d: d if isinstance(d, TokenDataset) or d is None else TokenDataset.from_split(d)  # noqa: E731
        self.train_ds, self.val_ds, self.test_ds = as_ds(train), as_ds(validation), as_ds(test)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.pool_batches, self.pad_id, self.max_tokens = pool_batches, pad_id, max_tokens
        self.eval_batch_size = eval_batch_size or batch_size
        self._resume: Optional[Dict[str, int]] = None

    def state_dict(self) -> Dict[str, int]:
        """Saved into every checkpoint by Lightning: where in the epoch training stands."""
        trainer = self.trainer
        if trainer is None:
            return {}
        # a checkpoint taken after batch k (on_train_batch_end) has k+1 batches processed
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": trainer.current_epoch, "batches_done": int(done)}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self._resume = dict(state) if state else None

    def _loader(self, ds: TokenDataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        # training batches by data.batch_size rows or data.max_tokens; evaluation by eval_batch_size rows
        sampler = BucketBatchSampler(SequentialSampler(ds), self.batch_size if shuffle else self.eval_batch_size,
                                     False, ds.lengths, seed=self.seed, shuffle=shuffle, pool_batches=self.pool_batches,
                                     num_replicas=world, rank=rank, max_tokens=self.max_tokens if shuffle else None)
        if shuffle and self._resume:
            sampler.resume_at(self._resume["epoch"], self._resume["batches_done"])
        return DataLoader(ds, batch_sampler=sampler, collate_fn=_Collate(self.pad_id),
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_ds, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_ds, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if self.test_ds is None:
            raise ValueError("this data module has no test split (data.test_file / data.test_split)")
        return self._loader(self.test_ds, shuffle=False)


class _Collate:
    """Picklable collate (worker processes) with the pad id bound."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples):
        return collate_torch(examples, self.pad_id)


# -- a batch in a step: checked on the host, then moved (no device->host sync in a step) ----------
# The Lightning modules mix in :class:`HostCheckedBatches`. Lightning hands every batch to
# ``transfer_batch_to_device`` while it is still on the CPU: the values are checked there (token ids
# against the vocabulary, lengths against the padded length, the targets), where a check costs no
# sync, and everything but ``lengths`` moves to the device without waiting. ``lengths`` stays on the
# host, where the encoder reads it to pack rows and to find an all-empty batch; it makes its own
# device copy for masks. Inside the step the modules run under ``checked_upstream`` for such a batch,
# so they skip the value checks that would read the device. A batch that did not come through the
# hook (a direct ``training_step`` call, a batch already on the device) is checked by the modules
# themselves, as any direct call is.
CHECKED = "checked_on_host"  # the key the hook adds: this batch's values were checked on the CPU
HOST_KEYS = ("lengths",)  # what stays on the host


class HostCheckedBatches:
    """Mixin for a ``LightningModule`` with ``self.embedding`` (``PaddedEmbedding``); a module checks
    its own targets in ``check_targets`` (on CPU tensors)."""

    def check_targets(self, batch: Dict[str, torch.Tensor]) -> None:
        """Raise ValueError naming a target outside the task's range (the batch is on the CPU)."""

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if (device.type == "cpu" or not isinstance(batch, dict) or "tokens" not in batch
                or not all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in batch.values())):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        tokens = batch["tokens"]
        check_token_ids(tokens, self.embedding.num_embeddings)
        if "lengths" in batch:
            check_lengths(batch["lengths"], tokens.shape[0], tokens.shape[1], torch.device("cpu"))
        self.check_targets(batch)
        moved: Dict[str, Any] = {k: v if k in HOST_KEYS else v.to(device, non_blocking=True) for k, v in batch.items()}
        moved[CHECKED] = True
        return moved

    @staticmethod
    def checked(batch: Any):
        """The context a step runs in: ``checked_upstream`` for a batch the hook checked."""
        return checked_upstream() if isinstance(batch, dict) and batch.get(CHECKED) else contextlib.nullcontext()
