"""torch runtime: GPU memory (a per-process fraction of the device this process or rank uses), the
CPU's handling of denormal floats and the precision of float32 matmuls and cuDNN RNNs on the GPU."""
from __future__ import annotations

import logging
import os
from typing import Optional

import torch

from encoders.config import FP32_PRECISIONS
from encoders.errors import ConfigError

log = logging.getLogger(__name__)


def set_alloc_conf(alloc_conf: Optional[str]) -> None:
    """``PYTORCH_ALLOC_CONF`` is read at the first CUDA allocation, so set it before that."""
    if alloc_conf:
        os.environ["PYTORCH_ALLOC_CONF"] = alloc_conf


def flush_denormal(on: bool = True) -> bool:
    """Treat denormal floats (below 1.2e-38 in float32) as zero on the CPU, as TensorFlow's kernels do.

    LSTM/GRU gradients that fade over long rows pass through the denormal range, where x86
    arithmetic is many times slower: forward and backward of the default bi-LSTM over 64 rows of
    400 steps take 0.48 s without it and 0.11 s with it on 2 cores (BENCHMARKS.md). The setting belongs to
    each thread and a new thread copies it from the thread that starts it, so call this before
    torch's first parallel operation in the process (when its OpenMP threads start); later, it
    reaches only the calling thread. Returns False where the CPU has no such mode.
    """
    done = torch.set_flush_denormal(bool(on))
    log.info("CPU denormal floats %s", ("flushed to zero" if on else "kept") if done else "unchanged (no CPU support)")
    return done


def limit_gpu_memory(memory_limit_mb: Optional[int], device: Optional[int] = None) -> str:
    if memory_limit_mb is None:
        return "no limit"
    if not torch.cuda.is_available():
        msg = f"gpu.memory_limit_mb={memory_limit_mb}: no CUDA device, nothing to limit"
        log.info(msg)
        return msg
    if device is None:  # each DDP rank limits its own device
        device = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = min(1.0, memory_limit_mb * 2**20 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    msg = f"cuda:{device}: memory capped at {memory_limit_mb} MiB ({fraction:.3f} of {total / 2**20:.0f} MiB)"
    log.info(msg)
    return msg


def check_accelerator(accelerator: str) -> None:
    """``trainer.accelerator=gpu`` (or ``cuda``) with no GPU torch can use: a ``ConfigError`` saying
    what to set, before Lightning fails with its own message (as the tf backend's ``make_strategy``)."""
    if accelerator == "cuda" and not torch.cuda.is_available() or accelerator == "gpu" and not (
            torch.cuda.is_available() or torch.backends.mps.is_available()):
        raise ConfigError(f"trainer.accelerator={accelerator} but torch sees no GPU: use trainer.accelerator=cpu "
                          "or auto")


def set_fp32_precision(precision: str) -> dict:
    """How float32 matmuls and cuDNN RNNs/convolutions compute on CUDA: ``"ieee"`` (full float32)
    or ``"tf32"`` (TensorFloat-32 on Ampere and newer: 10-bit mantissa inputs, float32 sums).

    torch has two sets of switches: the old ``allow_tf32`` flags and, from 2.9, ``fp32_precision``
    per backend and operator, which alone reaches cuDNN RNNs (whose default there is tf32;
    ``torch.set_float32_matmul_precision`` does not reach them). Both are set, old first, so
    either can be read back (torch refuses reads when they disagree). Call it before the first
    CUDA kernel; on a CPU-only build it only sets the flags. Returns the flags as read back.
    """
    if precision not in FP32_PRECISIONS:
        raise ConfigError(f"trainer.fp32_precision must be one of {FP32_PRECISIONS}, got {precision!r}")
    on = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    for name in ("cuda.matmul", "cudnn.conv", "cudnn.rnn"):  # torch >= 2.9
        owner = _backend(name)
        if owner is not None and hasattr(owner, "fp32_precision"):
            owner.fp32_precision = precision
    flags = fp32_flags()
    log.info("float32 on CUDA: %s (%s)", precision, ", ".join(f"{k}={v}" for k, v in flags.items()))
    return flags


def fp32_flags() -> dict:
    """The float32 precision switches of this torch, as they stand now."""
    flags = {"cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
             "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}
    for name in ("cuda.matmul", "cudnn.conv", "cudnn.rnn"):
        owner = _backend(name)
        if owner is not None and hasattr(owner, "fp32_precision"):
            flags[f"{name}.fp32_precision"] = owner.fp32_precision
    return flags


def _backend(name: str):
    owner = torch.backends
    for part in name.split("."):
        owner = getattr(owner, part, None)
    return owner
def set_threads(num_threads: Optional[int] = None) -> int:
    """This process's CPU threads for torch: ``num_threads``, else its fair share of the cores
    (``encoders.run.threads``). Call it before the first kernel, after ``flush_denormal``: threads started
    later copy the denormal mode of the thread that starts them."""
    from encoders.run.threads import fair_share, mark_chosen

    n, why = fair_share(num_threads)
    torch.set_num_threads(n)
    mark_chosen(n)
    log.info("torch CPU threads: %d (%s)", n, why)
    return n



def follow_fair_share() -> None:
    """Change torch's thread count to this process's fair share now (processes started or ended)."""
    from encoders.run.threads import cores, live_processes

    n = max(1, cores() // live_processes())
    if n != torch.get_num_threads():
        log.info("torch CPU threads: %d -> %d (processes started or ended)", torch.get_num_threads(), n)
        torch.set_num_threads(n)
