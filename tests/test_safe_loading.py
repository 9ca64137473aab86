"""Nothing executes from loaded files (issue 6, item 5): each attack is planted and must be refused.

Every payload here would create a marker file if it ran; each test asserts the refusal *and*
that the marker does not exist.
"""
import ast
import os
import pickle
import re
import subprocess
import sys
import zipfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from conftest import ROOT  # noqa: E402
from encoders.safe import (ALLOWED_TARGETS, UnsafeConfigError, UnsafeLoadError, check_targets,  # noqa: E402
                           load_keras_model, load_run_config, load_torch_checkpoint, safe_instantiate)


class _Payload:
    """Unpickling this runs ``touch MARKER`` via os.system (the classic pickle attack)."""

    def __init__(self, marker):
        self.cmd = f"touch {marker}"

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload ran"


# -- torch checkpoints ----------------------------------------------------------------------------
def test_payload_actually_works_when_loaded_unsafely(tmp_path, marker):
    """Sanity check of the attack itself, so the refusals below mean something."""
    other = tmp_path / "proof"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(other)))
    pickle.loads(path.read_bytes())
    assert other.exists()


@pytest.mark.parametrize("fmt", ["torch.save", "raw pickle"])
def test_checkpoint_carrying_code_is_refused_and_nothing_runs(tmp_path, marker, fmt):
    path = tmp_path / "evil.ckpt"
    obj = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": _Payload(marker)}}
    if fmt == "torch.save":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(UnsafeLoadError, match=r"refusing to execute code") as err:
        load_torch_checkpoint(str(path))
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not marker.exists()
    if fmt == "torch.save":
        assert "system" in str(err.value), "the message names what the file asked for"


def test_checkpoint_with_a_pickled_class_is_refused(tmp_path):
    path = tmp_path / "module.ckpt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module, not a state dict
    with pytest.raises(UnsafeLoadError, match=re.escape(str(path))):
        load_torch_checkpoint(str(path))


def _lightning_checkpoint(path):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from encoders.torch import SequenceClassifier

    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=12, num_classes=2, embedding_dim=4, hidden_size=5)
    batch = {"tokens": torch.tensor([[3, 4, 0], [5, 0, 0]]), "lengths": torch.tensor([2, 1]),
             "labels": torch.tensor([0, 1])}
    loader = DataLoader([batch], batch_size=None)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(model, loader)
    trainer.save_checkpoint(str(path))
    return model


def test_real_lightning_checkpoint_loads_and_truncated_one_is_named(tmp_path):
    path = tmp_path / "last.ckpt"
    model = _lightning_checkpoint(path)
    ckpt = load_torch_checkpoint(str(path))
    from encoders.torch import SequenceClassifier

    again = SequenceClassifier(**ckpt["hyper_parameters"])  # primitive hparams: weights_only works
    again.load_state_dict(ckpt["state_dict"])
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k

    data = path.read_bytes()
    for cut in (len(data) // 2, 64, 1):
        bad = tmp_path / f"cut{cut}.ckpt"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"truncated or corrupt") as err:
            load_torch_checkpoint(str(bad))
        assert str(bad) in str(err.value)
        assert not isinstance(err.value, UnsafeLoadError)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(str(empty)) + ".*truncated or corrupt"):
        load_torch_checkpoint(str(empty))


def test_missing_checkpoint_names_the_path(tmp_path):
    path = tmp_path / "nope" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_torch_checkpoint(str(path))


# -- configs: the _target_ allowlist --------------------------------------------------------------
BAD_TARGETS = ["os.system", "subprocess.Popen", "subprocess.run", "builtins.eval", "builtins.exec",
               "builtins.__import__", "posix.system", "importlib.import_module", "pickle.loads",
               "torch.load", "hydra.utils.instantiate", "hydra.utils.get_method", "functools.partial",
               # prefix games: allowed-looking modules, attributes that are not allowed classes
               "torch.optim.__builtins__", "torch.optim.os", "encoders.torch.os", "encoders.torch.rnn.torch",
               "torch.optim.AdamW.__init__.__globals__", "torch.optim.Optimizer", "torch.optim.AdamWx",
               "torch.optim.lr_scheduler.LambdaLR", "keras.callbacks.LambdaCallback", "keras.optimizers.deserialize",
               "keras.optimizers.get", "pytorch_lightning.callbacks.LambdaCallback", "encoders.safe.safe_instantiate",
               " os.system", "torch.optim.AdamW ", "encoders.torch.RNNEncoder.__class__"]


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_bad_targets_are_refused_naming_target_and_key(target, marker):
    cfg = {"_target_": target, "_args_": [f"touch {marker}"]}
    with pytest.raises(UnsafeConfigError, match=re.escape(repr(target))) as err:
        safe_instantiate(cfg)
    assert "_target_" in str(err.value) and "allowlist" in str(err.value)


def test_refused_target_nested_in_callback_list_names_the_key_path(marker):
    cfg = OmegaConf.create({"callbacks": [
        {"_target_": "pytorch_lightning.callbacks.EarlyStopping", "monitor": "val/loss"},
        {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint",
         "dirpath": {"_target_": "os.system", "command": f"touch {marker}"}},
    ]})
    with pytest.raises(UnsafeConfigError, match=r"callbacks\[1\]\.dirpath\._target_.*'os\.system'"):
        safe_instantiate(cfg.callbacks[1])
    with pytest.raises(UnsafeConfigError, match=r"callbacks\[1\]\.dirpath\._target_"):
        check_targets(cfg)


def _with_marker(node, marker):
    if isinstance(node, dict):
        return {k: _with_marker(v, marker) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_marker(v, marker) for v in node]
    return str(marker) if node == "M" else (f"touch {marker}" if node == "touch M" else node)


@pytest.mark.parametrize("cfg,where", [
    # a target smuggled in as a positional argument of an allowed one
    ({"_target_": "torch.optim.lr_scheduler.StepLR", "_args_": [{"_target_": "os.system", "_args_": ["touch M"]}],
      "step_size": 1}, r"_args_\[0\]\._target_"),
    ({"_target_": "torch.optim.SGD", "_args_": [[{"_target_": "subprocess.Popen", "args": ["touch", "M"]}]]},
     r"_args_\[0\]\[0\]\._target_"),
    # _partial_ does not make a bad target acceptable
    ({"_target_": "builtins.eval", "_partial_": True}, r"^_target_"),
    ({"opt": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": {"_target_": "builtins.eval", "_args_": ["1"]}}},
     r"lr\._target_"),
    # _recursive_: false does not hide a nested one
    ({"_target_": "torch.optim.Adam", "_recursive_": False, "betas": {"_target_": "os.system"}}, r"betas\._target_"),
])
def test_smuggled_targets_are_refused(cfg, where, marker):
    cfg = _with_marker(cfg, marker)
    if "opt" in cfg:
        cfg = cfg["opt"]
    with pytest.raises(UnsafeConfigError, match=where):
        safe_instantiate(cfg, params=[torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(UnsafeConfigError, match=where):
        safe_instantiate(OmegaConf.create(cfg), params=[torch.nn.Parameter(torch.zeros(1))])


def test_interpolated_target_is_checked_after_resolution(marker):
    cfg = OmegaConf.create({"evil": "os.system", "node": {"_target_": "${evil}", "_args_": [f"touch {marker}"]}})
    with pytest.raises(UnsafeConfigError, match=r"node\._target_.*'os\.system'"):
        check_targets(cfg)
    with pytest.raises(UnsafeConfigError, match=r"'os\.system'"):
        safe_instantiate(cfg.node)


def test_targets_in_keyword_arguments_are_checked(marker):
    with pytest.raises(UnsafeConfigError, match=r"dirpath\._target_.*'os\.system'"):
        safe_instantiate({"_target_": "pytorch_lightning.callbacks.ModelCheckpoint"},
                         dirpath={"_target_": "os.system", "command": f"touch {marker}"})
    with pytest.raises(UnsafeConfigError, match="keyword"):
        safe_instantiate({"_target_": "torch.optim.SGD"}, _target_="os.system")


def test_non_string_target_is_refused():
    with pytest.raises(UnsafeConfigError, match="must be a dotted name"):
        safe_instantiate({"_target_": os.system, "command": "true"})
    with pytest.raises(UnsafeConfigError, match="must be a dotted name"):
        safe_instantiate({"_target_": 3})


def test_allowed_optimizer_scheduler_and_partial_instantiate():
    model = torch.nn.Linear(3, 2)
    cfg = OmegaConf.create({"lr": 0.01, "optimizer": {"_target_": "torch.optim.AdamW", "lr": "${lr}",
                                                        "weight_decay": 0.1}})
    opt = safe_instantiate(cfg.optimizer, params=model.parameters())
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["weight_decay"] == 0.1
    sched = safe_instantiate({"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}, optimizer=opt)
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and sched.step_size == 2
    make = safe_instantiate({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5})
    sgd = make(model.parameters())
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == 0.5


def test_allowed_project_classes_and_callbacks_instantiate():
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from encoders.torch import RNNEncoder, SequenceClassifier

    enc = safe_instantiate({"_target_": "encoders.torch.RNNEncoder", "input_size": 3, "hidden_size": 4,
                            "cell": "gru", "bidirectional": True})
    assert isinstance(enc, RNNEncoder) and enc.cell == "gru" and enc.output_size == 8
    clf = safe_instantiate({"_target_": "encoders.torch.SequenceClassifier", "vocab_size": 9, "num_classes": 3,
                            "embedding_dim": 4, "hidden_size": 5})
    assert isinstance(clf, SequenceClassifier)
    cbs = [safe_instantiate(c) for c in OmegaConf.create([
        {"_target_": "pytorch_lightning.callbacks.EarlyStopping", "monitor": "val/loss", "patience": 2},
        {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "monitor": "val/acc", "mode": "max"}])]
    assert isinstance(cbs[0], EarlyStopping) and cbs[0].patience == 2 and isinstance(cbs[1], ModelCheckpoint)


def test_allowed_keras_targets_instantiate():
    import keras

    import encoders.keras as ek

    opt = safe_instantiate({"_target_": "keras.optimizers.Adam", "learning_rate": 0.002})
    assert isinstance(opt, keras.optimizers.Adam) and abs(float(opt.learning_rate) - 0.002) < 1e-9
    enc = safe_instantiate({"_target_": "encoders.keras.RNNEncoder", "hidden_size": 4, "cell": "lstm"})
    assert isinstance(enc, ek.RNNEncoder)
    cb = safe_instantiate({"_target_": "keras.callbacks.EarlyStopping", "patience": 3})
    assert isinstance(cb, keras.callbacks.EarlyStopping) and cb.patience == 3


def test_allowlist_names_only_importable_classes():
    """Every exact entry resolves to a class (a typo in the list would be a silent gap)."""
    import importlib
    import inspect

    for target in sorted(ALLOWED_TARGETS):
        module, _, name = target.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            # a framework class that a newer/older version lacks is harmless (it never matches);
            # one of our own that does not resolve is a typo
            assert not target.startswith("encoders."), f"{target} is not importable"
            continue
        assert inspect.isclass(obj), target
        assert not name.startswith("_") and "Lambda" not in name, target


# -- run configs ------------------------------------------------------------------------------------
def _run_dir(tmp_path, text):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(text)
    return str(tmp_path / "run")


def test_run_config_is_read_and_its_optimizer_goes_through_the_allowlist(tmp_path, marker):
    run = _run_dir(tmp_path, "seed: 3\noptimizer:\n  _target_: torch.optim.SGD\n  lr: 0.1\n"
                             f"evil:\n  _target_: os.system\n  command: touch {marker}\n")
    cfg = load_run_config(run)
    assert cfg.seed == 3
    opt = safe_instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.SGD)
    with pytest.raises(UnsafeConfigError, match=r"'os\.system'"):
        safe_instantiate(cfg.evil)
    with pytest.raises(UnsafeConfigError, match=r"evil\._target_"):
        check_targets(cfg)


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


# -- .keras models ----------------------------------------------------------------------------------
def _lambda_model(path):
    import keras

    inp = keras.Input((3,))
    out = keras.layers.Lambda(lambda x: x * 2.0)(inp)
    keras.Model(inp, out).save(str(path))


def test_keras_lambda_model_is_refused(tmp_path):
    path = tmp_path / "lambda.keras"
    _lambda_model(path)
    with pytest.raises(UnsafeLoadError, match=re.escape(str(path)) + r".*Lambda"):
        load_keras_model(str(path))


def test_keras_own_safe_mode_refusal_is_wrapped(tmp_path, monkeypatch):
    """With our config scan switched off, Keras' safe_mode still refuses, and the error names the file."""
    import encoders.safe as safe

    path = tmp_path / "lambda.keras"
    _lambda_model(path)
    monkeypatch.setattr(safe, "_scan_keras_config", lambda *a, **k: None)
    with pytest.raises(UnsafeLoadError, match=re.escape(str(path)) + r".*safe_mode"):
        load_keras_model(str(path))


def _rewrite_config(src, dst, edit):
    import json

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(item, data)


def test_keras_config_naming_a_gadget_outside_keras_layers_is_refused(tmp_path, marker):
    from encoders.keras.model import build_classifier

    good = tmp_path / "good.keras"
    build_classifier(12, 2, 4, 5).save(str(good))

    def evil(cfg):  # swap the head for a "layer" whose class is os.system / a keras utility
        for layer in cfg["config"]["layers"]:
            if layer["config"].get("name") == "head":
                layer["module"], layer["class_name"] = "posix", "system"
        return cfg

    def gadget(cfg):
        for layer in cfg["config"]["layers"]:
            if layer["config"].get("name") == "head":
                layer["module"], layer["class_name"] = "keras.utils", "get_file"
        return cfg

    for name, edit, match in (("evil", evil, "posix.system"), ("gadget", gadget, "keras.utils.get_file")):
        bad = tmp_path / f"{name}.keras"
        _rewrite_config(good, bad, edit)
        with pytest.raises(UnsafeLoadError, match=re.escape(str(bad)) + ".*" + re.escape(match)):
            load_keras_model(str(bad))


def test_our_keras_classifier_round_trips_through_the_safe_loader(tmp_path):
    import keras
    import numpy as np

    from encoders.keras.model import build_classifier, compile_classifier

    keras.utils.set_random_seed(0)
    model = compile_classifier(build_classifier(12, 3, 4, 5, cell="gru", pooling="attention"), 1e-3)
    path = tmp_path / "clf.keras"
    model.save(str(path))
    loaded = load_keras_model(str(path), compile=False)
    ids = np.array([[3, 4, 0], [0, 0, 0], [11, 1, 2]])
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded._flatten_layers())


def test_keras_missing_truncated_and_wrong_format(tmp_path):
    from encoders.keras.model import build_classifier

    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no.keras"))):
        load_keras_model(str(tmp_path / "no.keras"))
    path = tmp_path / "m.keras"
    build_classifier(12, 2, 4, 5).save(str(path))
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=re.escape(str(cut)) + ".*truncated or corrupt"):
        load_keras_model(str(cut))
    other = tmp_path / "m.h5"
    other.write_bytes(b"\x89HDF")
    with pytest.raises(ValueError, match=r"m\.h5.*only the \.keras format"):
        load_keras_model(str(other))


# -- the code base itself -----------------------------------------------------------------------------
def _project_py_files():
    skip = {".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__", "outputs", "multirun"}
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(top, name)


def _project_text_files():
    yield from _project_py_files()
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in {".git", ".venv", "venv", "outputs", "multirun", "__pycache__"}]
        for name in files:
            if name.endswith((".yaml", ".yml", ".toml", ".cfg", ".ini")):
                yield os.path.join(top, name)


def test_no_trust_remote_code_anywhere():
    flag = "trust_remote" + "_code"  # spelled in two parts so this file does not match itself
    pattern = re.compile(flag + r"""["']?\s*[:=]\s*(True|true|1|yes)""")
    offenders = []
    for path in _project_text_files():
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f, 1):
                if pattern.search(line):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not offenders, offenders


def _torch_load_calls(tree):
    """Calls of torch.load / torch.serialization.load / __import__("torch").load / a bare imported load."""
    bare = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module in ("torch", "torch.serialization") for alias in node.names if alias.name == "load"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in bare:
            yield node
        elif isinstance(f, ast.Attribute) and f.attr == "load":
            base = f.value
            if isinstance(base, ast.Name) and base.id == "torch":
                yield node
            elif isinstance(base, ast.Attribute) and base.attr == "serialization":
                yield node
            elif (isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "__import__"
                  and base.args and isinstance(base.args[0], ast.Constant) and base.args[0].value == "torch"):
                yield node


def test_every_torch_load_passes_weights_only_true():
    found, offenders = 0, []
    for path in _project_py_files():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for call in _torch_load_calls(tree):
            found += 1
            ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                     for k in call.keywords)
            if not ok:
                offenders.append(f"{os.path.relpath(path, ROOT)}:{call.lineno}")
    assert found >= 2, "the scan found no torch.load calls at all: it is broken"
    assert not offenders, f"torch.load without weights_only=True at {offenders}"


def test_the_torch_load_scan_catches_every_spelling():
    src = ("import torch\nfrom torch import load as L\n"
           "torch.load('a')\ntorch.serialization.load('b', weights_only=False)\n"
           "__import__('torch').load('c')\nL('d')\ntorch.load('e', weights_only=True)\n")
    calls = list(_torch_load_calls(ast.parse(src)))
    assert [c.lineno for c in calls] == [3, 4, 5, 6, 7]


def test_our_keras_layers_contain_no_lambda():
    folder = os.path.join(ROOT, "encoders", "keras")
    hits = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "Lambda") or \
                    (isinstance(node, ast.Name) and node.id == "Lambda"):
                hits.append(f"{name}:{node.lineno}")
    assert not hits, f"keras Lambda layers in encoders/keras: {hits}"


def test_import_encoders_safe_pulls_in_no_framework():
    code = ("import sys, encoders.safe\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
