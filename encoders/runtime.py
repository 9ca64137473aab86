"""Per-backend runtime setup, usable without Hydra: ``limit_gpu_memory("torch" | "tf", MB)``.

The work is done by ``encoders.torch.runtime`` and ``encoders.keras.runtime``; this module only
dispatches, so it imports the framework that was asked for and no other.
"""
from __future__ import annotations

from typing import Optional

from encoders.config import GPUConfig


def limit_gpu_memory(backend: str, memory_limit_mb: Optional[int], allow_growth: bool = False) -> str:
    """Cap this process's GPU memory for ``backend``.

    Call it before the framework touches a GPU. Without a GPU it is a logged no-op.

    Args:
        backend: ``"torch"`` (a per-process fraction of the device this process uses), or
            ``"tf"`` / ``"keras"`` (a capped logical device, or memory growth, on each GPU).
        memory_limit_mb: the cap in MiB; ``None`` for no cap.
        allow_growth: TensorFlow's memory growth instead of a cap (torch ignores it).

    Returns:
        A line saying what was done, as logged.

    Raises:
        ConfigError: invalid settings (``memory_limit_mb`` not positive, or combined with
            ``allow_growth``), naming the ``gpu.*`` key.
        ValueError: ``backend`` is none of the above.
    """
    GPUConfig(memory_limit_mb, allow_growth).validate()
    if backend == "torch":
        from encoders.torch.runtime import limit_gpu_memory as limit
        return limit(memory_limit_mb)
    if backend in ("tf", "keras"):
        from encoders.keras.runtime import limit_gpu_memory as limit
        return limit(memory_limit_mb, allow_growth)
    raise ValueError(f"backend must be 'torch' or 'tf', got {backend!r}")
