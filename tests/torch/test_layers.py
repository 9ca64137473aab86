"""The torch encoder against the definition: each padded row equals that sequence run alone."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders.torch import MaskedPooling, PaddedEmbedding, RNNEncoder, reverse_within_lengths

CONFIGS = [(cell, layers, bi) for cell in ("lstm", "gru") for layers in (1, 2) for bi in (False, True)]


def reference(enc: RNNEncoder):
    """torch's own nn.LSTM/nn.GRU with the same weights (our parameters carry its names)."""
    cls = torch.nn.LSTM if enc.cell == "lstm" else torch.nn.GRU
    ref = cls(enc.input_size, enc.hidden_size, enc.num_layers, batch_first=True, bidirectional=enc.bidirectional)
    ref.load_state_dict(enc.state_dict())
    return ref.eval()


def check_against_alone(enc, x, lengths, atol=2e-6):
    ref = reference(enc)
    out = enc(x, lengths)
    B, T, _ = x.shape
    D, H = enc.num_directions, enc.hidden_size
    assert out.sequence.shape == (B, T, D * H) and out.final.shape == (B, D * H)
    assert out.state[0].shape == (enc.num_layers * D, B, H)
    for b in range(B):
        n = int(lengths[b])
        assert torch.all(out.sequence[b, n:] == 0), "sequence must be exactly zero past the length"
        if n == 0:
            assert torch.all(out.final[b] == 0) and torch.all(out.state[0][:, b] == 0)
            if out.state[1] is not None:
                assert torch.all(out.state[1][:, b] == 0)
            continue
        seq, st = ref(x[b:b + 1, :n])
        h = st[0] if enc.cell == "lstm" else st
        torch.testing.assert_close(out.sequence[b, :n], seq[0], atol=atol, rtol=0)
        torch.testing.assert_close(out.state[0][:, b], h[:, 0], atol=atol, rtol=0)
        if enc.cell == "lstm":
            torch.testing.assert_close(out.state[1][:, b], st[1][:, 0], atol=atol, rtol=0)
        # the definition of `final`: forward h at the last valid step, backward h at step 0
        fw = seq[0, n - 1, :H]
        want = torch.cat([fw, seq[0, 0, H:]]) if D == 2 else fw
        torch.testing.assert_close(out.final[b], want, atol=atol, rtol=0)
    return out


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
@pytest.mark.parametrize("path", ["padded", "packed"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_padded_rows_equal_each_sequence_alone(cell, layers, bi, path, data):
    seed = data.draw(st.integers(0, 2**31 - 1))
    B = data.draw(st.integers(1, 6))
    T = data.draw(st.integers(1, 9))
    lengths = torch.tensor(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    torch.manual_seed(seed)
    enc = RNNEncoder(3, 4, cell, layers, bi, path=path).eval()
    x = torch.randn(B, T, 3) * data.draw(st.sampled_from([1.0, 10.0]))
    check_against_alone(enc, x, lengths)


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
def test_padded_and_packed_paths_agree(cell, layers, bi):
    torch.manual_seed(0)
    a = RNNEncoder(5, 6, cell, layers, bi, path="padded")
    b = RNNEncoder(5, 6, cell, layers, bi, path="packed")
    b.load_state_dict(a.state_dict())
    x = torch.randn(7, 11, 5, requires_grad=True)
    lengths = torch.tensor([11, 0, 3, 1, 11, 6, 0])
    oa, ob = a(x, lengths), b(x, lengths)
    for u, v in zip([oa.sequence, oa.final, oa.state[0]], [ob.sequence, ob.final, ob.state[0]]):
        torch.testing.assert_close(u, v, atol=2e-6, rtol=0)
    ga = torch.autograd.grad(oa.sequence.sum() + oa.final.sum(), [x] + list(a.parameters()))
    gb = torch.autograd.grad(ob.sequence.sum() + ob.final.sum(), [x] + list(b.parameters()))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
@pytest.mark.parametrize("path", ["padded", "packed"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_forward_final_is_forwards_final_with_its_gradients(cell, layers, bi, path, data):
    """forward_final skips the sequence's work; values and gradients stay those of forward().final,
    also with NaN in the padding, empty rows, and dropout between layers while training."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    B = data.draw(st.integers(1, 6))
    T = data.draw(st.integers(1, 9))
    lengths = torch.tensor(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    training = data.draw(st.booleans())
    torch.manual_seed(seed)
    enc = RNNEncoder(3, 4, cell, layers, bi, dropout=0.3, path=path).train(training)
    x = torch.randn(B, T, 3)
    x[torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)] = float("nan")
    x.requires_grad_(True)
    weights = torch.randn(B, enc.output_size)
    params = [x] + list(enc.parameters())
    torch.manual_seed(seed)
    want = enc(x, lengths).final
    want_grads = torch.autograd.grad((want * weights).sum(), params, allow_unused=True)
    torch.manual_seed(seed)  # the same dropout masks
    got = enc.forward_final(x, lengths)
    got_grads = torch.autograd.grad((got * weights).sum(), params, allow_unused=True)
    assert got.shape == (B, enc.output_size) and torch.all(got[lengths == 0] == 0)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    for g, w in zip(got_grads, want_grads):
        assert g is not None and torch.isfinite(g).all()
        torch.testing.assert_close(g, torch.zeros_like(g) if w is None else w, atol=1e-5, rtol=1e-5)


def test_forward_final_checks_its_input_as_forward_does():
    enc = RNNEncoder(3, 4)
    with pytest.raises(ValueError, match=r"lengths\[0\] = 4 is outside 0..3"):
        enc.forward_final(torch.randn(2, 3, 3), torch.tensor([4, 1]))
    with pytest.raises(TypeError, match="embed integer ids first"):
        enc.forward_final(torch.zeros(2, 3, 3, dtype=torch.long), torch.tensor([3, 1]))
    assert enc.forward_final(torch.randn(2, 0, 3), torch.zeros(2, dtype=torch.long)).shape == (2, 4)


def test_padding_content_does_not_matter():
    """Garbage (even NaN) in the padding changes nothing, and gets no gradient."""
    torch.manual_seed(1)
    enc = RNNEncoder(4, 5, "lstm", 2, True)
    lengths = torch.tensor([5, 2, 0])
    x = torch.randn(3, 5, 4)
    dirty = x.clone()
    dirty[1, 2:] = float("nan")
    dirty[2] = 1e6
    dirty.requires_grad_(True)
    a, b = enc(x, lengths), enc(dirty, lengths)
    assert torch.equal(a.sequence, b.sequence) and torch.equal(a.final, b.final)
    (b.sequence.sum() + b.final.sum()).backward()
    assert torch.all(dirty.grad[1, 2:] == 0) and torch.all(dirty.grad[2] == 0)
    assert torch.isfinite(dirty.grad).all()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_all_empty_batch_gives_zeros_and_finite_gradients(cell):
    enc = RNNEncoder(3, 4, cell, 2, True)
    x = torch.randn(4, 1, 3, requires_grad=True)
    out = enc(x, torch.zeros(4, dtype=torch.long))
    assert torch.all(out.sequence == 0) and torch.all(out.final == 0) and torch.all(out.state[0] == 0)
    (out.sequence.sum() + out.final.sum()).backward()
    assert torch.all(x.grad == 0)
    assert all(p.grad is not None and torch.all(p.grad == 0) for p in enc.parameters())


def test_empty_rows_get_zero_gradient_and_others_finite():
    torch.manual_seed(2)
    enc = RNNEncoder(3, 4, "lstm", 1, True)
    x = torch.randn(3, 4, 3, requires_grad=True)
    out = enc(x, torch.tensor([4, 0, 2]))
    (out.final ** 2).sum().backward()
    assert torch.all(x.grad[1] == 0) and torch.isfinite(x.grad).all() and x.grad[0].abs().sum() > 0


def test_lengths_may_live_anywhere_and_be_any_int_type():
    enc = RNNEncoder(3, 4)
    x = torch.randn(2, 3, 3)
    a = enc(x, torch.tensor([3, 1]))
    b = enc(x, [3, 1])
    c = enc(x, torch.tensor([3, 1], dtype=torch.int32))
    assert torch.equal(a.final, b.final) and torch.equal(a.final, c.final)


@pytest.mark.parametrize("lengths,match", [
    ([3, -1], r"lengths\[1\] = -1 is outside 0..3"),
    ([4, 1], r"lengths\[0\] = 4 is outside 0..3"),
    ([3], r"one entry per row"),
    ([3.0, 1.0], r"integers"),
])
def test_bad_lengths_raise_value_error(lengths, match):
    enc = RNNEncoder(3, 4)
    with pytest.raises(ValueError, match=match):
        enc(torch.randn(2, 3, 3), torch.tensor(lengths))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_cast_to_the_parameters_dtype(dtype):
    enc = RNNEncoder(3, 4, bidirectional=True)
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 2])
    out = enc(x.to(dtype), lengths)
    ref = enc(x.to(dtype).float(), lengths)  # what the cast gives: the same numbers, in float32
    assert out.final.dtype == torch.float32 and torch.equal(out.final, ref.final)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_input_is_a_type_error_naming_the_dtype(dtype):
    with pytest.raises(TypeError, match=f"got dtype {dtype}.*embed integer ids first"):
        RNNEncoder(3, 4)(torch.zeros(2, 3, 3, dtype=dtype), torch.tensor([3, 1]))


def test_lengths_none_is_a_type_error():
    with pytest.raises(TypeError, match="lengths is None: pass one length per row"):
        RNNEncoder(3, 4)(torch.randn(2, 3, 3), None)


def test_wrong_feature_size_raises():
    with pytest.raises(ValueError, match="feature size 5.*input_size=3"):
        RNNEncoder(3, 4)(torch.randn(2, 3, 5), torch.tensor([3, 1]))


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    enc = RNNEncoder(3, 8, "lstm", 2, True, dropout=0.5)
    x, lengths = torch.randn(4, 6, 3), torch.tensor([6, 4, 0, 2])
    enc.train()
    a, b = enc(x, lengths).final, enc(x, lengths).final
    assert not torch.equal(a, b)
    enc.eval()
    check_against_alone(enc, x, lengths)


def test_reverse_within_lengths_is_an_involution():
    from encoders.torch.masking import reverse_index

    lengths = torch.tensor([4, 2, 0])
    idx = reverse_index(lengths, 4)
    assert idx.tolist() == [[3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 2, 3]]
    assert torch.equal(idx.gather(1, idx), torch.arange(4).expand(3, 4))
    x = torch.arange(12.0).view(3, 4, 1)
    rev = reverse_within_lengths(x, lengths)
    assert rev[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7], [8, 9, 10, 11]]
    assert torch.equal(reverse_within_lengths(rev, lengths), x)


# -- embedding --------------------------------------------------------------------------------
def test_embedding_pad_vectors_are_zero_even_after_loading_weights():
    emb = PaddedEmbedding(10, 4, padding_idx=0)
    emb.load_state_dict({"weight": torch.randn(10, 4)})  # pad row now non-zero in the table
    tokens = torch.tensor([[3, 5, 0, 0], [0, 0, 0, 0]])
    out = emb(tokens)
    assert torch.all(out[0, 2:] == 0) and torch.all(out[1] == 0)
    assert torch.equal(out[0, 0], emb.weight[3])


def test_embedding_pad_row_gets_no_gradient_and_never_changes():
    torch.manual_seed(0)
    emb = PaddedEmbedding(10, 4, padding_idx=2)
    emb.load_state_dict({"weight": torch.randn(10, 4)})
    before = emb.weight[2].clone()
    opt = torch.optim.Adam(emb.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        emb(torch.tensor([[1, 2, 3, 2]])).pow(2).sum().backward()
        assert torch.all(emb.weight.grad[2] == 0)
        opt.step()
    assert torch.equal(emb.weight[2], before)


@pytest.mark.parametrize("bad,match", [(10, "token id 10 at position \\(0, 1\\)"), (-3, "token id -3")])
def test_embedding_out_of_range_ids_name_the_id(bad, match):
    with pytest.raises(ValueError, match=match):
        PaddedEmbedding(10, 4)(torch.tensor([[1, bad]]))


def test_embedding_rejects_float_tokens():
    with pytest.raises(TypeError, match="integer ids"):
        PaddedEmbedding(10, 4)(torch.tensor([[1.0, 2.0]]))


# -- pooling ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["last", "mean", "max", "attention"])
def test_pooling_matches_reference_and_is_zero_on_empty_rows(mode):
    torch.manual_seed(0)
    pool = MaskedPooling(mode, input_size=3)
    seq = torch.randn(4, 5, 3) * 100
    lengths = torch.tensor([5, 2, 0, 1])
    seq = seq * (torch.arange(5)[None, :] < lengths[:, None]).unsqueeze(-1)
    out = pool(seq, lengths)
    assert torch.isfinite(out).all() and torch.all(out[2] == 0)
    for b in (0, 1, 3):
        rows = seq[b, : lengths[b]]
        if mode == "last":
            want = rows[-1]
        elif mode == "mean":
            want = rows.mean(0)
        elif mode == "max":
            want = rows.max(0).values
        else:
            want = (torch.softmax(pool.score(rows), 0) * rows).sum(0)
        torch.testing.assert_close(out[b], want)


def test_attention_pooling_all_empty_batch_has_finite_gradients():
    pool = MaskedPooling("attention", input_size=3)
    seq = torch.zeros(2, 3, 3, requires_grad=True)
    out = pool(seq, torch.tensor([0, 0]))
    out.sum().backward()
    assert torch.all(out == 0) and torch.isfinite(seq.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in pool.parameters())
