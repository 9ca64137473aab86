"""The Keras layers' contract on the backend ``KERAS_BACKEND`` names: run by ``test_backends.py``
in one subprocess per backend, since Keras reads ``KERAS_BACKEND`` once, at import.

``python -m tests.keras.backend_contract DIR [contract] [save] [load]``:
- contract: padded rows equal each row run alone (eager and compiled: ``tf.function`` on TF,
  ``jax.jit`` on jax), ``final = [fw@len-1 ; bw@0]``, empty rows and all-empty batches give zeros
  and finite training steps, masks with holes or left padding are refused, the builders fit, and the
  torch <-> Keras weight port agrees to 1e-5;
- save: a trained-looking classifier to ``DIR/<backend>.keras`` with its input and logits;
- load: every other backend's file in DIR, whose logits must match here to 1e-5.
Prints one JSON line: ``{"backend": ..., "loaded": [backends whose file loaded]}``.
"""
import json
import os
import sys

import keras
import numpy as np
from keras import ops

from encoders.config import ClassifierSpec
from encoders.keras import MaskedPooling, PaddedEmbedding, RNNEncoder
from encoders.keras.models import build_classifier

BACKEND = keras.backend.backend()
I, H, ATOL = 3, 4, 1e-5
# few configs, few shapes: on jax every new shape is a compile (test_layers.py covers all 8 on TF)
CONFIGS = [("lstm", 2, True), ("gru", 1, False)]  # the bi-GRU runs in the builders and the port


def randomize(layer, seed=0, scale=0.5):
    """Non-zero biases too (Keras starts them at 0/1), so a wrong bias path would show."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-scale, scale, w.shape).astype("float32") for w in layer.get_weights()])


def ragged(rng, B, T, case):
    """x [B,T,I] with garbage in the padding, its right-padded mask and lengths; case 0 is all-empty,
    the others have an empty row, a full row and rows of length 3 (few lengths: few jax compiles)."""
    lengths = np.zeros(B, dtype=int) if case == 0 else rng.choice([0, 3, T], size=B)
    if case:
        lengths[0], lengths[-1] = 0, T
    mask = np.arange(T)[None, :] < lengths[:, None]
    x = rng.normal(size=(B, T, I)).astype("float32")
    x[~mask] = 100.0 * rng.normal(size=(int((~mask).sum()), I))
    return x, mask, lengths


def check_encoders(rng):
    # on jax each new shape of an eager or jitted call is a compile of seconds: one config there
    for k, (cell, layers, bi) in enumerate(CONFIGS[:1] if BACKEND == "jax" else CONFIGS):
        keras.utils.set_random_seed(k)
        enc = RNNEncoder(H, cell=cell, num_layers=layers, bidirectional=bi)
        enc.build((None, None, I))
        randomize(enc, k)
        x_in, m_in = keras.Input((None, I)), keras.Input((None,), dtype="bool")
        compiled = keras.Model([x_in, m_in], enc(x_in, mask=m_in))  # predict: tf.function / jax.jit
        D = 2 if bi else 1
        for case in range(2):
            B, T = 4, 5
            x, mask, lengths = ragged(rng, B, T, case)
            for out in (enc(x, mask=mask), compiled.predict_on_batch([x, mask])):
                seq, final = ops.convert_to_numpy(out["sequence"]), ops.convert_to_numpy(out["final"])
                assert seq.shape == (B, T, D * H) and final.shape == (B, D * H), (seq.shape, final.shape)
                for b, n in enumerate(lengths):
                    assert np.all(seq[b, n:] == 0), "sequence must be exactly zero past the length"
                    if n == 0:
                        assert np.all(final[b] == 0), "an empty row's final must be zero"
                for n in set(lengths.tolist()) - {0}:
                    rows = np.flatnonzero(lengths == n)  # rows of one length, unpadded: each as if alone
                    alone = enc(x[rows, :n])
                    ref = ops.convert_to_numpy(alone["sequence"])
                    np.testing.assert_allclose(seq[rows, :n], ref, atol=ATOL, rtol=0)
                    want = ref[:, n - 1, :H] if D == 1 else np.concatenate([ref[:, n - 1, :H], ref[:, 0, H:]], -1)
                    np.testing.assert_allclose(final[rows], want, atol=ATOL, rtol=0)
                    np.testing.assert_allclose(ops.convert_to_numpy(alone["final"]), want, atol=ATOL, rtol=0)
        empty = enc(np.zeros((3, 0, I), "float32"))  # no time steps at all
        assert ops.convert_to_numpy(empty["final"]).shape == (3, D * H)
        for bad in ([[True, False, True]], [[False, True, True]]):  # a hole; left padding
            try:
                enc(np.ones((1, 3, I), "float32"), mask=np.array(bad))
            except ValueError as e:
                assert "right-padded" in str(e), e
            else:
                raise AssertionError(f"mask {bad} was accepted")


def check_pooling_and_embedding(rng):
    x, mask, lengths = ragged(rng, 5, 6, 1)
    for mode in ("mean", "max", "last", "attention"):
        pool = MaskedPooling(mode)
        out = ops.convert_to_numpy(pool(x, mask=mask))
        assert np.isfinite(out).all() and np.all(out[lengths == 0] == 0), mode
        want = {"mean": lambda r: r.mean(0), "max": lambda r: r.max(0), "last": lambda r: r[-1]}.get(mode)
        for b, n in enumerate(lengths):
            if n and want is not None:
                np.testing.assert_allclose(out[b], want(x[b, :n]), atol=ATOL, rtol=0)
    emb = PaddedEmbedding(10, 4)
    tokens = np.array([[3, 4, 0], [0, 0, 0]], dtype="int64")
    vec = ops.convert_to_numpy(emb(tokens))
    assert np.all(vec[0, 2] == 0) and np.all(vec[1] == 0) and np.all(vec[0, :2] != 0)
    np.testing.assert_array_equal(ops.convert_to_numpy(emb.compute_mask(tokens)), tokens != 0)
    for bad in (-1, 10):
        try:
            emb(np.array([[1, bad]], dtype="int64"))
        except ValueError as e:
            assert str(bad) in str(e), e
        else:
            raise AssertionError(f"id {bad} was accepted")


def check_reversal_gradient(rng):
    """jax: ``reverse_within_lengths`` carries its own gradient (the same gather, not jax's scatter):
    d sum(w * rev(x)) / dx must be rev(w) exactly, eager and jitted, over ragged rows with empty ones."""
    if BACKEND != "jax":
        return
    import jax

    from encoders.keras.masking import reverse_within_lengths

    for case in range(2):
        x, _, lengths = ragged(rng, 6, 5, case)
        w = rng.normal(size=x.shape).astype("float32")
        grad = jax.grad(lambda v: (w * reverse_within_lengths(v, lengths)).sum())
        want = np.asarray(reverse_within_lengths(w, lengths))
        for g in (grad, jax.jit(grad)):
            np.testing.assert_array_equal(np.asarray(g(x)), want)
        rows = np.flatnonzero(lengths > 0)
        np.testing.assert_array_equal(want[rows, 0], w[rows, lengths[rows] - 1])  # really reversed


def spec(task="classification", pooling="attention", cell="gru", layers=2):
    return ClassifierSpec(vocab_size=12, num_classes=1 if task == "regression" else 3, embedding_dim=5,
                          hidden_size=H, cell=cell, num_layers=layers, bidirectional=True, pooling=pooling, task=task)


def check_training_steps(rng):
    """One jitted (jax) / graph (TF) / eager (torch) SGD step per builder on batches with empty
    rows, and on an all-empty batch: the loss and every weight stay finite, the pad row stays zero."""
    from encoders.keras.models import build_regressor, build_tagger, tagging_loss

    tokens = rng.integers(1, 12, size=(4, 6)).astype("int64")
    tokens[0] = 0
    tokens[1, 2:] = 0
    empty = np.zeros_like(tokens)  # same shape: no second compile
    cases = [(build_classifier(spec()), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              lambda t: rng.integers(0, 3, size=len(t))),
             (build_tagger(spec("tagging", layers=1)), tagging_loss(), lambda t: np.where(t > 0, 1 + (t % 2), 0)),
             (build_regressor(spec("regression", "mean", "lstm", layers=1)), "mse",
              lambda t: rng.normal(size=(len(t), 1)).astype("float32"))]
    for model, loss, targets in cases:
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        if BACKEND == "jax":
            assert model.jit_compile, "our layers must let Keras jit the train step on jax"
        for batch in (tokens, empty):
            value = model.train_on_batch(batch, targets(batch))
            assert np.isfinite(value), (model.name, value)
        weights = model.get_weights()
        assert all(np.isfinite(w).all() for w in weights), model.name
        assert np.all(ops.convert_to_numpy(model.get_layer("embedding").embeddings)[0] == 0), model.name


def check_weight_port(rng):
    import torch

    from encoders.convert import copy_weights, keras_encoder_like, torch_encoder_like

    torch.manual_seed(0)
    x, mask, lengths = ragged(rng, 5, 7, 1)
    for cell, layers in (("lstm", 2), ("gru", 1)):
        t_enc = torch_encoder_like(RNNEncoder(H, cell=cell, num_layers=layers, bidirectional=True), input_size=I)
        k_enc = keras_encoder_like(t_enc)  # torch -> Keras
        with torch.no_grad():
            ref = t_enc(torch.from_numpy(x), torch.from_numpy(lengths))
        out = k_enc(x, mask=mask)
        np.testing.assert_allclose(ops.convert_to_numpy(out["final"]), ref.final.numpy(), atol=ATOL, rtol=0)
        np.testing.assert_allclose(ops.convert_to_numpy(out["sequence"]), ref.sequence.numpy(), atol=ATOL, rtol=0)
        randomize(k_enc, 7)  # Keras -> torch
        copy_weights(k_enc, t_enc)
        with torch.no_grad():
            back = t_enc(torch.from_numpy(x), torch.from_numpy(lengths))
        np.testing.assert_allclose(back.final.numpy(), ops.convert_to_numpy(k_enc(x, mask=mask)["final"]),
                                   atol=ATOL, rtol=0)


def save(folder):
    keras.utils.set_random_seed(3)
    model = build_classifier(spec())
    randomize(model, 3)
    tokens = np.array([[5, 3, 9, 1, 2], [4, 0, 0, 0, 0], [0, 0, 0, 0, 0], [7, 7, 2, 0, 0]], dtype="int64")
    model.save(os.path.join(folder, f"{BACKEND}.keras"))
    np.savez(os.path.join(folder, f"{BACKEND}.npz"), tokens=tokens, logits=ops.convert_to_numpy(model(tokens)))


def load(folder):
    loaded = []
    for other in ("tensorflow", "jax", "torch"):
        path = os.path.join(folder, f"{other}.keras")
        if other == BACKEND or not os.path.isfile(path):
            continue
        model = keras.saving.load_model(path, safe_mode=True)
        ref = np.load(os.path.join(folder, f"{other}.npz"))
        np.testing.assert_allclose(ops.convert_to_numpy(model(ref["tokens"])), ref["logits"], atol=ATOL, rtol=0)
        loaded.append(other)
    return loaded


def main(folder, steps):
    rng = np.random.default_rng(0)
    if "contract" in steps:
        check_encoders(rng)
        check_pooling_and_embedding(rng)
        check_reversal_gradient(rng)
        check_training_steps(rng)
        check_weight_port(rng)
    if "save" in steps:
        save(folder)
    loaded = load(folder) if "load" in steps else []
    print(json.dumps({"backend": BACKEND, "loaded": loaded}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["contract", "save", "load"])
