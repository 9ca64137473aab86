"""TensorFlow runtime: GPU memory (a capped logical device, or memory growth, on each GPU) and the
tf.distribute strategy for ``trainer.devices`` / ``TF_CONFIG``. Call both before TF builds anything."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional, Tuple

from encoders.errors import ConfigError

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


def set_threads(num_threads: Optional[int] = None) -> int:
    """TensorFlow's CPU threads (within and between ops): ``num_threads``, else this process's fair
    share of the cores (``encoders.threads``). TensorFlow reads them once, when it starts: call this first."""
    import tensorflow as tf

    from encoders.threads import fair_share, mark_chosen

    n, why = fair_share(num_threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError as e:  # already started (a second run in one process): keep what it has
        log.info("TensorFlow CPU threads unchanged, it has already started (%s)", e)
        return tf.config.threading.get_intra_op_parallelism_threads()
    mark_chosen(n)
    log.info("TensorFlow CPU threads: %d (%s)", n, why)
    return n


def worker_info() -> Tuple[int, bool]:
    """(task index, is chief) from ``TF_CONFIG``; (0, True) without one."""
    spec = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = spec.get("task", {})
    index = int(task.get("index", 0))
    has_chief = "chief" in spec.get("cluster", {})
    is_chief = task.get("type") == "chief" or (not has_chief and index == 0)
    return index, is_chief


def make_strategy(devices: Any = 1, accelerator: str = "auto"):
    """One device: the default strategy. ``devices=N``: ``MirroredStrategy`` over N GPUs, or over N
    logical CPU devices with ``accelerator=cpu`` (or no GPU). ``TF_CONFIG`` set: ``MultiWorkerMirroredStrategy``.
    ``data.batch_size`` stays the global batch: tf.distribute splits each batch over the replicas.
    """
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        log.info("MultiWorkerMirroredStrategy: %d replicas", strategy.num_replicas_in_sync)
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    use_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus)
    if accelerator in ("gpu", "cuda") and not gpus:
        raise ConfigError("trainer.accelerator=gpu but TensorFlow sees no GPU: use trainer.accelerator=cpu or auto")
    if devices in ("auto", -1):
        devices = len(gpus) if use_gpu else 1
    try:
        n = int(devices)
    except (TypeError, ValueError):
        raise ConfigError(f"trainer.devices must be a whole number >= 1 or 'auto', got {devices!r}") from None
    if n < 1:
        raise ConfigError(f"trainer.devices must be >= 1, got {devices}")
    if use_gpu:
        if n > len(gpus):
            raise ConfigError(f"trainer.devices={n} but only {len(gpus)} GPU(s) are visible: lower trainer.devices")
        names = [f"/gpu:{i}" for i in range(n)]
    else:
        if n > 1:  # N logical CPU devices, so MirroredStrategy has N replicas on one CPU
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            except RuntimeError as e:
                raise RuntimeError(f"TensorFlow is already initialised; can't split the CPU into {n} devices ({e})") from e
        names = [f"/cpu:{i}" for i in range(n)]
    if n == 1:
        return tf.distribute.get_strategy()
    strategy = tf.distribute.MirroredStrategy(names)
    log.info("MirroredStrategy over %s", names)
    return strategy


def patch_fit_for_multi_worker(model, strategy, example_batch) -> None:
    """Work around two Keras 3 bugs of fit() under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

    1. Before training, fit() and evaluate() build optimizer and metric state from the first
       *distributed* batch, reducing it across replicas as one nested structure, which the
       multi-worker strategy can't do. We build that state from a local batch instead.
    2. Each step's logs are reduced with ``MEAN`` over ``axis=0``, which fails on scalars. We hand
       them over with shape ``[1]``, so the same reduction gives the mean over replicas, a scalar.
    Only this model instance is changed, and only under the multi-worker strategy; a saved model
    carries none of it.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        model._symbolic_build(data_batch=example_batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    train_step, test_step = model.train_step, model.test_step

    def as_vectors(logs):
        return {k: tf.reshape(v, [1]) if v.shape.rank == 0 else v for k, v in logs.items()}

    model.train_step = lambda data: as_vectors(train_step(data))
    model.test_step = lambda data: as_vectors(test_step(data))
