"""Reading a run dir without any framework: its config (a safe YAML load), backend and checkpoints."""
import os
import re

import pytest

from encoders.errors import RunDirError
from encoders.run import files
from encoders.run.files import load_run_config
from tests.helpers import ROOT, marker  # noqa: F401  (marker: a fixture)


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


# -- the run dir's names and paths: spelled in run/files only ----------------------------------------

@pytest.mark.parametrize("backend,ext", [("torch", ".ckpt"), ("tf", ".keras"), ("jax", ".keras"), ("keras", ".keras")])
@pytest.mark.parametrize("which", ["best", "last"])
def test_checkpoint_paths_and_the_run_dir_they_lie_in(tmp_path, backend, ext, which):
    run = str(tmp_path / "run")
    path = files.checkpoint_file(run, which, backend)
    assert path == os.path.join(run, "checkpoints", which + ext) == os.path.join(files.checkpoints_dir(run),
                                                                                 files.checkpoint_name(which, backend))
    assert files.run_dir_of(path) == os.path.abspath(run)
    assert files.vocab_file(run) == os.path.join(run, "vocab.json")
    assert files.config_file(run) == os.path.join(run, ".hydra", "config.yaml")
    assert files.backup_dir(run) == os.path.join(run, "backup")


def test_read_labels_gives_the_vocab_names_or_ids_as_names(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert files.read_labels(str(run), 3) == ["0", "1", "2"]  # no vocab.json yet
    (run / "vocab.json").write_text('{"tokens": ["<pad>", "<unk>"], "labels": ["B-X", "I-X", "O"]}')
    assert files.read_labels(str(run), 3) == ["B-X", "I-X", "O"]
    assert files.read_labels(str(run), 4) == ["0", "1", "2", "3"]  # another model's count: its ids


def test_backend_from_the_checkpoints_alone_and_a_missing_one_names_the_others(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.keras").write_bytes(b"x")
    assert files.run_backend(str(run)) == "tf"
    with pytest.raises(RunDirError, match=r"has no checkpoints/best\.keras; it has last\.keras: pass --checkpoint last"):
        files.checkpoint_path(str(run), "best")
    assert files.checkpoint_path(str(run), "last") == files.checkpoint_file(str(run), "last", "tf")
    (run / "checkpoints" / "best.ckpt").write_bytes(b"x")
    with pytest.raises(RunDirError, match="checkpoints of both backends"):
        files.run_backend(str(run))
    (run / "metrics.json").write_text('{"backend": "torch"}')  # metrics.json decides
    assert files.run_backend(str(run)) == "torch"


@pytest.mark.parametrize("name,kind", [("vocab.json", "vocabulary"), ("metrics.json", "run metrics"),
                                       ("tokenizer.json", "tokenizer"), ("evaluation.json", "evaluation report"),
                                       ("best.ckpt", "checkpoint"), ("last.KERAS", "checkpoint"),
                                       ("curves.png", "plot"), ("x.json", "JSON report"), ("m.onnx", "ONNX export"),
                                       ("notes", "file")])
def test_describe_says_what_a_file_holds(name, kind):
    assert files.describe(os.path.join("run", name)) == kind


def test_the_run_dirs_names_are_spelled_in_run_files_only():
    """No module outside encoders/run spells a run-dir file or folder name as a string of its own:
    they take it from run/files, so a renamed file is renamed everywhere."""
    import ast

    names = {files.VOCAB_FILE, files.TOKENIZER_FILE, files.METRICS_FILE, files.CURVES_FILE, files.EVALUATION_FILE,
             files.CHECKPOINTS_DIR, files.BACKUP_DIR}  # not "export": a word Keras' module paths use too
    spelled = []
    for top, dirs, names_here in os.walk(os.path.join(ROOT, "encoders")):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "run")]
        for name in names_here:
            if name.endswith(".py"):
                path = os.path.join(top, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read())
                spelled += [f"{os.path.relpath(path, ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
                            if isinstance(n, ast.Constant) and n.value in names]
    assert len(names) == 7 and not spelled, spelled
