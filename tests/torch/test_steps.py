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
from encoders.torch.tagger import SequenceTagger

META = torch.device("meta")


def batch(task="classification", lengths=(6, 0, 3, 1, 6)):
    rng = np.random.default_rng(0)
    examples = [{"tokens": rng.integers(2, 20, n).tolist(), "label": int(rng.integers(0, 3))} for n in lengths]
    out = collate_torch(examples)
    if task == "tagging":
        tags = torch.randint(0, 3, out["tokens"].shape)
        out["tags"] = torch.where(out["tokens"] != 0, tags, torch.full_like(tags, TAG_PAD_ID))
        del out["labels"]
    return out


def model(task, path):
    shape = dict(vocab_size=20, num_classes=3, embedding_dim=4, hidden_size=5, encoder_path=path)
    return SequenceClassifier(**shape) if task == "classification" else SequenceTagger(**shape)


@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("task", ["classification", "tagging"])
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
    if task == "classification":  # the tagger's validation tallies on the host by design
        m.eval()
        with torch.no_grad():
            m.validation_step(moved, 0)
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
