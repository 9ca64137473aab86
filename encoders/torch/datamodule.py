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


class BucketBatchSampler(BatchSampler):
    """``BatchSampler`` over ``LengthBucketBatcher``.

    It takes a ``sampler`` so Lightning can swap in a ``DistributedSampler``: the batcher then
    buckets only this rank's share of the indices. ``set_epoch`` reseeds the buckets.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, lengths: Sequence[int],
                 seed: int = 0, shuffle: bool = True, pool_batches: int = 64):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = np.asarray(lengths)
        self.seed, self.shuffle, self.pool_batches = seed, shuffle, pool_batches
        self.batcher = LengthBucketBatcher(self.lengths, batch_size, seed=seed, shuffle=shuffle,
                                           drop_last=drop_last, pool_batches=pool_batches)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _indices(self) -> np.ndarray:
        return np.fromiter(iter(self.sampler), dtype=np.int64)

    def __iter__(self) -> Iterator[List[int]]:
        for b in self.batcher.batches(self.epoch, self._indices()):
            yield b.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)
        full, rest = divmod(n, self.pool_batches * self.batch_size)
        if self.drop_last:
            return n // self.batch_size
        return full * self.pool_batches + -(-rest // self.batch_size)


def collate_torch(examples, pad_id: int = 0) -> Dict[str, torch.Tensor]:
    out = collate(examples, pad_id=pad_id)
    return {k: torch.from_numpy(v) for k, v in out.items() if k != "mask"}


class SequenceDataModule(pl.LightningDataModule):
    """Train/validation loaders from two ``datasets`` splits with columns ``tokens`` and ``label``."""

    def __init__(self, train, validation, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                 pool_batches: int = 64, pad_id: int = 0):
        super().__init__()
        self.train_ds = train if isinstance(train, TokenDataset) else TokenDataset.from_hf(train)
        self.val_ds = validation if isinstance(validation, TokenDataset) else TokenDataset.from_hf(validation)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.pool_batches, self.pad_id = pool_batches, pad_id

    def _loader(self, ds: TokenDataset, shuffle: bool) -> DataLoader:
        sampler = BucketBatchSampler(SequentialSampler(ds), self.batch_size, False, ds.lengths, seed=self.seed,
                                     shuffle=shuffle, pool_batches=self.pool_batches)
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
