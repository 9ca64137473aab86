"""Per-backend runtime setup, usable without Hydra: ``limit_gpu_memory("torch" | "tf", MB)``.

The work is done by ``encoders.torch.runtime`` and ``encoders.keras.runtime``; this module only
dispatches, so it imports the framework that was asked for and no other.
"""
from __future__ import annotations

from typing import Optional

from encoders.config import GPUConfig


def limit_gpu_memory(backend: str, memory_limit_mb: Optional[int], allow_growth: bool = False) -> str:
    """Cap this process's GPU memory for ``backend`` ("torch" or "tf"); returns what was done.

    Call it before the framework touches a GPU. Without a GPU it is a logged no-op. Invalid
    settings raise ``ConfigError`` naming the ``gpu.*`` key.
    """
    GPUConfig(memory_limit_mb, allow_growth).validate()
    if backend == "torch":
        from encoders.torch.runtime import limit_gpu_memory as limit
        return limit(memory_limit_mb)
    if backend in ("tf", "keras"):
        from encoders.keras.runtime import limit_gpu_memory as limit
        return limit(memory_limit_mb, allow_growth)
    raise ValueError(f"backend must be 'torch' or 'tf', got {backend!r}")
