"""python -m encoders.convert: a torch run becomes a .keras model and back, outputs checked first."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers import ROOT
from encoders.convert.runs import convert_run, sample_batch
from encoders.torch.models import SequenceClassifier


def torch_run(tmp_path, **hp):
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=20, num_classes=3, embedding_dim=6, hidden_size=5, **hp)
    for p in model.parameters():  # non-trivial biases, so a dropped bias would show
        torch.nn.init.uniform_(p, -0.5, 0.5)
    run = tmp_path / "torch_run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)},
               run / "checkpoints" / "best.ckpt")
    return model, run


def logits(model, tokens):
    model.eval()
    t = torch.from_numpy(tokens)
    with torch.no_grad():
        return model(t, (t != 0).sum(1)).numpy()


@pytest.mark.parametrize("hp", [dict(cell="lstm", num_layers=2, bidirectional=True, pooling="last"),
                                dict(cell="gru", num_layers=1, bidirectional=True, pooling="attention"),
                                dict(cell="gru", num_layers=2, bidirectional=False, pooling="mean")])
def test_torch_to_keras_to_torch_keeps_outputs(tmp_path, hp):
    import keras

    model, run = torch_run(tmp_path, **hp)
    out, diff = convert_run(str(run))
    assert out.endswith("best.keras") and diff <= 1e-5
    tokens = sample_batch(20, seed=3)
    km = keras.saving.load_model(out, safe_mode=True)
    np.testing.assert_allclose(np.asarray(km(tokens)), logits(model, tokens), atol=1e-5)

    # and back: a Keras run dir becomes a torch checkpoint that Lightning loads
    keras_run = tmp_path / "keras_run"
    (keras_run / "checkpoints").mkdir(parents=True)
    os.replace(out, keras_run / "checkpoints" / "best.keras")
    back, diff = convert_run(str(keras_run))
    assert back.endswith("best.ckpt") and diff <= 1e-5
    restored = SequenceClassifier.load_from_checkpoint(back, weights_only=True)
    np.testing.assert_allclose(logits(restored, tokens), logits(model, tokens), atol=1e-5)


def test_nothing_is_written_when_outputs_disagree(tmp_path):
    _, run = torch_run(tmp_path, cell="lstm", bidirectional=True)
    with pytest.raises(ValueError, match="nothing written"):
        convert_run(str(run), atol=-1.0)
    assert not (run / "checkpoints" / "best.keras").exists()


def test_command_line(tmp_path):
    _, run = torch_run(tmp_path, cell="lstm", bidirectional=False)
    out = tmp_path / "model.keras"
    proc = subprocess.run([sys.executable, "-m", "encoders.convert", str(run), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout and out.is_file()
    missing = subprocess.run([sys.executable, "-m", "encoders.convert", str(tmp_path / "nope")], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert missing.returncode == 2 and "no such run dir" in missing.stderr


def test_convert_run_twice_never_touches_what_training_wrote(tmp_path):
    """A tf run converts to best.ckpt; a second convert must not read that back and overwrite the
    trained best.keras with a re-conversion (it refuses, and --overwrite replaces only best.ckpt)."""
    import json

    _, run = torch_run(tmp_path, cell="gru", bidirectional=True)
    tf_run = tmp_path / "tf_run"
    (tf_run / "checkpoints").mkdir(parents=True)
    convert_run(str(run), out=str(tf_run / "checkpoints" / "best.keras"))
    (tf_run / "metrics.json").write_text(json.dumps({"backend": "tf"}))
    trained = (tf_run / "checkpoints" / "best.keras").read_bytes()

    out, _ = convert_run(str(tf_run))
    assert out == str(tf_run / "checkpoints" / "best.ckpt")
    with pytest.raises(ValueError, match=r"best\.ckpt exists already.*--overwrite"):
        convert_run(str(tf_run))
    proc = subprocess.run([sys.executable, "-m", "encoders.convert", str(tf_run)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2 and "exists already" in proc.stderr
    out2, _ = convert_run(str(tf_run), overwrite=True)
    assert out2 == out
    assert (tf_run / "checkpoints" / "best.keras").read_bytes() == trained
    with pytest.raises(ValueError, match="refusing to overwrite what training wrote"):
        convert_run(str(tf_run), out=str(tf_run / "checkpoints" / "best.keras"), overwrite=True)


def test_convert_names_a_run_with_only_last(tmp_path):
    _, run = torch_run(tmp_path, cell="lstm")
    os.replace(run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError, match=r"no checkpoints/best\.ckpt; it has last\.ckpt: pass --checkpoint last"):
        convert_run(str(run))
    out, _ = convert_run(str(run), which="last")
    assert out.endswith("last.keras")
