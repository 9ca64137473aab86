"""Peak memory of one bi-LSTM forward+backward, ours vs packed (and the raw kernel), each in a fresh process.

Measured as the rise of the process's peak resident set size over its RSS just before the step
(after imports, model and input are built, and one warm-up step has run): the kernel's
high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs`` right before the step and
read right after it, so the figure is what the step itself adds at its peak (activations, workspaces, gradients). The child runs
with ``MALLOC_MMAP_THRESHOLD_=65536`` and ``MALLOC_TRIM_THRESHOLD_=0`` so that glibc maps every
large tensor on its own and unmaps it when freed: RSS then follows the live tensors instead of
whatever the allocator happened to keep from earlier steps.
Run as ``python -m bench.memory_bench ours|packed|raw SIZE_JSON``; prints one number (MiB).
"""
from __future__ import annotations

import json
import sys
from typing import Dict

from bench.common import run_child


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{key} not in /proc/self/status")


def _child(which: str, s: Dict) -> float:
    from bench.encoder_bench import make_models, ragged_batch, step_fns

    x, lengths = ragged_batch(s["enc_batch"], s["enc_max_len"], s["enc_emb"])
    ref, ours = make_models("lstm", s["enc_emb"], s["enc_hidden"])
    fn = step_fns(ref, ours, x, lengths)[which]
    fn()  # warm-up: one-off allocations (kernel primitives, thread pools) are not per-step memory
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = _status_mb("VmRSS")
    fn()
    return _status_mb("VmHWM") - before


def run(s: Dict) -> Dict[str, float]:
    # one child at a time: side by side, their page-mapping traffic (every large tensor is its own
    # mmap here) made the packed child several times slower on 2 cores
    out = {}
    for which in ("ours", "packed", "raw"):
        key = "peak_memory_raw_kernel_mb" if which == "raw" else f"peak_memory_{which}_mb"
        out[key] = float(run_child("bench.memory_bench", which, json.dumps(s),
                                   MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0"))
    return out


if __name__ == "__main__":
    print(_child(sys.argv[1], json.loads(sys.argv[2])))
