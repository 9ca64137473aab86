"""The device a trained run is used on: ``device="auto" | "cpu" | "cuda" | "cuda:N"``.

``encoders.load_run(..., device=...)`` and ``--device`` of ``predict``/``evaluate`` take it.
``auto`` is the first GPU when the run's framework sees one, else the CPU. A device that does not
exist here is a ``ConfigError`` naming it (one line and exit code 2 in the CLI). torch runs map to
``torch.device``; tf runs to TensorFlow's ``/CPU:0`` and ``/GPU:N`` (``cuda:N`` is ``/GPU:N``);
jax runs to jax's ``cpu`` and ``gpu:N`` devices. Only the run's own framework is imported.
"""
from __future__ import annotations

import contextlib
import re

from encoders.errors import ConfigError

DEVICES = "auto, cpu, cuda or cuda:N"
_FORM = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def parse_device(device) -> tuple:
    """Read a device name.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        ``(kind, index or None)``.

    Raises:
        ConfigError: ``device`` is none of those (the message names it).
    """
    m = _FORM.match(str(device).strip().lower()) if isinstance(device, str) else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


def resolve_device(backend: str, device: str = "auto") -> str:
    """The device ``backend`` will use for ``device``.

    Args:
        backend: the run's backend (``"torch"``, ``"tf"`` or ``"jax"``).
        device: as :func:`parse_device` reads it.

    Returns:
        ``"cpu"``/``"cuda:N"`` (torch), ``"cpu"``/``"gpu:N"`` (jax) or ``"/CPU:0"``/``"/GPU:N"`` (tf).

    Raises:
        ConfigError: a bad name, or a GPU that does not exist here.
    """
    kind, index = parse_device(device)
    count = _gpu_count(backend)
    if kind == "auto":
        kind, index = ("cuda", 0) if count else ("cpu", None)
    if kind == "cpu":
        return {"torch": "cpu", "jax": "cpu"}.get(backend, "/CPU:0")
    index = 0 if index is None else index
    if index >= count:
        seen = f"{count} GPU{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})" if count else "no GPU"
        framework = {"torch": "torch", "jax": "jax"}.get(backend, "TensorFlow")
        raise ConfigError(f"device={device!r}: {framework} sees {seen} here; use device=cpu or auto")
    return {"torch": f"cuda:{index}", "jax": f"gpu:{index}"}.get(backend, f"/GPU:{index}")


def device_scope(backend: str, resolved: str):
    """Where a Keras run's variables and ops go (``tf.device``, ``jax.default_device``); torch
    places by tensor (no scope).

    Args:
        backend: the run's backend.
        resolved: what :func:`resolve_device` returned.

    Returns:
        A context manager.
    """
    if backend == "torch":
        return contextlib.nullcontext()
    if backend == "jax":
        import jax

        kind, _, index = resolved.partition(":")
        return jax.default_device(_jax_devices(kind)[int(index or 0)])
    import tensorflow as tf

    return tf.device(resolved)


def _gpu_count(backend: str) -> int:
    if backend == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend == "jax":
        return len(_jax_devices("gpu"))
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _jax_devices(kind: str) -> list:
    import jax

    try:
        return jax.devices(kind)
    except RuntimeError:  # no such platform here
        return []
