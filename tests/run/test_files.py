"""Reading a run dir without any framework: its config (a safe YAML load), backend and checkpoints."""
import os
import re

import pytest

from encoders.run.files import load_run_config
from tests.helpers import marker  # noqa: F401  (a fixture)


def _run_dir(tmp_path, text):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(text)
    return str(tmp_path / "run")


def test_run_config_is_read_and_a_target_in_it_stays_data(tmp_path, marker):
    run = _run_dir(tmp_path, "seed: 3\n"
                             f"evil:\n  _target_: os.system\n  command: touch {marker}\n")
    cfg = load_run_config(run)
    assert cfg.seed == 3
    assert cfg.evil._target_ == "os.system"  # read as a string; nothing instantiates it (marker checks)


def test_run_config_yaml_python_tags_do_not_execute(tmp_path, marker):
    run = _run_dir(tmp_path, f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match=re.escape(os.path.join(run, ".hydra", "config.yaml"))):
        load_run_config(run)


@pytest.mark.parametrize("text,match", [("a: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "expected a mapping"),
                                        ("a: 1\n\x00\x01", "corrupt")])
def test_run_config_corrupt_names_the_path(tmp_path, text, match):
    run = _run_dir(tmp_path, text)
    with pytest.raises(ValueError, match=match) as err:
        load_run_config(run)
    assert os.path.join(run, ".hydra", "config.yaml") in str(err.value)


def test_run_config_missing_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.join(str(tmp_path), ".hydra", "config.yaml"))):
        load_run_config(str(tmp_path))
