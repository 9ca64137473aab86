"""Structured-config schemas, the classifier spec and the project's enumerations, defined once.

The schemas are plain dataclasses: usable from Python without Hydra, and registered in Hydra's
ConfigStore (``register_configs``) so that a composed config is type-checked and an unknown key
or a wrong type fails at start with the key's name. Each schema's ``validate()`` holds the checks
of its values (the one place they live); the data sources, the runners and ``train.py`` call it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional

from encoders.errors import ConfigError, DataConfigError

# -- enumerations and special ids (every module takes them from here) ------------------------------
CELLS = ("lstm", "gru")
POOLINGS = ("last", "mean", "max", "attention")
BACKENDS = ("torch", "tf", "jax")  # jax: the Keras model trained by Keras on its jax backend
SOURCES = ("synthetic", "files", "hub")
TOKENIZERS = ("char", "whitespace", "bpe", "wordpiece")
TASKS = ("classification", "tagging", "regression")  # task=...: what the head predicts
# what config checks of each task (its behaviour is the task owners'): whether the synthetic data (a
# classification set) fits it, whether it reads words (one tag per word), and a head's fixed output count
TASK_FACTS = {"classification": {"synthetic_data": True, "reads_words": False, "outputs": None},
              "tagging": {"synthetic_data": False, "reads_words": True, "outputs": None},
              "regression": {"synthetic_data": False, "reads_words": False, "outputs": 1}}
# the metric each task's best checkpoint is chosen by (the logged name) and which way is better; here,
# below every user of it, so the sweep's resolver (``register_configs``) needs no module above config
MONITOR = {"classification": ("val/acc", "max"), "tagging": ("val/acc", "max"), "regression": ("val/rmse", "min")}
FP32_PRECISIONS = ("ieee", "tf32")  # trainer.fp32_precision: float32 matmuls and cuDNN RNNs on CUDA
WORD_TOKENIZERS = ("whitespace", "char")  # the ones pretrained word vectors can align to
DEFAULT_EMBEDDING_DIM = 32  # model.embedding_dim when it is not set (and no vectors file sets it)
TAG_PAD_ID = -100  # the tag of a pad position in a tagging batch: the loss and metrics skip it
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SEED_MAX = 2**32 - 1
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("none", "cosine", "linear", "plateau")


def _one_of(key: str, value: Any, choices, error=ConfigError) -> None:
    if value not in choices:
        raise error(f"{key} must be one of {choices}, got {value!r}")


def _at_least(key: str, value: Any, low, error=ConfigError) -> None:
    if value < low:
        raise error(f"{key} must be >= {low}, got {value}")


@dataclass
class EncoderConfig:
    """One encoder config builds the torch or the Keras encoder (``encoders.build_encoder``)."""

    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0  # between stacked layers, as in torch.nn.LSTM

    def validate(self) -> "EncoderConfig":
        _one_of("encoder.cell", self.cell, CELLS)
        _at_least("encoder.hidden_size", self.hidden_size, 1)
        _at_least("encoder.num_layers", self.num_layers, 1)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"encoder.dropout must be in [0, 1), got {self.dropout}")
        return self


@dataclass
class ModelConfig:
    """The classifier around the encoder: embedding, pooling, head and optimiser."""

    # None: DEFAULT_EMBEDDING_DIM, or the size of model.pretrained_embeddings' vectors (an explicit
    # value that differs from the file's is an error)
    embedding_dim: Optional[int] = None
    pooling: str = "last"  # one of POOLINGS; "last" is the encoder's `final`
    # older spellings of optimizer.lr / optimizer.weight_decay: when set, they win over those
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    pretrained_embeddings: Optional[str] = None  # GloVe / word2vec text / fastText .vec, gzipped or not
    freeze_embeddings: bool = False  # keep the pretrained table as loaded

    def validate(self) -> "ModelConfig":
        if self.embedding_dim is not None:
            _at_least("model.embedding_dim", self.embedding_dim, 1)
        _one_of("model.pooling", self.pooling, POOLINGS)
        if self.freeze_embeddings and not self.pretrained_embeddings:
            raise ConfigError("model.freeze_embeddings=true needs model.pretrained_embeddings=PATH (a frozen random "
                              "table would never learn)")
        return self


@dataclass
class TaskConfig:
    """What the model predicts: a class per text, a tag per token, or a number per text."""

    name: str = "classification"  # one of TASKS

    def validate(self) -> "TaskConfig":
        _one_of("task", self.name, TASKS)
        return self


@dataclass
class BackendConfig:
    name: str = "torch"  # one of BACKENDS

    def validate(self) -> "BackendConfig":
        _one_of("backend", self.name, BACKENDS)
        return self


@dataclass
class DataConfig:
    source: str = "synthetic"  # one of SOURCES
    batch_size: int = 64
    # rows per validation/test batch; None: 4 x batch_size (no gradients are kept, so bigger
    # batches fit, and evaluating 100k rows takes a fraction of the time)
    eval_batch_size: Optional[int] = None
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
    test_file: Optional[str] = None  # evaluated with the best checkpoint after training
    name: Optional[str] = None
    subset: Optional[str] = None
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"  # class names/ids; task=regression: the float target
    tokens_column: str = "tokens"  # task=tagging: a list of words per row (json/jsonl/parquet)
    tags_column: str = "tags"  # task=tagging: a list of tags per row, one per word
    tokenizer: str = "whitespace"  # one of TOKENIZERS
    tokenizer_file: Optional[str] = None  # an existing tokenizer.json, used as it is (offline)
    subword_vocab_size: int = 8000  # bpe / wordpiece: the size they are trained to
    lowercase: bool = True
    min_freq: int = 1
    max_vocab_size: Optional[int] = None
    # Longer texts keep their first N tokens (how many were cut is logged): one huge row can't
    # take a batch's memory. null keeps everything.
    max_tokens_per_example: Optional[int] = 1024
    # Batches by padded tokens (rows x longest row <= N) instead of data.batch_size rows.
    max_tokens: Optional[int] = None
    cache_dir: Optional[str] = None  # tokenized files; default $ENCODERS_CACHE or ~/.cache/padded-encoders
    # the tokens cache's size cap: least recently used entries go first once a new one passes it; null: no cap
    cache_max_gb: Optional[float] = 20.0

    @property
    def eval_rows(self) -> int:
        return self.eval_batch_size or 4 * self.batch_size

    def validate(self) -> "DataConfig":
        """Checks that need no file; the sources check the files themselves when they read them."""
        _one_of("data.source", self.source, SOURCES, DataConfigError)
        _at_least("data.batch_size", self.batch_size, 1, DataConfigError)
        if self.source == "synthetic" and (self.num_train < 1 or self.num_val < 1):
            raise DataConfigError(f"data.num_train and data.num_val must be >= 1, got {self.num_train}, {self.num_val}")
        if self.source == "files" and not self.train_file:
            raise DataConfigError("data.source=files needs data.train_file=PATH (csv, tsv, json/jsonl or parquet)")
        if self.source == "hub" and not self.name:
            raise DataConfigError("data.source=hub needs data.name=DATASET (a Hugging Face hub dataset id)")
        if self.source != "synthetic":
            _one_of("data.tokenizer", self.tokenizer, TOKENIZERS, DataConfigError)
        if self.cache_max_gb is not None and not self.cache_max_gb > 0:
            raise DataConfigError(f"data.cache_max_gb must be > 0 (null: no cap), got {self.cache_max_gb}")
        for key in ("max_tokens_per_example", "max_tokens", "subword_vocab_size", "eval_batch_size"):
            value = getattr(self, key)
            if value is not None:
                _at_least(f"data.{key}", value, 1, DataConfigError)
        return self


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
    # torch: denormal floats count as zero on the CPU (TensorFlow's kernels always do), which keeps
    # RNN gradients over long rows fast; false keeps IEEE denormals. Not in ddp_spawn workers.
    flush_denormal: bool = True
    # torch on CUDA: float32 matmuls and cuDNN RNNs in full float32 ("ieee") or TensorFloat-32
    # ("tf32": faster on Ampere and newer, about 1e-3 relative error per product; README "GPU")
    fp32_precision: str = "ieee"
    # CPU threads of this process; null: its fair share, cores / our processes running on the machine
    num_threads: Optional[int] = None
    accumulate_grad_batches: int = 1  # optimizer step every N batches (Keras: gradient_accumulation_steps)

    def validate(self) -> "TrainerConfig":
        _at_least("trainer.max_epochs", self.max_epochs, 1)
        _one_of("trainer.fp32_precision", self.fp32_precision, FP32_PRECISIONS)
        if self.num_threads is not None:
            _at_least("trainer.num_threads", self.num_threads, 1)
        if not _is_devices(self.devices):
            raise ConfigError(f"trainer.devices must be a number of devices >= 1, -1 or 'auto' (every device), or a "
                              f"list of device indices such as [0,1], got {self.devices!r}")
        _at_least("trainer.accumulate_grad_batches", self.accumulate_grad_batches, 1)
        if self.progress_bar_refresh_rate < 1:
            raise ConfigError(f"trainer.progress_bar_refresh_rate must be >= 1, got {self.progress_bar_refresh_rate} "
                              "(trainer.enable_progress_bar=false turns the bar off)")
        return self


def _is_devices(devices: Any) -> bool:
    """What both backends take as ``trainer.devices`` (Lightning also takes "0,1"; a bool is no count)."""
    if isinstance(devices, bool):
        return False
    if isinstance(devices, int):
        return devices >= 1 or devices == -1
    if isinstance(devices, str):
        text = devices.strip()
        return text == "auto" or text == "-1" or bool(text) and all(p.strip().isdigit() for p in text.split(","))
    try:
        return len(devices) > 0 and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)
    except TypeError:
        return False


@dataclass
class GPUConfig:
    memory_limit_mb: Optional[int] = None
    allow_growth: bool = False
    alloc_conf: Optional[str] = None  # passed to PYTORCH_ALLOC_CONF

    def validate(self) -> "GPUConfig":
        if self.memory_limit_mb is not None and self.memory_limit_mb <= 0:
            raise ConfigError(f"gpu.memory_limit_mb must be a positive number of MiB, got {self.memory_limit_mb}")
        if self.memory_limit_mb is not None and self.allow_growth:
            raise ConfigError("gpu.memory_limit_mb and gpu.allow_growth=true can't be combined (TensorFlow "
                              "can't grow and cap the same GPU): set one of them")
        return self


# -- the training recipe: optimizer, lr schedule, callbacks, loggers (encoders/run/recipe.py uses them) --
@dataclass
class OptimizerConfig:
    name: str = "adamw"  # one of OPTIMIZERS
    lr: float = 3e-3
    # decoupled (AdamW's) on both backends; torch's Adam/SGD would add it to the gradient instead,
    # Keras's would not, so only adamw takes it
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw / adam
    momentum: float = 0.0  # sgd
    nesterov: bool = False  # sgd, needs momentum > 0

    def validate(self) -> "OptimizerConfig":
        _one_of("optimizer", self.name, OPTIMIZERS)
        if not self.lr > 0:
            raise ConfigError(f"optimizer.lr must be > 0, got {self.lr}")
        _at_least("optimizer.weight_decay", self.weight_decay, 0.0)
        if self.weight_decay and self.name != "adamw":
            raise ConfigError(f"optimizer.weight_decay={self.weight_decay} needs optimizer=adamw: torch's {self.name} adds "
                              f"it to the gradient and Keras's decays the weights, so they would train differently")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"optimizer.momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and not (self.name == "sgd" and self.momentum > 0):
            raise ConfigError("optimizer.nesterov=true needs optimizer=sgd and optimizer.momentum > 0")
        return self


@dataclass
class SchedulerConfig:
    name: str = "none"  # one of SCHEDULERS; cosine/linear: per optimizer step, plateau: per epoch
    warmup_steps: int = 0  # cosine / linear: optimizer steps of linear warm-up from 0
    factor: float = 0.1  # plateau: lr *= factor when the monitored metric stalls
    patience: int = 2  # plateau: epochs without improvement before the lr is cut
    min_delta: float = 0.0  # plateau: the smallest change that counts as an improvement
    min_lr: float = 0.0  # plateau: the floor

    def validate(self) -> "SchedulerConfig":
        _one_of("scheduler", self.name, SCHEDULERS)
        _at_least("scheduler.warmup_steps", self.warmup_steps, 0)
        if self.warmup_steps and self.name not in ("cosine", "linear"):
            raise ConfigError(f"scheduler.warmup_steps is for scheduler=cosine or linear, not scheduler={self.name}")
        if not 0.0 < self.factor < 1.0:
            raise ConfigError(f"scheduler.factor must be in (0, 1), got {self.factor}")
        _at_least("scheduler.patience", self.patience, 1)
        _at_least("scheduler.min_delta", self.min_delta, 0.0)
        _at_least("scheduler.min_lr", self.min_lr, 0.0)
        return self


@dataclass
class EarlyStoppingConfig:
    patience: Optional[int] = None  # epochs without improvement of the task's monitored metric; null: off
    min_delta: float = 0.0  # the smallest change that counts as an improvement

    def validate(self) -> "EarlyStoppingConfig":
        if self.patience is not None:
            _at_least("callbacks.early_stopping.patience", self.patience, 1)
        _at_least("callbacks.early_stopping.min_delta", self.min_delta, 0.0)
        return self


@dataclass
class CallbacksConfig:
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def validate(self) -> "CallbacksConfig":
        self.early_stopping.validate()
        return self


@dataclass
class CSVLoggerConfig:
    """RUN_DIR/csv/metrics.csv (the tf backend always keeps it: its history and resume read it)."""


@dataclass
class TensorBoardLoggerConfig:
    """RUN_DIR/tb/ event files."""


@dataclass
class MLflowLoggerConfig:
    tracking_uri: Optional[str] = None  # null: the file store ./mlruns (beside outputs/)
    experiment_name: str = "padded-encoders"
    run_name: Optional[str] = None  # null: MLflow's generated name
    log_artifacts: bool = True  # the run dir's files (metrics.json, checkpoints, config) after training


@dataclass
class LoggerConfig:
    """The loggers of a run; one that is null is off (``logger=none`` turns all of them off)."""

    csv: Optional[CSVLoggerConfig] = field(default_factory=CSVLoggerConfig)
    tensorboard: Optional[TensorBoardLoggerConfig] = field(default_factory=TensorBoardLoggerConfig)
    mlflow: Optional[MLflowLoggerConfig] = None


@dataclass
class TrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    gpu: GPUConfig = field(default_factory=GPUConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 42
    ckpt_path: Optional[str] = None
    tags: List[str] = field(default_factory=list)

    def validate(self) -> "TrainConfig":
        for part in (self.encoder, self.task, self.model, self.backend, self.data, self.trainer, self.gpu,
                     self.optimizer, self.scheduler, self.callbacks):
            part.validate()
        if not 0 <= self.seed <= SEED_MAX:  # numpy's range, which every seeded generator here must take
            raise ConfigError(f"seed must be in 0..{SEED_MAX} (numpy's seed range), got {self.seed}")
        _check_task_combination(self)
        return self


def _check_task_combination(cfg: "TrainConfig") -> None:
    """Task, data and vectors settings that can't work together, named before any data is read."""
    task, d, m = cfg.task.name, cfg.data, cfg.model
    facts = TASK_FACTS[task]
    if not facts["synthetic_data"] and d.source == "synthetic":
        raise ConfigError(f"task={task} needs data=files (or data=hub): the synthetic data is a classification set")
    if facts["reads_words"] and (d.tokenizer != "whitespace" or d.tokenizer_file):
        raise ConfigError(f"task={task} reads words from data.tokens_column, one tag per word: data.tokenizer="
                          f"{d.tokenizer}{' with data.tokenizer_file' if d.tokenizer_file else ''} is not supported "
                          f"(leave data.tokenizer=whitespace)")
    if m.pretrained_embeddings and (d.tokenizer not in WORD_TOKENIZERS or d.tokenizer_file):
        raise ConfigError(f"model.pretrained_embeddings is not supported with data.tokenizer={d.tokenizer}"
                          f"{' / data.tokenizer_file' if d.tokenizer_file else ''}: word vectors align to a word-level "
                          f"vocabulary (data.tokenizer=whitespace or char)")
    if m.pretrained_embeddings and d.source == "synthetic":
        raise ConfigError("model.pretrained_embeddings needs data=files or data=hub: the synthetic data has no words")


@dataclass(frozen=True)
class ClassifierSpec:
    """Everything that defines a classifier's shape: embedding -> encoder -> pooling -> head.

    Both backends build from it (``encoders.torch.SequenceClassifier.from_spec``,
    ``encoders.keras.build_classifier``), the runners make it from the config and the data, and
    convert reads it back from a checkpoint, so a field added here reaches every one of them.
    All fields are primitives: a spec is stored in checkpoints and loads with ``weights_only``.
    """

    vocab_size: int
    num_classes: int
    embedding_dim: int = 32
    hidden_size: int = 64
    cell: str = "lstm"
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    pooling: str = "last"
    padding_idx: int = PAD_ID
    task: str = "classification"  # one of TASKS: the head's kind (tagging: per token; regression: 1 output)

    def __post_init__(self):
        EncoderConfig(self.cell, self.hidden_size, self.num_layers, self.bidirectional, self.dropout).validate()
        _one_of("pooling", self.pooling, POOLINGS, ValueError)
        if not 0 <= self.padding_idx < self.vocab_size:
            raise ValueError(f"padding_idx {self.padding_idx} is outside [0, {self.vocab_size})")
        _at_least("num_classes", self.num_classes, 1, ValueError)
        _one_of("task", self.task, TASKS, ValueError)
        outputs = TASK_FACTS[self.task]["outputs"]
        if outputs is not None and self.num_classes != outputs:
            raise ValueError(f"a {self.task} head has {outputs} output, got num_classes={self.num_classes}")

    @classmethod
    def from_config(cls, cfg: Any, vocab_size: int, num_classes: int,
                    embedding_dim: Optional[int] = None) -> "ClassifierSpec":
        """The spec of a ``TrainConfig`` (its ``encoder``, ``model`` and ``task``) for data of this size;
        ``embedding_dim`` (a vectors file's) wins over the config's."""
        e, m = cfg.encoder, cfg.model
        task = getattr(getattr(cfg, "task", None), "name", "classification")
        dim = embedding_dim or m.embedding_dim or DEFAULT_EMBEDDING_DIM
        outputs = TASK_FACTS.get(task, {}).get("outputs")
        return cls(vocab_size=int(vocab_size), num_classes=int(num_classes if outputs is None else outputs),
                   embedding_dim=int(dim), hidden_size=e.hidden_size, cell=e.cell, num_layers=e.num_layers,
                   bidirectional=e.bidirectional, dropout=e.dropout, pooling=m.pooling, task=task)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClassifierSpec":
        """Read back from hyperparameters that may hold more keys (``lr``...): those are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def direction(task: str) -> str:
    """``maximize`` or ``minimize``, for the Optuna sweeper (``${encoders_direction:${task.name}}``).

    Args:
        task: a task name (one of ``TASKS``).

    Returns:
        Which way the task's monitored metric (``MONITOR``) is better, in Optuna's words.
    """
    return "maximize" if MONITOR[task][1] == "max" else "minimize"


def register_resolvers() -> None:
    """Register ``${encoders_direction:TASK}`` (``direction``) with OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("encoders_direction", direction, replace=True)


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore and the resolvers the configs read (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    register_resolvers()  # ${encoders_direction:TASK}, which configs/hparams_search reads
