"""The torch data module inside a real Trainer: new bucket order every epoch, every example once."""
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from encoders.torch.batches import SequenceDataModule, TokenDataset
from encoders.torch.classifier import SequenceClassifier


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
