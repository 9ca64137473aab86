"""Lightning data module: length-bucketed batches through the shared numpy ``collate``."""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from encoders.data.bucketing import LengthBucketBatcher
from encoders.data.collate import collate


class TokenDataset(Dataset):
    """In-memory ``{"tokens", "label"}`` examples (token lists kept as int64 arrays)."""

    def __init__(self, tokens: Sequence[Sequence[int]], labels: Sequence[int]):
        if len(tokens) != len(labels):
            raise ValueError(f"{len(tokens)} token rows but {len(labels)} labels")
        self.tokens = [np.asarray(t, dtype=np.int64) for t in tokens]
        self.labels = [int(y) for y in labels]
        self.lengths = np.fromiter((len(t) for t in self.tokens), dtype=np.int64, count=len(self.tokens))

    @classmethod
    def from_hf(cls, ds) -> "TokenDataset":
        return cls(ds["tokens"], ds["label"])

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> Dict:
        return {"tokens": self.tokens[i], "label": self.labels[i]}


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
                 seed: int = 0, shuffle: bool = True, pool_batches: int = 64, num_replicas: int = 1, rank: int = 0):
        super().__init__(_EpochForwarder(sampler, self), batch_size, drop_last)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        if batch_size < num_replicas:
            raise ValueError(f"data.batch_size={batch_size} is the global batch and must be >= the number of "
                             f"processes ({num_replicas})")
        if 0 < len(sampler) < num_replicas:
            raise ValueError(f"{len(sampler)} examples can't give each of {num_replicas} processes a row")
        self.lengths = np.asarray(lengths)
        self.num_replicas, self.rank = num_replicas, rank
        self.batcher = LengthBucketBatcher(self.lengths, batch_size, seed=seed, shuffle=shuffle,
                                           drop_last=drop_last, pool_batches=pool_batches)
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
            indices = np.fromiter(iter(self.sampler), dtype=np.int64)
            batches = self.batcher.batches(self.epoch, indices)
            small = [i for i, b in enumerate(batches) if len(b) < self.num_replicas]
            for i in reversed(small):  # at most one, the remainder batch
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
    out = collate(examples, pad_id=pad_id)
    return {k: torch.from_numpy(v) for k, v in out.items() if k != "mask"}


class SequenceDataModule(pl.LightningDataModule):
    """Train/validation loaders from two ``datasets`` splits with columns ``tokens`` and ``label``.

    ``batch_size`` is the global batch, split over the ranks of a distributed run; the Trainer
    must run with ``use_distributed_sampler=False`` (our sampler shards itself).

    Resuming mid-epoch is exact: every checkpoint records (through ``state_dict``) how many
    batches of the current epoch were trained, and a resumed run's sampler skips those of the
    same seeded order, so it sees the batches the uninterrupted run would have seen.
    """

    def __init__(self, train, validation, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                 pool_batches: int = 64, pad_id: int = 0):
        super().__init__()
        self.train_ds = train if isinstance(train, TokenDataset) else TokenDataset.from_hf(train)
        self.val_ds = validation if isinstance(validation, TokenDataset) else TokenDataset.from_hf(validation)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.pool_batches, self.pad_id = pool_batches, pad_id
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
        sampler = BucketBatchSampler(SequentialSampler(ds), self.batch_size, False, ds.lengths, seed=self.seed,
                                     shuffle=shuffle, pool_batches=self.pool_batches, num_replicas=world, rank=rank)
        if shuffle and self._resume:
            sampler.resume_at(self._resume["epoch"], self._resume["batches_done"])
        return DataLoader(ds, batch_sampler=sampler, collate_fn=_Collate(self.pad_id),
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_ds, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_ds, shuffle=False)


class _Collate:
    """Picklable collate (worker processes) with the pad id bound."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples):
        return collate_torch(examples, self.pad_id)
