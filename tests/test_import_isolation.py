"""`import encoders` pulls in no framework; each backend imports only its own (DESIGN.md)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

CASES = {
    "import encoders, encoders.data, encoders.config, encoders.runtime": ("torch", "tensorflow", "keras"),
    "import encoders.torch, encoders.torch.runner, encoders.runtime.torch_gpu": ("tensorflow", "keras"),
    "import encoders.keras": ("torch", "pytorch_lightning"),
    "import encoders.app, encoders.data.sources, encoders.safe, encoders.report": ("torch", "tensorflow", "keras"),
}


@pytest.mark.parametrize("statement", sorted(CASES))
def test_import_pulls_in_only_its_own_framework(statement):
    banned = CASES[statement]
    code = f"{statement}\nimport sys\nprint(sorted(m for m in {banned!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", f"{statement} imported {out.stdout.strip()}"


def test_torch_training_run_never_imports_tensorflow():
    """TensorBoard's writer would import tensorflow (and grab GPU memory) if it were let."""
    code = ("import encoders.torch.runner, tempfile, sys\n"
            "from pytorch_lightning.loggers import TensorBoardLogger\n"
            "l = TensorBoardLogger(tempfile.mkdtemp()); l.log_metrics({'a': 1.0}, 0); l.finalize('success')\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
