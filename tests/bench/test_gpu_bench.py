"""bench/gpu_bench.py and bench/gpu_session.sh where there is no GPU: they say so and exit 0."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")


def test_gpu_session_without_cuda_skips_cleanly_and_exits_0(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable, OUT=str(tmp_path))
    res = subprocess.run(["bash", "bench/gpu_session.sh", "bench"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)  # a hang guard, not a speed test: loaded machines are slow
    assert res.returncode == 0, res.stderr[-2000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert "no CUDA device" in summary and "gpu_bench ieee: exit 0 gpu_bench: no CUDA device here" in summary
