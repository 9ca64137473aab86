"""`import encoders` pulls in no framework; each backend imports only its own; no import cycles;
the two backends mirror each other's modules and public signatures.

The framework checks read every module's module-level imports (not those inside functions,
which run only when that path is taken) and follow them through the package, so they cover
every module, including ones added later. The cycle checks read module-level imports and, apart,
every import inside functions too. A few real imports in child processes check what the static
reading can't see (a third-party package importing a framework).
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


def _all_imports(name: str) -> Set[str]:
    """Package modules ``name`` imports anywhere: module level and inside functions and classes."""
    with open(MODULES[name], encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if node.level:  # relative: from the package that holds ``name``
                base = name.split(".") if MODULES[name].endswith("__init__.py") else name.split(".")[:-1]
                module = ".".join(base[:len(base) - node.level + 1] + [module])
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES)
    # a submodule's edge to its parent package is left out: the parent runs first, whatever it imports
    return {d for d in found if d in MODULES and not name.startswith(d + ".")}


def _circles(edges: Dict[str, Set[str]]) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: list = []
    on_stack: Set[str] = set()
    out: list = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_counting_imports_inside_functions():
    """An import inside a function still ties the two modules together: no module may reach itself
    through the imports of the package, wherever in a module they are written."""
    circles = _circles({name: _all_imports(name) for name in MODULES})
    assert not circles, f"import circles (imports inside functions counted): {circles}"


BACKEND_MIRROR = ("torch", "keras")


def test_the_backends_are_mirror_images():
    names = [sorted(f for f in os.listdir(os.path.join(PACKAGE, b)) if f.endswith(".py")) for b in BACKEND_MIRROR]
    assert names[0] == names[1]


def _public_api(backend: str, module: str) -> Dict[str, object]:
    """Public functions and classes a backend module defines (constants are not read): functions as ``(positional/keyword parameters, their
    defaults as written, keyword-only parameters, *args, **kwargs)``, classes as "class"."""
    with open(os.path.join(PACKAGE, backend, module), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out: Dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            out[node.name] = "class"
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            a = node.args
            out[node.name] = ([p.arg for p in a.posonlyargs + a.args], [ast.unparse(d) for d in a.defaults],
                              [p.arg for p in a.kwonlyargs], a.vararg and a.vararg.arg, a.kwarg and a.kwarg.arg)
    return out


# Same-named public functions whose parameters differ on purpose: each framework's own needs.
SIGNATURES_APART = {
    # torch checks an eager tensor against num_embeddings; Keras returns the ids with a graph
    # assertion attached, and names the layer (``who``) in the message
    ("checks.py", "check_token_ids"),
    # Keras' MLflow logger is a callback that only the chief of a multi-worker run may hold;
    # Lightning's loggers write from rank 0 themselves
    ("recipe.py", "callbacks"),
    # torch caps one CUDA device's share; TensorFlow and jax cap the process (growth, backend)
    ("runtime.py", "limit_gpu_memory"),
}

# Public names that exist on one side only, because the framework does that part itself on the
# other side (or not at all). Each name is listed where it is defined; anything else public in one
# backend must exist, with the same parameters, in the other.
ONE_SIDE_ONLY = {
    "torch": {
        # Lightning's pieces: the sampler/datamodule/dataset, the host-side batch checks, checkpoint
        # IO, callbacks, the Trainer and its recipe hooks
        "batches.py": {"BucketBatchSampler", "HostCheckedBatches", "SequenceDataModule", "TokenDataset",
                       "collate_torch"},
        "checkpoint_io.py": {"AtomicCheckpointIO", "load_torch_checkpoint"},
        "checks.py": {"checked_upstream", "must_check"},
        "export.py": {"OnnxClassifier"},
        "masking.py": {"check_lengths", "mask_to_lengths"},
        # the task modules are Lightning classes (Keras models are functional: ``TASKS`` there)
        "models.py": {"TaskModule", "SequenceClassifier", "SequenceTagger", "SequenceRegressor", "torch_model_class", "split_tally", "predict_split", "tagging_sums"},
        "pooling.py": {"encode_pooled"},
        "recipe.py": {"Recipe", "attach", "configure_optimizers", "loggers"},
        "rnn.py": {"EncoderOutput"},  # the public API: torch's output is a NamedTuple, Keras' a dict
        "runner.py": {"Fp32Precision", "GPUMemoryLimit", "LastCheckpoint", "ThreadShare", "VocabFingerprint",
                      "build_trainer", "history_of", "tensorboard_without_tensorflow"},
        "runtime.py": {"check_accelerator", "flush_denormal", "follow_fair_share", "fp32_flags", "set_alloc_conf",
                       "set_fp32_precision"},
    },
    "keras": {
        # fit's pieces: batches fed to fit, padding for jax's compiled widths and devices
        "batches.py": {"BucketedBatches", "EpochSetter", "RepeatedBatches", "compile_width", "feed", "is_tags",
                       "pad_rows", "widen"},
        "checkpoint_io.py": {"AtomicModelCheckpoint", "load_keras_model"},
        # graph-mode assertions (TF) and dtype checks of backend tensors
        "checks.py": {"concrete_numpy", "graph_assert", "graph_checks_survive_jit", "is_integer_dtype"},
        "export.py": {"ServingClassifier"},
        "masking.py": {"gather_time", "lengths_and_valid"},
        # functional builders and compile per task, and the per-task table (torch: the classes)
        "models.py": {"Task", "task_of", "build_classifier", "build_tagger", "build_regressor",
                      "compile_classifier", "compile_tagger", "compile_regressor", "compile_model", "spec_of",
                      "tagging_loss", "tally", "TaggingValidation", "validation_callbacks", "numpy_logits"},
        # the optimizer and schedule are built in fit's terms (torch: inside configure_optimizers)
        "recipe.py": {"MLflowLogger", "StepSchedule", "build_optimizer", "common_name", "epoch_callbacks"},
        "runtime.py": {"JaxDataParallel", "count_real_rows", "keep_tensorflow_out", "limit_jax_gpu_memory",
                       "make_distribution", "make_strategy", "patch_fit_for_multi_worker", "set_seed",
                       "worker_info"},
    },
}


def _mirrored_modules():
    return sorted(set(os.listdir(os.path.join(PACKAGE, "torch"))) & set(os.listdir(os.path.join(PACKAGE, "keras")))
                  - {"__init__.py"})


@pytest.mark.parametrize("module", [m for m in _mirrored_modules() if m.endswith(".py")])
def test_the_backends_mirror_public_signatures(module):
    """For each module of both backends: a public function of one has the same parameters (names
    and defaults) in the other, unless listed in SIGNATURES_APART; a public function or class on
    one side only is listed in ONE_SIDE_ONLY with the reason."""
    apis = {b: _public_api(b, module) for b in BACKEND_MIRROR}
    torch_api, keras_api = apis["torch"], apis["keras"]
    differ = sorted(name for name in set(torch_api) & set(keras_api)
                    if torch_api[name] != keras_api[name] and (module, name) not in SIGNATURES_APART)
    assert not differ, {name: (torch_api[name], keras_api[name]) for name in differ}
    for side, other in (("torch", "keras"), ("keras", "torch")):
        allowed = ONE_SIDE_ONLY[side].get(module, set())
        alone = set(apis[side]) - set(apis[other])
        assert alone <= allowed, f"{module}: public on {side} only, not listed: {sorted(alone - allowed)}"
        stale = allowed - alone
        assert not stale, f"{module}: listed as {side}-only but not (or no longer) so: {sorted(stale)}"


def test_the_signature_reading_sees_a_difference():
    assert _public_api("torch", "runner.py")["run"] == _public_api("keras", "runner.py")["run"]
    assert _public_api("torch", "checks.py")["check_token_ids"] != _public_api("keras", "checks.py")["check_token_ids"]


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
