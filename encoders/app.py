"""What ``train.py`` runs once Hydra has composed the config: check, set up, dispatch, report."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from encoders.config import PAD, UNK, TrainConfig
from encoders.data.sources import check_token_budget, load_splits
from encoders.data.vocab import Vocab
from encoders.errors import ConfigError, DataError, EncodersError

log = logging.getLogger(__name__)
USER_ERROR = 2  # exit code of a run stopped by an EncodersError: the message says what to change


def to_schema(cfg: DictConfig) -> TrainConfig:
    """The composed config as a typed ``TrainConfig``; a mandatory value left at ``???`` is named."""
    if not isinstance(cfg, DictConfig):
        return cfg
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"no value for {', '.join(missing)}: set it on the command line, e.g. {missing[0]}=...")
    return OmegaConf.to_object(cfg)


def check_config(cfg: TrainConfig) -> None:
    """Every value check (``TrainConfig.validate``), then whether ``ckpt_path`` can be resumed."""
    cfg.validate()
    if cfg.ckpt_path:
        if cfg.backend.name == "torch":
            if not os.path.isfile(cfg.ckpt_path):
                raise ConfigError(f"ckpt_path: no such checkpoint file: {cfg.ckpt_path} "
                                  "(torch resumes from a .ckpt file, e.g. RUN_DIR/checkpoints/last.ckpt)")
            check_resumable(cfg.ckpt_path)
        elif not os.path.isdir(cfg.ckpt_path):
            raise ConfigError(f"ckpt_path: no such run dir: {cfg.ckpt_path} "
                              "(tf resumes from an earlier run dir, whose backup/ BackupAndRestore wrote)")


def check_resumable(path: str) -> None:
    """A truncated or corrupt checkpoint is named before training starts, with the checkpoints
    beside it that do load (e.g. ``best.ckpt``), so the user can resume from one of those."""
    import glob

    from encoders.torch.checkpoint_io import load_torch_checkpoint

    try:
        load_torch_checkpoint(path)
    except ValueError as e:
        usable = []
        for other in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), "*.ckpt"))):
            if os.path.abspath(other) != os.path.abspath(path):
                try:
                    load_torch_checkpoint(other)
                    usable.append(other)
                except ValueError:
                    pass
        hint = (f"checkpoints beside it that load: {', '.join(usable)}; resume with ckpt_path={usable[-1]}"
                if usable else "no other checkpoint beside it loads")
        raise ConfigError(f"ckpt_path: {e}. {hint}") from None


def run(cfg: DictConfig, run_dir: str, encoder_name: Optional[str] = None) -> Dict[str, Any]:
    """Train the composed config; writes metrics.json, curves.png, vocab.json and checkpoints to run_dir."""
    schema = to_schema(cfg)
    check_config(schema)
    backend = schema.backend.name
    os.makedirs(run_dir, exist_ok=True)
    splits = load_splits(schema.data, schema.seed, task=schema.task.name)
    vocab = splits.vocab or Vocab([PAD, UNK] + [str(i) for i in range(2, splits.vocab_size)])
    vocab.save(run_dir)  # vocab.json (and tokenizer.json): what encodes new text as training did
    check_token_budget(splits, schema.data.max_tokens)
    encoder_name = encoder_name or schema.encoder.cell
    if backend == "torch":
        from encoders.torch.runtime import set_alloc_conf
        from encoders.torch.runner import run as run_backend

        set_alloc_conf(schema.gpu.alloc_conf)
    else:
        from encoders.keras.runtime import limit_gpu_memory

        limit_gpu_memory(schema.gpu.memory_limit_mb, schema.gpu.allow_growth)  # before TF touches a GPU
        from encoders.keras.runner import run as run_backend
    return run_backend(schema, splits, run_dir, encoder_name)


__all__ = ["run", "to_schema", "check_config", "ConfigError", "DataError", "EncodersError", "USER_ERROR"]
