"""The torch data module inside a real Trainer: new bucket order every epoch, every example once."""
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from encoders.torch.batches import SequenceDataModule, TokenDataset
from encoders.torch.models import SequenceClassifier


class Record(Callback):
    def __init__(self):
        self.epochs = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.epochs.setdefault(trainer.current_epoch, []).append(batch["tokens"][:, 0].tolist())


def test_trainer_reshuffles_buckets_every_epoch_and_covers_every_example():
    rng = np.random.default_rng(0)
    # the first token of each row is its id, so a batch tells which examples it holds
    tokens = [[i + 2] + rng.integers(2, 50, rng.integers(0, 30)).tolist() for i in range(300)]
    ds = TokenDataset(tokens, [i % 2 for i in range(300)])
    dm = SequenceDataModule(ds, ds, batch_size=16, seed=3, pool_batches=4)
    rec = Record()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, use_distributed_sampler=False, callbacks=[rec],
                         limit_val_batches=0, enable_model_summary=False)
    trainer.fit(SequenceClassifier(vocab_size=400, num_classes=2, embedding_dim=4, hidden_size=4), datamodule=dm)
    orders = [[row for batch in rec.epochs[e] for row in batch] for e in range(3)]
    for order in orders:
        assert sorted(order) == [i + 2 for i in range(300)], "each example exactly once per epoch"
    assert orders[0] != orders[1] != orders[2], "the seeded bucket order must change between epochs"
    assert torch.is_tensor(trainer.model.head.weight)


def test_token_budget_batches_cover_every_example_within_the_budget():
    rng = np.random.default_rng(1)
    tokens = [[i + 2] + rng.integers(2, 50, rng.integers(0, 40)).tolist() for i in range(300)]
    ds = TokenDataset(tokens, [i % 2 for i in range(300)])
    dm = SequenceDataModule(ds, ds, batch_size=16, seed=3, pool_batches=4, max_tokens=120)
    rec = Record()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, use_distributed_sampler=False, callbacks=[rec],
                         limit_val_batches=0, enable_model_summary=False)
    trainer.fit(SequenceClassifier(vocab_size=400, num_classes=2, embedding_dim=4, hidden_size=4), datamodule=dm)
    for e in range(2):
        assert sorted(row for batch in rec.epochs[e] for row in batch) == [i + 2 for i in range(300)]
    shapes = [len(b) for e in rec.epochs for b in rec.epochs[e]]
    assert max(shapes) > 16, "a budget of short rows holds more rows than data.batch_size"


def test_token_budget_shards_give_every_rank_the_same_steps_and_each_example_once():
    from torch.utils.data import SequentialSampler

    from encoders.torch.batches import BucketBatchSampler

    lengths = np.random.default_rng(2).integers(0, 60, 500)
    for epoch in range(3):
        per_rank = []
        for rank in range(3):
            s = BucketBatchSampler(SequentialSampler(range(500)), 32, False, lengths, seed=5, num_replicas=3,
                                   rank=rank, max_tokens=400)
            s.set_epoch(epoch)
            per_rank.append(list(s))
            assert len(s) == len(per_rank[-1])
        assert len({len(p) for p in per_rank}) == 1
        assert all(len(b) >= 1 for p in per_rank for b in p), "every rank gets a row every step"
        seen = sorted(i for p in per_rank for b in p for i in b)
        assert seen == list(range(500))


def test_dataset_maps_labels_without_a_copy_and_batches_match_every_row_listed(tmp_path):
    """Labels memory-mapped from the cache stay mapped (no per-row copy), lengths are int16, and the
    sequential sampler's shortcut (no list of every row id) cuts the batches that listing them does."""
    from encoders.data.flat import TokenBuffer
    from encoders.torch.batches import BucketBatchSampler

    rng = np.random.default_rng(5)
    tokens = TokenBuffer.from_lists([rng.integers(1, 9, rng.integers(0, 12)).tolist() for _ in range(500)])
    np.save(tmp_path / "labels.npy", rng.integers(0, 3, 500))
    labels = np.load(tmp_path / "labels.npy", mmap_mode="r")
    ds = TokenDataset(tokens, labels)
    assert np.shares_memory(ds.labels, labels) and ds.lengths.dtype == np.int16
    loader = SequenceDataModule(ds, ds, batch_size=16, seed=4).train_dataloader()
    listed = BucketBatchSampler(list(range(500)), 16, False, ds.lengths, seed=4)
    assert [b for b in loader.batch_sampler] == [b for b in listed]
