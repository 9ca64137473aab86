"""The torch task models, one Lightning module per task: embedding -> encoder -> head.

``SequenceClassifier`` (pooling -> linear head), ``SequenceTagger`` (a linear head on every token's
output) and ``SequenceRegressor`` (pooling -> a linear head with 1 output) share ``TaskModule``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from encoders.config import PAD_ID, TAG_PAD_ID, ClassifierSpec
from encoders.data.flat import buffer_logits
from encoders.run.report import test_report as classification_report
from encoders.tasks import RegressionTally, TaggingTally, with_prefix
from encoders.torch.batches import CHECKED, HostCheckedBatches
from encoders.torch.embedding import PaddedEmbedding
from encoders.torch.pooling import MaskedPooling, encode_pooled
from encoders.torch.rnn import RNNEncoder


class TaskModule(HostCheckedBatches, pl.LightningModule):
    """What the task modules share: the embedding and encoder of a ``ClassifierSpec``, AdamW, the
    epoch's train loss summed over ranks, and the figures of a test split.

    A subclass sets ``TASK`` (its ``ClassifierSpec.task``) and says the shape of its output:
    ``PER_TOKEN`` (``[B, T, C]``, a tag per token) or ``SCALAR`` (``[B]``, one number per row);
    neither: ``[B, C]``. Exporters and reports read these instead of comparing task names.
    """

    TASK = ""
    PER_TOKEN = False
    SCALAR = False

    def _build_backbone(self, encoder_path: str) -> None:
        hp = self.hparams
        ClassifierSpec.from_dict(hp)  # checks the shape's values, naming a bad one
        self.embedding = PaddedEmbedding(hp.vocab_size, hp.embedding_dim, hp.padding_idx)
        self.encoder = RNNEncoder(hp.embedding_dim, hp.hidden_size, hp.cell, hp.num_layers, hp.bidirectional,
                                  hp.dropout, path=encoder_path)
        self.embedding.weight.requires_grad_(not hp.get("freeze_embeddings", False))

    @classmethod
    def from_spec(cls, spec: ClassifierSpec, lr: float = 3e-3, weight_decay: float = 0.0,
                  freeze_embeddings: bool = False, tag_names: Optional[Sequence[str]] = None,
                  encoder_path: str = "auto") -> "TaskModule":
        """The module of ``spec`` (whose ``task`` must be this class's ``TASK``).

        Args:
            spec: the model's shape and task.
            lr, weight_decay: AdamW's (kept in the hyperparameters).
            freeze_embeddings: the embedding table gets no gradient.
            tag_names: the tags by id (the tagger keeps them; the other tasks have none).
            encoder_path: ``RNNEncoder``'s ``path``.

        Raises:
            ValueError: ``spec.task`` is another task's.
        """
        shape = spec.to_dict()
        if shape["task"] != cls.TASK:
            raise ValueError(f"{cls.__name__} builds task={cls.TASK}, not task={spec.task}")
        return cls._from_shape(shape, dict(lr=lr, weight_decay=weight_decay, encoder_path=encoder_path),
                               freeze_embeddings, tag_names)

    @classmethod
    def _from_shape(cls, shape: Dict[str, Any], opt: Dict[str, Any], freeze_embeddings: bool,
                    tag_names: Optional[Sequence[str]]) -> "TaskModule":
        return cls(**shape, **opt, freeze_embeddings=freeze_embeddings)

    @property
    def spec(self) -> ClassifierSpec:
        return ClassifierSpec.from_dict({"task": self.TASK, **self.hparams})

    def tag_names(self) -> List[str]:
        """The output classes' names by id (the tagger's tags; ids as names for the other tasks)."""
        names = self.hparams.get("tag_names")
        return list(names) if names else [str(i) for i in range(self.hparams.num_classes)]

    def numpy_logits(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The module's output on one right-padded numpy batch, in eval mode without gradients.

        Args:
            tokens: ``[B, T]`` ids.
            lengths: ``[B]`` row lengths.

        Returns:
            float32 ``[B, C]`` (``PER_TOKEN``: ``[B, T, C]``; ``SCALAR``: ``[B]``).
        """
        self.eval()
        device = next(self.parameters()).device
        with torch.inference_mode():
            out = self(torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).to(device),
                       torch.from_numpy(np.ascontiguousarray(lengths, dtype=np.int64)))
        return out.float().cpu().numpy()

    def test_report(self, split, batch_size: int) -> Dict[str, Any]:
        """The ``test_*`` figures of this model over a split with targets (``encoders.data.splits.Split``)."""
        raise NotImplementedError

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
        # Lightning sets _current_fx_name around every hook call, about 44 times per training step;
        # nn.Module.__setattr__ checks parameters, buffers and submodules each time (1-2 us).
        # A string is none of those, so it goes straight into __dict__, where nn.Module puts it too.
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


class SequenceClassifier(TaskModule):
    """Sequence classifier on right-padded batches: embedding -> encoder -> pooling -> linear head.

    Args:
        vocab_size, num_classes, embedding_dim, hidden_size, cell, num_layers, bidirectional,
        dropout, pooling, padding_idx: the model's shape, as in ``encoders.config.ClassifierSpec``
            (``SequenceClassifier.from_spec(spec, lr=...)`` builds from one).
        lr, weight_decay: AdamW's.
        encoder_path: ``RNNEncoder``'s ``path`` (``"auto"``: packed on CUDA, padded elsewhere).

    Input shape:
        A batch from ``SequenceDataModule`` or ``encoders.data.collate``:
        ``{"tokens": [B, T] int64, "lengths": [B] int64, "labels": [B] int64}``;
        ``forward(tokens, lengths)``.

    Output shape:
        ``forward``: logits ``[B, num_classes]``.

    On an accelerator the batch's values are checked on the CPU before it moves, and its lengths
    stay there (``encoders.torch.batches.HostCheckedBatches``): no step waits for the device.

    Padding: ``pooling="last"`` uses the encoder's ``final`` (``[fw h at len-1 ; bw h at 0]``),
    other modes pool the masked ``sequence``; an empty row gets the logits of a zero vector.
    Hyperparameters are primitives only, so checkpoints load with ``torch.load(...,
    weights_only=True)``. Logged metrics: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``.
    """

    TASK = "classification"

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", lr: float = 3e-3, weight_decay: float = 0.0, padding_idx: int = PAD_ID,
                 encoder_path: str = "auto"):
        super().__init__()
        self.save_hyperparameters()
        self._build_backbone(encoder_path)
        self.pool = None if pooling == "last" else MaskedPooling(pooling, self.encoder.output_size)
        self.head = nn.Linear(self.encoder.output_size, num_classes)
        # labels are range-checked in _loss, so torchmetrics' own per-update checks are off
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_loss = MeanMetric(nan_strategy="disable")  # its NaN check reads the device every step
        self._train_sums: Optional[torch.Tensor] = None  # loss*n, correct of this epoch
        self._train_n = 0
        self._resumed_sums: Optional[list] = None  # [loss*n, correct, n] from a checkpoint

    @classmethod
    def _from_shape(cls, shape: Dict[str, Any], opt: Dict[str, Any], freeze_embeddings: bool,
                    tag_names: Optional[Sequence[str]]) -> "SequenceClassifier":
        shape.pop("task")  # not among the classifier's hyperparameters (its checkpoints have none)
        model = cls(**shape, **opt)
        model.embedding.weight.requires_grad_(not freeze_embeddings)  # AdamW skips a grad-less table
        return model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(encode_pooled(self.encoder, self.pool, self.embedding(tokens), lengths))

    def test_report(self, split, batch_size: int) -> Dict[str, Any]:
        spec = self.spec
        logits = buffer_logits(_numpy_logits, self, split.tokens, spec.num_classes, batch_size, spec.padding_idx)
        return classification_report(logits, split.labels, spec.num_classes)

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

        # every parameter, a frozen table's too (AdamW skips it): the optimizer state of a checkpoint
        # keeps the layout it always had
        return configure_optimizers(self, self.parameters())  # AdamW(lr, weight_decay), or the run's recipe


class SequenceTagger(TaskModule):
    """A tag per token on right-padded batches: embedding -> encoder -> ``Linear`` on ``sequence``.

    Args:
        vocab_size, num_classes (tags), embedding_dim, hidden_size, cell, num_layers, bidirectional,
        dropout, padding_idx: the model's shape, as in ``ClassifierSpec`` (``pooling`` is unused).
        tag_names: the tags by id (``vocab.json``'s ``labels``); a BIO-like set adds ``val/span_f1``.
        lr, weight_decay: AdamW's.
        freeze_embeddings: keep the embedding table as it is.
        task: ``"tagging"`` (``ClassifierSpec``'s field, checked).
        encoder_path: ``RNNEncoder``'s ``path``.

    Input shape:
        ``{"tokens": [B, T] int64, "lengths": [B] int64, "tags": [B, T] int64}`` with
        ``TAG_PAD_ID`` (-100) at pad positions; ``forward(tokens, lengths)``.

    Output shape:
        ``forward``: logits ``[B, T, num_classes]``. The argmax over the last axis at
        ``t < lengths[b]`` is row ``b``'s tag ids.

    Loss: cross-entropy summed over real tokens divided by their count (pad positions are
    skipped, so padding changes nothing); a batch with no real token has loss 0 and zero
    gradients. Logged: ``train/loss``, ``val/loss``, ``val/acc``, ``val/macro_f1`` and, for a
    BIO-like tag set, ``val/span_f1``, all from sums over the epoch's real tokens.
    """

    TASK = "tagging"
    PER_TOKEN = True

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", padding_idx: int = PAD_ID, task: str = "tagging",
                 tag_names: Optional[Sequence[str]] = None, lr: float = 3e-3, weight_decay: float = 0.0,
                 freeze_embeddings: bool = False, encoder_path: str = "auto"):
        super().__init__()
        if task != self.TASK:
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

    @classmethod
    def _from_shape(cls, shape: Dict[str, Any], opt: Dict[str, Any], freeze_embeddings: bool,
                    tag_names: Optional[Sequence[str]]) -> "SequenceTagger":
        return cls(**shape, **opt, freeze_embeddings=freeze_embeddings, tag_names=tag_names)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embedding(tokens), lengths).sequence)

    def test_report(self, split, batch_size: int) -> Dict[str, Any]:
        tally = split_tally(self, split, batch_size)
        return with_prefix(tally.figures(), "test", ("tokens", tally.tokens))

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
    """A ``TaggingTally`` of ``model`` over a split with tags (``encoders.data.splits.Split``)."""
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


class SequenceRegressor(TaskModule):
    """A number per sequence: the classifier's embedding -> encoder -> pooling, then ``Linear(H, 1)``.

    Args:
        vocab_size, num_classes, ...: as ``SequenceTagger`` (``num_classes`` is 1, there are no
            tag names; ``pooling`` as in ``SequenceClassifier``).

    Input shape:
        ``{"tokens", "lengths", "labels": [B] float32}``; ``forward(tokens, lengths)``.

    Output shape:
        ``forward``: ``[B]``.

    Loss: mean squared error. Logged: ``train/loss``, ``val/loss`` (MSE), ``val/rmse``, ``val/mae``
    over the whole validation split (sums, not means of batch means).
    """

    TASK = "regression"
    SCALAR = True

    def __init__(self, vocab_size: int, num_classes: int = 1, embedding_dim: int = 32, hidden_size: int = 64,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pooling: str = "last", padding_idx: int = PAD_ID, task: str = "regression", lr: float = 3e-3,
                 weight_decay: float = 0.0, freeze_embeddings: bool = False, encoder_path: str = "auto"):
        super().__init__()
        if task != self.TASK or num_classes != 1:
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

    def test_report(self, split, batch_size: int) -> Dict[str, Any]:
        from encoders.metrics import regression_report

        rep = regression_report(split.labels, predict_split(self, split, batch_size))
        return {"test_rmse": rep["rmse"], "test_mae": rep["mae"], "test_loss": rep["rmse"] ** 2,
                "test_examples": rep["num_examples"]}

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


def predict_split(model: SequenceRegressor, split, batch_size: int) -> np.ndarray:
    """``model``'s prediction for every row of a split, in the split's order (float32 ``[N]``)."""
    return buffer_logits(_numpy_logits, model, split.tokens, None, batch_size, model.hparams.padding_idx)


def _numpy_logits(model: TaskModule, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return model.numpy_logits(tokens, lengths)


# The one map from a task to its torch module: loaders, builders and converters ask it.
MODELS = {cls.TASK: cls for cls in (SequenceClassifier, SequenceTagger, SequenceRegressor)}


def torch_model_class(task: str) -> type:
    """The torch module of a task: ``SequenceClassifier``, ``SequenceTagger`` or ``SequenceRegressor``."""
    return MODELS[task]


def build_model(spec: ClassifierSpec, cfg: Any = None, vectors: Any = None,
                tag_names: Optional[Sequence[str]] = None) -> TaskModule:
    """The untrained model of ``spec``'s task, ready for ``Trainer.fit``.

    Args:
        spec: the model's shape and task.
        cfg: the run's ``TrainConfig``: its optimizer (lr and weight decay go into the
            hyperparameters, the whole recipe onto the module: ``encoders.torch.recipe.attach``) and
            ``model.freeze_embeddings``. None: AdamW with the module's defaults, a trainable table.
        vectors: ``encoders.tasks.PretrainedVectors`` copied into the embedding (its pad row zeroed),
            or None.
        tag_names: the tags by id, for a tagger (kept in its hyperparameters: span F1 reads them).

    Returns:
        A ``SequenceClassifier``, ``SequenceTagger`` or ``SequenceRegressor``.
    """
    opt: Dict[str, Any] = {}
    if cfg is not None:
        from encoders.run.recipe import optimizer_config

        o = optimizer_config(cfg)
        opt = dict(lr=o.lr, weight_decay=o.weight_decay, freeze_embeddings=bool(cfg.model.freeze_embeddings))
    model = MODELS[spec.task].from_spec(spec, tag_names=tag_names, **opt)
    if vectors is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(torch.from_numpy(vectors.matrix))
            model.embedding.weight[spec.padding_idx].zero_()
    if cfg is not None:
        from encoders.torch.recipe import attach

        model = attach(model, cfg)  # optimizer, lr schedule and monitored metric for configure_optimizers
    return model


def test_report(model: TaskModule, split, batch_size: int,
                tag_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The ``test_*`` figures of ``model`` over a split with targets, as its task reports them.

    Args:
        model: a trained task module.
        split: an ``encoders.data.splits.Split`` with labels (or tags).
        batch_size: rows per batch.
        tag_names: unused: a torch tagger carries its tag names (the Keras one does not).

    Returns:
        ``test_acc``/``test_loss``/``test_macro_f1``/``test_examples`` (classification),
        ``test_acc``/``test_macro_f1``/``test_span_f1``/... over tokens (tagging), or
        ``test_rmse``/``test_mae``/``test_loss``/``test_examples`` (regression).
    """
    return model.test_report(split, batch_size)


def model_tag_names(model: TaskModule, path: str = "") -> List[str]:
    """The names of ``model``'s output classes by id (a tagger's tags; ids as names otherwise).

    Args:
        model: a task module.
        path: its checkpoint (unused: a torch module carries its tag names; the Keras mirror reads
            them from the run beside the file).
    """
    return model.tag_names()
