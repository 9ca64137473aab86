"""What a resumed run must share with the run it continues: the model's shape and the vocabulary.

A checkpoint's weights only mean something for the model they were trained in (``ClassifierSpec``)
and for the token ids they were trained on (``vocab.json``). Both backends compare them before
they load anything (``encoders.torch.checkpoint_io.check_resume``,
``encoders.keras.checkpoint_io.check_resume``), so a resume with another encoder, pooling or size,
or on other data, is refused with the keys that differ instead of failing deep in the framework
or silently training on rows whose ids now mean other words.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, Optional

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError

VOCAB_FILE = "vocab.json"
VOCAB_KEY = "vocab_fingerprint"  # where a torch checkpoint keeps it
# ClassifierSpec field -> what the user changes to get it
SPEC_KEYS = {"vocab_size": "vocabulary size", "num_classes": "number of classes",
             "embedding_dim": "model.embedding_dim", "hidden_size": "encoder.hidden_size", "cell": "encoder.cell",
             "num_layers": "encoder.num_layers", "bidirectional": "encoder.bidirectional",
             "dropout": "encoder.dropout", "pooling": "model.pooling", "padding_idx": "padding_idx"}


def vocab_fingerprint(run_dir: str) -> Optional[str]:
    """sha256 of ``RUN_DIR/vocab.json``'s tokens (in id order) and label names; None without the file."""
    path = os.path.join(os.fspath(run_dir), VOCAB_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        vocab = json.load(f)
    text = json.dumps([vocab.get("tokens", []), vocab.get("labels", [])], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_same_run(ckpt_path: str, old_spec: Mapping[str, Any], old_vocab: Optional[str], spec: ClassifierSpec,
                   vocab: Optional[str]) -> None:
    """``ConfigError`` naming every key whose old and new values differ, if any does.

    Args:
        ckpt_path: what the user passed as ``ckpt_path`` (named in the message).
        old_spec: the checkpoint's ``ClassifierSpec`` fields (a field it lacks is not compared).
        old_vocab, vocab: ``vocab_fingerprint`` of the old and the new run (None: not compared).
        spec: the new run's spec.
    """
    new = spec.to_dict()
    diffs = [f"{SPEC_KEYS.get(k, k)} {old_spec[k]!r} -> {new[k]!r}" for k in new
             if k in old_spec and old_spec[k] != new[k]]
    if old_vocab is not None and vocab is not None and old_vocab != vocab:
        diffs.append("the vocabulary (vocab.json: tokens or labels of another training file)")
    if diffs:
        raise ConfigError(f"ckpt_path={ckpt_path} was trained with another model or data ({'; '.join(diffs)}): "
                          "resuming continues the same model on the same data; start a fresh run (drop ckpt_path)")




def resume_hint(run_dir: str, backend: str, overrides, script: str = "train.py") -> str:
    """The one line a run stopped by Ctrl-C prints: where its last checkpoint is and the command that
    continues it (the run's own overrides, ``ckpt_path`` set: torch a checkpoint file, tf the run
    dir whose ``backup/`` ``BackupAndRestore`` keeps). The resume writes to a new run dir, as a
    resume always does (``hydra.run.dir`` of this one is left out)."""
    import shlex

    torch_run = backend == "torch"
    last = os.path.join(run_dir, "checkpoints", "last.ckpt" if torch_run else "last.keras")
    resumable = os.path.isfile(last) if torch_run else bool(
        os.path.isdir(os.path.join(run_dir, "backup")) and os.listdir(os.path.join(run_dir, "backup")))
    kept = [o for o in overrides if not o.lstrip("+~").startswith("ckpt_path=")]
    if not resumable:
        command = " ".join(["python", script, *map(shlex.quote, kept)])
        return f"interrupted before the first checkpoint of {run_dir} was written: nothing to resume; start again " \
               f"with: {command}"
    command = " ".join(["python", script, *map(shlex.quote, kept), shlex.quote(f"ckpt_path={last if torch_run else run_dir}")])
    return f"interrupted: the last checkpoint is {last}; resume with: {command}"
