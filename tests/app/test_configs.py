"""Every config option composes against the structured schema; bad keys fail at start by name."""
import os

import pytest

from tests.helpers import ROOT  # noqa: E402
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from encoders.app import ConfigError, check_config, to_schema
from encoders.config import TrainConfig, register_configs

CONFIG_DIR = os.path.join(ROOT, "configs")


@pytest.fixture
def compose_train():
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield lambda *overrides: compose("train", overrides=list(overrides))
    GlobalHydra.instance().clear()


ENCODERS = {"lstm": ("lstm", False), "bilstm": ("lstm", True), "gru": ("gru", False), "bigru": ("gru", True)}


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("backend", ["torch", "tf", "jax"])
def test_encoder_and_backend_groups_compose(compose_train, name, backend):
    cfg = compose_train(f"encoder={name}", f"backend={backend}")
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, TrainConfig)
    assert (obj.encoder.cell, obj.encoder.bidirectional) == ENCODERS[name]
    assert obj.backend.name == backend
    check_config(obj)


def test_defaults_are_the_documented_main_job(compose_train):
    cfg = OmegaConf.to_object(compose_train())
    assert (cfg.encoder.cell, cfg.encoder.bidirectional, cfg.backend.name, cfg.data.source) == ("lstm", True, "torch", "synthetic")
    assert cfg.data.num_train >= 20000 and cfg.data.num_val >= 2000


def test_every_user_override_of_the_design_composes(compose_train):
    cfg = compose_train("data=files", "data.train_file=a.csv", "data.validation_file=b.jsonl",
                        "data.tokenizer=char", "data.batch_size=8", "trainer.max_epochs=2", "trainer.devices=2",
                        "trainer.accelerator=cpu", "gpu.memory_limit_mb=1024", "seed=7")
    obj = OmegaConf.to_object(cfg)
    assert obj.data.source == "files" and obj.data.train_file == "a.csv" and obj.data.tokenizer == "char"
    assert (obj.data.batch_size, obj.trainer.max_epochs, obj.trainer.devices, obj.seed) == (8, 2, 2, 7)
    assert obj.gpu.memory_limit_mb == 1024


def test_hub_needs_a_name(compose_train):
    cfg = compose_train("data=hub")
    with pytest.raises(ConfigError, match="data.name"):
        check_config(to_schema(cfg))
    check_config(to_schema(compose_train("data=hub", "data.name=imdb")))


def test_files_needs_a_train_file(compose_train):
    with pytest.raises(ConfigError, match="data.train_file"):
        check_config(to_schema(compose_train("data=files")))


@pytest.mark.parametrize("override,key", [("encoder.hiden_size=3", "hiden_size"), ("trainer.max_epoch=3", "max_epoch"),
                                          ("data.batchsize=3", "batchsize")])
def test_unknown_keys_fail_naming_the_key(compose_train, override, key):
    with pytest.raises(Exception, match=key):
        compose_train(override)


@pytest.mark.parametrize("override,key", [("encoder.hidden_size=big", "hidden_size"), ("seed=abc", "seed"),
                                          ("encoder.bidirectional=maybe", "bidirectional")])
def test_wrong_types_fail_naming_the_key(compose_train, override, key):
    with pytest.raises(Exception, match=key) as info:
        compose_train(override)
    assert isinstance(info.value, ValidationError) or isinstance(info.value.__cause__, ValidationError)


@pytest.mark.parametrize("overrides,match", [
    (["encoder.cell=rnn"], "encoder.cell"),
    (["encoder.num_layers=0"], "num_layers"),
    (["encoder.dropout=1.5"], "dropout"),
    (["model.pooling=median"], "model.pooling"),
    (["backend.name=mxnet"], "backend"),
    (["gpu.memory_limit_mb=512", "gpu.allow_growth=true"], "memory_limit_mb.*allow_growth"),
    (["data.batch_size=0"], "batch_size"),
    (["trainer.max_epochs=0"], "trainer.max_epochs"),
    (["trainer.progress_bar_refresh_rate=0"], "progress_bar_refresh_rate.*enable_progress_bar=false"),
    (["ckpt_path=/nonexistent/x.ckpt"], "ckpt_path"),
])
def test_impossible_values_are_refused_with_the_key(compose_train, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(OmegaConf.to_object(compose_train(*overrides)))


def test_torch_trainer_redraws_the_bar_as_configured_and_a_callers_bar_wins(compose_train, tmp_path):
    from pytorch_lightning.callbacks import TQDMProgressBar

    from encoders.torch.runner import build_trainer

    cfg = OmegaConf.to_object(compose_train("trainer.progress_bar_refresh_rate=7", "trainer.accelerator=cpu"))
    assert build_trainer(cfg, str(tmp_path)).progress_bar_callback.refresh_rate == 7
    mine = TQDMProgressBar(refresh_rate=3)
    assert build_trainer(cfg, str(tmp_path), callbacks=[mine]).progress_bar_callback is mine
    cfg.trainer.enable_progress_bar = False
    assert build_trainer(cfg, str(tmp_path)).progress_bar_callback is None
