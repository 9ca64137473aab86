"""Tagger and regressor on both backends: weight port parity, the same masked loss, and padding
invariance of the loss and figures (the same sentences in any batches give the same sums)."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from encoders.config import ClassifierSpec
from encoders.convert.runs import max_difference
from encoders.convert.weights import copy_weights
from encoders.data.flat import TokenBuffer
from encoders.tasks import TaggingTally

TAGS = ["B-LOC", "B-PER", "I-PER", "O"]
V = 30


def torch_tagger(seed=0, **kw):
    from encoders.torch.models import SequenceTagger

    torch.manual_seed(seed)
    spec = ClassifierSpec(V, len(TAGS), embedding_dim=6, hidden_size=5, task="tagging", **kw)
    return SequenceTagger.from_spec(spec, tag_names=TAGS).eval()


def keras_like(tm):
    from encoders.convert.runs import build_keras_model

    km = build_keras_model(tm.spec)
    copy_weights(tm.embedding, km.get_layer("embedding"))
    copy_weights(tm.encoder, km.get_layer("encoder"))
    km.get_layer("head").kernel.assign(tm.head.weight.detach().numpy().T)
    km.get_layer("head").bias.assign(tm.head.bias.detach().numpy())
    return km


@pytest.mark.parametrize("cell,layers,bi", [("lstm", 1, True), ("gru", 2, True), ("lstm", 2, False)])
def test_tagger_port_parity_both_ways(cell, layers, bi):
    from encoders.torch.models import torch_model_class

    tm = torch_tagger(cell=cell, num_layers=layers, bidirectional=bi)
    km = keras_like(tm)
    assert max_difference(tm, km) <= 1e-5
    back = torch_model_class("tagging").from_spec(tm.spec, tag_names=TAGS)
    copy_weights(km.get_layer("embedding"), back.embedding)
    copy_weights(km.get_layer("encoder"), back.encoder)
    back.head.load_state_dict(tm.head.state_dict())
    assert max_difference(back, km) <= 1e-5


def test_regressor_port_parity():
    from encoders.convert.runs import build_keras_model
    from encoders.torch.models import SequenceRegressor

    torch.manual_seed(0)
    tm = SequenceRegressor.from_spec(ClassifierSpec(V, 1, embedding_dim=6, hidden_size=5, pooling="attention",
                                                    task="regression")).eval()
    km = build_keras_model(tm.spec)
    copy_weights(tm.embedding, km.get_layer("embedding"))
    copy_weights(tm.encoder, km.get_layer("encoder"))
    km.get_layer("pool").score.kernel.assign(tm.pool.score.weight.detach().numpy().T)
    km.get_layer("pool").score.bias.assign(tm.pool.score.bias.detach().numpy())
    km.get_layer("head").kernel.assign(tm.head.weight.detach().numpy().T)
    km.get_layer("head").bias.assign(tm.head.bias.detach().numpy())
    assert max_difference(tm, km) <= 1e-5


def batch_of(rows, tags):
    buf, tag_buf = TokenBuffer.from_lists(rows), TokenBuffer.from_lists(tags)
    return buf.pad(np.arange(len(rows)), tags=tag_buf)


def test_keras_loss_equals_torch_loss_on_the_same_batch():
    from encoders.keras.models import tagging_loss

    rng = np.random.default_rng(1)
    lengths = [5, 0, 3, 1, 7]
    b = batch_of([rng.integers(2, V, n).tolist() for n in lengths], [rng.integers(0, 4, n).tolist() for n in lengths])
    tm = torch_tagger()
    km = keras_like(tm)
    with torch.no_grad():
        total, n = tm.loss_sum(tm(torch.from_numpy(b["tokens"]), torch.from_numpy(b["lengths"])),
                               torch.from_numpy(b["tags"]))
    keras_loss = float(tagging_loss()(b["tags"], km(b["tokens"], training=False)))
    assert int(n) == sum(lengths)
    assert abs(keras_loss - float(total) / int(n)) < 1e-5


def test_an_all_empty_batch_has_loss_zero_and_finite_gradients_on_both_backends():
    import tensorflow as tf

    from encoders.keras.models import tagging_loss

    b = batch_of([[], []], [[], []])
    tm = torch_tagger().train()
    total, n = tm.loss_sum(tm(torch.from_numpy(b["tokens"]), torch.from_numpy(b["lengths"])), torch.from_numpy(b["tags"]))
    loss = total / n.clamp(min=1)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(torch.isfinite(p.grad).all() for p in tm.parameters() if p.grad is not None)
    km = keras_like(tm)
    with tf.GradientTape() as tape:
        kl = tagging_loss()(b["tags"], km(b["tokens"], training=True))
    grads = tape.gradient(kl, km.trainable_variables)
    assert float(kl) == 0.0 and all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in grads if g is not None)
    tally = TaggingTally(TAGS)
    tally.update(np.zeros((2, 1, 4)), b["tags"])
    assert tally.figures() == {"loss": 0.0, "acc": 0.0, "macro_f1": 0.0, "span_f1": 0.0}


sentences = st.lists(st.lists(st.tuples(st.integers(2, V - 1), st.integers(0, 3)), max_size=9), min_size=1, max_size=12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sentences, st.integers(1, 5), st.randoms(use_true_random=False))
def test_loss_and_figures_do_not_depend_on_batching(sents, batch_size, rnd):
    from encoders.keras.models import tagging_loss

    tm = torch_tagger()
    km = keras_like(tm)
    rows = [[w for w, _ in s] for s in sents]
    tags = [[t for _, t in s] for s in sents]

    def run(order, size):
        loss_sum, keras_sum, tally = 0.0, 0.0, TaggingTally(TAGS)
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            b = batch_of([rows[i] for i in idx], [tags[i] for i in idx])
            with torch.no_grad():
                logits = tm(torch.from_numpy(b["tokens"]), torch.from_numpy(b["lengths"]))
                total, n = tm.loss_sum(logits, torch.from_numpy(b["tags"]))
            loss_sum += float(total)
            keras_sum += float(tagging_loss()(b["tags"], km(b["tokens"], training=False))) * int(n)
            tally.update(logits.numpy(), b["tags"])
        return loss_sum, keras_sum, tally

    whole = run(list(range(len(rows))), len(rows))
    order = list(range(len(rows)))
    rnd.shuffle(order)
    parts = run(order, batch_size)
    assert abs(whole[0] - parts[0]) < 1e-4 * max(1.0, whole[0])
    assert abs(whole[1] - parts[1]) < 1e-3 * max(1.0, whole[1])  # Keras divides by (valid + epsilon)
    assert abs(whole[0] - whole[1]) < 1e-3 * max(1.0, whole[0])
    fw, fp = whole[2].figures(), parts[2].figures()
    assert fw.keys() == fp.keys() and all(abs(fw[k] - fp[k]) < 1e-6 for k in fw), (fw, fp)
    assert whole[2].tokens == parts[2].tokens == sum(map(len, rows))
