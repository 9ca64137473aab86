"""What a run dir holds and where, read without any framework: its config, backend and checkpoints.

A run dir is what ``train.py`` leaves (``.hydra/config.yaml``, ``vocab.json``, ``metrics.json``,
``checkpoints/{best,last}.{ckpt,keras}``). Commands that use a trained run (convert, predict,
evaluate, export, ``encoders.load_run``) find their files through here, so a missing or foreign
file is named the same way everywhere.
"""
from __future__ import annotations

import json
import os
from typing import Optional

from encoders.errors import RunDirError

CHECKPOINT_EXT = {"torch": ".ckpt", "tf": ".keras", "jax": ".keras"}  # jax runs save the same .keras


def load_run_config(run_dir: str):
    """``RUN_DIR/.hydra/config.yaml`` as a DictConfig (OmegaConf's YAML loader is a safe loader).

    A missing file raises ``FileNotFoundError`` naming it; unreadable YAML or a document that is
    not a mapping raises ``ValueError`` naming it. Nothing in it is instantiated.
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


def check_run_dir(run_dir: str) -> str:
    run_dir = os.fspath(run_dir)
    if not os.path.exists(run_dir):
        raise RunDirError(f"no such run dir: {run_dir}")
    if not os.path.isdir(run_dir):
        raise RunDirError(f"{run_dir} is a file, not a run dir (the folder train.py printed as 'run dir: ...')")
    return run_dir


def run_backend(run_dir: str) -> str:
    """"torch" or "tf": from the run's config, else its metrics.json, else its checkpoints."""
    check_run_dir(run_dir)
    try:
        name = load_run_config(run_dir).get("backend", {}).get("name")
        if name in CHECKPOINT_EXT:
            return name
    except (FileNotFoundError, ValueError):
        pass
    metrics = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(metrics):
        try:
            with open(metrics, encoding="utf-8") as f:
                name = json.load(f).get("backend")
            if name in CHECKPOINT_EXT:
                return name
        except (OSError, ValueError):
            pass
    # from the files alone a .keras run reads as tf (a jax run's .keras loads on any Keras backend)
    found = [b for b, ext in CHECKPOINT_EXT.items() if b != "jax"
             and any(os.path.isfile(os.path.join(run_dir, "checkpoints", w + ext)) for w in ("best", "last"))]
    if len(found) == 1:
        return found[0]
    raise RunDirError(f"{run_dir} is not a run dir written by train.py: it has no .hydra/config.yaml or metrics.json "
                      f"naming its backend" + (" and checkpoints of both backends" if found else
                                               " and no checkpoints/best.ckpt or best.keras"))


def checkpoint_path(run_dir: str, which: str = "best", backend: Optional[str] = None) -> str:
    """``RUN_DIR/checkpoints/{which}.ckpt`` (torch run) or ``.keras`` (tf run); a clear error if absent."""
    backend = backend or run_backend(run_dir)
    path = os.path.join(run_dir, "checkpoints", which + CHECKPOINT_EXT[backend])
    if os.path.isfile(path):
        return path
    others = sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints"))
                    if f.endswith(CHECKPOINT_EXT[backend])) if os.path.isdir(os.path.join(run_dir, "checkpoints")) else []
    hint = (f"; it has {', '.join(others)}: pass --checkpoint {os.path.splitext(others[0])[0]}" if others else
            "; the run has no checkpoint of its backend yet (was it killed before the first epoch ended?)")
    raise RunDirError(f"{backend} run {run_dir} has no checkpoints/{which}{CHECKPOINT_EXT[backend]}{hint}")


# What train.py writes into a run dir: commands that use a run (evaluate, export...) never write over these.
TRAINING_FILES = ("metrics.json", "vocab.json", "curves.png", "train.log")
TRAINING_DIRS = (".hydra", "checkpoints", "backup", "csv", "tb")


def is_training_output(run_dir: str, path: str) -> bool:
    """Whether ``path`` is (or is inside) something training wrote in ``run_dir``."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return rel == "."
    first = rel.split(os.sep)[0]
    return rel in TRAINING_FILES or first in TRAINING_DIRS
