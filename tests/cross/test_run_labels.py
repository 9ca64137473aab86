"""A Keras tagging run converted to torch keeps its tag names: convert reads them from the run's
vocab.json (``encoders.run.files.read_labels``), as the Keras runner does for span F1."""
import json

from encoders.config import ClassifierSpec


def test_keras_tagging_run_converts_with_the_runs_tag_names(tmp_path):
    from encoders.convert.runs import build_keras_model, convert_run
    from encoders.torch.checkpoint_io import load_torch_checkpoint

    tags = ["B-LOC", "I-LOC", "O"]
    spec = ClassifierSpec(vocab_size=20, num_classes=len(tags), embedding_dim=6, hidden_size=5, task="tagging")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    km = build_keras_model(spec)
    km.save(run / "checkpoints" / "best.keras")
    (run / "metrics.json").write_text(json.dumps({"backend": "tf"}))
    (run / "vocab.json").write_text(json.dumps({"tokens": ["<pad>", "<unk>"] + [f"w{i}" for i in range(18)],
                                                "labels": tags}))
    out, diff = convert_run(str(run))
    assert out == str(run / "checkpoints" / "best.ckpt") and diff <= 1e-5
    assert load_torch_checkpoint(out)["hyper_parameters"]["tag_names"] == tags

    (run / "vocab.json").unlink()  # without the vocabulary the tags are named by id, as before
    out, _ = convert_run(str(run), overwrite=True)
    assert load_torch_checkpoint(out)["hyper_parameters"]["tag_names"] == ["0", "1", "2"]
