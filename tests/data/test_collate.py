"""encoders.data.collate: padding, masks, stable longest-first sort, restore indices, typed errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders.data import collate

# ragged sequences with plenty of empty rows (and ties in length)
token_lists = st.one_of(
    st.just([]),
    st.lists(st.integers(0, 50), min_size=0, max_size=3),
    st.lists(st.integers(0, 10_000), min_size=0, max_size=12),
)
examples_st = st.lists(
    st.builds(lambda toks, label, kind: {"tokens": kind(toks), "label": label},
              token_lists, st.integers(0, 9),
              st.sampled_from([list, tuple, lambda t: np.asarray(t, dtype=np.int64)])),
    min_size=1, max_size=16,
)
all_empty_st = st.lists(st.builds(lambda label: {"tokens": [], "label": label}, st.integers(0, 3)),
                        min_size=1, max_size=8)

SETTINGS = settings(max_examples=150, deadline=None)


def _check_batch(examples, out, pad_id, sort):
    B = len(examples)
    seqs = [np.asarray(ex["tokens"], dtype=np.int64).reshape(-1) for ex in examples]
    in_lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    in_labels = np.array([ex["label"] for ex in examples], dtype=np.int64)

    tokens, lengths, mask, labels, restore = (out[k] for k in ("tokens", "lengths", "mask", "labels", "restore"))
    T = max(int(in_lengths.max(initial=0)), 1)
    assert tokens.shape == (B, T) and tokens.dtype == np.int64
    assert T >= 1
    assert lengths.shape == (B,) and lengths.dtype == np.int64
    assert mask.shape == (B, T) and mask.dtype == np.bool_
    assert labels.shape == (B,) and labels.dtype == np.int64
    assert restore.shape == (B,) and restore.dtype == np.int64
    assert sorted(restore.tolist()) == list(range(B))  # a permutation

    # the mask is exactly the region of real tokens (not derived from pad_id: ids may equal it)
    np.testing.assert_array_equal(mask, np.arange(T)[None, :] < lengths[:, None])
    # right padding with pad_id
    assert np.all(tokens[~mask] == pad_id)

    # x[restore] is back in input order
    np.testing.assert_array_equal(lengths[restore], in_lengths)
    np.testing.assert_array_equal(labels[restore], in_labels)
    back = tokens[restore]
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(back[i, : len(s)], s)
        assert np.all(back[i, len(s):] == pad_id)

    # row r of the output holds input example order[r]
    order = np.empty(B, dtype=np.int64)
    order[restore] = np.arange(B)
    if sort:
        expected = sorted(range(B), key=lambda i: -in_lengths[i])  # Python's sort is stable
        assert order.tolist() == expected
        assert np.all(np.diff(lengths) <= 0)
    else:
        assert order.tolist() == list(range(B))
        np.testing.assert_array_equal(restore, np.arange(B))
        np.testing.assert_array_equal(lengths, in_lengths)


@SETTINGS
@given(examples_st, st.integers(0, 7), st.booleans())
def test_collate_properties(examples, pad_id, sort):
    out = collate(examples, pad_id=pad_id, sort=sort)
    _check_batch(examples, out, pad_id, sort)


@SETTINGS
@given(all_empty_st, st.integers(0, 3), st.booleans())
def test_all_empty_batch_has_time_axis(examples, pad_id, sort):
    out = collate(examples, pad_id=pad_id, sort=sort)
    assert out["tokens"].shape == (len(examples), 1)
    assert not out["mask"].any()
    assert np.all(out["tokens"] == pad_id)
    assert np.all(out["lengths"] == 0)
    # all ties: stable sort keeps the input order
    np.testing.assert_array_equal(out["restore"], np.arange(len(examples)))
    np.testing.assert_array_equal(out["labels"], [ex["label"] for ex in examples])
    _check_batch(examples, out, pad_id, sort)


@SETTINGS
@given(token_lists, st.integers(0, 9), st.integers(0, 3))
def test_single_example(tokens, label, pad_id):
    out = collate([{"tokens": tokens, "label": label}], pad_id=pad_id)
    assert out["tokens"].shape == (1, max(len(tokens), 1))
    assert out["lengths"].tolist() == [len(tokens)]
    assert out["labels"].tolist() == [label]
    assert out["restore"].tolist() == [0]
    assert out["tokens"][0, : len(tokens)].tolist() == list(tokens)


def test_concrete_batch():
    examples = [
        {"tokens": [5, 6], "label": 0},
        {"tokens": [], "label": 1},
        {"tokens": [7, 8, 9], "label": 2},
        {"tokens": [3, 4], "label": 3},  # ties with example 0: stays after it
    ]
    out = collate(examples, pad_id=0)
    assert out["tokens"].tolist() == [[7, 8, 9], [5, 6, 0], [3, 4, 0], [0, 0, 0]]
    assert out["lengths"].tolist() == [3, 2, 2, 0]
    assert out["labels"].tolist() == [2, 0, 3, 1]
    assert out["mask"].tolist() == [[True] * 3, [True, True, False], [True, True, False], [False] * 3]
    assert out["restore"].tolist() == [1, 3, 0, 2]
    assert out["labels"][out["restore"]].tolist() == [0, 1, 2, 3]

    unsorted = collate(examples, pad_id=9, sort=False)
    assert unsorted["tokens"].tolist() == [[5, 6, 9], [9, 9, 9], [7, 8, 9], [3, 4, 9]]
    assert unsorted["mask"][2].tolist() == [True, True, True]  # a real 9 is not padding
    assert unsorted["restore"].tolist() == [0, 1, 2, 3]


def test_empty_batch_list():
    out = collate([])
    assert out["tokens"].shape == (0, 1)
    assert out["lengths"].shape == out["labels"].shape == out["restore"].shape == (0,)


def test_numpy_tokens_and_labels_accepted():
    examples = [
        {"tokens": np.array([4, 5, 6], dtype=np.int32), "label": np.int64(1)},
        {"tokens": np.array([], dtype=np.int64), "label": 0},
        {"tokens": np.array([7], dtype=np.uint8), "label": np.int32(2)},
    ]
    out = collate(examples)
    assert out["tokens"].dtype == np.int64
    assert out["tokens"].tolist() == [[4, 5, 6], [7, 0, 0], [0, 0, 0]]
    assert out["labels"].tolist() == [1, 2, 0]


@pytest.mark.parametrize("bad", [
    [1, 2.5], [1.0, 2.0], [3, "4"], ["a"], [True, False], [1, True], [2, np.True_], [1, None],
    np.array([1.0, 2.0]), np.array([True]),
])
def test_non_integer_token_is_type_error_naming_example(bad):
    examples = [{"tokens": [1, 2], "label": 0}, {"tokens": [3], "label": 1}, {"tokens": bad, "label": 0}]
    with pytest.raises(TypeError, match=r"example 2\b"):
        collate(examples)


@pytest.mark.parametrize("bad", ["hello", b"hi", ""])
def test_string_as_tokens_is_type_error(bad):
    with pytest.raises(TypeError, match=r"example 1\b.*string"):
        collate([{"tokens": [1], "label": 0}, {"tokens": bad, "label": 0}])


def test_missing_label_is_value_error_naming_example():
    with pytest.raises(ValueError, match=r"example 1\b.*label"):
        collate([{"tokens": [1], "label": 0}, {"tokens": [2]}])


def test_none_label_is_value_error_naming_example():
    with pytest.raises(ValueError, match=r"example 2\b.*None"):
        collate([{"tokens": [1], "label": 0}, {"tokens": [2], "label": 1}, {"tokens": [3], "label": None}])


@pytest.mark.parametrize("bad", ["pos", 1.5, True])
def test_non_integer_label_is_type_error(bad):
    with pytest.raises(TypeError, match=r"example 0\b"):
        collate([{"tokens": [1], "label": bad}])


def test_missing_tokens_is_value_error():
    with pytest.raises(ValueError, match=r"example 0\b.*tokens"):
        collate([{"label": 0}])


@pytest.mark.parametrize("bad", [[1, -2, 3], np.array([-1]), [-5]])
def test_negative_id_is_value_error(bad):
    with pytest.raises(ValueError, match=r"example 1\b.*negative token id -\d"):
        collate([{"tokens": [1], "label": 0}, {"tokens": bad, "label": 0}])


def test_ragged_nested_tokens_is_value_error_naming_example():
    with pytest.raises(ValueError, match=r"example 0\b"):
        collate([{"tokens": [[1], [2, 3]], "label": 0}])
    with pytest.raises(ValueError, match=r"example 0\b.*1-D"):
        collate([{"tokens": [[1, 2], [3, 4]], "label": 0}])


@pytest.mark.parametrize("pad_id", [-1, 1.0, True, "0"])
def test_bad_pad_id(pad_id):
    with pytest.raises(ValueError, match="pad_id"):
        collate([{"tokens": [1], "label": 0}], pad_id=pad_id)


@pytest.mark.parametrize("bad", [{"tokens": [1], "label": 0}, 5, iter([])])
def test_examples_must_be_a_sequence(bad):
    with pytest.raises(TypeError, match="sequence of examples"):
        collate(bad)


def test_example_must_be_mapping():
    with pytest.raises(TypeError, match=r"example 1\b"):
        collate([{"tokens": [1], "label": 0}, ([1], 0)])
