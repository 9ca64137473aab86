"""Batches checked on the host, then moved: no device->host sync inside a training or evaluation step.

The Lightning modules mix in :class:`HostCheckedBatches`. Lightning hands every batch to
``transfer_batch_to_device`` while it is still on the CPU: the values are checked there (token ids
against the vocabulary, lengths against the padded length, the targets), where a check costs no
sync, and everything but ``lengths`` moves to the device without waiting. ``lengths`` stays on the
host, where the encoder reads it to pack rows and to find an all-empty batch; it makes its own
device copy for masks. Inside the step the modules run under ``checked_upstream`` for such a batch,
so they skip the value checks that would read the device. A batch that did not come through the
hook (a direct ``training_step`` call, a batch already on the device) is checked by the modules
themselves, as any direct call is.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict

import torch

from encoders.torch.checks import check_token_ids, checked_upstream
from encoders.torch.masking import check_lengths

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
