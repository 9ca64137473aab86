"""No device->host sync in a training or evaluation step, checked on the CPU: the batch goes to the
``meta`` device, whose tensors hold no values, so anything in the step that reads a device value
(``.item()``, ``bool()``, ``.cpu()``, ``nonzero``, a value check) raises. The same run on CUDA
under ``torch.cuda.set_sync_debug_mode("error")``: tests/torch/test_runtime_gpu.py."""
import numpy as np
import pytest
import torch

from encoders.config import TAG_PAD_ID
from encoders.torch import SequenceClassifier
from encoders.torch.batches import collate_torch
from encoders.torch.batches import CHECKED
from encoders.torch.models import SequenceRegressor, SequenceTagger
from encoders.tasks import RegressionTally, TaggingTally

META = torch.device("meta")


def batch(task="classification", lengths=(6, 0, 3, 1, 6)):
    rng = np.random.default_rng(0)
    examples = [{"tokens": rng.integers(2, 20, n).tolist(), "label": int(rng.integers(0, 3))} for n in lengths]
    out = collate_torch(examples)
    if task == "tagging":
        tags = torch.randint(0, 3, out["tokens"].shape)
        out["tags"] = torch.where(out["tokens"] != 0, tags, torch.full_like(tags, TAG_PAD_ID))
        del out["labels"]
    if task == "regression":
        out["labels"] = torch.from_numpy(rng.normal(size=len(lengths)).astype(np.float32))
    return out


def model(task, path, **kw):
    shape = dict(vocab_size=20, num_classes=3, embedding_dim=4, hidden_size=5, encoder_path=path, **kw)
    if task == "regression":
        return SequenceRegressor(**{**shape, "num_classes": 1})
    return SequenceClassifier(**shape) if task == "classification" else SequenceTagger(**shape)


@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("task", ["classification", "tagging", "regression"])
def test_a_step_on_the_device_reads_no_device_value(task, path):
    m = model(task, path)
    moved = m.transfer_batch_to_device(batch(task), META, 0)
    assert moved[CHECKED] is True and moved["lengths"].device.type == "cpu"  # lengths stay on the host
    assert all(v.is_meta for k, v in moved.items() if k not in ("lengths", CHECKED))
    m.to(META).train()
    loss = m.training_step(moved, 0)
    assert loss.is_meta
    loss.backward()
    assert all(p.grad is not None and p.grad.is_meta for p in m.parameters() if p.requires_grad)
    m.eval()
    m.on_validation_epoch_start()
    with torch.no_grad():
        m.validation_step(moved, 0)  # the tallies add up on the device; read at the epoch's end
    # the same batch without the host check: the modules check it themselves, which reads the device
    unchecked = {k: v for k, v in moved.items() if k != CHECKED}
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        m.training_step(unchecked, 0)


@pytest.mark.parametrize("bad,match", [
    (dict(tokens=lambda t: t.masked_fill(t == t.max(), 25)), "token id 25 at position .* outside the vocabulary"),
    (dict(lengths=lambda n: n + 7), r"lengths\[0\] = 13 is outside 0..6"),
    (dict(labels=lambda y: y + 3), "label [3-5] is outside"),
])
def test_bad_values_are_named_on_the_host_before_the_batch_moves(bad, match):
    b = batch()
    for key, change in bad.items():
        b[key] = change(b[key])
    with pytest.raises(ValueError, match=match):
        model("classification", "padded").transfer_batch_to_device(b, META, 0)


def test_tags_are_checked_on_the_host_too():
    b = batch("tagging")
    b["tags"][0, 0] = 7
    with pytest.raises(ValueError, match="tag 7 is outside"):
        model("tagging", "padded").transfer_batch_to_device(b, META, 0)


def epoch_figures(m, batches):
    """What ``m`` logs for a validation epoch over ``batches`` (CPU, one process)."""
    logged = {}
    m.log = lambda name, value, **kw: logged.__setitem__(name, value)
    m.eval()
    m.on_validation_epoch_start()
    with torch.no_grad():
        for i, b in enumerate(batches):
            m.validation_step(b, i)
    m.on_validation_epoch_end()
    return logged


def ragged_batches(task, seed, n=4):
    rng = np.random.default_rng(seed)
    return [batch(task, lengths=tuple(rng.integers(0, 8, rng.integers(1, 6)))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(3))
def test_tagging_figures_added_on_the_device_equal_the_host_tally(seed):
    """Random ragged batches with empty rows (and a batch may hold no token): the epoch's figures from
    the device sums equal ``TaggingTally`` over the same logits, span F1 included."""
    torch.manual_seed(seed)
    m = model("tagging", "padded", tag_names=["O", "B-X", "I-X"])
    batches = ragged_batches("tagging", seed) + [batch("tagging", lengths=(0, 0))]
    host = TaggingTally(m.hparams.tag_names)
    with torch.no_grad():
        for b in batches:
            host.update(m(b["tokens"], b["lengths"]).numpy(), b["tags"].numpy())
    want = host.figures()
    got = epoch_figures(m, batches)
    assert set(got) == {f"val/{k}" for k in want} and "val/span_f1" in got
    for k, v in want.items():
        assert got[f"val/{k}"] == pytest.approx(v, rel=1e-12, abs=1e-12), k


@pytest.mark.parametrize("seed", range(3))
def test_regression_figures_added_on_the_device_equal_the_host_tally(seed):
    torch.manual_seed(seed)
    m = model("regression", "padded")
    batches = ragged_batches("regression", seed)
    host = RegressionTally()
    with torch.no_grad():
        for b in batches:
            host.update(m(b["tokens"], b["lengths"]).numpy(), b["labels"].numpy())
    got = epoch_figures(m, batches)
    for k, v in host.figures().items():
        assert got[f"val/{k}"] == pytest.approx(v, rel=1e-12, abs=1e-12), k


def test_bad_tags_in_a_direct_validation_call_are_named():
    b = batch("tagging")
    b["tags"][0, 0] = 7
    m = model("tagging", "padded")
    m.on_validation_epoch_start()
    with pytest.raises(ValueError, match="tag 7 is outside"):
        m.validation_step(b, 0)
