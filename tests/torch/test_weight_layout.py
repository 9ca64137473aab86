"""RNNEncoder's weight layout: weight_ih as a view of a block with the pad column, so no call
concatenates weights; nn.LSTM's state-dict keys and shapes, and values that survive every way a
module's storage gets replaced. (On CUDA, cuDNN's flat layout: tests/torch/test_runtime_gpu.py.)"""
import copy
import io

import pytest
import torch
from torch.overrides import TorchFunctionMode

from encoders.torch import RNNEncoder
from encoders.torch.rnn import _pad_gate_column
from tests.torch.test_layers import check_against_alone, reference

CASES = [("lstm", 2, True), ("gru", 1, False)]


class ConcatOfWeights(TorchFunctionMode):
    """Records every torch.cat whose inputs share storage with one of ``params``."""

    def __init__(self, params):
        super().__init__()
        self.ptrs = {p.untyped_storage().data_ptr() for p in params}
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.cat:
            tensors = args[0] if args else kwargs["tensors"]
            if any(t.untyped_storage().data_ptr() in self.ptrs for t in tensors):
                self.seen.append([tuple(t.shape) for t in tensors])
        return func(*args, **(kwargs or {}))


def assert_laid_out(enc):
    """Each weight_ih is the first I columns of a [G, I+1] block whose last column is the pad column."""
    for name, p in enc.named_parameters():
        if name.startswith("weight_ih"):
            G, I = p.shape
            assert p.stride() == (I + 1, 1), name
            block = p.detach().as_strided((G, I + 1), (I + 1, 1))
            assert torch.equal(block[:, -1], _pad_gate_column(enc.cell, enc.hidden_size)[:, 0].to(p.dtype)), name


@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("cell,layers,bi", CASES)
def test_no_call_concatenates_weights(cell, layers, bi, path):
    torch.manual_seed(0)
    enc = RNNEncoder(3, 4, cell, layers, bi, path=path)
    x = torch.randn(4, 6, 3, requires_grad=True)
    lengths = torch.tensor([6, 0, 2, 5])
    with ConcatOfWeights(enc.parameters()) as mode:
        (enc(x, lengths).sequence.sum() + enc.forward_final(x, lengths).sum()).backward()
        with torch.inference_mode():
            enc.eval()(x, lengths)
    assert mode.seen == []
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


@pytest.mark.parametrize("cell,layers,bi", CASES)
def test_state_dict_is_nn_lstms_both_ways(cell, layers, bi):
    torch.manual_seed(1)
    enc = RNNEncoder(3, 4, cell, layers, bi)
    ref = reference(enc)  # ours -> nn.LSTM/nn.GRU
    ours, theirs = enc.state_dict(), ref.state_dict()
    assert list(ours) == list(theirs) and all(ours[k].shape == theirs[k].shape for k in ours)
    for p in ref.parameters():  # nn.LSTM/nn.GRU -> ours
        torch.nn.init.uniform_(p, -0.5, 0.5)
    enc.load_state_dict(ref.state_dict())
    assert all(torch.equal(enc.state_dict()[k], v) for k, v in ref.state_dict().items())
    assert_laid_out(enc)
    check_against_alone(enc, torch.randn(5, 7, 3), torch.tensor([7, 0, 3, 1, 6]))


@pytest.mark.parametrize("cell,layers,bi", CASES)
def test_layout_survives_moves_copies_assign_and_old_checkpoints(cell, layers, bi):
    torch.manual_seed(2)
    enc = RNNEncoder(3, 4, cell, layers, bi)
    x, lengths = torch.randn(5, 7, 3), torch.tensor([7, 0, 3, 1, 6])
    # a checkpoint as earlier versions wrote it: plain contiguous tensors, through a real file
    buf = io.BytesIO()
    torch.save({k: v.contiguous().clone() for k, v in reference(enc).state_dict().items()}, buf)
    buf.seek(0)
    old = torch.load(buf, weights_only=True)
    fresh = RNNEncoder(3, 4, cell, layers, bi)
    fresh.load_state_dict(old)
    assert_laid_out(fresh)
    check_against_alone(fresh, x, lengths)
    assigned = RNNEncoder(3, 4, cell, layers, bi)
    assigned.load_state_dict(old, assign=True)  # new storages: laid out again at the next call
    check_against_alone(assigned, x, lengths)
    assert_laid_out(assigned)
    for moved in (copy.deepcopy(enc), enc.double(), enc.float()):
        check_against_alone(moved, x.to(moved.weight_ih_l0.dtype), lengths)
        assert_laid_out(moved)
    # our own state dict, saved and loaded through a file, gives the same numbers
    buf = io.BytesIO()
    torch.save(enc.state_dict(), buf)
    buf.seek(0)
    again = RNNEncoder(3, 4, cell, layers, bi)
    again.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(again(x, lengths).sequence, enc(x, lengths).sequence, atol=0, rtol=0)


def test_pad_column_never_trains():
    """AdamW with weight decay updates weight_ih in place; the pad column beside it stays exact."""
    torch.manual_seed(3)
    enc = RNNEncoder(3, 4, "lstm", 1, True, path="padded")
    opt = torch.optim.AdamW(enc.parameters(), lr=0.1, weight_decay=0.5)
    before = enc.weight_ih_l0.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        out = enc(torch.randn(4, 6, 3), torch.tensor([6, 0, 2, 5]))
        (out.sequence.pow(2).sum() + out.state[1].sum()).backward()
        opt.step()
    assert not torch.equal(enc.weight_ih_l0.detach(), before)
    assert_laid_out(enc)
