"""GPU memory limits and the CUDA (cuDNN) encoder path. The ``gpu`` tests run only with CUDA;
the no-GPU behaviour (a logged no-op) is checked everywhere."""
import os
import subprocess
import sys

import pytest
import torch

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


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_cuda_path_equals_cpu_padded_path(cell, num_layers):
    torch.manual_seed(0)
    enc = RNNEncoder(8, 16, cell, num_layers, bidirectional=True)
    lengths = torch.tensor([7, 0, 3, 1, 7, 5])
    x = torch.randn(6, 7, 8)
    ref = enc(x, lengths)
    gpu = enc.cuda()
    assert gpu.resolved_path(torch.device("cuda")) == "packed"  # cuDNN's packed kernel on CUDA
    xg = x.cuda().requires_grad_(True)
    out = gpu(xg, lengths)  # lengths stay on the CPU: any device is accepted
    torch.testing.assert_close(out.sequence.cpu(), ref.sequence, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.final.cpu(), ref.final, atol=1e-5, rtol=1e-4)
    out.final.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad[1].abs().sum() == 0  # empty row: zero gradient


@pytest.mark.gpu
@needs_cuda
def test_all_empty_batch_on_cuda_gives_zeros():
    enc = RNNEncoder(4, 5, "lstm", 2, bidirectional=True).cuda()
    out = enc(torch.randn(3, 4, 4, device="cuda"), torch.zeros(3, dtype=torch.long, device="cuda"))
    assert out.sequence.abs().sum() == 0 and out.final.abs().sum() == 0
