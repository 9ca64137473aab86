"""Lightning module for sequence classification: embedding -> encoder -> pooling -> linear head."""
from __future__ import annotations

from typing import Any, Dict

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from encoders.torch.embedding import PaddedEmbedding
from encoders.torch.pooling import MaskedPooling
from encoders.torch.rnn import RNNEncoder


class SequenceClassifier(pl.LightningModule):
    """Classifies right-padded batches ``{"tokens", "lengths", "labels"}``.

    Hyperparameters are primitives only (ints, floats, strings, bools), so checkpoints load with
    ``torch.load(..., weights_only=True)``. ``pooling="last"`` uses the encoder's ``final``
    (``[fw h at len-1 ; bw h at 0]``); other modes pool the masked ``sequence``.
    Logged metrics: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``.
    """

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", lr: float = 3e-3, weight_decay: float = 0.0, padding_idx: int = 0,
                 encoder_path: str = "auto"):
        super().__init__()
        self.save_hyperparameters()
        self.embedding = PaddedEmbedding(vocab_size, embedding_dim, padding_idx)
        self.encoder = RNNEncoder(embedding_dim, hidden_size, cell, num_layers, bidirectional, dropout,
                                  path=encoder_path)
        self.pool = None if pooling == "last" else MaskedPooling(pooling, self.encoder.output_size)
        self.head = nn.Linear(self.encoder.output_size, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.encoder(self.embedding(tokens), lengths)
        pooled = out.final if self.pool is None else self.pool(out.sequence, lengths)
        return self.head(pooled)

    def _step(self, batch: Dict[str, torch.Tensor], stage: str, acc) -> torch.Tensor:
        labels = batch["labels"]
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.hparams.num_classes):
            bad = labels[(labels < 0) | (labels >= self.hparams.num_classes)][0]
            raise ValueError(f"label {int(bad)} is outside [0, {self.hparams.num_classes})")
        logits = self(batch["tokens"], batch["lengths"])
        loss = F.cross_entropy(logits, labels)
        acc(logits, labels)
        bs = labels.numel()
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 batch_size=bs, sync_dist=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=bs)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_acc)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", self.val_acc)

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
