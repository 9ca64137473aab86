"""encoders.torch.runtime on the CPU: denormal floats flushed to zero in every thread torch starts."""
import subprocess
import sys

import pytest

from tests.helpers import ROOT

# A product over 4M float32 denormals (1e-39): torch splits it over its OpenMP threads, which it
# starts at this first parallel operation. Prints how many results stayed non-zero.
CHILD = """
import sys, torch
from encoders.torch.runtime import flush_denormal
torch.set_num_threads(2)
if sys.argv[1] == "on":
    assert flush_denormal(True)
x = torch.full((1 << 22,), 1e-39)
print(int(((x * 1.0) != 0).sum()))
"""


def nonzero_after(mode: str) -> int:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(not __import__("torch").set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")
def test_flush_denormal_reaches_every_thread_torch_starts_after_it():
    assert nonzero_after("off") == 1 << 22  # IEEE: 1e-39 * 1.0 is a denormal, not zero
    assert nonzero_after("on") == 0  # the calling thread and the OpenMP threads started after it
