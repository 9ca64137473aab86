"""Lightning module for regression: embedding -> encoder -> pooling -> a linear head with 1 output."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from encoders.config import PAD_ID
from encoders.tasks import RegressionTally
from encoders.torch.pooling import MaskedPooling, encode_pooled
from encoders.torch.tagger import TaskModule


class SequenceRegressor(TaskModule):
    """A number per sequence: the classifier's embedding -> encoder -> pooling, then ``Linear(H, 1)``.

    Args: as ``SequenceTagger`` (``num_classes`` is 1; ``pooling`` as in ``SequenceClassifier``).

    Input: ``{"tokens", "lengths", "labels": [B] float32}``; ``forward(tokens, lengths) -> [B]``.
    Loss: mean squared error. Logged: ``train/loss``, ``val/loss`` (MSE), ``val/rmse``, ``val/mae``
    over the whole validation split (sums, not means of batch means).
    """

    def __init__(self, vocab_size: int, num_classes: int = 1, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", padding_idx: int = PAD_ID, task: str = "regression", lr: float = 3e-3,
                 weight_decay: float = 0.0, freeze_embeddings: bool = False, encoder_path: str = "auto"):
        super().__init__()
        if task != "regression" or num_classes != 1:
            raise ValueError(f"SequenceRegressor has 1 output (task=regression), got task={task!r}, "
                             f"num_classes={num_classes}")
        self.save_hyperparameters()
        self._build_backbone(encoder_path)
        self.pool = None if pooling == "last" else MaskedPooling(pooling, self.encoder.output_size)
        self.head = nn.Linear(self.encoder.output_size, 1)
        self._train_sums: Optional[torch.Tensor] = None
        self._val_sums: Optional[torch.Tensor] = None  # validation: squared and absolute error sums
        self._val_n = 0  # validation: examples

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(encode_pooled(self.encoder, self.pool, self.embedding(tokens), lengths)).squeeze(-1)

    def _loss(self, batch: Dict[str, torch.Tensor]):
        with self.checked(batch):
            pred = self(batch["tokens"], batch["lengths"])
        target = batch["labels"].to(pred.dtype)
        return F.mse_loss(pred, target), pred, target

    def training_step(self, batch, batch_idx):
        loss, pred, target = self._loss(batch)
        self._add_train_loss(loss * target.numel(), target.numel())
        return loss


    # Validation adds up on the device (a step never waits for it): float64 sums of squared and
    # absolute errors; the count comes from the batch's shape. Read once, at the epoch's end.
    def on_validation_epoch_start(self) -> None:
        self._val_sums, self._val_n = None, 0

    def validation_step(self, batch, batch_idx):
        _, pred, target = self._loss(batch)
        err = pred.detach().double() - target.double()
        sums = torch.stack([(err * err).sum(), err.abs().sum()])
        self._val_sums = sums if self._val_sums is None else self._val_sums + sums
        self._val_n += target.numel()

    def on_validation_epoch_end(self) -> None:
        t = RegressionTally()
        sq, ab = (0.0, 0.0) if self._val_sums is None else self._val_sums.cpu().tolist()
        t.sq, t.abs, t.n = (float(x) for x in self._reduce([sq, ab, float(self._val_n)]))
        t.n = int(round(t.n))
        self._val_sums, self._val_n = None, 0
        for name, value in t.figures().items():
            self.log(f"val/{name}", float(value), prog_bar=True, sync_dist=False)


def predict_split(model: SequenceRegressor, split, batch_size: int):
    """``model``'s prediction for every row of a split, in the split's order (float32 numpy)."""
    import numpy as np

    model.eval()
    device = next(model.parameters()).device
    out = np.zeros(len(split), dtype=np.float32)
    with torch.no_grad():
        for idx, b in split.tokens.length_batches(batch_size, model.hparams.padding_idx):
            out[idx] = model(torch.from_numpy(b["tokens"]).to(device), torch.from_numpy(b["lengths"])).float().cpu().numpy()
    return out
