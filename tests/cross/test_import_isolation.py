"""`import encoders` pulls in no framework; each backend imports only its own; no import cycles.

The per-module checks read every module's module-level imports (not those inside functions,
which run only when that path is taken) and follow them through the package, so they cover
every module, including ones added later. A few real imports in child processes check what
the static reading can't see (a third-party package importing a framework).
"""
import ast
import os
import subprocess
import sys
from typing import Dict, Set

import pytest

from tests.helpers import ROOT

PACKAGE = os.path.join(ROOT, "encoders")
TORCH = {"torch", "pytorch_lightning", "lightning_fabric", "torchmetrics", "lightning"}
TF = {"tensorflow", "keras"}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _modules() -> Dict[str, str]:
    out = {}
    for top, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                out[_module_name(os.path.join(top, name))] = os.path.join(top, name)
    return out


MODULES = _modules()


def _top_level_imports(name: str) -> Set[str]:
    """Modules imported when ``name`` is imported: module-level statements, ``if``/``try`` blocks
    included, function and class bodies excluded; a package's ``__init__`` comes with each submodule."""
    with open(MODULES[name], encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found: Set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return found | {p for p in parents if p in MODULES}


GRAPH = {name: _top_level_imports(name) for name in MODULES}


def _closure(name: str) -> Set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in GRAPH.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                if dep in GRAPH:
                    todo.append(dep)
    return seen


def _frameworks(name: str) -> Set[str]:
    return {dep.split(".")[0] for dep in _closure(name)} & (TORCH | TF)


def test_the_scan_sees_the_frameworks():
    assert "torch" in _frameworks("encoders.torch.rnn") and "keras" in _frameworks("encoders.keras.rnn")
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_only_its_own_framework(name):
    frameworks = _frameworks(name)
    if name.startswith("encoders.torch"):
        assert not frameworks & TF, f"{name} imports {sorted(frameworks & TF)}"
    elif name.startswith("encoders.keras"):
        assert not frameworks & TORCH, f"{name} imports {sorted(frameworks & TORCH)}"
    else:
        assert not frameworks, f"{name} is framework-free but imports {sorted(frameworks)} at module level"


def test_no_module_level_import_cycle():
    # a submodule's edge to its parent package is left out: the parent runs first, whatever it imports
    edges = {n: {d for d in deps if d in MODULES and not n.startswith(d + ".")} for n, deps in GRAPH.items()}

    def reaches_itself(start: str) -> bool:
        seen, todo = set(), list(edges[start])
        while todo:
            n = todo.pop()
            if n == start:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(edges[n])
        return False

    cycles = sorted(n for n in MODULES if reaches_itself(n))
    assert not cycles, f"modules that import themselves through others: {cycles}"


BACKEND_MIRROR = ("torch", "keras")


def test_the_backends_are_mirror_images():
    names = [sorted(f for f in os.listdir(os.path.join(PACKAGE, b)) if f.endswith(".py")) for b in BACKEND_MIRROR]
    assert names[0] == names[1]


CASES = {
    "import encoders, encoders.data, encoders.config, encoders.runtime, encoders.run.files": ("torch", "tensorflow", "keras"),
    "import encoders.torch, encoders.torch.runner, encoders.torch.runtime": ("tensorflow", "keras", "jax"),
    "import encoders.keras, encoders.keras.runner": ("torch", "pytorch_lightning"),
    "import encoders.app, encoders.data.sources, encoders.run.report, encoders.convert": ("torch", "tensorflow", "keras"),
    "import encoders.metrics, encoders.data.tables, encoders.data.conll, encoders.data.vectors": ("torch", "tensorflow", "keras"),
}


@pytest.mark.parametrize("statement", sorted(CASES))
def test_import_pulls_in_only_its_own_framework(statement):
    banned = CASES[statement]
    code = f"{statement}\nimport sys\nprint(sorted(m for m in {banned!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", f"{statement} imported {out.stdout.strip()}"


def test_torch_training_run_never_imports_tensorflow():
    """TensorBoard's writer would import tensorflow (and grab GPU memory) if it were let."""
    code = ("import encoders.torch.runner as r, tempfile, sys\n"
            "from pytorch_lightning.loggers import TensorBoardLogger\n"
            "with r.tensorboard_without_tensorflow():  # what runner.run trains inside\n"
            "    l = TensorBoardLogger(tempfile.mkdtemp()); l.log_metrics({'a': 1.0}, 0); l.finalize('success')\n"
            "assert 'tensorboard.compat.notf' not in sys.modules  # a later tf run in this process finds TF\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_keras_on_jax_imports_neither_tensorflow_nor_torch():
    """The jax training path imported (a whole jax run is checked in tests/keras/test_jax_run.py)."""
    code = ("import encoders.keras, encoders.keras.runner, encoders.keras.inference, encoders.app, sys\n"
            "print(sorted(m for m in ('tensorflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="jax"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
