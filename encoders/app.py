"""What ``train.py`` runs once Hydra has composed the config: check, set up, dispatch, report."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from encoders.config import PAD, UNK, TrainConfig
from encoders.data.sources import check_token_budget, load_splits
from encoders.data.vocab import Vocab
from encoders.errors import USER_ERROR, ConfigError, DataError, EncodersError, exit_line

log = logging.getLogger(__name__)


def to_schema(cfg: DictConfig) -> TrainConfig:
    """The composed config as a typed ``TrainConfig``.

    Args:
        cfg: the config Hydra composed (a ``TrainConfig`` passes through).

    Returns:
        The ``TrainConfig``.

    Raises:
        ConfigError: a mandatory value left at ``???``, or a key the schema lacks (``unknown_keys``).
    """
    if not isinstance(cfg, DictConfig):
        return cfg
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"no value for {', '.join(missing)}: set it on the command line, e.g. {missing[0]}=...")
    unknown = unknown_keys(cfg)
    if unknown:
        key, known = unknown[0]
        raise ConfigError(f"unknown key {', '.join(k for k, _ in unknown)}: not in the schema, so it would be "
                          f"ignored (a key added with '+' too); {key.rpartition('.')[0] or 'the config'} has "
                          f"{', '.join(known)}")
    return OmegaConf.to_object(cfg)


def unknown_keys(cfg: DictConfig, prefix: str = "") -> List[tuple]:
    """``(full key, the node's known keys)`` for each key of ``cfg`` that its schema dataclass lacks.

    Hydra type-checks ``KEY=VALUE`` against the schema, but ``+KEY=VALUE`` (which its own error
    message suggests for a typo) opens the node and adds the key, and ``OmegaConf.to_object`` then
    drops it without a word: the run would silently use the default.
    """
    schema = OmegaConf.get_type(cfg)
    known = [f.name for f in fields(schema)] if is_dataclass(schema) else None
    found = []
    for key in cfg.keys():
        full = f"{prefix}{key}"
        if known is not None and key not in known:
            found.append((full, known))
            continue
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            found.extend(unknown_keys(child, full + "."))
    return found


def check_config(cfg: TrainConfig) -> None:
    """Every value check (``TrainConfig.validate``), then whether ``ckpt_path`` can be resumed."""
    cfg.validate()
    if cfg.backend.name == "torch":
        from encoders.torch.runtime import check_accelerator

        check_accelerator(cfg.trainer.accelerator)
    if cfg.ckpt_path:
        from encoders.run.resume import check_ckpt_path, check_loads

        check_ckpt_path(cfg.ckpt_path, cfg.backend.name)  # the form: a checkpoint file (torch) or a run dir
        if cfg.backend.name == "torch":  # a file that does not load, named before any data is read
            from encoders.torch.checkpoint_io import load_torch_checkpoint

            check_loads(cfg.ckpt_path, load_torch_checkpoint, "torch")


def hydra_errors_as_one_line(hydra_main: Callable[[], Any]) -> Any:
    """Call a ``@hydra.main`` function so that Hydra's own config errors (no such group option as
    in ``encoder=nope``, a key the schema lacks, a value of the wrong type) end the run as an
    ``EncodersError`` does (``encoders.errors.exit_line``): one line on stderr and exit code ``USER_ERROR``.

    ``HYDRA_FULL_ERROR=1`` is Hydra's switch to raise its errors instead of printing them; it is
    turned on here to catch them. A user who sets it gets Hydra's full traceback, as before.

    Args:
        hydra_main: the ``@hydra.main`` function, called without arguments.

    Returns:
        What ``hydra_main`` returns.

    Raises:
        SystemExit: with ``USER_ERROR`` after a Hydra or OmegaConf config error.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return hydra_main()
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return hydra_main()
    except (HydraException, OmegaConfBaseException) as e:
        if isinstance(e, MissingConfigException) and e.missing_cfg_file and e.options:
            group, _, name = e.missing_cfg_file.rpartition("/")
            message = f"{group}={name}: no such {group} config; choose one of {', '.join(sorted(e.options))}"
        else:  # Hydra's first line names the override, its cause's first line says what is wrong with it
            lines = [str(x).strip().splitlines()[0] for x in (e, e.__cause__) if x is not None and str(x).strip()]
            message = ": ".join(line.rstrip(".") for line in lines)
        line, code = exit_line(ConfigError(message))
        print(line, file=sys.stderr)
        sys.exit(code)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def _remove_killed_writes(run_dir: str) -> None:
    """A run killed during a write (kill -9, power loss) leaves its temporary file beside the good one:
    remove those of the run dir's own folders when it starts again."""
    from encoders.io import remove_leftover_temporaries
    from encoders.run.files import EXPORT_DIR, checkpoints_dir

    for folder in (run_dir, checkpoints_dir(run_dir), os.path.join(run_dir, EXPORT_DIR)):
        for path in remove_leftover_temporaries(folder):
            log.info("removed %s, left by a write that was killed", path)


KERAS_BACKENDS = {"tf": "tensorflow", "jax": "jax"}  # backend=... -> the Keras backend that trains it


def use_keras_backend(backend: str) -> None:
    """Point Keras at the backend's framework (``KERAS_BACKEND``, read once when keras is imported).

    Args:
        backend: ``"tf"`` or ``"jax"``.

    Raises:
        ConfigError: keras was already imported on another backend (it can't switch).
    """
    wanted = KERAS_BACKENDS[backend]
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != wanted:
            raise ConfigError(f"backend={backend} needs Keras on {wanted}, but keras was already imported on "
                              f"{keras.backend.backend()} in this process: start a new one (or set KERAS_BACKEND={wanted})")
        return
    os.environ["KERAS_BACKEND"] = wanted


def run(cfg: DictConfig, run_dir: str, encoder_name: Optional[str] = None) -> Dict[str, Any]:
    """Train the composed config; writes metrics.json, curves.png, vocab.json and checkpoints to run_dir.

    Args:
        cfg: the config Hydra composed.
        run_dir: the run dir (Hydra's output dir).
        encoder_name: the ``encoder`` config's name, for the logs (default: the cell).

    Returns:
        The run's metrics (what metrics.json holds).

    Raises:
        EncodersError: a config or data problem the user can fix (``ConfigError``, ``DataError``...).
    """
    schema = to_schema(cfg)
    check_config(schema)
    from encoders.run.recipe import check_mlflow

    check_mlflow(schema)  # an MLflow store that can't be written, before any data is read
    backend = schema.backend.name
    os.makedirs(run_dir, exist_ok=True)
    _remove_killed_writes(run_dir)
    splits = load_splits(schema.data, schema.seed, task=schema.task.name)
    vocab = splits.vocab or Vocab([PAD, UNK] + [str(i) for i in range(2, splits.vocab_size)])
    vocab.save(run_dir)  # vocab.json (and tokenizer.json): what encodes new text as training did
    check_token_budget(splits, schema.data.max_tokens)
    encoder_name = encoder_name or schema.encoder.cell
    if backend == "torch":
        from encoders.torch.runtime import flush_denormal, set_alloc_conf, set_fp32_precision, set_threads

        flush_denormal(schema.trainer.flush_denormal)  # before torch starts its CPU threads, which copy it
        set_threads(schema.trainer.num_threads)  # before the first kernel
        set_fp32_precision(schema.trainer.fp32_precision)  # before the first CUDA kernel
        set_alloc_conf(schema.gpu.alloc_conf)
        from encoders.torch.runner import run as run_backend
    else:
        use_keras_backend(backend)  # before anything imports keras
        from encoders.keras.runtime import limit_gpu_memory, set_threads

        set_threads(schema.trainer.num_threads)  # before TensorFlow starts (it can't change them later)
        # before TF or jax touches a GPU
        limit_gpu_memory(schema.gpu.memory_limit_mb, schema.gpu.allow_growth, backend)
        from encoders.keras.runner import run as run_backend
    try:
        return run_backend(schema, splits, run_dir, encoder_name)
    finally:
        from encoders.run.threads import release

        release()  # other processes' fair share grows again


__all__ = ["run", "to_schema", "check_config", "hydra_errors_as_one_line", "ConfigError", "DataError", "EncodersError", "USER_ERROR"]
