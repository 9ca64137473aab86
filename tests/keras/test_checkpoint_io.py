""".keras models load without running code (lambdas, classes from outside Keras and this project are
refused); a truncated, missing or wrongly formatted file is named."""
import re
import zipfile

import pytest

from encoders.config import ClassifierSpec

from encoders.errors import UnsafeLoadError
from encoders.keras.checkpoint_io import load_keras_model
from tests.helpers import marker  # noqa: F401  (a fixture)


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
    import encoders.keras.checkpoint_io as safe

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
    from encoders.keras.models import build_classifier

    good = tmp_path / "good.keras"
    build_classifier(ClassifierSpec(12, 2, 4, 5)).save(str(good))

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

    from encoders.keras.models import build_classifier, compile_classifier

    keras.utils.set_random_seed(0)
    model = compile_classifier(build_classifier(ClassifierSpec(12, 3, 4, 5, cell="gru", pooling="attention")), 1e-3)
    path = tmp_path / "clf.keras"
    model.save(str(path))
    loaded = load_keras_model(str(path), compile=False)
    ids = np.array([[3, 4, 0], [0, 0, 0], [11, 1, 2]])
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded._flatten_layers())


def test_keras_missing_truncated_and_wrong_format(tmp_path):
    from encoders.keras.models import build_classifier

    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no.keras"))):
        load_keras_model(str(tmp_path / "no.keras"))
    path = tmp_path / "m.keras"
    build_classifier(ClassifierSpec(12, 2, 4, 5)).save(str(path))
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=re.escape(str(cut)) + ".*truncated or corrupt"):
        load_keras_model(str(cut))
    other = tmp_path / "m.h5"
    other.write_bytes(b"\x89HDF")
    with pytest.raises(ValueError, match=r"m\.h5.*only the \.keras format"):
        load_keras_model(str(other))
