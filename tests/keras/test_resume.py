"""A Keras run killed mid-training resumes through BackupAndRestore to the weights of an
uninterrupted run."""
import json

import numpy as np

from tests.helpers import kill_train_when, refused_resumes, run_train, train_metrics, two_text_files

OVERRIDES = ["backend=tf", "data.num_train=600", "data.num_val=100", "data.batch_size=32", "trainer.max_epochs=3",
             "trainer.deterministic=true", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]


def _train(run_dir, *extra):
    return train_metrics(run_dir, *OVERRIDES, *extra)[0]


def _weights(run_dir):
    from encoders.keras.checkpoint_io import load_keras_model  # safe_mode, our layers registered

    return load_keras_model(str(run_dir / "checkpoints" / "last.keras"), compile=False).get_weights()


def test_sigkill_then_resume_through_backup_and_restore(tmp_path):
    full = _train(tmp_path / "full")
    killed = tmp_path / "killed"
    meta = killed / "backup" / "training_metadata.json"

    def epoch_2_under_way():  # epoch 1 is backed up
        try:
            return json.loads(meta.read_text())["epoch"] >= 1
        except (OSError, ValueError, KeyError):
            return False

    kill_train_when(killed, OVERRIDES, epoch_2_under_way)

    resumed = _train(tmp_path / "resumed", f"ckpt_path={killed}")
    assert resumed["epochs"] == full["epochs"] == 3 and resumed["global_step"] == full["global_step"]
    for a, b in zip(_weights(tmp_path / "resumed"), _weights(tmp_path / "full")):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_resume_with_another_model_or_data_is_refused(tmp_path):
    a, b = two_text_files(tmp_path)
    args = ["backend=tf", "data=files", f"data.train_file={a}", "data.batch_size=32", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "encoder=gru"]
    first = tmp_path / "first"
    run_train(first, *args)
    out = refused_resumes(args, tmp_path, {
        "hidden": ["encoder.hidden_size=32", f"ckpt_path={first}"],
        "pooling": ["model.pooling=mean", f"ckpt_path={first}"],
        "data": [f"data.train_file={b}", f"ckpt_path={first}"],
    })
    assert "encoder.hidden_size 64 -> 32" in out["hidden"] and "start a fresh run (drop ckpt_path)" in out["hidden"]
    assert "model.pooling 'last' -> 'mean'" in out["pooling"]
    assert "the vocabulary (vocab.json" in out["data"]
