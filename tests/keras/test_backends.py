"""The Keras layers' contract on every Keras backend, one subprocess each (Keras reads
``KERAS_BACKEND`` at import): see ``backend_contract.py`` for what is checked. TensorFlow runs the
same checks in-process in ``test_layers.py``/``tests/cross/test_convert.py``, so here it only saves
and loads the ``.keras`` files that must move between backends."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

BACKENDS = ["tensorflow", "jax", "torch"]
LOADED = set()  # (loading backend, saving backend) pairs seen so far in this session


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    return tmp_path_factory.mktemp("keras_files")


def run_contract(backend, folder, *steps):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-m", "tests.keras.backend_contract", str(folder), *steps], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    LOADED.update((backend, other) for other in report["loaded"])
    return report


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract_on_every_keras_backend(backend, keras_files):
    steps = ("save", "load") if backend == "tensorflow" else ("contract", "save", "load")
    run_contract(backend, keras_files, *steps)


def test_keras_files_load_on_every_other_backend(keras_files):
    """A ``.keras`` file saved on any backend loads on each other one (safe_mode) with the same logits.
    This process runs Keras on TensorFlow (conftest), so TensorFlow's loads run here, without a child."""
    for backend in BACKENDS:
        if not (keras_files / f"{backend}.keras").is_file():
            run_contract(backend, keras_files, "save")
    import keras

    from tests.keras import backend_contract

    assert keras.backend.backend() == "tensorflow"
    LOADED.update(("tensorflow", other) for other in backend_contract.load(str(keras_files)))
    for backend in BACKENDS[1:]:
        if any((backend, other) not in LOADED for other in BACKENDS if other != backend):
            run_contract(backend, keras_files, "load")
    assert LOADED == {(a, b) for a in BACKENDS for b in BACKENDS if a != b}
