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


# trainer.fp32_precision: the flags are plain process state, so a CPU build reads them back too.
# A child process, so the flags of this test process stay torch's own.
FP32_CHILD = """
import json, sys, torch
from encoders.torch.runtime import set_fp32_precision
for precision in sys.argv[1:]:
    flags = set_fp32_precision(precision)
    # what torch and Lightning read: both sets of switches agree, so neither read raises
    print(json.dumps({**flags, "matmul": torch.get_float32_matmul_precision(),
                      "legacy": [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]}))
"""


def test_fp32_precision_sets_old_and_new_flags_together():
    import json

    order = ["tf32", "ieee", "tf32"]  # each way from torch's defaults and from the other setting
    proc = subprocess.run([sys.executable, "-c", FP32_CHILD, *order], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for precision, line in zip(order, proc.stdout.strip().splitlines()[-3:]):
        check_flags(precision, json.loads(line))


def check_flags(precision, flags):
    on = precision == "tf32"
    assert flags["legacy"] == [on, on]
    assert flags["matmul"] == ("high" if on else "highest")
    new = {k: v for k, v in flags.items() if k.endswith(".fp32_precision")}
    import torch

    if hasattr(torch.backends.cudnn, "rnn"):  # torch >= 2.9: cuDNN RNNs have their own switch
        assert new["cudnn.rnn.fp32_precision"] == precision
    assert all(v == precision for v in new.values()), new


def test_fp32_precision_is_checked_by_the_schema():
    from encoders.config import TrainerConfig
    from encoders.errors import ConfigError
    from encoders.torch.runtime import set_fp32_precision

    assert TrainerConfig().fp32_precision == "ieee"
    with pytest.raises(ConfigError, match="trainer.fp32_precision must be one of .*'fp16'"):
        TrainerConfig(fp32_precision="fp16").validate()
    with pytest.raises(ConfigError, match="trainer.fp32_precision"):
        set_fp32_precision("high")
