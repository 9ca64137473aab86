"""GPU memory limits and the CUDA (cuDNN) encoder path. The ``gpu`` tests run only with CUDA;
the no-GPU behaviour (a logged no-op) is checked everywhere."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from tests.helpers import ROOT
from encoders.runtime import limit_gpu_memory
from encoders.torch import RNNEncoder

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_torch_limit_without_a_gpu_is_a_no_op():
    assert "no CUDA device" in limit_gpu_memory("torch", 256)
    assert limit_gpu_memory("torch", None) == "no limit"


def test_limit_with_growth_is_refused_before_any_framework_runs():
    with pytest.raises(ValueError, match="can't be combined"):
        limit_gpu_memory("tf", 256, allow_growth=True)
    with pytest.raises(ValueError, match="positive number of MiB"):
        limit_gpu_memory("torch", 0)
    with pytest.raises(ValueError, match="backend must be"):
        limit_gpu_memory("jax", 256)


CAP_SCRIPT = """
import torch
from encoders.runtime import limit_gpu_memory
print(limit_gpu_memory("torch", 256))
small = torch.empty(100 * 2**20, dtype=torch.uint8, device="cuda")  # 100 MiB: under the cap
try:
    torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")  # 512 MiB: over it
except torch.cuda.OutOfMemoryError:
    print("CAPPED")
"""


@pytest.mark.gpu
@needs_cuda
def test_torch_memory_limit_caps_this_process():
    out = subprocess.run([sys.executable, "-c", CAP_SCRIPT], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "memory capped at 256 MiB" in out.stdout and "CAPPED" in out.stdout


# TF32 (trainer.fp32_precision=tf32) rounds each float32 operand of a product to a 10-bit mantissa:
# relative error up to 2**-11 per operand. The encoder's outputs are tanh/sigmoid-bounded (|v| <= 1)
# and each is a few such roundings deep through contracting nonlinearities (the H200 showed 1.0e-4
# against full float32), so 2**-8 (3.9e-3: 8 units of TF32's own roundoff on an O(1) output) bounds
# it with room; with TF32 off the CPU-vs-cuDNN tolerance stays 1e-5.
TOLERANCE = {"ieee": dict(atol=1e-5, rtol=1e-4), "tf32": dict(atol=2**-8, rtol=2**-8)}


@pytest.fixture(params=["ieee", "tf32"])
def fp32_precision(request):
    """Each GPU parity test runs with TF32 off and on (as torch's own tf32_on_and_off), flags restored after."""
    from encoders.torch.runtime import set_fp32_precision

    before = "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
    set_fp32_precision(request.param)
    yield request.param
    set_fp32_precision(before)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("path", ["auto", "padded", "packed"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_cuda_path_equals_cpu_padded_path(cell, num_layers, path, fp32_precision):
    torch.manual_seed(0)
    enc = RNNEncoder(8, 16, cell, num_layers, bidirectional=True, path=path)
    lengths = torch.tensor([7, 0, 3, 1, 7, 5])
    x = torch.randn(6, 7, 8)
    ref = enc(x, lengths)
    ref_final = enc.forward_final(x, lengths)
    gpu = enc.cuda()
    xg = x.cuda().requires_grad_(True)
    out = gpu(xg, lengths)  # lengths stay on the CPU: any device is accepted
    tol = TOLERANCE[fp32_precision]
    torch.testing.assert_close(out.sequence.cpu(), ref.sequence, **tol)
    torch.testing.assert_close(out.final.cpu(), ref.final, **tol)
    torch.testing.assert_close(gpu.forward_final(xg, lengths).cpu(), ref_final, **tol)
    if cell == "lstm":
        torch.testing.assert_close(out.state[1].cpu(), ref.state[1], **tol)
    out.final.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad[1].abs().sum() == 0  # empty row: zero gradient


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("path", ["auto", "padded", "packed"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cuda_weights_stay_in_cudnn_layout(cell, path):
    """cuDNN warns (and copies every weight) when they are not one flat chunk: here that is an error,
    after .cuda(), .to(), load_state_dict (a copy into the views) and load_state_dict(assign=True)."""
    import warnings

    torch.manual_seed(0)
    x, lengths = torch.randn(5, 9, 6, device="cuda"), torch.tensor([9, 0, 4, 1, 7])
    state = RNNEncoder(6, 8, cell, 2, True).state_dict()
    encs = [RNNEncoder(6, 8, cell, 2, True, path=path).cuda(),
            RNNEncoder(6, 8, cell, 2, True, path=path).to("cuda", torch.float32)]
    encs[0].load_state_dict(state)
    assigned = RNNEncoder(6, 8, cell, 2, True, path=path).cuda()
    assigned.load_state_dict({k: v.cuda() for k, v in state.items()}, assign=True)
    encs.append(assigned)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not part of single contiguous chunk.*")
        for enc in encs:
            for training in (True, False):
                enc.train(training)
                xg = x.clone().requires_grad_(True)
                out = enc(xg, lengths)
                (out.sequence.sum() + enc.forward_final(xg, lengths).sum()).backward()
    torch.testing.assert_close(encs[0](x, lengths).sequence, encs[2](x, lengths).sequence)


@pytest.mark.gpu
@needs_cuda
def test_all_empty_batch_on_cuda_gives_zeros():
    enc = RNNEncoder(4, 5, "lstm", 2, bidirectional=True).cuda()
    out = enc(torch.randn(3, 4, 4, device="cuda"), torch.zeros(3, dtype=torch.long, device="cuda"))
    assert out.sequence.abs().sum() == 0 and out.final.abs().sum() == 0


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("path", ["auto", "padded", "packed"])
def test_batch_invariance_on_cuda(path, fp32_precision):
    """A row's outputs in a ragged batch equal the row run alone, on cuDNN (TF32 bound: TOLERANCE)."""
    torch.manual_seed(0)
    enc = RNNEncoder(8, 16, "lstm", 2, bidirectional=True, path=path).cuda().eval()
    lengths = torch.tensor([9, 0, 4, 1, 9, 6, 2])
    x = torch.randn(7, 9, 8, device="cuda")
    out = enc(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        if n:
            alone = enc(x[b:b + 1, :n], lengths[b:b + 1])
            torch.testing.assert_close(out.sequence[b, :n], alone.sequence[0], **TOLERANCE[fp32_precision])
            torch.testing.assert_close(out.final[b], alone.final[0], **TOLERANCE[fp32_precision])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", ["padded", "packed"])
def test_mixed_precision_keeps_pad_vectors_exactly_zero_on_cuda(dtype, path):
    from encoders.torch import PaddedEmbedding

    emb, enc = PaddedEmbedding(20, 8).cuda(), RNNEncoder(8, 16, "lstm", 2, True, path=path).cuda()
    tokens = torch.tensor([[3, 4, 5, 0, 0], [0, 0, 0, 0, 0], [7, 0, 0, 0, 0]], device="cuda")
    lengths = torch.tensor([3, 0, 1])
    with torch.autocast("cuda", dtype=dtype):
        x = emb(tokens)
        out = enc(x, lengths)
    assert torch.all(x[tokens == 0] == 0)
    pad = torch.arange(5).unsqueeze(0) >= lengths.unsqueeze(1)
    assert torch.all(out.sequence[pad.cuda()] == 0) and torch.all(out.final[1] == 0)


class SyncsAreErrors(Callback):
    """Every training and validation batch (step, backward, optimizer step) runs under
    torch.cuda.set_sync_debug_mode("error"). First in the callback list, so it is off again before
    any other callback (a progress bar, a logger) reads a value."""

    def on_train_batch_start(self, *args):
        torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, *args):
        torch.cuda.set_sync_debug_mode("default")

    on_validation_batch_start = on_train_batch_start
    on_validation_batch_end = on_train_batch_end


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("path", ["auto", "padded", "packed"])
def test_training_and_validation_steps_never_sync(path, precision):
    from encoders.config import DataConfig
    from encoders.data.sources import load_splits
    from encoders.torch import SequenceClassifier
    from encoders.torch.batches import SequenceDataModule

    splits = load_splits(DataConfig(num_train=512, num_val=256, max_length=60), 0)
    dm = SequenceDataModule(splits.train, splits.validation, batch_size=64)
    model = SequenceClassifier(splits.vocab_size, splits.num_classes, encoder_path=path)
    trainer = fit_without_syncs(model, dm, precision)
    assert trainer.global_step == 8


def fit_without_syncs(model, dm, precision: str):
    """One epoch on the GPU where any device->host sync in a step is an error (the Trainer is returned)."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(accelerator="gpu", devices=1, max_epochs=1, precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=10**6,
                         gradient_clip_val=1.0, callbacks=[SyncsAreErrors()])
    try:
        trainer.fit(model, datamodule=dm)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return trainer


def task_model_and_data(task: str, path: str = "auto"):
    """A tagger (BIO tags, so span F1 is tallied too) or a regressor, with its synthetic data module."""
    from encoders.config import DataConfig
    from encoders.data.flat import TokenBuffer
    from encoders.data.sources import load_splits
    from encoders.torch.batches import SequenceDataModule, TokenDataset
    from encoders.torch.models import SequenceRegressor, SequenceTagger

    splits = load_splits(DataConfig(num_train=512, num_val=256, max_length=60), 0)

    def dataset(split):
        rows = [split.tokens.row(i) for i in range(len(split))]
        if task == "tagging":
            tags = TokenBuffer.from_lists([[int(t) % 3 for t in r] for r in rows])
            return TokenDataset(rows, np.zeros(len(rows), dtype=np.int64), tags)
        return TokenDataset(rows, np.array([len(r) / 60 for r in rows], dtype=np.float32))

    dm = SequenceDataModule(dataset(splits.train), dataset(splits.validation), batch_size=64)
    if task == "tagging":
        return SequenceTagger(splits.vocab_size, 3, tag_names=["O", "B-X", "I-X"], encoder_path=path), dm
    return SequenceRegressor(splits.vocab_size, encoder_path=path), dm


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("task", ["tagging", "regression"])
def test_tagger_and_regressor_steps_never_sync(task, precision):
    """Their validation adds its figures up on the device; they are read at the epoch's end."""
    model, dm = task_model_and_data(task)
    trainer = fit_without_syncs(model, dm, precision)
    assert trainer.global_step == 8 and "val/loss" in trainer.callback_metrics
    assert ("val/span_f1" in trainer.callback_metrics) == (task == "tagging")
