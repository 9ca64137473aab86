"""The Keras layers against their definitions: each padded row equals that sequence run alone."""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import ROOT  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from encoders.keras import MaskedPooling, PaddedEmbedding, RNNEncoder  # noqa: E402

I = 3  # input features
CONFIGS = [(cell, layers, bi) for cell in ("lstm", "gru") for layers in (1, 2) for bi in (False, True)]
_cache = {}


def encoder_fns(cell, layers, bi):
    """One encoder per config with graph-mode callers: traced once, so many batches stay fast."""
    key = (cell, layers, bi)
    if key not in _cache:
        keras.utils.set_random_seed(len(_cache))
        enc = RNNEncoder(4, cell=cell, num_layers=layers, bidirectional=bi)
        enc.build((None, None, I))
        _randomize(enc)
        padded = tf.function(lambda x, m: enc(x, mask=m),
                             input_signature=[tf.TensorSpec([None, None, I]), tf.TensorSpec([None, None], tf.bool)])
        alone = tf.function(lambda x: enc(x), input_signature=[tf.TensorSpec([None, None, I])])
        _cache[key] = enc, padded, alone
    return _cache[key]


def _randomize(layer, scale=0.5):
    """Non-zero biases too (Keras starts them at 0/1), so a wrong bias path would show."""
    rng = np.random.default_rng(0)
    layer.set_weights([rng.uniform(-scale, scale, w.shape).astype("float32") for w in layer.get_weights()])


def ragged_batch(rng, B, T, lengths=None):
    if lengths is None:
        lengths = rng.integers(0, T + 1, size=B)
    x = rng.normal(size=(B, T, I)).astype("float32")
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    x[~mask] = rng.normal(size=(int((~mask).sum()), I)) * 100  # garbage in the padding must not matter
    return x, mask, np.asarray(lengths)


def check_against_alone(enc, out, alone, x, lengths, atol=1e-5):
    B, T, _ = x.shape
    D, H = enc.num_directions, enc.hidden_size
    seq, final = np.asarray(out["sequence"]), np.asarray(out["final"])
    assert seq.shape == (B, T, D * H) and final.shape == (B, D * H)
    assert np.isfinite(seq).all() and np.isfinite(final).all()
    for b in range(B):
        n = int(lengths[b])
        assert np.all(seq[b, n:] == 0), "sequence must be exactly zero past the length"
        if n == 0:
            assert np.all(final[b] == 0), "an empty row's final must be zero"
            continue
        ref = alone(tf.constant(x[b:b + 1, :n]))
        ref_seq = np.asarray(ref["sequence"])[0]
        np.testing.assert_allclose(seq[b, :n], ref_seq, atol=atol, rtol=0)
        np.testing.assert_allclose(final[b], np.asarray(ref["final"])[0], atol=atol, rtol=0)
        # the definition of final: forward h at the last valid step, backward h at step 0
        want = ref_seq[n - 1, :H] if D == 1 else np.concatenate([ref_seq[n - 1, :H], ref_seq[0, H:]])
        np.testing.assert_allclose(final[b], want, atol=atol, rtol=0)


def random_lengths(rng, B, T, case):
    """Ragged lengths with the edge cases forced in: an empty row, a full row, all rows empty."""
    if case == 0:
        return [0] * B  # all-empty batch
    lengths = rng.integers(0, T + 1, size=B)
    lengths[rng.integers(0, B)] = 0
    lengths[rng.integers(0, B)] = T
    return lengths


@pytest.mark.parametrize("cell,layers,bi", CONFIGS)
def test_padded_rows_equal_each_sequence_alone(cell, layers, bi):
    """8 configs x 8 random ragged batches (graph mode, as in fit): 64 batches in all."""
    enc, padded, alone = encoder_fns(cell, layers, bi)
    rng = np.random.default_rng(CONFIGS.index((cell, layers, bi)))
    for case in range(8):
        B, T = int(rng.integers(2, 7)), int(rng.integers(1, 13))
        x, mask, lengths = ragged_batch(rng, B, T, random_lengths(rng, B, T, case))
        check_against_alone(enc, padded(tf.constant(x), tf.constant(mask)), alone, x, lengths)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_padded_rows_equal_each_sequence_alone_property(data):
    """The same property with hypothesis choosing the config, shape and lengths."""
    cell, layers, bi = data.draw(st.sampled_from(CONFIGS))
    enc, padded, alone = encoder_fns(cell, layers, bi)
    B = data.draw(st.integers(1, 6))
    T = data.draw(st.integers(1, 12))
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    x, mask, lengths = ragged_batch(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), B, T, lengths)
    check_against_alone(enc, padded(tf.constant(x), tf.constant(mask)), alone, x, lengths)


@pytest.mark.parametrize("cell,bi", [("lstm", True), ("gru", True), ("lstm", False)])
def test_eager_call_with_empty_rows(cell, bi):
    enc, _, alone = encoder_fns(cell, 2, bi)
    rng = np.random.default_rng(1)
    for lengths in ([5, 0, 3, 1], [0, 0], [2]):
        x, mask, lengths = ragged_batch(rng, len(lengths), max(max(lengths), 1), lengths)
        check_against_alone(enc, enc(x, mask=mask), alone, x, lengths)


def test_no_mask_means_every_step_is_valid():
    enc, padded, _ = encoder_fns("gru", 1, True)
    x = np.random.default_rng(2).normal(size=(3, 5, I)).astype("float32")
    np.testing.assert_allclose(np.asarray(enc(x)["sequence"]),
                               np.asarray(padded(x, np.ones((3, 5), bool))["sequence"]), atol=1e-6)


def test_mask_propagates_from_embedding_and_final_has_none():
    emb = PaddedEmbedding(9, I)
    enc = RNNEncoder(4, bidirectional=True)
    ids = np.array([[3, 4, 0, 0], [0, 0, 0, 0], [1, 2, 3, 8]])
    out = enc(emb(ids))
    np.testing.assert_array_equal(np.asarray(out["sequence"]._keras_mask), ids != 0)
    assert getattr(out["final"], "_keras_mask", None) is None
    assert np.all(np.asarray(out["sequence"])[ids == 0] == 0) and np.all(np.asarray(out["final"])[1] == 0)
    assert enc.compute_mask(None, None) == {"sequence": None, "final": None}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_finite_and_zero_on_empty_rows(cell):
    enc = RNNEncoder(4, cell=cell, num_layers=2, bidirectional=True)
    x, mask, _ = ragged_batch(np.random.default_rng(3), 4, 6, [6, 0, 2, 0])
    x = tf.constant(x)
    for m in (mask, np.zeros_like(mask)):  # some empty rows; all rows empty
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = enc(x, mask=m)
            loss = tf.reduce_sum(out["sequence"] ** 2) + tf.reduce_sum(out["final"])
        grads = tape.gradient(loss, [x] + enc.trainable_variables)
        assert all(g is not None and np.isfinite(np.asarray(tf.convert_to_tensor(g))).all() for g in grads)
        gx = np.asarray(grads[0])
        assert np.all(gx[~m] == 0), "padding and empty rows must get zero gradient"


@pytest.mark.parametrize("layer_cls", [keras.layers.LSTM, keras.layers.GRU])
def test_inner_rnns_run_unmasked_so_cudnn_has_nothing_to_reject(layer_cls, monkeypatch):
    """No GPU here: record what the inner RNNs get, in graph mode, for empty rows and batches.

    cuDNN refuses all-False mask rows and non-right-padded masks (a tf.Assert inside fit). The
    encoder hands its inner layers no mask at all (correct because rows are right-padded and the
    backward direction is reversed within each length), so Keras keeps them on cuDNN on a GPU.
    """
    seen = []
    original = layer_cls.inner_loop

    def recorded(self, sequences, initial_state, mask, training=False):
        seen.append(mask[0] if isinstance(mask, (list, tuple)) else mask)
        return original(self, sequences, initial_state, mask, training=training)

    monkeypatch.setattr(layer_cls, "inner_loop", recorded)
    enc = RNNEncoder(4, cell="lstm" if layer_cls is keras.layers.LSTM else "gru", num_layers=2, bidirectional=True)
    graph = tf.function(lambda x, m: enc(x, mask=m))
    for lengths in ([5, 0, 2], [0, 0, 0]):
        x, mask, _ = ragged_batch(np.random.default_rng(9), 3, 5, lengths)
        out = graph(tf.constant(x), tf.constant(mask))
        np.testing.assert_array_equal(np.asarray(out["sequence"])[~mask], 0.0)
    assert len(seen) == 2 * 4 and all(m is None for m in seen)


def test_dropout_between_layers_only_when_training():
    enc = RNNEncoder(4, num_layers=2, dropout=0.5)
    x, mask, _ = ragged_batch(np.random.default_rng(4), 3, 5, [5, 2, 0])
    a = np.asarray(enc(x, mask=mask, training=False)["sequence"])
    b = np.asarray(enc(x, mask=mask, training=False)["sequence"])
    np.testing.assert_array_equal(a, b)
    c = np.asarray(enc(x, mask=mask, training=True)["sequence"])
    assert not np.allclose(a, c) and np.all(c[~mask] == 0)
    one = RNNEncoder(4, num_layers=1, dropout=0.5)  # nothing between layers: no dropout at all
    np.testing.assert_array_equal(np.asarray(one(x, mask=mask, training=True)["final"]),
                                  np.asarray(one(x, mask=mask, training=False)["final"]))


@pytest.mark.parametrize("bad", [[[1, 0, 1, 0]], [[0, 1, 1, 1]], [[0, 0, 1, 0]]], ids=["hole", "left", "middle"])
def test_mask_not_right_padded_is_rejected(bad):
    enc, padded, _ = encoder_fns("lstm", 1, True)
    mask = np.array(bad + [[1, 1, 0, 0]], bool)
    x = np.ones((2, 4, I), "float32")
    with pytest.raises(ValueError, match="not right-padded") as err:
        enc(x, mask=mask)
    assert "row 0" in str(err.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not right-padded"):
        padded(tf.constant(x), tf.constant(mask))  # graph mode, as in model.fit
    with pytest.raises(ValueError, match="not right-padded"):
        MaskedPooling("mean")(x, mask=mask)


def test_config_errors():
    with pytest.raises(ValueError, match="cell"):
        RNNEncoder(4, cell="rnn")
    with pytest.raises(ValueError, match="dropout"):
        RNNEncoder(4, dropout=1.0)
    with pytest.raises(ValueError, match="padding_idx"):
        PaddedEmbedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="pooling mode"):
        MaskedPooling("sum")


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_input_is_a_type_error_naming_the_dtype(dtype):
    with pytest.raises(TypeError, match=f"got dtype {dtype}; embed integer ids first"):
        RNNEncoder(4)(np.zeros((2, 3, I), dtype))


def test_zero_time_steps():
    out = RNNEncoder(4, bidirectional=True)(np.zeros((2, 0, I), "float32"))
    assert out["sequence"].shape == (2, 0, 8) and np.all(np.asarray(out["final"]) == 0)


def test_get_config_round_trip():
    enc = RNNEncoder(5, cell="gru", num_layers=3, bidirectional=True, dropout=0.25, name="enc")
    again = RNNEncoder.from_config(enc.get_config())
    for k in ("hidden_size", "cell", "num_layers", "bidirectional", "dropout", "name"):
        assert getattr(again, k) == getattr(enc, k)


# -- embedding -----------------------------------------------------------------------------------
def test_embedding_zero_pad_vectors_and_mask():
    emb = PaddedEmbedding(7, 3, padding_idx=2)
    emb.build(None)
    assert np.all(emb.embeddings.numpy()[2] == 0), "pad row starts at zero"
    emb.embeddings.assign(np.ones((7, 3), "float32"))  # a weight load with a non-zero pad row
    ids = np.array([[1, 2, 6], [2, 2, 2]])
    out = np.asarray(emb(ids))
    assert np.all(out[ids == 2] == 0) and np.all(out[ids != 2] == 1)
    np.testing.assert_array_equal(np.asarray(emb.compute_mask(ids)), ids != 2)


@pytest.mark.parametrize("bad_id", [-1, 7, 100])
def test_embedding_out_of_range_id(bad_id):
    emb = PaddedEmbedding(7, 3)
    with pytest.raises(ValueError, match=rf"token id {bad_id}\b"):
        emb(np.array([[1, 2, bad_id]]))
    graph = tf.function(lambda ids: emb(ids), input_signature=[tf.TensorSpec([None, None], tf.int64)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the vocabulary") as err:
        graph(tf.constant([[1, 2, bad_id]], tf.int64))
    assert str(bad_id) in str(err.value)


def test_embedding_rejects_non_integer_ids():
    with pytest.raises(TypeError, match="integer"):
        PaddedEmbedding(7, 3)(np.array([[1.0, 2.0]], "float32"))


def _classifier(pooling="attention", cell="lstm", layers=1, bi=True, dropout=0.0):
    ids = keras.Input((None,), dtype="int64")
    x = PaddedEmbedding(11, 4, name="emb")(ids)
    out = RNNEncoder(4, cell=cell, num_layers=layers, bidirectional=bi, dropout=dropout, name="enc")(x)
    pooled = MaskedPooling(pooling, name="pool")(out["sequence"])
    logits = keras.layers.Dense(2, name="head")(keras.layers.Concatenate()([out["final"], pooled]))
    return keras.Model(ids, logits)


def test_fit_with_empty_rows_keeps_pad_row_and_is_finite():
    keras.utils.set_random_seed(5)
    model = _classifier()
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    emb = model.get_layer("emb")
    before = emb.embeddings.numpy().copy()
    # batch 1 has empty rows, batch 2 is all padding: fit runs in graph mode, where the mask checks,
    # the empty-row guard and the zeroing must all hold
    ids = np.array([[3, 4, 5, 0], [0, 0, 0, 0], [7, 0, 0, 0], [0, 0, 0, 0]] + [[0, 0, 0, 0]] * 4)
    labels = np.array([0, 1, 1, 0, 1, 0, 1, 0])
    hist = model.fit(ids, labels, batch_size=4, epochs=3, shuffle=False, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    after = emb.embeddings.numpy()
    np.testing.assert_array_equal(after[0], before[0])
    assert np.all(after[0] == 0)
    assert not np.allclose(after[3], before[3]), "real rows do train"
    assert np.isfinite(model.predict(ids, batch_size=4, verbose=0)).all()


def test_keras_round_trip_safe_mode(tmp_path):
    keras.utils.set_random_seed(6)
    model = _classifier(pooling="attention", cell="gru", layers=2, bi=True, dropout=0.1)
    ids = np.array([[3, 4, 5, 0], [0, 0, 0, 0], [7, 10, 0, 0]])
    want = np.asarray(model(ids))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(ids)), want)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded._flatten_layers())


# -- pooling -------------------------------------------------------------------------------------
def numpy_pool(mode, seq, lengths, w=None, b=None):
    out = np.zeros((seq.shape[0], seq.shape[2]), "float64")
    for i, n in enumerate(lengths):
        if n == 0:
            continue
        s = seq[i, :n].astype("float64")
        if mode == "last":
            out[i] = s[-1]
        elif mode == "mean":
            out[i] = s.mean(0)
        elif mode == "max":
            out[i] = s.max(0)
        else:
            scores = s @ w[:, 0] + b[0]
            p = np.exp(scores - scores.max())
            out[i] = (p / p.sum()) @ s
    return out


@pytest.mark.parametrize("mode", ["last", "mean", "max", "attention"])
def test_pooling_matches_numpy_and_is_zero_on_empty_rows(mode):
    rng = np.random.default_rng(7)
    pool = MaskedPooling(mode)
    for _ in range(10):
        B, T = rng.integers(1, 7), rng.integers(1, 13)
        lengths = rng.integers(0, T + 1, size=B)
        lengths[rng.integers(0, B)] = 0
        x, mask, _ = ragged_batch(rng, B, T, lengths)
        x[~mask] = np.where(rng.random(int((~mask).sum()))[:, None] < 0.5, np.nan, -1e30)  # garbage
        got = np.asarray(pool(x, mask=mask))
        w, b = (pool.score.get_weights() if mode == "attention" else (None, None))
        np.testing.assert_allclose(got, numpy_pool(mode, x, lengths, w, b), atol=1e-5, rtol=1e-5)
        assert np.all(got[lengths == 0] == 0) and np.isfinite(got).all()
    assert pool.compute_mask(None, None) is None


@pytest.mark.parametrize("mode", ["last", "mean", "max", "attention"])
def test_pooling_gradients_finite_on_empty_rows(mode):
    pool = MaskedPooling(mode)
    x = tf.constant(np.random.default_rng(8).normal(size=(3, 4, 2)).astype("float32"))
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(pool(x, mask=mask))
    grads = tape.gradient(y, [x] + pool.trainable_variables)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    assert np.all(np.asarray(grads[0])[1] == 0)


def test_import_does_not_pull_torch():
    code = ("import sys, encoders.keras; bad = [m for m in ('torch',) if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    root = ROOT
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
