"""torch checkpoints load without running code: each attack is planted and must be refused, and a
truncated or missing file is named. Every payload would create a marker file if it ran; each test
asserts the refusal *and* that the marker does not exist."""
import pickle
import re

import pytest
import torch

from encoders.errors import UnsafeLoadError
from encoders.torch.checkpoint_io import load_torch_checkpoint
from tests.helpers import Payload as _Payload, marker  # noqa: F401  (marker is a fixture)


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
