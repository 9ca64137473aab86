"""Per-backend runtime setup, usable without Hydra. Each backend's module imports only its framework."""
from __future__ import annotations

from typing import Optional


def check_gpu_settings(memory_limit_mb: Optional[int], allow_growth: bool = False) -> None:
    if memory_limit_mb is not None and memory_limit_mb <= 0:
        raise ValueError(f"gpu.memory_limit_mb must be a positive number of MiB, got {memory_limit_mb}")
    if memory_limit_mb is not None and allow_growth:
        raise ValueError("gpu.memory_limit_mb and gpu.allow_growth=true can't be combined (TensorFlow "
                         "can't grow and cap the same GPU): set one of them")


def limit_gpu_memory(backend: str, memory_limit_mb: Optional[int], allow_growth: bool = False) -> str:
    """Cap this process's GPU memory for ``backend`` ("torch" or "tf"); returns what was done.

    Call it before the framework touches a GPU. Without a GPU it is a logged no-op.
    """
    check_gpu_settings(memory_limit_mb, allow_growth)
    if backend == "torch":
        from encoders.runtime.torch_gpu import limit_gpu_memory as limit
        return limit(memory_limit_mb)
    if backend in ("tf", "keras"):
        from encoders.runtime.tf_gpu import limit_gpu_memory as limit
        return limit(memory_limit_mb, allow_growth)
    raise ValueError(f"backend must be 'torch' or 'tf', got {backend!r}")
