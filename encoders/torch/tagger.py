"""Lightning module for tagging: embedding -> encoder -> a linear head on every token's output."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from encoders.config import PAD_ID, TAG_PAD_ID, ClassifierSpec
from encoders.tasks import TaggingTally
from encoders.torch.embedding import PaddedEmbedding
from encoders.torch.rnn import RNNEncoder
from encoders.torch.batches import CHECKED, HostCheckedBatches


class TaskModule(HostCheckedBatches, pl.LightningModule):
    """What the task modules share: the embedding and encoder of a ``ClassifierSpec``, AdamW, and
    ``freeze_embeddings`` (the table gets no gradient, so it never changes)."""

    def _build_backbone(self, encoder_path: str) -> None:
        hp = self.hparams
        ClassifierSpec.from_dict(hp)  # checks the shape's values, naming a bad one
        self.embedding = PaddedEmbedding(hp.vocab_size, hp.embedding_dim, hp.padding_idx)
        self.encoder = RNNEncoder(hp.embedding_dim, hp.hidden_size, hp.cell, hp.num_layers, hp.bidirectional,
                                  hp.dropout, path=encoder_path)
        self.embedding.weight.requires_grad_(not hp.freeze_embeddings)

    @classmethod
    def from_spec(cls, spec: ClassifierSpec, **kwargs) -> "TaskModule":
        return cls(**spec.to_dict(), **kwargs)

    @property
    def spec(self) -> ClassifierSpec:
        return ClassifierSpec.from_dict(self.hparams)

    def set_embeddings(self, matrix: np.ndarray) -> None:
        """Copy a pretrained table in (row ``padding_idx`` is zeroed: pad vectors stay zero)."""
        with torch.no_grad():
            self.embedding.weight.copy_(torch.as_tensor(matrix, dtype=self.embedding.weight.dtype))
            self.embedding.weight[self.hparams.padding_idx].zero_()

    # The epoch's train loss from two running sums (loss total, count), summed over ranks once.
    def _add_train_loss(self, total: torch.Tensor, n) -> None:
        if getattr(self, "_train_sums", None) is None:
            self._train_sums = total.new_zeros(2, dtype=torch.float64)
        self._train_sums[0] += total.detach()
        self._train_sums[1] += n

    def on_train_epoch_start(self) -> None:
        self._train_sums = None

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        loss_sum, n = self.trainer.strategy.reduce(self._train_sums, reduce_op="sum")
        self.log("train/loss", (loss_sum / n.clamp(min=1)).float(), sync_dist=False)
        self._train_sums = None

    def __setattr__(self, name: str, value: Any) -> None:
        # as in SequenceClassifier: Lightning sets this string around every hook call
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_optimizers(self) -> Any:
        from encoders.torch.recipe import configure_optimizers

        return configure_optimizers(self, [p for p in self.parameters() if p.requires_grad])

    def _reduce(self, values: np.ndarray) -> np.ndarray:
        """Sums over ranks (a no-op in one process)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return values
        t = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        return trainer.strategy.reduce(t, reduce_op="sum").cpu().numpy()


class SequenceTagger(TaskModule):
    """A tag per token on right-padded batches: embedding -> encoder -> ``Linear`` on ``sequence``.

    Args:
        vocab_size, num_classes (tags), embedding_dim, hidden_size, cell, num_layers, bidirectional,
        dropout, padding_idx: the model's shape, as in ``ClassifierSpec`` (``pooling`` is unused).
        tag_names: the tags by id (``vocab.json``'s ``labels``); a BIO-like set adds ``val/span_f1``.
        lr, weight_decay: AdamW's. freeze_embeddings: keep the embedding table as it is.

    Input: ``{"tokens": [B, T] int64, "lengths": [B] int64, "tags": [B, T] int64}`` with
    ``TAG_PAD_ID`` (-100) at pad positions; ``forward(tokens, lengths) -> logits [B, T, num_classes]``.
    The argmax over the last axis at ``t < lengths[b]`` is row ``b``'s tag ids.

    Loss: cross-entropy summed over real tokens divided by their count (pad positions are
    skipped, so padding changes nothing); a batch with no real token has loss 0 and zero
    gradients. Logged: ``train/loss``, ``val/loss``, ``val/acc``, ``val/macro_f1`` and, for a
    BIO-like tag set, ``val/span_f1``, all from sums over the epoch's real tokens.
    """

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", padding_idx: int = PAD_ID, task: str = "tagging",
                 tag_names: Optional[Sequence[str]] = None, lr: float = 3e-3, weight_decay: float = 0.0,
                 freeze_embeddings: bool = False, encoder_path: str = "auto"):
        super().__init__()
        if task != "tagging":
            raise ValueError(f"SequenceTagger is the tagging model, got task={task!r}")
        tag_names = list(tag_names) if tag_names else [str(i) for i in range(num_classes)]
        if len(tag_names) != num_classes:
            raise ValueError(f"{len(tag_names)} tag_names for {num_classes} tags")
        self.save_hyperparameters()  # the frame's values: tag_names as the list above
        self._build_backbone(encoder_path)
        self.head = nn.Linear(self.encoder.output_size, num_classes)
        self._train_sums: Optional[torch.Tensor] = None  # loss sum, tokens
        self._val_sums: Optional[torch.Tensor] = None  # validation: TaggingTally's sums, on the device
        self._val_ids: List = []  # validation: (predicted, gold) ids per batch, for span F1
        self._val_bio = TaggingTally(tag_names).bio

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embedding(tokens), lengths).sequence)

    def loss_sum(self, logits: torch.Tensor, tags: torch.Tensor):
        """(summed cross-entropy over real tokens, their count) of a batch's logits."""
        k = self.hparams.num_classes
        real = tags != TAG_PAD_ID
        if tags.device.type == "cpu":  # on an accelerator transfer_batch_to_device checked them on the CPU
            self.check_targets({"tags": tags})
        total = F.cross_entropy(logits.reshape(-1, k).float(), tags.reshape(-1), ignore_index=TAG_PAD_ID,
                                reduction="sum")
        return total, real.sum()

    def check_targets(self, batch: Dict[str, torch.Tensor]) -> None:
        k, tags = self.hparams.num_classes, batch.get("tags")
        real = None if tags is None else tags != TAG_PAD_ID
        if real is not None and real.any():
            t = tags[real]
            if int(t.min()) < 0 or int(t.max()) >= k:
                raise ValueError(f"tag {int(t[(t < 0) | (t >= k)][0])} is outside [0, {k})")

    def _loss(self, batch: Dict[str, torch.Tensor]):
        with self.checked(batch):
            logits = self(batch["tokens"], batch["lengths"])
        total, n = self.loss_sum(logits, batch["tags"])
        return total / n.clamp(min=1), total, n, logits

    def training_step(self, batch, batch_idx):
        loss, total, n, _ = self._loss(batch)
        self._add_train_loss(total, n)
        return loss


    # Validation adds up on the device, so a step never waits for it: the loss, token and confusion
    # sums of ``TaggingTally.vector()`` in one float64 tensor, and (for span F1, whose chunks are
    # found per row on the host) each batch's predicted and gold ids, read only at the epoch's end.
    def on_validation_epoch_start(self) -> None:
        self._val_sums, self._val_ids = None, []

    def validation_step(self, batch, batch_idx):
        tags = batch["tags"]
        if not batch.get(CHECKED):  # else transfer_batch_to_device checked them on the CPU
            self.check_targets({"tags": tags})
        with self.checked(batch):
            logits = self(batch["tokens"], batch["lengths"])
        sums, pred = tagging_sums(logits.detach(), tags)
        self._val_sums = sums if self._val_sums is None else self._val_sums + sums
        if self._val_bio:
            self._val_ids.append((pred.to(torch.int32), tags.to(torch.int32)))

    def on_validation_epoch_end(self) -> None:
        tally = TaggingTally(self.hparams.tag_names)
        for pred, gold in self._val_ids:
            tally.add_spans(pred.cpu().numpy(), gold.cpu().numpy())
        vector = tally.vector()
        if self._val_sums is not None:
            vector[:len(self._val_sums)] = self._val_sums.cpu().numpy()
        tally.set_vector(self._reduce(vector))
        self._val_sums, self._val_ids = None, []
        for name, value in tally.figures().items():
            self.log(f"val/{name}", float(value), prog_bar=name in ("loss", "acc"), sync_dist=False)

    def tag_ids(self, logits: torch.Tensor, lengths: torch.Tensor) -> List[List[int]]:
        """Each row's predicted tag ids (its first ``lengths[b]`` positions), in the batch's order."""
        pred = logits.argmax(-1).cpu().numpy()
        return [pred[b, :int(n)].tolist() for b, n in enumerate(lengths.cpu().numpy())]


def tagging_sums(logits: torch.Tensor, tags: torch.Tensor):
    """(``TaggingTally``'s sums of a batch as one float64 tensor: cross-entropy summed over real
    tokens, their count, the [gold, predicted] confusion counts flattened; the predicted ids [B, T]),
    computed where the batch is, reading no value (pad positions, ``TAG_PAD_ID``, match no tag)."""
    k = logits.shape[-1]
    logits = logits.float()
    pred = logits.argmax(-1)
    tag_ids = torch.arange(k, device=tags.device)
    gold_1hot = (tags.unsqueeze(-1) == tag_ids).reshape(-1, k).double()
    pred_1hot = (pred.unsqueeze(-1) == tag_ids).reshape(-1, k).double()
    loss = F.cross_entropy(logits.double().reshape(-1, k), tags.reshape(-1), ignore_index=TAG_PAD_ID, reduction="sum")
    sums = torch.cat([loss.reshape(1), gold_1hot.sum().reshape(1), (gold_1hot.T @ pred_1hot).reshape(-1)])
    return sums, pred


def split_tally(model: SequenceTagger, split, batch_size: int) -> TaggingTally:
    """A ``TaggingTally`` of ``model`` over a split with tags (``encoders.data.sources.Split``)."""
    model.eval()
    device = next(model.parameters()).device
    out = TaggingTally(model.hparams.tag_names)
    order = np.argsort(-split.lengths, kind="stable")
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            b = split.tokens.pad(order[start:start + batch_size], model.hparams.padding_idx, sort=False,
                                 tags=split.tags)
            logits = model(torch.from_numpy(b["tokens"]).to(device), torch.from_numpy(b["lengths"]))
            out.update(logits.float().cpu().numpy(), b["tags"])
    return out
