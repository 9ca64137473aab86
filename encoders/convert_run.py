"""Turn a trained run of one backend into a model of the other, checking outputs agree first.

    python -m encoders.convert RUN_DIR [--out PATH] [--checkpoint best|last] [--atol 1e-5]

A torch run (``checkpoints/*.ckpt``) becomes a ``.keras`` model; a Keras run
(``checkpoints/*.keras``) becomes a torch checkpoint that ``SequenceClassifier.load_from_checkpoint``
reads. Before writing, both models score the same sample batch (ragged, with an empty row) and
the largest logit difference must be within ``--atol``; otherwise nothing is written.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Tuple

import numpy as np

DEFAULT_ATOL = 1e-5


def sample_batch(vocab_size: int, seed: int = 0, batch: int = 8, max_len: int = 30) -> np.ndarray:
    """Right-padded ids with lengths from 0 to ``max_len`` (an empty row included)."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([[0, 1, max_len], rng.integers(0, max_len + 1, batch - 3)])
    tokens = np.zeros((batch, max_len), dtype=np.int64)
    for b, n in enumerate(lengths):
        tokens[b, :n] = rng.integers(1, vocab_size, n)
    return tokens


def _find(run_dir: str, which: str, ext: str) -> str:
    path = os.path.join(run_dir, "checkpoints", f"{which}{ext}")
    return path if os.path.isfile(path) else ""


def _copy_dense_torch_to_keras(linear, dense) -> None:
    dense.kernel.assign(linear.weight.detach().cpu().numpy().T)
    dense.bias.assign(linear.bias.detach().cpu().numpy())


def _copy_dense_keras_to_torch(dense, linear) -> None:
    import torch

    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.asarray(dense.kernel.numpy()).T.copy()))
        linear.bias.copy_(torch.from_numpy(np.asarray(dense.bias.numpy()).copy()))


def _torch_logits(model, tokens: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    t = torch.from_numpy(tokens)
    with torch.no_grad():
        return model(t, (t != model.hparams.padding_idx).sum(1)).numpy()


def torch_to_keras(ckpt_path: str):
    """A torch checkpoint (Lightning, loaded with ``weights_only=True``) as a Keras model."""
    from encoders.convert import copy_weights
    from encoders.keras.model import build_classifier
    from encoders.torch.module import SequenceClassifier

    from encoders.safe import load_torch_checkpoint

    ckpt = load_torch_checkpoint(ckpt_path)
    hp = ckpt["hyper_parameters"]
    tm = SequenceClassifier(**hp)
    tm.load_state_dict(ckpt["state_dict"])
    km = build_classifier(hp["vocab_size"], hp["num_classes"], hp["embedding_dim"], hp["hidden_size"], hp["cell"],
                          hp["num_layers"], hp["bidirectional"], hp["dropout"], hp["pooling"], hp["padding_idx"])
    copy_weights(tm.embedding, km.get_layer("embedding"))
    copy_weights(tm.encoder, km.get_layer("encoder"))
    if tm.pool is not None and tm.pool.score is not None:
        _copy_dense_torch_to_keras(tm.pool.score, km.get_layer("pool").score)
    _copy_dense_torch_to_keras(tm.head, km.get_layer("head"))
    return tm, km


def keras_to_torch(keras_path: str):
    """A ``.keras`` classifier (loaded with ``safe_mode=True``) as a torch ``SequenceClassifier``."""
    from encoders.convert import copy_weights
    from encoders.safe import load_keras_model
    from encoders.torch.module import SequenceClassifier

    km = load_keras_model(keras_path)
    emb, enc, head = km.get_layer("embedding"), km.get_layer("encoder"), km.get_layer("head")
    pool = next((l for l in km.layers if l.name == "pool"), None)
    hp = dict(vocab_size=emb.input_dim, num_classes=head.units, embedding_dim=emb.output_dim,
              hidden_size=enc.hidden_size, cell=enc.cell, num_layers=enc.num_layers,
              bidirectional=enc.bidirectional, dropout=enc.dropout, pooling=pool.mode if pool else "last",
              padding_idx=emb.padding_idx)
    tm = SequenceClassifier(**hp)
    copy_weights(emb, tm.embedding)
    copy_weights(enc, tm.encoder)
    if pool is not None and pool.mode == "attention":
        _copy_dense_keras_to_torch(pool.score, tm.pool.score)
    _copy_dense_keras_to_torch(head, tm.head)
    return tm, km


def max_difference(tm, km, seed: int = 0) -> float:
    tokens = sample_batch(tm.hparams.vocab_size, seed)
    k = np.asarray(km(tokens, training=False))
    return float(np.abs(_torch_logits(tm, tokens) - k).max())


def convert_run(run_dir: str, out: str = "", which: str = "best", atol: float = DEFAULT_ATOL) -> Tuple[str, float]:
    """Convert a run dir's ``which`` checkpoint to the other backend; returns (path written, max diff)."""
    ckpt, keras_file = _find(run_dir, which, ".ckpt"), _find(run_dir, which, ".keras")
    if not ckpt and not keras_file:
        raise FileNotFoundError(f"{run_dir}/checkpoints has no {which}.ckpt (torch run) or {which}.keras (Keras run)")
    if ckpt:
        tm, km = torch_to_keras(ckpt)
        out = out or os.path.join(run_dir, "checkpoints", f"{which}.keras")
    else:
        tm, km = keras_to_torch(keras_file)
        out = out or os.path.join(run_dir, "checkpoints", f"{which}.ckpt")
    diff = max_difference(tm, km)
    if not diff <= atol:
        raise ValueError(f"outputs differ by {diff:.3g} (> atol {atol:g}) on the sample batch; nothing written")
    tmp = out + ".tmp" + os.path.splitext(out)[1]
    if ckpt:
        km.save(tmp)
    else:
        import pytorch_lightning as pl
        import torch

        torch.save({"state_dict": tm.state_dict(), "hyper_parameters": dict(tm.hparams),
                    "pytorch-lightning_version": pl.__version__, "epoch": 0, "global_step": 0}, tmp)
    os.replace(tmp, out)  # a crash mid-write leaves no half file under the real name
    return out, diff


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m encoders.convert", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run dir written by train.py (backend=torch or backend=tf)")
    p.add_argument("--out", default="", help="output path (default: next to the source checkpoint)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL, help="largest logit difference allowed")
    a = p.parse_args(argv)
    try:
        out, diff = convert_run(a.run_dir, a.out, a.checkpoint, a.atol)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} (largest logit difference on the sample batch: {diff:.2e})")
    return 0
