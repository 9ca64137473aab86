"""Loading things from files without executing code from them.

Every file the project reads back (a run's Hydra config, a torch checkpoint, a ``.keras`` model)
goes through one of these functions:

* ``safe_instantiate(cfg, **kwargs)``: ``hydra.utils.instantiate`` behind an allowlist. Every
  ``_target_`` in the config (nested ones, those inside ``_args_`` and lists, and those in
  ``kwargs``) must be one of ``ALLOWED_TARGETS`` (our own public classes, torch optimizers and
  learning-rate schedulers, Lightning callbacks, Keras optimizers and callbacks), matched on the
  exact dotted name; anything else (``os.system``, ``subprocess.Popen``, ``builtins.eval``...) is
  refused with ``UnsafeConfigError`` naming the target and where it is in the config.
* ``load_run_config(run_dir)``: ``RUN_DIR/.hydra/config.yaml`` through OmegaConf's safe YAML loader.
* ``load_torch_checkpoint(path)``: ``torch.load(weights_only=True)`` with errors that say which file
  and what is wrong (missing, truncated/corrupt, or carrying code).
* ``load_keras_model(path)``: ``keras.saving.load_model(safe_mode=True)`` after a scan of the
  archive's ``config.json`` that refuses lambdas and classes from outside Keras and this project.

``import encoders.safe`` imports neither torch nor tensorflow/keras: each loader imports its
framework when called.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import zipfile
from typing import Any, Iterator, Mapping, Tuple

__all__ = ["UnsafeLoadError", "UnsafeConfigError", "ALLOWED_TARGETS", "ALLOWED_FAMILIES", "check_targets",
           "safe_instantiate", "load_run_config", "load_torch_checkpoint", "load_keras_model"]


class UnsafeLoadError(ValueError):
    """A file asks for code to run while it is loaded; it was refused and nothing ran."""


class UnsafeConfigError(UnsafeLoadError):
    """A config names a ``_target_`` outside the allowlist (the message names it and its key path)."""


# -- allowlist ---------------------------------------------------------------------------------------
_OURS = {
    "encoders.torch": ("RNNEncoder", "PaddedEmbedding", "MaskedPooling", "SequenceClassifier", "SequenceDataModule"),
    "encoders.torch.rnn": ("RNNEncoder",),
    "encoders.torch.embedding": ("PaddedEmbedding",),
    "encoders.torch.pooling": ("MaskedPooling",),
    "encoders.torch.module": ("SequenceClassifier",),
    "encoders.torch.datamodule": ("SequenceDataModule",),
    "encoders.keras": ("RNNEncoder", "PaddedEmbedding", "MaskedPooling"),
    "encoders.keras.rnn": ("RNNEncoder",),
    "encoders.keras.embedding": ("PaddedEmbedding",),
    "encoders.keras.pooling": ("MaskedPooling",),
}
_FRAMEWORK = {
    "torch.optim": ("ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam",
                    "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam"),
    "torch.optim.lr_scheduler": ("ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
                                 "CyclicLR", "ExponentialLR", "LinearLR", "MultiStepLR", "OneCycleLR", "PolynomialLR",
                                 "ReduceLROnPlateau", "SequentialLR", "StepLR"),
    "pytorch_lightning.callbacks": ("DeviceStatsMonitor", "EarlyStopping", "GradientAccumulationScheduler",
                                    "LearningRateMonitor", "ModelCheckpoint", "ModelSummary", "RichModelSummary",
                                    "RichProgressBar", "StochasticWeightAveraging", "Timer", "TQDMProgressBar"),
    "keras.optimizers": ("Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion",
                         "LossScaleOptimizer", "Muon", "Nadam", "RMSprop", "SGD"),
    "keras.optimizers.schedules": ("CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
                                   "PiecewiseConstantDecay", "PolynomialDecay"),
    "keras.callbacks": ("BackupAndRestore", "CSVLogger", "EarlyStopping", "History", "LearningRateScheduler",
                        "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"),
}
ALLOWED_TARGETS = frozenset(f"{module}.{name}" for table in (_OURS, _FRAMEWORK)
                            for module, names in table.items() for name in names)

# Newer framework classes of the same kinds are allowed too, if ``_target_`` is exactly
# ``<module>.<PublicName>`` and the object found there is a class derived from the base named here.
ALLOWED_FAMILIES = {
    "torch.optim": "torch.optim.Optimizer",
    "torch.optim.lr_scheduler": "torch.optim.lr_scheduler.LRScheduler",
    "pytorch_lightning.callbacks": "pytorch_lightning.callbacks.Callback",
    "keras.optimizers": "keras.optimizers.Optimizer",
    "keras.optimizers.schedules": "keras.optimizers.schedules.LearningRateSchedule",
    "keras.callbacks": "keras.callbacks.Callback",
}
# these take arbitrary callables: never from a file, even though they are framework callbacks/schedulers
_NEVER = frozenset({"LambdaCallback", "LambdaLR", "MultiplicativeLR", "LRScheduler", "Callback", "Optimizer",
                    "LearningRateSchedule"})
_PUBLIC_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _family_member(target: str) -> bool:
    module, _, name = target.rpartition(".")
    if module not in ALLOWED_FAMILIES or not _PUBLIC_NAME.match(name) or name in _NEVER:
        return False
    import importlib

    try:
        obj = getattr(importlib.import_module(module), name)
        base_module, _, base_name = ALLOWED_FAMILIES[module].rpartition(".")
        base = getattr(importlib.import_module(base_module), base_name)
    except (ImportError, AttributeError):
        return False
    return inspect.isclass(obj) and issubclass(obj, base)


def _is_allowed(target: str) -> bool:
    return target in ALLOWED_TARGETS or _family_member(target)


def _iter_targets(node: Any, path: str) -> Iterator[Tuple[str, Any]]:
    """(key path, _target_ value) for every ``_target_`` in nested mappings and sequences."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield where, value
            else:
                yield from _iter_targets(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _iter_targets(value, f"{path}[{i}]")


def _plain(cfg: Any) -> Any:
    """A DictConfig/ListConfig as plain containers with interpolations resolved (what will run)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, Mapping):
        return {k: _plain(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [_plain(v) for v in cfg]
    if isinstance(cfg, tuple):
        return tuple(_plain(v) for v in cfg)
    return cfg


def _node_path(cfg: Any) -> str:
    """Where a DictConfig/ListConfig node sits in its root config ("callbacks[1]"), or ""."""
    parts = []
    node = cfg
    try:
        while node is not None and node._get_parent() is not None:
            key, parent = node._key(), node._get_parent()
            parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
            node = parent
    except Exception:  # not an OmegaConf node
        return ""
    return "".join(reversed(parts)).lstrip(".")


def check_targets(cfg: Any, root: str = "") -> None:
    """Raise ``UnsafeConfigError`` for the first ``_target_`` in ``cfg`` outside the allowlist.

    The message names the target and its key path (from the config's root for an OmegaConf node).
    """
    root = root or _node_path(cfg)
    for where, target in _iter_targets(_plain(cfg), root):
        if not isinstance(target, str):
            raise UnsafeConfigError(f"{where}: _target_ must be a dotted name string from the allowlist, got "
                                    f"{type(target).__name__} {target!r:.80}")
        if not _is_allowed(target.strip()) or target != target.strip():
            raise UnsafeConfigError(
                f"{where}: refusing to instantiate _target_={target!r}: it is not in the allowlist of this "
                f"project's classes and the frameworks' optimizers, schedulers and callbacks "
                f"(encoders.safe.ALLOWED_TARGETS); a config read from a file may not run other code")


def safe_instantiate(cfg: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(cfg, **kwargs)`` after every ``_target_`` passed the allowlist.

    The config is resolved first (interpolations included) and what was checked is exactly what
    is instantiated. ``kwargs`` are checked the same way (objects such as model parameters pass
    through untouched). Raises ``UnsafeConfigError`` (a ``ValueError``) naming the target and its
    key path; nothing is imported or called for a refused config.
    """
    from hydra.utils import instantiate

    if cfg is None:
        raise ValueError("safe_instantiate needs a config with a _target_, got None")
    plain = _plain(cfg)
    check_targets(plain, root=_node_path(cfg))
    for key, value in kwargs.items():
        if key == "_target_":
            raise UnsafeConfigError("_target_ may not be passed as a keyword argument to safe_instantiate")
        if isinstance(value, (Mapping, list, tuple)) or type(value).__module__.startswith("omegaconf"):
            check_targets(value, root=key)
    if isinstance(plain, Mapping) and "_target_" not in plain:
        raise ValueError(f"safe_instantiate needs a config with a _target_, got keys {sorted(map(str, plain))}")
    return instantiate(plain, **kwargs)


# -- run configs --------------------------------------------------------------------------------------
def load_run_config(run_dir: str):
    """``RUN_DIR/.hydra/config.yaml`` as a DictConfig (OmegaConf's YAML loader is a safe loader).

    A missing file raises ``FileNotFoundError`` naming it; unreadable YAML or a document that is
    not a mapping raises ``ValueError`` naming it. Nothing in it is instantiated here: use
    ``safe_instantiate`` for any ``_target_`` in it.
    """
    from omegaconf import DictConfig, OmegaConf

    path = os.path.join(os.fspath(run_dir), ".hydra", "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no run config at {path}: is {run_dir} a run dir written by train.py?")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError, UnicodeDecodeError, omegaconf's own errors
        raise ValueError(f"{path} is corrupt or not valid YAML ({type(e).__name__}: {e})") from None
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path} is corrupt: expected a mapping of config keys, got {type(cfg).__name__}")
    return cfg


# -- torch checkpoints --------------------------------------------------------------------------------
def load_torch_checkpoint(path: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, map_location, weights_only=True)`` with errors that name the file.

    * missing file: ``FileNotFoundError``;
    * a pickle that asks for anything beyond tensors and plain containers (``os.system`` in a
      ``__reduce__``, a pickled module or class...): ``UnsafeLoadError``; nothing from it runs;
    * truncated or otherwise unreadable: ``ValueError`` saying so.
    """
    import pickle

    import torch

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


# -- .keras models ------------------------------------------------------------------------------------
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

    import keras

    import encoders.keras  # noqa: F401  (registers this project's layers for deserialization)

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
