"""Turn a trained run of one backend into a model of the other, checking outputs agree first.

    python -m encoders convert RUN_DIR [--output PATH] [--checkpoint best|last] [--atol 1e-5] [--overwrite]

(``python -m encoders.convert`` is the same command; ``--out`` is another name of ``--output``.)

A torch run's ``checkpoints/best.ckpt`` becomes ``checkpoints/best.keras``; a tf run's
``best.keras`` becomes ``best.ckpt`` (which ``SequenceClassifier.load_from_checkpoint`` reads).
The direction comes from the run's own backend, so the file written is never one that training
wrote; a target that exists already (an earlier conversion) is kept unless ``--overwrite``.
Before writing, both models score the same sample batch (ragged, with an empty row) and the
largest logit difference must be within ``--atol``; otherwise nothing is written.
"""
from __future__ import annotations

import io
import os
from typing import Tuple

import numpy as np

from encoders.errors import EncodersError
from encoders.io import atomic_write_bytes, atomic_write_with
from encoders.run.files import CHECKPOINT_EXT, checkpoint_path, checkpoints_dir, run_backend

DEFAULT_ATOL = 1e-5


def sample_batch(vocab_size: int, seed: int = 0, batch: int = 8, max_len: int = 30) -> np.ndarray:
    """Right-padded ids with lengths from 0 to ``max_len`` (an empty row included)."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([[0, 1, max_len], rng.integers(0, max_len + 1, batch - 3)])
    tokens = np.zeros((batch, max_len), dtype=np.int64)
    for b, n in enumerate(lengths):
        tokens[b, :n] = rng.integers(1, vocab_size, n)
    return tokens


def _copy_dense_torch_to_keras(linear, dense) -> None:
    dense.kernel.assign(linear.weight.detach().cpu().numpy().T)
    dense.bias.assign(linear.bias.detach().cpu().numpy())


def _copy_dense_keras_to_torch(dense, linear) -> None:
    import torch

    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.asarray(dense.kernel.numpy()).T.copy()))
        linear.bias.copy_(torch.from_numpy(np.asarray(dense.bias.numpy()).copy()))


def torch_logits(model, tokens: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    t = torch.from_numpy(tokens)
    with torch.no_grad():
        return model(t, (t != model.hparams.padding_idx).sum(1)).numpy()


def torch_to_keras(ckpt_path: str):
    """A torch checkpoint (loaded with ``weights_only=True``) as ``(torch model, Keras model)``.

    Raises:
        EncodersError: the file is no checkpoint of a task module.
    """
    from encoders.convert.weights import copy_weights
    from encoders.torch.checkpoint_io import load_torch_checkpoint
    from encoders.torch.models import torch_model_class

    ckpt = load_torch_checkpoint(ckpt_path)
    if "hyper_parameters" not in ckpt or "state_dict" not in ckpt:
        raise EncodersError(f"{ckpt_path} is not a checkpoint of a SequenceClassifier/Tagger/Regressor (it has no hyper_parameters "
                            f"or state_dict)")
    tm = torch_model_class(ckpt["hyper_parameters"].get("task", "classification"))(**ckpt["hyper_parameters"])
    tm.load_state_dict(ckpt["state_dict"])
    km = build_keras_model(tm.spec)
    copy_weights(tm.embedding, km.get_layer("embedding"))
    copy_weights(tm.encoder, km.get_layer("encoder"))
    if getattr(tm, "pool", None) is not None and tm.pool.score is not None:
        _copy_dense_torch_to_keras(tm.pool.score, km.get_layer("pool").score)
    _copy_dense_torch_to_keras(tm.head, km.get_layer("head"))
    return tm, km


def keras_to_torch(keras_path: str):
    """A ``.keras`` model of any task (loaded with ``safe_mode=True``) as ``(torch model, Keras model)``;
    a tagger's tag names come from the run's ``vocab.json`` beside the file."""
    from encoders.convert.weights import copy_weights
    from encoders.keras.checkpoint_io import load_keras_model
    from encoders.keras.models import model_tag_names, spec_of
    from encoders.torch.models import build_model

    km = load_keras_model(keras_path)
    # a tagger's tag names live in the run's vocab.json, beside the checkpoint (other tasks ignore them)
    tm = build_model(spec_of(km), tag_names=model_tag_names(km, keras_path))
    copy_weights(km.get_layer("embedding"), tm.embedding)
    copy_weights(km.get_layer("encoder"), tm.encoder)
    if getattr(tm, "pool", None) is not None and tm.pool.score is not None:
        _copy_dense_keras_to_torch(km.get_layer("pool").score, tm.pool.score)
    _copy_dense_keras_to_torch(km.get_layer("head"), tm.head)
    return tm, km


def build_keras_model(spec):
    """The Keras model of a spec's task (``encoders.keras.models.build_model``)."""
    from encoders.keras.models import build_model

    return build_model(spec)


def max_difference(tm, km, seed: int = 0) -> float:
    """Largest output difference on a ragged sample batch (tagging: every position's logits;
    regression: the [B] outputs against Keras' [B, 1])."""
    tokens = sample_batch(tm.hparams.vocab_size, seed)
    k = np.asarray(km(tokens, training=False))
    t = torch_logits(tm, tokens)
    return float(np.abs(t - k.reshape(t.shape)).max())


def save_torch_classifier(tm, path: str) -> None:
    """A checkpoint with weights and hyperparameters only (no optimizer or loop state): it loads
    with ``load_from_checkpoint`` and ``torch.load(weights_only=True)``, but resuming from it is
    refused, since it carries no training state."""
    import pytorch_lightning as pl
    import torch

    buffer = io.BytesIO()
    torch.save({"state_dict": tm.state_dict(), "hyper_parameters": dict(tm.hparams),
                "pytorch-lightning_version": pl.__version__, "epoch": 0, "global_step": 0}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def convert_run(run_dir: str, out: str = "", which: str = "best", atol: float = DEFAULT_ATOL,
                overwrite: bool = False) -> Tuple[str, float]:
    """Convert a run dir's checkpoint to the other backend, after checking both models agree.

    Args:
        run_dir: a run dir written by ``train.py``.
        out: the file to write (default: ``checkpoints/WHICH`` with the other backend's extension).
        which: ``"best"`` or ``"last"``.
        atol: the largest logit difference allowed on the sample batch.
        overwrite: replace an earlier conversion.

    Returns:
        ``(path written, largest logit difference)``.

    Raises:
        EncodersError: the output is the run's own checkpoint, has the wrong extension, exists
            (without ``overwrite``), or the outputs differ by more than ``atol``.
    """
    backend = run_backend(run_dir)
    source = checkpoint_path(run_dir, which, backend)
    target_ext = CHECKPOINT_EXT["tf" if backend == "torch" else "torch"]
    out = out or os.path.join(checkpoints_dir(run_dir), which + target_ext)
    if os.path.abspath(out) == os.path.abspath(source):
        raise EncodersError(f"--output {out} is the run's own checkpoint: refusing to overwrite what training wrote")
    if not out.endswith(target_ext):
        raise EncodersError(f"--output {out}: a {backend} run converts to a {target_ext} file")
    if os.path.exists(out) and not overwrite:
        raise EncodersError(f"{out} exists already (an earlier conversion?): pass --overwrite to replace it, "
                            f"or --output PATH to write elsewhere")
    tm, km = torch_to_keras(source) if backend == "torch" else keras_to_torch(source)
    diff = max_difference(tm, km)
    if not diff <= atol:
        raise EncodersError(f"outputs differ by {diff:.3g} (> atol {atol:g}) on the sample batch; nothing written")
    if backend == "torch":
        atomic_write_with(out, km.save)
    else:
        save_torch_classifier(tm, out)
    return out, diff
