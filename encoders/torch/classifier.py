"""Lightning module for sequence classification: embedding -> encoder -> pooling -> linear head."""
from __future__ import annotations

from typing import Any, Dict, Optional

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from encoders.config import PAD_ID, ClassifierSpec
from encoders.torch.embedding import PaddedEmbedding
from encoders.torch.pooling import MaskedPooling, encode_pooled
from encoders.torch.rnn import RNNEncoder
from encoders.torch.batches import HostCheckedBatches


class SequenceClassifier(HostCheckedBatches, pl.LightningModule):
    """Sequence classifier on right-padded batches: embedding -> encoder -> pooling -> linear head.

    Args:
        vocab_size, num_classes, embedding_dim, hidden_size, cell, num_layers, bidirectional,
        dropout, pooling, padding_idx: the model's shape, as in ``encoders.config.ClassifierSpec``
            (``SequenceClassifier.from_spec(spec, lr=...)`` builds from one).
        lr, weight_decay: AdamW's.
        encoder_path: ``RNNEncoder``'s ``path`` (``"auto"``: packed on CUDA, padded elsewhere).

    Input (a batch from ``SequenceDataModule`` or ``encoders.data.collate``):
        ``{"tokens": [B, T] int64, "lengths": [B] int64, "labels": [B] int64}``;
        ``forward(tokens, lengths) -> logits [B, num_classes]``.

    On an accelerator the batch's values are checked on the CPU before it moves, and its lengths
    stay there (``encoders.torch.batches.HostCheckedBatches``): no step waits for the device.

    Padding: ``pooling="last"`` uses the encoder's ``final`` (``[fw h at len-1 ; bw h at 0]``),
    other modes pool the masked ``sequence``; an empty row gets the logits of a zero vector.
    Hyperparameters are primitives only, so checkpoints load with ``torch.load(...,
    weights_only=True)``. Logged metrics: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``.
    """

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", lr: float = 3e-3, weight_decay: float = 0.0, padding_idx: int = PAD_ID,
                 encoder_path: str = "auto"):
        super().__init__()
        self.save_hyperparameters()
        ClassifierSpec.from_dict(self.hparams)  # checks the shape's values, naming a bad one
        self.embedding = PaddedEmbedding(vocab_size, embedding_dim, padding_idx)
        self.encoder = RNNEncoder(embedding_dim, hidden_size, cell, num_layers, bidirectional, dropout,
                                  path=encoder_path)
        self.pool = None if pooling == "last" else MaskedPooling(pooling, self.encoder.output_size)
        self.head = nn.Linear(self.encoder.output_size, num_classes)
        # labels are range-checked in _loss, so torchmetrics' own per-update checks are off
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_loss = MeanMetric(nan_strategy="disable")  # its NaN check reads the device every step
        self._train_sums: Optional[torch.Tensor] = None  # loss*n, correct of this epoch
        self._train_n = 0
        self._resumed_sums: Optional[list] = None  # [loss*n, correct, n] from a checkpoint

    @classmethod
    def from_spec(cls, spec: ClassifierSpec, lr: float = 3e-3, weight_decay: float = 0.0,
                  encoder_path: str = "auto") -> "SequenceClassifier":
        shape = spec.to_dict()
        if shape.pop("task") != "classification":  # taggers/regressors: encoders.torch.tagger / .regressor
            raise ValueError(f"SequenceClassifier builds task=classification, not task={spec.task}")
        return cls(**shape, lr=lr, weight_decay=weight_decay, encoder_path=encoder_path)

    @property
    def spec(self) -> ClassifierSpec:
        return ClassifierSpec.from_dict(self.hparams)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(encode_pooled(self.encoder, self.pool, self.embedding(tokens), lengths))

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook call, about 44 times per training step;
        # nn.Module.__setattr__ checks parameters, buffers and submodules each time (1-2 us).
        # A string is none of those, so it goes straight into __dict__, where nn.Module puts it too.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _check_labels(self, labels: torch.Tensor) -> None:
        k = self.hparams.num_classes
        if labels.numel():
            lo, hi = torch.aminmax(labels)  # one pass; the offending value is looked up only on error
            if int(lo) < 0 or int(hi) >= k:
                bad = labels[(labels < 0) | (labels >= k)][0]
                raise ValueError(f"label {int(bad)} is outside [0, {k})")

    def check_targets(self, batch: Dict[str, torch.Tensor]) -> None:
        if "labels" in batch:
            self._check_labels(batch["labels"])

    def _loss(self, batch: Dict[str, torch.Tensor]):
        labels = batch["labels"]
        # on an accelerator the check would stall every step on a device->host copy: there
        # transfer_batch_to_device checked the labels on the CPU
        if labels.device.type == "cpu":
            self._check_labels(labels)
        with self.checked(batch):
            logits = self(batch["tokens"], batch["lengths"])
        return F.cross_entropy(logits, labels), logits, labels

    # Per training step only two running sums move (loss*n, correct; n is a Python int); the
    # epoch's train/loss and train/acc are logged once, summed over ranks. The step loss is logged
    # only on the steps the loggers write (log_every_n_steps; the progress bar shows the latest):
    # one self.log costs about 1 ms, a tenth of the whole step of the default model on 2 cores.
    def training_step(self, batch, batch_idx):
        loss, logits, labels = self._loss(batch)
        if self._train_sums is None:
            self._train_sums, self._train_n = loss.new_zeros(2), 0
        self._train_sums[0] += loss.detach() * labels.numel()
        self._train_sums[1] += (logits.detach().argmax(-1) == labels).sum()
        self._train_n += labels.numel()
        trainer = self._trainer
        if trainer is not None and (self.global_step + 1) % trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_n = None, 0

    # A checkpoint taken mid-epoch carries the epoch's running sums, summed over ranks: Lightning
    # resumes that epoch without calling on_train_epoch_start, so the epoch's train/loss and
    # train/acc still cover all of its batches, not only those after the resume.
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        if self._train_sums is not None and self._trainer is not None:  # every rank saves, so all reduce
            sums = torch.cat([self._train_sums, self._train_sums.new_tensor([self._train_n])])
            checkpoint["train_sums"] = self.trainer.strategy.reduce(sums, reduce_op="sum").cpu().tolist()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self._resumed_sums = checkpoint.get("train_sums")

    def on_train_start(self) -> None:
        saved, self._resumed_sums = self._resumed_sums, None
        if saved is not None and self.global_rank == 0:  # rank 0 carries every rank's share
            self._train_sums = torch.tensor(saved[:2], dtype=torch.float32, device=self.device)
            self._train_n = int(saved[2])

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        sums = torch.cat([self._train_sums, self._train_sums.new_tensor([self._train_n])])
        loss_sum, correct, n = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self.log("train/loss", loss_sum / n, sync_dist=False)  # already summed over ranks
        self.log("train/acc", correct / n, prog_bar=True, sync_dist=False)
        self._train_sums = None

    def validation_step(self, batch, batch_idx):
        loss, logits, labels = self._loss(batch)
        self.val_loss.update(loss, torch.full_like(loss, labels.numel()))  # a device weight: no host copy
        self.val_acc.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self) -> Any:
        from encoders.torch.recipe import configure_optimizers

        return configure_optimizers(self, self.parameters())  # AdamW(lr, weight_decay), or the run's recipe
