"""Scans of the code base: no remote code trusted, every torch.load with weights_only=True, no
Keras Lambda layers in our layers."""
import ast
import os
import re

from tests.helpers import ROOT


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
