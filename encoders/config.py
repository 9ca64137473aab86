"""Structured-config schemas for the encoders and the training application.

They are plain dataclasses: usable from Python without Hydra, and registered in Hydra's
ConfigStore (``register_configs``) so that a composed config is type-checked and an unknown
key or a wrong type fails at start with the key's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

CELLS = ("lstm", "gru")
BACKENDS = ("torch", "tf")


class ConfigError(ValueError):
    """A config value or combination can't work; the message names the key and what to change."""


@dataclass
class EncoderConfig:
    """One encoder config builds the torch or the Keras encoder (``encoders.build_encoder``)."""

    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0  # between stacked layers, as in torch.nn.LSTM

    def validate(self) -> "EncoderConfig":
        if self.cell not in CELLS:
            raise ValueError(f"encoder.cell must be one of {CELLS}, got {self.cell!r}")
        if self.hidden_size < 1:
            raise ValueError(f"encoder.hidden_size must be >= 1, got {self.hidden_size}")
        if self.num_layers < 1:
            raise ValueError(f"encoder.num_layers must be >= 1, got {self.num_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"encoder.dropout must be in [0, 1), got {self.dropout}")
        return self


@dataclass
class ModelConfig:
    """The classifier around the encoder: embedding, pooling, head and optimiser."""

    embedding_dim: int = 32
    pooling: str = "last"  # last | mean | max | attention
    lr: float = 3e-3
    weight_decay: float = 0.0


@dataclass
class BackendConfig:
    name: str = "torch"  # torch | tf


@dataclass
class DataConfig:
    source: str = "synthetic"  # synthetic | files | hub
    batch_size: int = 64
    num_workers: int = 0
    # bucketing: how many batches' worth of examples are sorted together by length
    bucket_pool_batches: int = 64
    # synthetic
    num_train: int = 20000
    num_val: int = 2000
    vocab_size: int = 32
    max_length: int = 200
    # files / hub
    train_file: Optional[str] = None
    validation_file: Optional[str] = None
    name: Optional[str] = None
    subset: Optional[str] = None
    train_split: str = "train"
    validation_split: str = "validation"
    text_column: str = "text"
    label_column: str = "label"
    tokenizer: str = "whitespace"  # char | whitespace
    lowercase: bool = True
    min_freq: int = 1
    max_vocab_size: Optional[int] = None
    max_tokens: Optional[int] = None  # truncate longer texts (None keeps everything)


@dataclass
class TrainerConfig:
    max_epochs: int = 3
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: Any = 1  # int or "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    deterministic: bool = False
    gradient_clip_val: Optional[float] = 1.0
    log_every_n_steps: int = 50
    enable_progress_bar: bool = True
    progress_bar_refresh_rate: int = 10  # torch: redraw the bar every N batches
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    checkpoint_every_n_steps: Optional[int] = None  # torch: also refresh last.ckpt every N steps


@dataclass
class GPUConfig:
    memory_limit_mb: Optional[int] = None
    allow_growth: bool = False
    alloc_conf: Optional[str] = None  # passed to PYTORCH_ALLOC_CONF


@dataclass
class TrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    gpu: GPUConfig = field(default_factory=GPUConfig)
    seed: int = 42
    ckpt_path: Optional[str] = None
    tags: List[str] = field(default_factory=list)


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="encoder", name="encoder_schema", node=EncoderConfig)
