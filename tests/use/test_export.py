"""encoders.use.export: ONNX and SavedModel from a torch run and a tf run agree with load_run.

Each artefact gets right-padded ids of real texts (an empty text included) padded to 300 steps,
longer than any text, with random ids left beyond each length: they must be ignored.
"""
import os

import numpy as np
import pytest

import encoders
from encoders.errors import EncodersError
from encoders.use.export import export_run, onnx_logits
from tests.helpers import real_text_rows, text_run

CASES = [("torch", "onnx"), ("tf", "onnx"), ("torch", "savedmodel"), ("tf", "savedmodel")]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    out = {}
    for backend, fmt in CASES:
        run_dir = text_run(tmp_path_factory, backend)
        path = str(tmp_path_factory.mktemp(f"export_{backend}") / ("model.onnx" if fmt == "onnx" else "savedmodel"))
        out[backend, fmt] = (run_dir,) + export_run(run_dir, fmt, path)
    return out


def batch(run):
    texts = [t for t, _ in real_text_rows(30, seed=3)] + ["", "a", "\u4e2d"]
    ids = run.encode(texts)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    tokens = np.random.default_rng(1).integers(1, len(run.vocab), size=(len(ids), 300)).astype(np.int64)
    for b, row in enumerate(ids):
        tokens[b, : len(row)] = row
    return texts, tokens, lengths


def artefact(fmt, path):
    if fmt == "onnx":
        return onnx_logits(path)
    from encoders.keras.export import load_exported as load_savedmodel

    return load_savedmodel(path)


@pytest.mark.parametrize("backend,fmt", CASES)
def test_export_agrees_with_load_run(exports, backend, fmt):
    run_dir, path, check_diff = exports[backend, fmt]
    assert check_diff <= 1e-4 and os.path.exists(path)
    run = encoders.load_run(run_dir)
    texts, tokens, lengths = batch(run)
    expected = run.logits(texts)
    got = artefact(fmt, path)(tokens, lengths)
    diff = float(np.abs(got - expected).max())
    print(f"\n{backend} -> {fmt}: max |logit diff| vs load_run = {diff:.3g} (export's own check: {check_diff:.3g})")
    assert got.shape == (len(texts), 2) and diff <= 1e-4
    # dynamic batch and time: one row, cut 3 steps after its end
    k = int(np.argmax(lengths > 0))
    one = artefact(fmt, path)(tokens[k:k + 1, : lengths[k] + 3], lengths[k:k + 1])
    np.testing.assert_allclose(one, expected[k:k + 1], atol=1e-4)
    empty = artefact(fmt, path)(np.zeros((2, 0), np.int64), np.zeros(2, np.int64))
    np.testing.assert_allclose(empty, np.repeat(run.logits([""]), 2, axis=0), atol=1e-4)


def test_onnx_declares_dynamic_batch_and_time(exports):
    import onnx

    model = onnx.load(exports["torch", "onnx"][1])
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert set(dims) == {"tokens", "lengths"}
    assert all(isinstance(d, str) for d in dims["tokens"]) and isinstance(dims["lengths"][0], str)
    assert [o.name for o in model.graph.output] == ["logits"]


def test_an_existing_output_is_kept_unless_overwrite(exports):
    run_dir, path, _ = exports["torch", "onnx"]
    before = os.path.getmtime(path)
    with pytest.raises(EncodersError, match="exists already"):
        export_run(run_dir, "onnx", path)
    assert os.path.getmtime(path) == before
    out, _ = export_run(run_dir, "onnx", path, overwrite=True)
    assert out == path and os.path.isfile(path)


def test_nothing_is_written_when_the_export_disagrees(tmp_path, tmp_path_factory):
    run_dir = text_run(tmp_path_factory, "tf")
    for fmt, name in (("onnx", "m.onnx"), ("savedmodel", "sm")):
        with pytest.raises(EncodersError, match="nothing written"):
            export_run(run_dir, fmt, str(tmp_path / name), atol=-1.0)
    assert os.listdir(tmp_path) == []  # no temporary file or folder left either


def test_training_outputs_are_never_export_targets(tmp_path_factory):
    run_dir = text_run(tmp_path_factory, "torch")
    for target in ("checkpoints/best.keras", "metrics.json", ".hydra/model.onnx"):
        with pytest.raises(EncodersError, match="training wrote"):
            export_run(run_dir, "onnx" if target.endswith((".onnx", ".json")) else "savedmodel",
                       os.path.join(run_dir, target), overwrite=True)


def test_default_output_is_in_the_run_dir(tmp_path_factory):
    run_dir = text_run(tmp_path_factory, "tf")
    out, diff = export_run(run_dir, "savedmodel")
    assert out == os.path.join(os.path.abspath(run_dir), "export", "savedmodel") and diff <= 1e-4
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
