"""What a resumed run must share with the run it continues, and what it resumes from.

A checkpoint's weights only mean something for the model they were trained in (``ClassifierSpec``)
and for the token ids they were trained on (``vocab.json``). Both backends compare them before
they load anything (``encoders.torch.checkpoint_io.check_resume``,
``encoders.keras.checkpoint_io.check_resume``), so a resume with another encoder, pooling or size,
or on other data, is refused with the keys that differ instead of failing deep in the framework
or silently training on rows whose ids now mean other words.

What ``ckpt_path`` names differs by backend: torch continues from a checkpoint file
(``RUN_DIR/checkpoints/last.ckpt``), Keras from the earlier run dir, whose ``backup/``
``BackupAndRestore`` wrote. ``check_ckpt_path`` checks that form before any data is read, and
``check_loads`` that a checkpoint file loads (with the backend's loader).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError
from encoders.run.files import VOCAB_FILE, backup_dir, checkpoint_file, checkpoint_name, read_vocab

VOCAB_KEY = "vocab_fingerprint"  # where a torch checkpoint keeps it
# ClassifierSpec field -> what the user changes to get it
SPEC_KEYS = {"vocab_size": "vocabulary size", "num_classes": "number of classes",
             "embedding_dim": "model.embedding_dim", "hidden_size": "encoder.hidden_size", "cell": "encoder.cell",
             "num_layers": "encoder.num_layers", "bidirectional": "encoder.bidirectional",
             "dropout": "encoder.dropout", "pooling": "model.pooling", "padding_idx": "padding_idx"}
TORCH = "torch"  # the backend that resumes from a checkpoint file; the Keras ones resume from a run dir


def vocab_fingerprint(run_dir: str) -> Optional[str]:
    """A fingerprint of the data a run's token ids and label ids mean.

    Args:
        run_dir: the run dir.

    Returns:
        sha256 of ``RUN_DIR/vocab.json``'s tokens (in id order) and label names; None without the file.
    """
    vocab = read_vocab(run_dir)
    if vocab is None:
        return None
    text = json.dumps([vocab.get("tokens", []), vocab.get("labels", [])], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_same_run(ckpt_path: str, old_spec: Mapping[str, Any], old_vocab: Optional[str], spec: ClassifierSpec,
                   vocab: Optional[str]) -> None:
    """Refuse to continue a run with another model or on other data.

    Args:
        ckpt_path: what the user passed as ``ckpt_path`` (named in the message).
        old_spec: the checkpoint's ``ClassifierSpec`` fields (a field it lacks is not compared).
        old_vocab: ``vocab_fingerprint`` of the old run (None: not compared).
        spec: the new run's spec.
        vocab: ``vocab_fingerprint`` of the new run (None: not compared).

    Raises:
        ConfigError: naming every key whose old and new values differ, if any does.
    """
    new = spec.to_dict()
    diffs = [f"{SPEC_KEYS.get(k, k)} {old_spec[k]!r} -> {new[k]!r}" for k in new
             if k in old_spec and old_spec[k] != new[k]]
    if old_vocab is not None and vocab is not None and old_vocab != vocab:
        diffs.append(f"the vocabulary ({VOCAB_FILE}: tokens or labels of another training file)")
    if diffs:
        raise ConfigError(f"ckpt_path={ckpt_path} was trained with another model or data ({'; '.join(diffs)}): "
                          "resuming continues the same model on the same data; start a fresh run (drop ckpt_path)")


def check_ckpt_path(path: str, backend: str) -> None:
    """Whether ``ckpt_path`` has the form the backend resumes from, before any data is read.

    No checkpoint is read here (the torch backend then checks that the file loads).

    Args:
        path: the ``ckpt_path`` the user gave.
        backend: the run's ``backend.name``.

    Raises:
        ConfigError: torch was given a directory (the message names the ``last.ckpt`` inside, if
            any) or a missing file; a Keras backend was given a file or a missing run dir.
    """
    if backend == TORCH:
        if os.path.isdir(path):
            last = checkpoint_name("last", TORCH)  # in the run dir's checkpoints/, or in the folder given
            inside = [p for p in (checkpoint_file(path, "last", TORCH), os.path.join(path, last)) if os.path.isfile(p)]
            raise ConfigError(f"ckpt_path: {path} is a directory; torch resumes from a checkpoint file: "
                              f"ckpt_path={inside[0] if inside else checkpoint_file('RUN_DIR', 'last', TORCH)}")
        if not os.path.isfile(path):
            raise ConfigError(f"ckpt_path: no such checkpoint file: {path} "
                              f"(torch resumes from a .ckpt file, e.g. {checkpoint_file('RUN_DIR', 'last', TORCH)})")
    elif os.path.isfile(path):
        raise ConfigError(f"ckpt_path: {path} is a file; tf resumes from the run dir it belongs to: "
                          "ckpt_path=RUN_DIR (the folder with backup/)")
    elif not os.path.isdir(path):
        raise ConfigError(f"ckpt_path: no such run dir: {path} "
                          "(tf resumes from an earlier run dir, whose backup/ BackupAndRestore wrote)")


def check_loads(ckpt_path: str, load: Callable[[str], Any], backend: str) -> None:
    """Name a truncated or corrupt checkpoint before training starts, with the checkpoints beside
    it that do load (e.g. ``best.ckpt``), so the user can resume from one of those.

    Args:
        ckpt_path: the checkpoint file a run is asked to resume from.
        load: the backend's loader (e.g. ``encoders.torch.checkpoint_io.load_torch_checkpoint``);
            it raises ``ValueError`` naming the file when the file does not load.
        backend: the run's ``backend.name``: the files of its checkpoint extension beside
            ``ckpt_path`` are tried.

    Raises:
        ConfigError: ``ckpt_path`` does not load.
    """
    import glob

    try:
        load(ckpt_path)
    except ValueError as e:
        usable = []
        pattern = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), checkpoint_name("*", backend))
        for other in sorted(glob.glob(pattern)):
            if os.path.abspath(other) != os.path.abspath(ckpt_path):
                try:
                    load(other)
                    usable.append(other)
                except ValueError:
                    pass
        hint = (f"checkpoints beside it that load: {', '.join(usable)}; resume with ckpt_path={usable[-1]}"
                if usable else "no other checkpoint beside it loads")
        raise ConfigError(f"ckpt_path: {e}. {hint}") from None


def has_backup(run_dir: str) -> bool:
    """Whether a Keras run dir has the ``backup/`` state that ``ckpt_path=RUN_DIR`` continues."""
    folder = backup_dir(run_dir)
    return bool(os.path.isdir(folder) and os.listdir(folder))


def resume_hint(run_dir: str, backend: str, overrides: Sequence[str], script: str = "train.py") -> str:
    """The one line a run stopped by Ctrl-C prints: where its last checkpoint is and the command that
    continues it.

    The command is the run's own overrides with ``ckpt_path`` set (torch: its last checkpoint
    file; Keras: the run dir whose ``backup/`` ``BackupAndRestore`` keeps). The resume writes to a
    new run dir, as a resume always does (``hydra.run.dir`` of this one is left out).

    Args:
        run_dir: the interrupted run's dir.
        backend: its ``backend.name``.
        overrides: its command-line overrides (an earlier ``ckpt_path`` is dropped).
        script: the training script, as the command names it.

    Returns:
        The line, or one saying there is nothing to resume yet.
    """
    import shlex

    torch_run = backend == TORCH
    last = checkpoint_file(run_dir, "last", backend)
    resumable = os.path.isfile(last) if torch_run else has_backup(run_dir)
    kept = [o for o in overrides if not o.lstrip("+~").startswith("ckpt_path=")]
    if not resumable:
        command = " ".join(["python", script, *map(shlex.quote, kept)])
        return f"interrupted before the first checkpoint of {run_dir} was written: nothing to resume; start again " \
               f"with: {command}"
    command = " ".join(["python", script, *map(shlex.quote, kept), shlex.quote(f"ckpt_path={last if torch_run else run_dir}")])
    return f"interrupted: the last checkpoint is {last}; resume with: {command}"
