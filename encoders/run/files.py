"""What a run dir holds and where, read without any framework: its file names, config, backend,
vocabulary labels and checkpoints.

A run dir is what ``train.py`` leaves (``.hydra/config.yaml``, ``vocab.json``, ``metrics.json``,
``checkpoints/{best,last}.{ckpt,keras}``). Every module that reads or writes one (training, convert,
predict, evaluate, export, ``encoders.load_run``) takes the names and paths from here, so a file is
spelled in one place and a missing or foreign one is named the same way everywhere.

This module imports nothing of the project but ``encoders.errors``: ``encoders.io`` and the data
layer take their names from here without an import circle.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from encoders.errors import RunDirError

# The run dir's files and folders.
CONFIG_FILE = os.path.join(".hydra", "config.yaml")  # Hydra's composed config of the run
VOCAB_FILE = "vocab.json"  # tokens by id, label (or tag) names by id, how text was tokenized
TOKENIZER_FILE = "tokenizer.json"  # a subword tokenizer, beside vocab.json
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
LOG_FILE = "train.log"
EVALUATION_FILE = "evaluation.json"  # what `encoders evaluate` writes by default
CHECKPOINTS_DIR = "checkpoints"
BACKUP_DIR = "backup"  # Keras' BackupAndRestore state: what a Keras run resumes from
EXPORT_DIR = "export"  # what `encoders export` writes by default
CHECKPOINT_NAMES = ("best", "last")  # best on the task's validation metric; the last epoch's
CHECKPOINT_EXT = {"torch": ".ckpt", "tf": ".keras", "jax": ".keras"}  # jax runs save the same .keras
KERAS = "keras"  # as a backend in checkpoint_file: any Keras backend (tf, jax)

# What train.py writes into a run dir: commands that use a run (evaluate, export...) never write over these.
TRAINING_FILES = (METRICS_FILE, VOCAB_FILE, CURVES_FILE, LOG_FILE)
TRAINING_DIRS = (os.path.dirname(CONFIG_FILE), CHECKPOINTS_DIR, BACKUP_DIR, "csv", "tb")

# What a file holds, for messages (a full disk names it): by file name, else by extension.
_KIND_BY_NAME = {METRICS_FILE: "run metrics", VOCAB_FILE: "vocabulary", EVALUATION_FILE: "evaluation report",
                 TOKENIZER_FILE: "tokenizer"}
_KIND_BY_EXT = {**{ext: "checkpoint" for ext in CHECKPOINT_EXT.values()}, ".png": "plot", ".json": "JSON report",
                ".onnx": "ONNX export"}


def describe(path: str) -> str:
    """What a file the project writes holds, in words.

    Args:
        path: the file's path (only its name counts).

    Returns:
        e.g. ``"vocabulary"`` for ``vocab.json``, ``"checkpoint"`` for ``best.ckpt``; ``"file"``
        for a name it does not know.
    """
    name = os.path.basename(path)
    return _KIND_BY_NAME.get(name) or _KIND_BY_EXT.get(os.path.splitext(name)[1].lower(), "file")


def config_file(run_dir: str) -> str:
    """The path of the run's composed config, ``RUN_DIR/.hydra/config.yaml``."""
    return os.path.join(os.fspath(run_dir), CONFIG_FILE)


def vocab_file(run_dir: str) -> str:
    """The path of the run's vocabulary, ``RUN_DIR/vocab.json``."""
    return os.path.join(os.fspath(run_dir), VOCAB_FILE)


def checkpoints_dir(run_dir: str) -> str:
    """The folder of the run's checkpoints, ``RUN_DIR/checkpoints``."""
    return os.path.join(os.fspath(run_dir), CHECKPOINTS_DIR)


def backup_dir(run_dir: str) -> str:
    """The folder Keras' ``BackupAndRestore`` keeps a run's state in, ``RUN_DIR/backup``."""
    return os.path.join(os.fspath(run_dir), BACKUP_DIR)


def checkpoint_name(which: str, backend: str) -> str:
    """A checkpoint's file name, e.g. ``last.ckpt``.

    Args:
        which: ``"best"`` or ``"last"`` (any stem is taken).
        backend: ``"torch"``, ``"tf"`` or ``"jax"`` (a run's ``backend.name``), or ``"keras"`` for
            any Keras backend.

    Returns:
        ``which`` with the backend's checkpoint extension.
    """
    return which + CHECKPOINT_EXT["tf" if backend == KERAS else backend]


def checkpoint_file(run_dir: str, which: str, backend: str) -> str:
    """Where a run's ``which`` checkpoint is written, ``RUN_DIR/checkpoints/{which}.{ckpt,keras}``.

    Args:
        run_dir: the run dir.
        which: ``"best"`` or ``"last"``.
        backend: as in ``checkpoint_name``.

    Returns:
        The path; whether the file exists is not checked (``checkpoint_path`` checks).
    """
    return os.path.join(checkpoints_dir(run_dir), checkpoint_name(which, backend))


def run_dir_of(checkpoint: str) -> str:
    """The run dir a checkpoint written by training lies in (``RUN_DIR/checkpoints/NAME``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))


def read_vocab(run_dir: str) -> Optional[Dict[str, Any]]:
    """The run's ``vocab.json`` as it is stored (``encoders.data.vocab.load_vocab`` builds the
    vocabulary object from it).

    Args:
        run_dir: the run dir.

    Returns:
        Its mapping (``tokens``, ``labels``, ``tokenizer``...); None without the file.

    Raises:
        OSError: the file is there but can't be read.
        ValueError: the file is not valid JSON.
    """
    path = vocab_file(run_dir)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_labels(run_dir: str, count: int) -> List[str]:
    """The run's label (or tag) names by id, as its ``vocab.json`` keeps them.

    Args:
        run_dir: the run dir.
        count: how many labels the model has.

    Returns:
        The names; the ids as names (``"0"``, ``"1"``...) when the file is missing or names
        another number of labels.
    """
    try:
        names = (read_vocab(run_dir) or {}).get("labels") or []
    except OSError:
        names = []
    return names if len(names) == count else [str(i) for i in range(count)]


def load_run_config(run_dir: str):
    """The run's composed config, read with OmegaConf's YAML loader (a safe loader).

    Nothing in it is instantiated.

    Args:
        run_dir: the run dir.

    Returns:
        ``RUN_DIR/.hydra/config.yaml`` as a ``DictConfig``.

    Raises:
        FileNotFoundError: the file is missing (named).
        ValueError: the file is unreadable YAML, or a document that is not a mapping (named).
    """
    from omegaconf import DictConfig, OmegaConf

    path = config_file(run_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no run config at {path}: is {run_dir} a run dir written by train.py?")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError, UnicodeDecodeError, omegaconf's own errors
        raise ValueError(f"{path} is corrupt or not valid YAML ({type(e).__name__}: {e})") from None
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path} is corrupt: expected a mapping of config keys, got {type(cfg).__name__}")
    return cfg


def check_run_dir(run_dir: str) -> str:
    """The run dir as a string path, once it is known to be a folder.

    Raises:
        RunDirError: it does not exist, or is a file.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.exists(run_dir):
        raise RunDirError(f"no such run dir: {run_dir}")
    if not os.path.isdir(run_dir):
        raise RunDirError(f"{run_dir} is a file, not a run dir (the folder train.py printed as 'run dir: ...')")
    return run_dir


def run_backend(run_dir: str) -> str:
    """The backend that trained a run.

    Read from the run's config, else its ``metrics.json``, else its checkpoints (from the files
    alone a ``.keras`` run reads as ``"tf"``: a jax run's ``.keras`` loads on any Keras backend).

    Returns:
        ``"torch"``, ``"tf"`` or ``"jax"``.

    Raises:
        RunDirError: the run dir is missing, or nothing in it names its backend.
    """
    check_run_dir(run_dir)
    try:
        name = load_run_config(run_dir).get("backend", {}).get("name")
        if name in CHECKPOINT_EXT:
            return name
    except (FileNotFoundError, ValueError):
        pass
    metrics = os.path.join(run_dir, METRICS_FILE)
    if os.path.isfile(metrics):
        try:
            with open(metrics, encoding="utf-8") as f:
                name = json.load(f).get("backend")
            if name in CHECKPOINT_EXT:
                return name
        except (OSError, ValueError):
            pass
    found = [b for b in CHECKPOINT_EXT if b != "jax"
             and any(os.path.isfile(checkpoint_file(run_dir, w, b)) for w in CHECKPOINT_NAMES)]
    if len(found) == 1:
        return found[0]
    raise RunDirError(f"{run_dir} is not a run dir written by train.py: it has no .hydra/config.yaml or metrics.json "
                      f"naming its backend" + (" and checkpoints of both backends" if found else
                                               " and no checkpoints/best.ckpt or best.keras"))


def checkpoint_path(run_dir: str, which: str = "best", backend: Optional[str] = None) -> str:
    """A checkpoint a run has: ``RUN_DIR/checkpoints/{which}.ckpt`` (torch) or ``.keras`` (Keras).

    Args:
        run_dir: the run dir.
        which: ``"best"`` or ``"last"``.
        backend: the run's backend; None reads it (``run_backend``).

    Returns:
        The checkpoint's path.

    Raises:
        RunDirError: the file is missing; the message names the run's other checkpoints, if any.
    """
    backend = backend or run_backend(run_dir)
    path = checkpoint_file(run_dir, which, backend)
    if os.path.isfile(path):
        return path
    folder, ext = checkpoints_dir(run_dir), CHECKPOINT_EXT[backend]
    others = sorted(f for f in os.listdir(folder) if f.endswith(ext)) if os.path.isdir(folder) else []
    hint = (f"; it has {', '.join(others)}: pass --checkpoint {os.path.splitext(others[0])[0]}" if others else
            "; the run has no checkpoint of its backend yet (was it killed before the first epoch ended?)")
    raise RunDirError(f"{backend} run {run_dir} has no {CHECKPOINTS_DIR}/{which}{ext}{hint}")


def is_training_output(run_dir: str, path: str) -> bool:
    """Whether ``path`` is (or is inside) something training wrote in ``run_dir``."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return rel == "."
    first = rel.split(os.sep)[0]
    return rel in TRAINING_FILES or first in TRAINING_DIRS
