"""Validation at the public boundary, both backends, eager and graph mode.

Each bad input must raise ValueError/TypeError (in graph mode: a TF assertion, which ``fit``
surfaces as InvalidArgumentError) whose message names the offending value and where it is.
Cases already asserted in test_torch_encoder.py / test_keras_layers.py (out-of-range ids and bad
lengths in torch, masks with holes through a tf.function, ...) are not repeated; this file adds
the other spellings of each item and the ``model.fit`` graph path.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from encoders.config import ClassifierSpec  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from encoders.keras import MaskedPooling as KMaskedPooling  # noqa: E402
from encoders.keras import PaddedEmbedding as KPaddedEmbedding  # noqa: E402
from encoders.keras import RNNEncoder as KRNNEncoder  # noqa: E402
from encoders.keras.models import build_classifier, compile_classifier  # noqa: E402
from encoders.torch import MaskedPooling, PaddedEmbedding, RNNEncoder  # noqa: E402

# ====================================== torch ==============================================


# -- token ids outside the vocabulary or negative ---------------------------------------------------
@pytest.mark.parametrize("tokens,bad,pos,dtype", [
    ([[1, 2], [3, 10]], 10, (1, 1), torch.int64),  # == num_embeddings: one past the end
    ([[1, 2], [3, 10]], 10, (1, 1), torch.int32),
    ([[0, -1, 2]], -1, (0, 1), torch.int64),
    ([[0, -1, 2]], -1, (0, 1), torch.int16),
    ([[1, 2, 3, 4, 1 << 40]], 1 << 40, (0, 4), torch.int64),  # far out: must not wrap or index garbage
])
def test_torch_embedding_id_out_of_range_names_id_and_position(tokens, bad, pos, dtype):
    with pytest.raises(ValueError, match=rf"token id {bad} at position \({pos[0]}, {pos[1]}\).*\[0, 10\)"):
        PaddedEmbedding(10, 3)(torch.tensor(tokens, dtype=dtype))


def test_torch_classifier_forward_checks_ids_before_the_encoder():
    from encoders.torch import SequenceClassifier

    clf = SequenceClassifier(vocab_size=6, num_classes=2, embedding_dim=3, hidden_size=4)
    with pytest.raises(ValueError, match=r"token id 6 at position \(1, 0\)"):
        clf(torch.tensor([[1, 2], [6, 0]]), torch.tensor([2, 1]))


# -- non-integer tokens ------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens,match", [
    (torch.tensor([[True, False]]), r"integer ids, got dtype torch\.bool"),
    (torch.tensor([[1.0, 2.0]], dtype=torch.float64), r"integer ids, got dtype torch\.float64"),
    (torch.tensor([[1 + 0j]]), r"integer ids, got dtype torch\.complex64"),
    ([[1, 2]], r"torch\.Tensor of integer ids, got list"),
    (np.array([[1, 2]]), r"torch\.Tensor of integer ids, got ndarray"),
])
def test_torch_embedding_non_integer_tokens_are_type_errors(tokens, match):
    with pytest.raises(TypeError, match=match):
        PaddedEmbedding(10, 3)(tokens)


# -- lengths outside 0..T, wrong count, wrong feature size --------------------------------------------
@pytest.mark.parametrize("lengths,match", [
    (torch.tensor([[3, 1]]), r"one entry per row: expected shape \(2,\), got \(1, 2\)"),
    (torch.tensor(3), r"one entry per row: expected shape \(2,\), got \(\)"),
    (torch.tensor([True, False]), r"lengths must be integers, got dtype torch\.bool"),
    ([3, 1, 2], r"one entry per row: expected shape \(2,\), got \(3,\)"),
    ([2, 2**40], r"lengths\[1\] = 1099511627776 is outside 0\.\.3"),
    (np.array([-5, 1]), r"lengths\[0\] = -5 is outside 0\.\.3"),
])
@pytest.mark.parametrize("path", ["padded", "packed"])
def test_torch_encoder_bad_lengths_name_value_and_index(lengths, match, path):
    with pytest.raises(ValueError, match=match):
        RNNEncoder(3, 4, path=path)(torch.randn(2, 3, 3), lengths)


def test_torch_encoder_lengths_checked_in_empty_batches_too():
    enc = RNNEncoder(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match=r"expected shape \(0,\), got \(1,\)"):
        enc(torch.randn(0, 3, 3), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 1 is outside 0\.\.0"):
        enc(torch.randn(2, 0, 3), torch.tensor([0, 1]))


@pytest.mark.parametrize("x,match", [
    (torch.randn(2, 3), r"\[batch, time, features\] tensor, got \(2, 3\)"),
    (torch.randn(2, 3, 3, 1), r"got \(2, 3, 3, 1\)"),
    ([[[0.0] * 3] * 3] * 2, r"got list"),
    (torch.randn(2, 3, 0), r"feature size 0, but this encoder was built with input_size=3"),
])
def test_torch_encoder_bad_input_shape(x, match):
    with pytest.raises(ValueError, match=match):
        RNNEncoder(3, 4)(x, torch.tensor([3, 1]))


# -- labels out of range -------------------------------------------------------------------------------
@pytest.mark.parametrize("labels,bad", [([0, 3], 3), ([-1, 1], -1), ([2, 0], 2)])
@pytest.mark.parametrize("stage", ["training_step", "validation_step"])
def test_torch_classifier_label_out_of_range_names_the_label(labels, bad, stage):
    from encoders.torch import SequenceClassifier

    clf = SequenceClassifier(vocab_size=6, num_classes=2, embedding_dim=3, hidden_size=4)
    batch = {"tokens": torch.tensor([[1, 2], [3, 0]]), "lengths": torch.tensor([2, 1]),
             "labels": torch.tensor(labels)}
    with pytest.raises(ValueError, match=rf"label {bad} is outside \[0, 2\)"):
        getattr(clf, stage)(batch, 0)


def test_torch_pooling_checks_nothing_it_cannot_and_zeroes_empty_rows():
    """MaskedPooling takes encoder output: bad lengths there are caught by RNNEncoder first."""
    seq = torch.randn(2, 3, 4)
    out = MaskedPooling("mean")(seq, torch.tensor([0, 3]))
    assert torch.all(out[0] == 0)


# ====================================== keras ==============================================


# -- token ids outside the vocabulary or negative: eager, tf.function and model.fit ------------------
@pytest.mark.parametrize("bad,pos", [(7, (1, 0)), (-2, (0, 2)), (2**40, (1, 1))])
def test_keras_embedding_out_of_range_eager_names_id_and_position(bad, pos):
    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    ids[pos] = bad
    with pytest.raises(ValueError, match=rf"token id {bad} at position \({pos[0]}, {pos[1]}\).*\[0, 7\)"):
        KPaddedEmbedding(7, 3)(ids)


@pytest.mark.parametrize("dtype,named", [("bool", "bool"), ("float16", "float"), ("float64", "float")])
def test_keras_embedding_non_integer_ids_are_type_errors(dtype, named):
    """(Keras casts float input to the layer's float dtype before call, so float64 is named float32.)"""
    with pytest.raises(TypeError, match=rf"integer token ids, got dtype {named}"):
        KPaddedEmbedding(7, 3)(np.ones((1, 2), dtype=dtype))


def test_keras_embedding_non_integer_ids_refused_in_graph_mode_too():
    emb = KPaddedEmbedding(7, 3)
    graph = tf.function(lambda ids: emb(ids), input_signature=[tf.TensorSpec([None, None], tf.float32)])
    with pytest.raises(TypeError, match="integer token ids, got dtype float32"):
        graph(tf.ones((1, 2)))


def _tiny_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return compile_classifier(build_classifier(ClassifierSpec(10, 2, embedding_dim=3, hidden_size=4)), lr=1e-2)


def test_keras_fit_with_out_of_range_id_names_the_id():
    model = _tiny_classifier()
    ids = np.array([[3, 4, 0], [5, 13, 2]])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside the vocabulary \[0, 10\)") as err:
        model.fit(ids, np.array([0, 1]), epochs=1, verbose=0)
    assert "token id 13 at position (" in str(err.value), "the graph error names the offending id"
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside the vocabulary"):
        model.predict(np.array([[-1, 2]]), verbose=0)


MASK_LINE = ("mask is not right-padded (it has holes or left padding): each row must be True for its first "
             "`length` steps and False after; row {} is {}")


@pytest.mark.parametrize("ids,line", [
    ([[3, 4, 0], [5, 13, 2]], "token id 13 at position (1, 1) is outside the vocabulary [0, 10)"),
    ([[-1, 2, 0], [4, 0, 0]], "token id -1 at position (0, 0) is outside the vocabulary [0, 10)"),
    ([[3, 0, 4], [5, 6, 0]], MASK_LINE.format(0, [1, 0, 1])),
    ([[3, 4, 0], [0, 0, 6]], MASK_LINE.format(1, [0, 0, 1]))], ids=["too big", "negative", "hole", "left padding"])
def test_keras_graph_mode_errors_carry_the_eager_one_line_message(ids, line):
    """model.predict runs in graph mode and raises TensorFlow's InvalidArgumentError (TF puts its node
    trace first); the message holds, as one line, exactly the ValueError's line of an eager call."""
    model = _tiny_classifier()
    with pytest.raises(ValueError) as eager:
        model(np.array(ids))
    with pytest.raises(tf.errors.InvalidArgumentError) as graph:
        model.predict(np.array(ids), verbose=0)
    assert line in str(eager.value) and f"[{line}]" in str(graph.value), str(graph.value)[-600:]


# -- masks that are not right-padded: eager, tf.function, model.fit ----------------------------------
BAD_MASKS = {"hole": [1, 0, 1, 0], "left": [0, 0, 1, 1], "all_but_first": [0, 1, 1, 1], "inner": [0, 1, 0, 0]}


@pytest.mark.parametrize("name", sorted(BAD_MASKS))
def test_keras_encoder_mask_not_right_padded_eager_names_the_row(name):
    mask = np.array([[1, 1, 1, 0], BAD_MASKS[name], [0, 0, 0, 0]], bool)
    x = np.ones((3, 4, 2), "float32")
    with pytest.raises(ValueError, match=rf"not right-padded.*row 1 is \[{', '.join(map(str, BAD_MASKS[name]))}\]"):
        KRNNEncoder(3, bidirectional=True)(x, mask=mask)
    with pytest.raises(ValueError, match=r"not right-padded.*row 1"):
        KMaskedPooling("max")(x, mask=mask)


@pytest.mark.parametrize("ids", [[[3, 0, 4], [5, 6, 0]], [[0, 3, 4], [5, 6, 0]]], ids=["hole", "left"])
def test_keras_fit_with_pad_ids_inside_a_row_is_refused(ids):
    """Masks come from PaddedEmbedding in fit: a pad id inside a row makes a hole (or left padding)."""
    model = _tiny_classifier()
    with pytest.raises(tf.errors.InvalidArgumentError, match="not right-padded"):
        model.fit(np.array(ids), np.array([0, 1]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"not right-padded.*row 0"):
        model(np.array(ids))  # eager call: a ValueError naming the row


def test_keras_mask_error_in_graph_mode_names_the_row():
    enc = KRNNEncoder(3)
    graph = tf.function(lambda x, m: enc(x, mask=m),
                        input_signature=[tf.TensorSpec([None, None, 2]), tf.TensorSpec([None, None], tf.bool)])
    mask = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool)
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        graph(tf.ones((2, 4, 2)), tf.constant(mask))
    msg = str(err.value)
    assert "not right-padded" in msg
    tail = msg.split("False after")[-1]
    assert "row" in tail and "1" in tail, f"the graph error should name row 1: {msg[:500]}"


# -- wrong feature size / mask shape --------------------------------------------------------------------
def test_keras_encoder_wrong_feature_size_after_build():
    enc = KRNNEncoder(3)
    enc(np.ones((1, 2, 4), "float32"))  # built for 4 features
    with pytest.raises(ValueError, match=r"feature size 5.*\b4\b"):
        enc(np.ones((1, 2, 5), "float32"))


def test_keras_encoder_mask_of_wrong_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"mask must have shape \[batch, time\] with time = 4, got \(2, 3\)"):
        KRNNEncoder(3)(np.ones((2, 4, 2), "float32"), mask=np.ones((2, 3), bool))


# -- labels out of range (Keras training) -----------------------------------------------------------------
@pytest.mark.parametrize("bad", [2, -1])
def test_keras_fit_label_out_of_range_names_the_label(bad):
    """On CPU TensorFlow's own check names the label (on GPU it would give NaN: the data loaders
    check labels against num_classes before training, see test_data_errors.py)."""
    model = _tiny_classifier()
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"label value of {bad} .*\[0, 2\)"):
        model.fit(np.array([[3, 4], [5, 0]]), np.array([0, bad]), epochs=1, verbose=0)
