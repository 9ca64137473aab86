"""Keras runtime: GPU memory (TF: a capped logical device, or memory growth, on each GPU; jax: XLA's
preallocation switch) and the data-parallel set-up for ``trainer.devices`` (TF: a tf.distribute
strategy, also from ``TF_CONFIG``; jax: ``keras.distribution.DataParallel``). Call both before the
backend builds anything; only the running Keras backend's framework is imported."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional, Tuple

from encoders.errors import ConfigError

log = logging.getLogger(__name__)


def limit_gpu_memory(memory_limit_mb: Optional[int], allow_growth: bool = False, backend: str = "tf") -> str:
    if backend == "jax":
        return limit_jax_gpu_memory(memory_limit_mb, allow_growth)
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
    share of the cores (``encoders.run.threads``). TensorFlow reads them once, when it starts: call this first."""
    from encoders.run.threads import fair_share, mark_chosen

    n, why = fair_share(num_threads)
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":  # jax's XLA threads are its own
        log.info("CPU threads: not set on Keras backend %s (TensorFlow only)", os.environ["KERAS_BACKEND"])
        return n
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError as e:  # already started (a second run in one process): keep what it has
        log.info("TensorFlow CPU threads unchanged, it has already started (%s)", e)
        return tf.config.threading.get_intra_op_parallelism_threads()
    mark_chosen(n)
    log.info("TensorFlow CPU threads: %d (%s)", n, why)
def limit_jax_gpu_memory(memory_limit_mb: Optional[int], allow_growth: bool = False) -> str:
    """jax preallocates most of a GPU's memory at its first use; ``allow_growth`` turns that off
    (``XLA_PYTHON_CLIENT_PREALLOCATE=false``). A cap in MiB has no jax setting (its limit is a
    fraction, ``XLA_PYTHON_CLIENT_MEM_FRACTION``): refused rather than ignored."""
    if memory_limit_mb is not None:
        raise ConfigError(f"gpu.memory_limit_mb={memory_limit_mb}: backend=jax has no cap in MiB; set "
                          "XLA_PYTHON_CLIENT_MEM_FRACTION (e.g. 0.5) in the environment, or gpu.allow_growth=true")
    if not allow_growth:
        return "no limit"
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return "jax: GPU memory preallocation off (grows as needed)"


def make_distribution(devices: Any = 1, accelerator: str = "auto"):
    """The data-parallel set-up for the running Keras backend, as an object with ``scope()``:
    TensorFlow's strategy (``make_strategy``), or on jax ``keras.distribution.DataParallel`` over
    ``devices`` devices (set globally; its ``scope()`` does nothing more)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return make_strategy(devices, accelerator)
    if keras.backend.backend() != "jax":
        raise ConfigError(f"train.py runs Keras on tensorflow or jax, not {keras.backend.backend()}")
    return JaxDataParallel(devices, accelerator)


class JaxDataParallel:
    """``trainer.devices=N`` on jax: each batch split over N devices of one kind (GPUs, or with
    ``accelerator=cpu`` the CPU devices that ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
    makes). ``data.batch_size`` stays the global batch, as with tf.distribute."""

    def __init__(self, devices: Any = 1, accelerator: str = "auto"):
        import contextlib

        import jax
        import keras

        gpus = [d for d in jax.devices() if d.platform == "gpu"] if jax.default_backend() == "gpu" else []
        if accelerator in ("gpu", "cuda") and not gpus:
            raise ConfigError("trainer.accelerator=gpu but jax sees no GPU: use trainer.accelerator=cpu or auto")
        pool = gpus if gpus and accelerator != "cpu" else jax.devices("cpu")
        n = len(pool) if devices in ("auto", -1) else _count(devices)
        if n > len(pool):
            raise ConfigError(f"trainer.devices={n} but jax sees {len(pool)} {pool[0].platform} device(s)"
                              + ("; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N" if not gpus else ""))
        self.num_replicas_in_sync = n
        self.scope = contextlib.nullcontext
        if n > 1:
            names = [f"{d.platform}:{d.id}" for d in pool[:n]]
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=names))
            log.info("keras.distribution.DataParallel over %s", names)


def count_real_rows(model, strategy) -> None:
    """With ``pad_rows``' batches (jax over N > 1 devices): the logged loss and metrics over the real
    rows only, so they equal a one-device run's. Keras weighs each batch's loss by its padded row
    count and passes the loss weights (``P/B``) to the metrics; here the loss is counted once per
    real row and the metrics see weight 1 per real row, 0 per added one. Only this model instance is
    changed (call after ``compile``), and only on that path; a saved model carries none of it."""
    if not isinstance(strategy, JaxDataParallel) or strategy.num_replicas_in_sync == 1:
        return
    import keras

    class RealRowsMean(keras.metrics.Mean):
        pending = None  # no loss yet (Keras builds the metrics once with compute_metrics alone)

        def update_state(self, values, sample_weight=None):
            self.pending = values  # counted by compute_metrics, which has the rows' weights

    tracker = model._loss_tracker = RealRowsMean(name="loss")
    compiled = model._compile_metrics  # compile's `metrics` ignore sample weights: make them weighted ones
    if compiled is not None:  # (same names; built at the first batch, so still unbuilt here)
        compiled._user_weighted_metrics, compiled._user_metrics = compiled._user_metrics, None
    compute_metrics = model.compute_metrics

    def real_rows_metrics(x, y, y_pred, sample_weight=None):
        real = keras.ops.cast(keras.ops.greater(sample_weight, 0), "float32")
        if tracker.pending is not None:
            rows = keras.ops.sum(real if len(real.shape) == 1 else keras.ops.max(real, axis=1))  # tags: [P, T]
            keras.metrics.Mean.update_state(tracker, tracker.pending, sample_weight=rows)
            tracker.pending = None
        return compute_metrics(x, y, y_pred, real)

    model.compute_metrics = real_rows_metrics


def keep_tensorflow_out() -> None:
    """On a non-TF Keras backend, tell Keras that TensorFlow is absent. Keras checks
    ``tf.available`` (which imports TensorFlow whenever it is installed) when it seeds and when it
    serializes a model, so a jax run would load TensorFlow (and, with a GPU build, grab GPU memory)
    for nothing. A TensorFlow already imported is left alone."""
    import sys

    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return
    from keras.src.utils import module_utils

    lazy = getattr(module_utils, "tensorflow", None)
    if lazy is not None and getattr(lazy, "module", None) is None and hasattr(lazy, "_available"):
        lazy._available = False


def set_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` without its ``tf.random.set_seed``, which imports TensorFlow
    whenever it is installed: on jax the same Python, numpy and Keras seeds, and no TensorFlow."""
    import keras

    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)  # recreated from the seed
    random.seed(seed)
    np.random.seed(seed)


def _count(devices: Any) -> int:
    try:
        n = int(devices)
    except (TypeError, ValueError):
        raise ConfigError(f"trainer.devices must be a whole number >= 1 or 'auto', got {devices!r}") from None
    if n < 1:
        raise ConfigError(f"trainer.devices must be >= 1, got {devices}")
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
    n = _count(devices)
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
    if isinstance(strategy, JaxDataParallel):
        return
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
