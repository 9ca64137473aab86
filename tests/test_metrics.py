"""encoders.metrics against loop-by-loop reference implementations and hand-worked cases."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from encoders.metrics import (classification_report, cross_entropy, is_bio_scheme, regression_report,
                              span_f1, token_report)

SETTINGS = settings(max_examples=150, deadline=None)


# ------------------------------------------------------------------ reference implementations


def ref_classification(gold, pred, num_classes):
    """Per-class (precision, recall, f1, support), macro f1 and accuracy, by counting in loops."""
    rows = []
    for k in range(num_classes):
        tp = sum(1 for g, p in zip(gold, pred) if g == k and p == k)
        fp = sum(1 for g, p in zip(gold, pred) if g != k and p == k)
        fn = sum(1 for g, p in zip(gold, pred) if g == k and p != k)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, tp + fn))
    accuracy = sum(1 for g, p in zip(gold, pred) if g == p) / len(gold) if len(gold) else 0.0
    present = [k for k in range(num_classes) if k in gold or k in pred]  # scikit-learn's average="macro"
    return rows, sum(rows[k][2] for k in present) / len(present) if present else 0.0, accuracy


def ref_confusion(gold, pred, num_classes):
    m = [[0] * num_classes for _ in range(num_classes)]
    for g, p in zip(gold, pred):
        m[g][p] += 1
    return m


def check_against_reference(report, gold, pred, names):
    rows, macro, accuracy = ref_classification(gold, pred, len(names))
    assert report["accuracy"] == pytest.approx(accuracy)
    assert report["macro_f1"] == pytest.approx(macro)
    assert list(report["per_class"]) == names
    for name, (precision, recall, f1, support) in zip(names, rows):
        got = report["per_class"][name]
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(f1)
        assert got["support"] == support


@st.composite
def labelled(draw, min_size=1):
    """(gold, pred, names) with random class count, sizes, and often classes never used."""
    num_classes = draw(st.integers(1, 7))
    used = draw(st.integers(1, num_classes))  # ids >= used never occur: empty classes
    n = draw(st.integers(min_size, 60))
    ids = st.integers(0, used - 1)
    gold = draw(st.lists(ids, min_size=n, max_size=n))
    pred = draw(st.lists(st.integers(0, num_classes - 1) if draw(st.booleans()) else ids, min_size=n, max_size=n))
    return gold, pred, [f"c{k}" for k in range(num_classes)]


# ------------------------------------------------------------------ classification


@SETTINGS
@given(labelled())
def test_classification_report_matches_reference(case):
    gold, pred, names = case
    report = classification_report(np.array(gold), np.array(pred), names)
    check_against_reference(report, gold, pred, names)
    assert report["confusion_matrix"] == ref_confusion(gold, pred, len(names))
    assert report["num_examples"] == len(gold)
    assert report["labels"] == names
    assert json.loads(json.dumps(report)) == report  # plain Python all the way down


def test_classification_report_hand_computed():
    # class c is neither gold nor predicted, class d only predicted, class a never predicted
    r = classification_report([0, 0, 1, 1, 1], [1, 3, 1, 1, 0], ["a", "b", "c", "d"])
    assert r["accuracy"] == pytest.approx(2 / 5)
    assert r["per_class"]["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    b = r["per_class"]["b"]
    assert (b["precision"], b["recall"], b["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert b["f1"] == pytest.approx(2 / 3)
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # sklearn: f1_score(g, p, average="macro", zero_division=0) = (0 + 2/3 + 0) / 3: c is in neither
    assert r["macro_f1"] == pytest.approx(2 / 9)
    assert r["confusion_matrix"] == [[0, 1, 0, 1], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    for v in (r["accuracy"], r["macro_f1"], b["f1"]):
        assert type(v) is float
    assert type(b["support"]) is int


def test_macro_f1_skips_classes_in_neither_gold_nor_predictions():
    # an all-"code" test file predicted right: 1.0 (scikit-learn), not 1/3 from two absent classes
    r = classification_report([0, 0, 0], [0, 0, 0], ["code", "prose", "poem"])
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0
    t = token_report([[1, 1]], [[1, 1]], [[1, 1]], ["O", "B-X", "I-X"])
    assert t["macro_f1"] == 1.0
    from encoders.tasks import TaggingTally

    tally = TaggingTally(["O", "B-X", "I-X"])
    tally.set_vector(np.concatenate([[0.0, 2.0], [[0, 0, 0], [0, 2, 0], [0, 0, 0]], [0, 0, 0]], axis=None))
    assert tally.figures()["macro_f1"] == 1.0  # val_/test_macro_f1 of training


def test_classification_report_perfect_and_single_class():
    r = classification_report([2, 0, 1], [2, 0, 1], ["x", "y", "z"])
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0
    r = classification_report([0, 0], [0, 0], ["only"])
    assert r["macro_f1"] == 1.0 and r["confusion_matrix"] == [[2]]


@pytest.mark.parametrize("gold, pred, labels, match", [
    ([], [], ["a"], "N=0"),
    ([0, 1], [0], ["a", "b"], "same length"),
    ([[0]], [[0]], ["a"], "1-D"),
    ([0, 2], [0, 0], ["a", "b"], r"gold\[1\] = 2 is not a class id in \[0, 2\)"),
    ([0, 0], [0, -1], ["a", "b"], r"pred\[1\] = -1"),
    ([0.0, 1.0], [0, 1], ["a", "b"], "integer class ids"),
    ([0], [0], [], "labels is empty"),
    ([0], [0], ["a", "a"], "duplicate"),
])
def test_classification_report_rejects(gold, pred, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_report(gold, pred, labels)


# ------------------------------------------------------------------ cross entropy


@SETTINGS
@given(st.integers(1, 6).flatmap(lambda c: st.tuples(
    st.just(c), st.lists(st.lists(st.floats(-50, 50), min_size=c, max_size=c), min_size=1, max_size=20))),
    st.randoms(use_true_random=False))
def test_cross_entropy_matches_reference(case, rnd):
    c, logits = case
    gold = [rnd.randrange(c) for _ in logits]
    expected = 0.0
    for row, g in zip(logits, gold):
        expected += -math.log(math.exp(row[g]) / sum(math.exp(v) for v in row))
    assert cross_entropy(np.array(logits), np.array(gold)) == pytest.approx(expected / len(logits), rel=1e-9, abs=1e-9)


def test_cross_entropy_is_stable_and_hand_computed():
    assert cross_entropy([[0.0, 0.0]], [1]) == pytest.approx(math.log(2))
    assert cross_entropy([[1000.0, 0.0], [1000.0, 0.0]], [0, 1]) == pytest.approx(500.0)
    assert cross_entropy([[-1000.0, -1000.0, -1000.0]], [2]) == pytest.approx(math.log(3))
    assert type(cross_entropy([[1.0, 2.0]], [0])) is float


@pytest.mark.parametrize("logits, gold, match", [
    (np.zeros((0, 3)), [], "N=0"),
    ([1.0, 2.0], [0], r"\[N, C\]"),
    ([[1.0, 2.0]], [0, 1], "shape"),
    ([[1.0, float("nan")]], [0], "NaN"),
    ([[1.0, 2.0]], [2], "class id"),
])
def test_cross_entropy_rejects(logits, gold, match):
    with pytest.raises(ValueError, match=match):
        cross_entropy(logits, gold)


# ------------------------------------------------------------------ token tagging


@st.composite
def tagged_batches(draw):
    num_tags = draw(st.integers(1, 5))
    b, t = draw(st.integers(0, 5)), draw(st.integers(0, 8))
    ids = st.lists(st.lists(st.integers(0, num_tags - 1), min_size=t, max_size=t), min_size=b, max_size=b)
    lengths = draw(st.lists(st.integers(0, t), min_size=b, max_size=b))
    mask = [[j < n for j in range(t)] for n in lengths]  # right padding, like the collators
    return draw(ids), draw(ids), mask, [f"t{k}" for k in range(num_tags)]


@SETTINGS
@given(tagged_batches(), st.integers(-100, 100))
def test_token_report_counts_real_tokens_only(case, pad_value):
    gold, pred, mask, names = case
    real_gold = [g for gs, ms in zip(gold, mask) for g, m in zip(gs, ms) if m]
    real_pred = [p for ps, ms in zip(pred, mask) for p, m in zip(ps, ms) if m]
    shape = (len(gold), len(mask[0]) if mask else 0)
    g, p, m = (np.array(x, dtype=d).reshape(shape) for x, d in ((gold, np.int64), (pred, np.int64), (mask, bool)))
    report = token_report(g, p, m, names)
    assert report["num_tokens"] == len(real_gold)
    if real_gold:
        check_against_reference(report, real_gold, real_pred, names)
    else:
        assert report["accuracy"] == 0.0 and report["macro_f1"] == 0.0
    # padding never counts: overwrite every padded position with anything at all
    g2, p2 = g.copy(), p.copy()
    g2[~m], p2[~m] = pad_value, -pad_value
    assert token_report(g2, p2, m, names) == report
    assert json.loads(json.dumps(report)) == report


def test_token_report_hand_computed():
    gold = [[0, 1, 2, 0], [1, 1, 0, 0]]
    pred = [[0, 2, 2, 9], [1, 0, 7, 7]]  # 9 and 7 sit on padding
    mask = [[1, 1, 1, 0], [1, 1, 0, 0]]
    r = token_report(gold, pred, mask, ["O", "B-X", "I-X"])
    assert r["num_tokens"] == 5
    assert r["accuracy"] == pytest.approx(3 / 5)
    # O: tp1 fp1 fn0 -> 2/3; B-X: tp1 fp0 fn2 -> 1/2; I-X: tp1 fp1 fn0 -> 2/3
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert r["per_class"]["B-X"]["support"] == 3


@pytest.mark.parametrize("shape", [(0, 0), (0, 4), (3, 0), (2, 3)])
def test_token_report_with_no_real_token_is_zero_not_nan(shape):
    z = np.zeros(shape, dtype=np.int64)
    r = token_report(z, z, np.zeros(shape, dtype=bool), ["O", "B-X"])
    assert r == {"accuracy": 0.0, "macro_f1": 0.0, "num_tokens": 0, "labels": ["O", "B-X"],
                 "per_class": {n: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for n in ["O", "B-X"]}}


@pytest.mark.parametrize("gold, pred, mask, match", [
    ([[0, 1]], [[0]], [[1, 1]], "one shape"),
    ([0, 1], [0, 1], [1, 1], r"\[B, T\]"),
    ([[0, 1]], [[0, 1]], [[1, 2]], "mask must be boolean"),
    ([[0, 1]], [[0, 1]], [[0.5, 1.0]], "mask must be boolean"),
    ([[0, 5]], [[0, 1]], [[1, 1]], r"gold\[0, 1\] = 5"),
])
def test_token_report_rejects(gold, pred, mask, match):
    with pytest.raises(ValueError, match=match):
        token_report(gold, pred, mask, ["O", "B-X"])


# ------------------------------------------------------------------ span F1 (conlleval)


def perl_conlleval(gold_seqs, pred_seqs):
    """A line-for-line transcription of conlleval.pl's counting loop and of its original
    ``endOfChunk``/``startOfChunk`` (IOB1, IOB2, IOE1, IOE2; no S tags): sentences are fed with
    a boundary line in between, read as ``O``. Returns (correct, found_gold, found_pred)."""

    def end_of_chunk(prev_tag, tag, prev_type, type_):
        end = (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"),
                                  ("E", "E"), ("E", "I"), ("E", "O")}
        return end or (prev_tag != "O" and prev_tag != "." and prev_type != type_)

    def start_of_chunk(prev_tag, tag, prev_type, type_):
        start = (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"),
                                    ("E", "E"), ("E", "I"), ("O", "E")}
        return start or (tag != "O" and tag != "." and prev_type != type_)

    def split(tag):
        return tuple(tag.split("-", 1)) if "-" in tag else (tag, "")

    lines = []
    for g, p in zip(gold_seqs, pred_seqs):
        lines.extend(zip(g, p))
        lines.append(("O", "O"))  # the blank line between sentences
    correct = found_correct = found_guessed = 0
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    for c_tag, g_tag in lines:
        c, ct = split(c_tag)
        g, gt = split(g_tag)
        if in_correct:
            ec, eg = end_of_chunk(last_c, c, last_ct, ct), end_of_chunk(last_g, g, last_gt, gt)
            if ec and eg and last_gt == last_ct:
                in_correct = False
                correct += 1
            elif ec != eg or gt != ct:
                in_correct = False
        sc, sg = start_of_chunk(last_c, c, last_ct, ct), start_of_chunk(last_g, g, last_gt, gt)
        if sc and sg and gt == ct:
            in_correct = True
        found_correct += sc
        found_guessed += sg
        last_c, last_ct, last_g, last_gt = c, ct, g, gt
    if in_correct:
        correct += 1
    return correct, found_correct, found_guessed


def tag_sentences(alphabet):
    sentence = st.lists(st.sampled_from(alphabet), min_size=0, max_size=12)
    return st.lists(sentence, min_size=0, max_size=5).flatmap(
        lambda gold: st.tuples(st.just(gold), st.tuples(*[
            st.lists(st.sampled_from(alphabet), min_size=len(s), max_size=len(s)) for s in gold])))


IOB = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
IOE = ["O", "I-PER", "E-PER", "I-LOC", "E-LOC"]


@pytest.mark.parametrize("alphabet", [IOB, IOE], ids=["iob", "ioe"])
@SETTINGS
@given(data=st.data())
def test_span_f1_counts_like_conlleval_perl(alphabet, data):
    gold, pred = data.draw(tag_sentences(alphabet))
    pred = list(pred)
    correct, found_gold, found_pred = perl_conlleval(gold, pred)
    r = span_f1(gold, pred)
    assert (r["num_correct"], r["num_gold"], r["num_pred"]) == (correct, found_gold, found_pred)
    precision = correct / found_pred if found_pred else 0.0
    recall = correct / found_gold if found_gold else 0.0
    assert r["precision"] == pytest.approx(precision)
    assert r["recall"] == pytest.approx(recall)
    assert r["f1"] == pytest.approx(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    assert sum(t["support"] for t in r["per_type"].values()) == found_gold
    assert sum(t["predicted"] for t in r["per_type"].values()) == found_pred


def chunks_of(tags):
    """Chunks that span_f1 sees, read off a one-sentence self-comparison."""
    r = span_f1([tags], [tags])
    return r["num_gold"], {k: v["support"] for k, v in r["per_type"].items()}


@pytest.mark.parametrize("tags, n, per_type", [
    # IOB1: I- after O starts a chunk; B- only separates two adjacent chunks of one type
    (["I-PER", "I-PER", "B-PER", "I-PER", "O"], 2, {"PER": 2}),
    (["O", "I-LOC", "O", "I-LOC"], 2, {"LOC": 2}),
    # a change of type inside an I- run ends one chunk and starts another
    (["B-PER", "I-PER", "I-LOC", "I-LOC"], 2, {"PER": 1, "LOC": 1}),
    # trailing chunk at the sentence end is counted
    (["O", "O", "B-ORG", "I-ORG"], 1, {"ORG": 1}),
    # BIOES: S- is a chunk of its own, E- closes, I- after E- opens a new chunk
    (["S-PER", "S-PER", "B-LOC", "E-LOC", "I-LOC", "E-LOC"], 4, {"PER": 2, "LOC": 2}),
    (["B-PER", "I-PER", "E-PER", "B-PER", "E-PER"], 2, {"PER": 2}),
    # BILOU spells BIOES with L/U
    (["U-PER", "B-LOC", "I-LOC", "L-LOC", "U-LOC"], 3, {"PER": 1, "LOC": 2}),
    ([], 0, {}),
    (["O", "O"], 0, {}),
])
def test_span_chunks_hand_worked(tags, n, per_type):
    assert chunks_of(tags) == (n, per_type)


def test_span_f1_hand_worked_scores():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "B-ORG"]]
    r = span_f1(gold, pred)
    # gold: PER(0-1) LOC(3) ORG(0-1); pred: PER(0-1) ORG(3) ORG(0-1) ORG(2) -> 2 correct
    assert (r["num_gold"], r["num_pred"], r["num_correct"]) == (3, 4, 2)
    assert r["precision"] == pytest.approx(0.5)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert r["per_type"]["ORG"]["precision"] == pytest.approx(1 / 3)
    assert r["per_type"]["ORG"]["recall"] == 1.0
    assert r["per_type"]["PER"]["f1"] == 1.0


def test_span_f1_partial_overlap_is_wrong():
    # same start, different end; same span, different type: both are errors
    r = span_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-PER"]])
    assert (r["num_gold"], r["num_pred"], r["num_correct"]) == (2, 2, 0)
    assert r["f1"] == 0.0


def test_span_f1_sentences_never_merge():
    # the first sentence ends inside a chunk; the next starts with I- of the same type
    split = span_f1([["O", "B-PER"], ["I-PER", "O"]], [["O", "B-PER"], ["I-PER", "O"]])
    assert split["num_gold"] == 2
    joined = span_f1([["O", "B-PER", "I-PER", "O"]], [["O", "B-PER", "I-PER", "O"]])
    assert joined["num_gold"] == 1
    # a prediction that only matches the merged chunk is wrong
    r = span_f1([["O", "B-PER"], ["I-PER", "O"]], [["O", "B-PER"], ["O", "O"]])
    assert (r["num_gold"], r["num_pred"], r["num_correct"]) == (2, 1, 1)


def test_span_f1_no_chunks_is_zero():
    r = span_f1([["O"]], [["O"]])
    assert (r["precision"], r["recall"], r["f1"], r["per_type"]) == (0.0, 0.0, 0.0, {})
    assert span_f1([], [])["f1"] == 0.0


@pytest.mark.parametrize("gold, pred, match", [
    ([["O"]], [], "1 sentences but pred has 0"),
    ([["O", "O"]], [["O"]], "sentence 0: gold has 2 tags but pred has 1"),
    ([["X-PER"]], [["O"]], "'X-PER'"),
    ([["B-"]], [["O"]], "'B-'"),
    ([["PER"]], [["O"]], "'PER'"),
    ([[1]], [["O"]], "strings"),
    (["B-PER"], ["O"], "a string"),
])
def test_span_f1_rejects(gold, pred, match):
    with pytest.raises(ValueError, match=match):
        span_f1(gold, pred)


@pytest.mark.parametrize("tags, expected", [
    (["O", "B-PER", "I-PER"], True),
    (["O", "S-LOC", "B-LOC", "I-LOC", "E-LOC"], True),
    (["O", "U-X", "L-X", "B-X", "I-X"], True),
    (["B-MISC-SUB", "O"], True),
    (["I-NP"], True),
    (["O"], False),
    ([], False),
    (["O", "B-PER", "<pad>"], False),
    (["positive", "negative"], False),
    (["O", "B-"], False),
    (["O", "b-per"], False),
    ([0, 1], False),
])
def test_is_bio_scheme(tags, expected):
    assert is_bio_scheme(tags) is expected


# ------------------------------------------------------------------ regression


@SETTINGS
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=1, max_size=50))
def test_regression_report_matches_reference(pairs):
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    r = regression_report(gold, pred)
    mse = sum((p - g) ** 2 for g, p in pairs) / len(pairs)
    mae = sum(abs(p - g) for g, p in pairs) / len(pairs)
    assert r["rmse"] == pytest.approx(math.sqrt(mse), rel=1e-9, abs=1e-9)
    assert r["mae"] == pytest.approx(mae, rel=1e-9, abs=1e-9)
    assert r["num_examples"] == len(pairs)
    assert r["rmse"] >= r["mae"] - 1e-9  # RMSE never below MAE
    assert json.loads(json.dumps(r)) == r


def test_regression_report_hand_computed():
    assert regression_report([1.0, 2.0, 3.0], [2.0, 2.0, 0.0]) == {
        "rmse": pytest.approx(math.sqrt(10 / 3)), "mae": pytest.approx(4 / 3), "num_examples": 3}


@pytest.mark.parametrize("gold, pred, match", [
    ([], [], "N=0"),
    ([1.0], [1.0, 2.0], "same length"),
    ([1.0, float("inf")], [1.0, 2.0], r"gold\[1\] = inf"),
    ([1.0], [float("nan")], r"pred\[0\]"),
])
def test_regression_report_rejects(gold, pred, match):
    with pytest.raises(ValueError, match=match):
        regression_report(gold, pred)
