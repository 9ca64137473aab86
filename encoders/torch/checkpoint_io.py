"""Checkpoint files that survive a kill during the write, and that load without running code."""
from __future__ import annotations

import io
from typing import Any, Dict, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from encoders.io import atomic_write_bytes
from encoders.safe import load_torch_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, with two guarantees on local paths.

    * Saving writes a temporary file *in the checkpoint's own folder*, fsyncs it and renames it
      over the old one, so a kill at any moment leaves the previous checkpoint loadable.
      (fsspec's transaction, which Lightning uses, stages in the system temp folder and falls
      back to copy-then-delete across filesystems: a kill during that copy truncates the file.)
    * Loading always uses ``weights_only=True``: a checkpoint is data, never code.
    """

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if "://" in str(path):  # remote storage: its own put is already all-or-nothing
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(str(path), buffer.getvalue())

    def load_checkpoint(self, path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None):
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        # errors that name the file: truncated, corrupt, or carrying code
        return load_torch_checkpoint(str(path), map_location=map_location)
