"""TensorFlow GPU memory: a logical device with a memory limit (or memory growth) on each GPU."""
from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger(__name__)


def limit_gpu_memory(memory_limit_mb: Optional[int], allow_growth: bool = False) -> str:
    import tensorflow as tf

    if memory_limit_mb is None and not allow_growth:
        return "no limit"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        msg = "no GPU visible to TensorFlow: gpu settings are a no-op"
        log.info(msg)
        return msg
    try:
        for gpu in gpus:  # growth must be the same on every GPU
            if memory_limit_mb is not None:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=int(memory_limit_mb))])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as e:
        raise RuntimeError("TensorFlow already initialised its GPUs; apply the gpu settings before any "
                           f"TensorFlow op runs ({e})") from e
    msg = (f"{len(gpus)} GPU(s): memory capped at {memory_limit_mb} MiB each" if memory_limit_mb is not None
           else f"{len(gpus)} GPU(s): memory growth on")
    log.info(msg)
    return msg
