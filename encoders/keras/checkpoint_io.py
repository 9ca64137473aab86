"""``.keras`` models: loaded with ``safe_mode`` after a scan that refuses code, with errors naming the file,
and written during training by ``AtomicModelCheckpoint`` (a temporary file renamed, as torch's
``AtomicCheckpointIO`` writes ``.ckpt`` files).

Importing this module (inside ``encoders.keras``) registers the project's layers, so a saved
classifier deserializes."""
from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Mapping, Optional

import keras

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError, UnsafeLoadError
from encoders.run.files import checkpoint_file
from encoders.run.resume import check_same_run, vocab_fingerprint

class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the model to ``path`` after every epoch, or, with ``monitor``, after each epoch that
    improves it (``mode`` "max" or "min"; the first epoch always does), as Keras' ``ModelCheckpoint``
    does, but through ``encoders.io``: a kill or a full disk during the write leaves the previous
    file whole (Keras writes in place), and a full disk is a ``StorageError`` naming the file."""

    def __init__(self, path: str, monitor: Optional[str] = None, mode: str = "max"):
        super().__init__()
        self.path, self.monitor, self.mode = path, monitor, mode
        self.best: Optional[float] = None

    def on_epoch_end(self, epoch, logs=None):
        from encoders.io import atomic_write_with

        if self.monitor:
            value = (logs or {}).get(self.monitor)
            if value is None:
                return
            value = float(value)
            if self.best is not None and not (value > self.best if self.mode == "max" else value < self.best):
                return
            self.best = value
        atomic_write_with(self.path, lambda tmp: self.model.save(tmp, overwrite=True))


_KERAS_MODULES = ("keras", "encoders")
_KERAS_BANNED_PARTS = frozenset({"utils", "saving", "config", "export", "legacy", "callbacks"})
_KERAS_BANNED_CLASSES = frozenset({"Lambda", "function", "__lambda__", "TFSMLayer"})


def _scan_keras_config(node: Any, path: str, where: str = "config") -> None:
    """Refuse lambdas and classes from outside Keras' model pieces and this project."""
    if isinstance(node, Mapping):
        cls, module = node.get("class_name"), node.get("module")
        if isinstance(cls, str) and cls in _KERAS_BANNED_CLASSES:
            raise UnsafeLoadError(f"{path}: refusing to load a {cls!r} object at {where} (it carries Python code); "
                                  f"this project's layers contain no lambdas")
        if isinstance(module, str):
            parts = module.split(".")
            if parts[0] not in _KERAS_MODULES or _KERAS_BANNED_PARTS.intersection(parts[1:]):
                raise UnsafeLoadError(f"{path}: refusing to load {module}.{cls} at {where}: only Keras layers, "
                                      f"optimizers, losses and metrics and encoders.keras layers may be loaded")
        for key, value in node.items():
            _scan_keras_config(value, path, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _scan_keras_config(value, path, f"{where}[{i}]")


def load_keras_model(path: str, compile: bool = True):
    """``keras.saving.load_model(path, safe_mode=True)`` for a ``.keras`` file, refusing code.

    Missing file: ``FileNotFoundError``; not a ``.keras`` zip, truncated or corrupt: ``ValueError``;
    a lambda (``Lambda`` layer, serialized function) or a class from outside Keras and this
    project: ``UnsafeLoadError`` naming the file. Keras and TensorFlow are imported here only.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such Keras model file: {path}")
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: only the .keras format is loaded (safe_mode applies to it alone)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"CRC error in {bad}")
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Keras model {path} is truncated or corrupt ({type(e).__name__}: {e})") from None
    _scan_keras_config(config, path)

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ValueError as e:
        text = str(e)
        if "safe_mode" in text or "arbitrary code" in text or "Lambda" in text:
            raise UnsafeLoadError(f"{path}: refusing to execute code from this model file (Keras safe_mode): "
                                  f"{text.splitlines()[0][:300]}") from None
        raise ValueError(f"could not load Keras model {path}: {text[:500]}") from None
    except (TypeError, KeyError, OSError) as e:
        raise ValueError(f"could not load Keras model {path} (truncated or corrupt?): "
                         f"{type(e).__name__}: {str(e)[:500]}") from None


def check_resume(ckpt_path: str, spec: ClassifierSpec, vocab: Optional[str]) -> None:
    """Refuse to resume unless the run continued has this model and vocabulary (the mirror of
    ``encoders.torch.checkpoint_io.check_resume``).

    Args:
        ckpt_path: the training config's ``ckpt_path``: on Keras the earlier run dir (its
            ``checkpoints/last.keras`` holds the model, its ``vocab.json`` the vocabulary).
        spec: the new run's model.
        vocab: the new run's ``vocab_fingerprint`` (None: not compared).

    Raises:
        ConfigError: no ``checkpoints/last.keras`` there, or another model or vocabulary.
    """
    from encoders.keras.models import spec_of

    last = checkpoint_file(ckpt_path, "last", "keras")
    if not os.path.isfile(last):
        raise ConfigError(f"ckpt_path={ckpt_path} has no checkpoints/last.keras to check the model against: resume a "
                          "run dir written by train.py, or start a fresh run (drop ckpt_path)")
    old = spec_of(load_keras_model(last, compile=False))
    check_same_run(ckpt_path, old.to_dict(), vocab_fingerprint(ckpt_path), spec, vocab)
