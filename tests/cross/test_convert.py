"""Weight port torch <-> Keras: after copy_weights the outputs agree (parity, not just shapes)."""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import ROOT  # noqa: E402
import torch  # noqa: E402

from encoders.convert import copy_weights, keras_encoder_like, torch_encoder_like  # noqa: E402
from encoders.keras import PaddedEmbedding as KPaddedEmbedding  # noqa: E402
from encoders.keras import RNNEncoder as KRNNEncoder  # noqa: E402

I, H = 3, 4
ATOL = 1e-5
CONFIGS = [(cell, layers, bi) for cell in ("lstm", "gru") for layers in (1, 2) for bi in (False, True)]
LENGTHS = [6, 0, 3, 1, 0]  # empty rows included; T = 6


def torch_rnn(cell, layers, bi, seed=0):
    torch.manual_seed(seed)
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    return cls(I, H, layers, batch_first=True, bidirectional=bi).eval()


def keras_encoder(cell, layers, bi):
    enc = KRNNEncoder(H, cell=cell, num_layers=layers, bidirectional=bi)
    enc.build((None, None, I))
    return enc


def batch(lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    T = max(max(lengths), 1)
    x = rng.normal(size=(len(lengths), T, I)).astype("float32")
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 50.0  # padding garbage must not matter
    return x, mask


def check_keras_against_torch_alone(enc, ref, x, mask):
    """Keras encoder on the padded batch vs torch.nn.LSTM/GRU on each row alone (batch of 1)."""
    out = enc(x, mask=mask)
    seq, final = np.asarray(out["sequence"]), np.asarray(out["final"])
    D = 2 if ref.bidirectional else 1
    for b, n in enumerate(mask.sum(1)):
        assert np.all(seq[b, n:] == 0)
        if n == 0:
            assert np.all(final[b] == 0)
            continue
        with torch.no_grad():
            ref_seq, state = ref(torch.from_numpy(x[b:b + 1, :n]))
        h_n = (state[0] if isinstance(state, tuple) else state).numpy()  # [L*D, 1, H]
        np.testing.assert_allclose(seq[b, :n], ref_seq[0].numpy(), atol=ATOL, rtol=0)
        top = h_n[-D:, 0]  # torch: forward h at the last step, backward h at step 0
        np.testing.assert_allclose(final[b], top.reshape(-1), atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
def test_torch_to_keras_parity(cell, layers, bi):
    ref = torch_rnn(cell, layers, bi)
    with torch.no_grad():  # non-zero biases on both torch biases, so their sum matters
        for name, p in ref.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    enc = keras_encoder(cell, layers, bi)
    copy_weights(ref, enc)
    check_keras_against_torch_alone(enc, ref, *batch())


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
def test_keras_to_torch_parity(cell, layers, bi):
    keras.utils.set_random_seed(1)
    enc = keras_encoder(cell, layers, bi)
    rng = np.random.default_rng(1)  # Keras starts biases at 0/1: randomise everything
    enc.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in enc.get_weights()])
    ref = torch_rnn(cell, layers, bi, seed=99)
    copy_weights(enc, ref)
    check_keras_against_torch_alone(enc, ref, *batch(seed=1))


def test_round_trip_is_exact():
    ref = torch_rnn("gru", 2, True)
    enc = keras_encoder("gru", 2, True)
    back = torch_rnn("gru", 2, True, seed=5)
    copy_weights(ref, enc)
    copy_weights(enc, back)
    for (name, a), (_, b) in zip(ref.state_dict().items(), back.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7, err_msg=name)


# -- against our own torch encoder ---------------------------------------------------------------
def _our_torch():
    pytest.importorskip("encoders.torch", reason="encoders.torch is not available")
    import encoders.torch

    return encoders.torch


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
@pytest.mark.parametrize("direction", ["torch_to_keras", "keras_to_torch"])
def test_parity_with_encoders_torch(cell, layers, bi, direction):
    T_mod = _our_torch()
    torch.manual_seed(3)
    tenc = T_mod.RNNEncoder(I, H, cell, layers, bi, 0.0).eval()
    if direction == "torch_to_keras":
        kenc = keras_encoder_like(tenc)
    else:
        kenc = keras_encoder(cell, layers, bi)
        rng = np.random.default_rng(3)
        kenc.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in kenc.get_weights()])
        copy_weights(kenc, tenc)
    x, mask = batch(seed=3)
    with torch.no_grad():
        tout = tenc(torch.from_numpy(x), torch.from_numpy(mask.sum(1)))
    kout = kenc(x, mask=mask)
    np.testing.assert_allclose(np.asarray(kout["sequence"]), tout.sequence.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(kout["final"]), tout.final.numpy(), atol=ATOL, rtol=0)


def test_all_empty_batch_with_encoders_torch():
    T_mod = _our_torch()
    tenc = T_mod.RNNEncoder(I, H, "lstm", 2, True).eval()
    kenc = keras_encoder_like(tenc)
    x, mask = batch([0, 0, 0])
    kout = kenc(x, mask=mask)
    with torch.no_grad():
        tout = tenc(torch.from_numpy(x), torch.zeros(3, dtype=torch.long))
    assert np.all(np.asarray(kout["final"]) == 0) and np.all(tout.final.numpy() == 0)
    assert np.all(np.asarray(kout["sequence"]) == 0)


def test_torch_encoder_like_builds_and_copies():
    T_mod = _our_torch()
    kenc = KRNNEncoder(H, cell="gru", num_layers=2, bidirectional=True, dropout=0.25)
    tenc = torch_encoder_like(kenc, input_size=I).eval()
    assert isinstance(tenc, T_mod.RNNEncoder)
    assert (tenc.input_size, tenc.hidden_size, tenc.cell, tenc.num_layers, tenc.bidirectional, tenc.dropout) == \
        (I, H, "gru", 2, True, 0.25)
    x, mask = batch(seed=4)
    with torch.no_grad():
        tout = tenc(torch.from_numpy(x), torch.from_numpy(mask.sum(1)))
    np.testing.assert_allclose(np.asarray(kenc(x, mask=mask)["final"]), tout.final.numpy(), atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="input_size=5"):
        torch_encoder_like(kenc, input_size=5)


# -- embeddings ----------------------------------------------------------------------------------
def test_embedding_both_directions():
    ids = np.array([[1, 2, 0], [5, 0, 0], [0, 0, 0]])
    src = torch.nn.Embedding(6, 3)  # plain module with a weight: pad row non-zero on purpose
    kemb = KPaddedEmbedding(6, 3)
    copy_weights(src, kemb)  # builds the (unbuilt) Keras embedding itself
    want = src.weight.detach().numpy()[ids] * (ids != 0)[..., None]
    np.testing.assert_allclose(np.asarray(kemb(ids)), want, atol=1e-7)
    try:
        from encoders.torch import PaddedEmbedding as TPaddedEmbedding
    except ImportError:
        return
    temb = TPaddedEmbedding(6, 3)
    copy_weights(kemb, temb)
    with torch.no_grad():
        np.testing.assert_allclose(temb(torch.from_numpy(ids)).numpy(), np.asarray(kemb(ids)), atol=1e-7)
    with pytest.raises(ValueError, match="padding_idx"):
        copy_weights(temb, KPaddedEmbedding(6, 3, padding_idx=1))


def test_embedding_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(7, 3\).*\(6, 3\)"):
        copy_weights(torch.nn.Embedding(6, 3), KPaddedEmbedding(7, 3))


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("torch_cfg,keras_cfg,word", [
    (("lstm", 1, False), ("gru", 1, False), "cell"),
    (("lstm", 2, False), ("lstm", 1, False), "num_layers"),
    (("gru", 1, True), ("gru", 1, False), "directions"),
])
def test_structure_mismatch_names_it(torch_cfg, keras_cfg, word):
    ref, enc = torch_rnn(*torch_cfg), keras_encoder(*keras_cfg)
    with pytest.raises(ValueError, match=word):
        copy_weights(ref, enc)
    with pytest.raises(ValueError, match=word):
        copy_weights(enc, ref)


def test_size_mismatch_names_it():
    enc = KRNNEncoder(H)
    enc.build((None, None, I + 1))
    with pytest.raises(ValueError, match="input_size: torch 3 vs keras 4"):
        copy_weights(torch_rnn("lstm", 1, False), enc)
    enc = KRNNEncoder(H + 1)
    enc.build((None, None, I))
    with pytest.raises(ValueError, match="hidden_size"):
        copy_weights(torch_rnn("lstm", 1, False), enc)


def test_unbuilt_keras_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match=r"not built.*build\(\(None, None, input_size\)\)"):
        copy_weights(torch_rnn("lstm", 1, False), KRNNEncoder(H))


def test_wrong_pairs():
    with pytest.raises(TypeError):
        copy_weights(torch_rnn("lstm", 1, False), torch_rnn("lstm", 1, False))
    with pytest.raises(TypeError):
        copy_weights(torch.nn.Embedding(6, 3), keras_encoder("lstm", 1, False))
    with pytest.raises(TypeError):
        copy_weights(torch_rnn("lstm", 1, False), KPaddedEmbedding(6, 3))


def test_import_is_lazy():
    code = ("import sys, encoders.convert; bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    root = ROOT
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
