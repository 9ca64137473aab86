"""Padding-correct sequence encoders for PyTorch and Keras.

``import encoders`` pulls in neither torch nor tensorflow: each backend is imported only
when it is asked for (``encoders.torch``, ``encoders.keras`` or ``build_encoder``).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from encoders.config import EncoderConfig

__all__ = ["EncoderConfig", "build_encoder", "load_run", "TrainedRun"]
__version__ = "0.1.0"


def _as_encoder_config(cfg: Union[EncoderConfig, Mapping[str, Any]]) -> EncoderConfig:
    if isinstance(cfg, EncoderConfig):
        return cfg.validate()
    keys = set(EncoderConfig.__dataclass_fields__)
    unknown = sorted(set(cfg) - keys)
    if unknown:
        raise ValueError(f"unknown encoder config key(s) {unknown}; expected a subset of {sorted(keys)}")
    return EncoderConfig(**{k: cfg[k] for k in cfg}).validate()


def build_encoder(cfg: Union[EncoderConfig, Mapping[str, Any]], backend: str = "torch",
                  input_size: Optional[int] = None):
    """Build ``RNNEncoder`` for ``backend`` ("torch" or "tf"/"keras") from one encoder config.

    torch needs ``input_size`` (the feature size of its input); Keras infers it when built.
    """
    c = _as_encoder_config(cfg)
    kwargs = dict(cell=c.cell, num_layers=c.num_layers, bidirectional=c.bidirectional, dropout=c.dropout)
    if backend == "torch":
        if input_size is None:
            raise ValueError("build_encoder(..., backend='torch') needs input_size")
        from encoders.torch import RNNEncoder

        return RNNEncoder(input_size, c.hidden_size, **kwargs)
    if backend in ("tf", "keras"):
        from encoders.keras import RNNEncoder

        return RNNEncoder(c.hidden_size, **kwargs)
    raise ValueError(f"backend must be 'torch' or 'tf', got {backend!r}")


def __getattr__(name: str):
    # load_run: a trained run for prediction (encoders/use/trained_run.py); loaded on first use, and it
    # imports only the run's own framework
    if name in ("load_run", "TrainedRun"):
        from encoders.use import trained_run

        return getattr(trained_run, name)
    raise AttributeError(f"module 'encoders' has no attribute {name!r}")
