"""torch checkpoints: written so that a kill mid-write leaves the previous one, read without running code."""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any, Dict, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError, UnsafeLoadError
from encoders.io import atomic_write_bytes
from encoders.run.resume import VOCAB_KEY, check_same_run


def load_torch_checkpoint(path: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, map_location, weights_only=True)`` with errors that name the file.

    * missing file: ``FileNotFoundError``;
    * a pickle that asks for anything beyond tensors and plain containers (``os.system`` in a
      ``__reduce__``, a pickled module or class...): ``UnsafeLoadError``; nothing from it runs;
    * truncated or otherwise unreadable: ``ValueError`` saying so.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"checkpoint {path} is truncated or corrupt: the file is empty")
    with open(path, "rb") as f:
        head = f.read(4)
    if b"PK\x03\x04".startswith(head[:4]) and not zipfile.is_zipfile(path):
        # torch.save's zip format, cut short before its central directory
        raise ValueError(f"checkpoint {path} is truncated or corrupt: an incomplete zip archive")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "GLOBAL" in text or "global" in text:
            detail = next((line.strip() for line in text.splitlines() if "GLOBAL" in line or "global" in line), "")
            raise UnsafeLoadError(
                f"checkpoint {path} holds more than weights ({detail}): refusing to execute code from it "
                f"(torch.load weights_only=True); re-save it with plain tensors and primitive hyperparameters"
            ) from None
        detail = next((line.strip() for line in text.splitlines() if "Unsupported" in line), text[:200])
        raise UnsafeLoadError(
            f"checkpoint {path} is truncated or corrupt, or holds more than weights ({detail}): refusing to "
            f"execute code from it (torch.load weights_only=True)") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else 'unexpected end of data'})") from None


TRAINING_KEYS = ("hyper_parameters", "state_dict", "optimizer_states", "loops")


def check_resume(ckpt_path: str, spec: ClassifierSpec, vocab: Optional[str]) -> None:
    """Refuse (``ConfigError``) to resume from ``ckpt_path`` unless it is a full training checkpoint
    of the same model (``spec``) on the same vocabulary (``encoders.run.resume.vocab_fingerprint``).

    A plain state dict or the ``.ckpt`` that ``python -m encoders.convert`` writes holds weights
    but no optimizer state or loop progress: it can't be continued, only trained from.
    """
    ckpt = load_torch_checkpoint(ckpt_path)
    missing = [k for k in TRAINING_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ConfigError(f"ckpt_path={ckpt_path} is not a training checkpoint of train.py (it has no "
                          f"{', '.join(missing)}: weights only, e.g. written by python -m encoders.convert): resume "
                          "from RUN_DIR/checkpoints/last.ckpt, or start a fresh run (drop ckpt_path)")
    check_same_run(ckpt_path, ckpt["hyper_parameters"], ckpt.get(VOCAB_KEY), spec, vocab)


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
