"""encoders.tasks.TASKS: what the commands do per task, checked over random ragged rows."""
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from encoders.config import TASKS as CONFIG_TASKS
from encoders.data.flat import TokenBuffer
from encoders.errors import DataError
from encoders.tasks import PREDICTION, PROBABILITY, TASKS
from tests.helpers import ROOT

SETTINGS = settings(max_examples=40, deadline=None)
rows_strategy = st.lists(st.lists(st.integers(1, 30), max_size=9), max_size=12)  # empty rows included


def test_every_task_the_config_takes_has_an_owner():
    assert sorted(TASKS) == sorted(CONFIG_TASKS)
    assert all(TASKS[name].name == name for name in TASKS)


def test_no_command_compares_task_names():
    """The commands ask TASKS; only the task owners spell a task's behaviour."""
    files = [os.path.join("encoders", "use", f) for f in os.listdir(os.path.join(ROOT, "encoders", "use"))
             if f.endswith(".py")] + ["encoders/app.py", "encoders/errors.py", "train.py"]
    pattern = re.compile(r"\btask\s*(==|!=)|\btask\s+(not\s+)?in\s*[(\[{]")
    for path in files:
        found = [line for line in open(os.path.join(ROOT, path)) if pattern.search(line)]
        assert not found, (path, found)


def test_labels_per_task():
    assert TASKS["classification"].labels(["neg", "pos"], 2) == (["neg", "pos"], True)
    assert TASKS["classification"].labels([], 3) == ([0, 1, 2], False)
    assert TASKS["tagging"].labels([], 2) == (["0", "1"], True)  # tags are names, always
    assert TASKS["tagging"].labels(["B-X", "O"], 2) == (["B-X", "O"], True)
    assert TASKS["regression"].labels([], 1) == ([], False)
    assert [t.has_labels for t in TASKS.values()] == [t.name != "regression" for t in TASKS.values()]


def _model(num_classes):
    """A deterministic numpy 'model': the outputs of a padded batch depend on each row's real ids only."""
    weights = np.random.default_rng(0).normal(size=(31, max(num_classes, 1))).astype(np.float32)

    def batch_logits(model, tokens, lengths):
        steps = weights[tokens] * (np.arange(tokens.shape[1])[None, :] < lengths[:, None])[:, :, None]
        if model == "tagging":
            return steps
        pooled = steps.sum(axis=1)
        return pooled[:, 0] if model == "regression" else pooled

    return batch_logits, weights


@SETTINGS
@given(rows=rows_strategy, batch_size=st.integers(1, 5))
def test_logits_and_predictions_are_in_input_order_for_any_batch_size(rows, batch_size):
    buf = TokenBuffer.from_lists(rows)
    labels = ["a", "b", "c"]
    for name, c in (("classification", 3), ("tagging", 3), ("regression", 1)):
        task = TASKS[name]
        batch_logits, weights = _model(c)
        out = task.logits(batch_logits, name, buf, c, batch_size, 0)
        predicted = task.predictions(out, labels)
        assert len(predicted) == len(rows)
        for i, row in enumerate(rows):
            per_step = weights[np.asarray(row, dtype=np.int64)] if row else np.zeros((0, weights.shape[1]))
            if name == "tagging":
                np.testing.assert_allclose(out[i], per_step, atol=1e-5)
                assert predicted[i] == [labels[k] for k in per_step.argmax(axis=1)] if row else predicted[i] == []
            elif name == "regression":
                assert out.shape == (len(rows),) and isinstance(predicted[i], float)
                np.testing.assert_allclose(out[i], per_step[:, 0].sum(), atol=1e-4)
            else:
                np.testing.assert_allclose(out[i], per_step.sum(axis=0), atol=1e-4)
                assert predicted[i] == labels[int(out[i].argmax())]


@SETTINGS
@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=6), extra=st.integers(0, 3))
def test_a_taggers_exported_logits_are_zero_past_each_length(lengths, extra):
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max())
    logits = np.random.default_rng(1).normal(size=(len(lengths), max(width, 1) + extra, 4)) + 5.0
    cut = TASKS["tagging"].exported_logits(logits, lengths, width)
    assert cut.shape == (len(lengths), width, 4)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(cut[b, :n], logits[b, :n])
        assert not cut[b, n:].any()
    for name in ("classification", "regression"):
        assert TASKS[name].exported_logits(logits, lengths, width) is logits


def test_prediction_columns_match_what_predicted_fills():
    proba = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    run = SimpleNamespace(labels=["neg", "pos"], predict_proba=lambda texts, batch_size: proba[:len(texts)],
                          predict=lambda texts, batch_size: [1.5] * len(texts),
                          predict_words=lambda words, batch_size: [["O"] * len(w) for w in words])
    for name, inputs in (("classification", ["x", "y"]), ("regression", ["x", "y"]), ("tagging", [["a"], []])):
        for probabilities in ((False, True) if TASKS[name].has_probabilities else (False,)):
            columns = TASKS[name].predicted(run, inputs, 8, probabilities)
            assert list(columns) == TASKS[name].prediction_columns(run.labels, probabilities)
            assert all(len(v) == len(inputs) for v in columns.values())
    columns = TASKS["classification"].predicted(run, ["x", "y"], 8, True)
    assert columns[PREDICTION] == ["pos", "neg"] and list(columns[PROBABILITY]) == pytest.approx([0.8, 0.9])
    assert list(columns[f"{PROBABILITY}_neg"]) == pytest.approx([0.2, 0.9])
    assert TASKS["tagging"].predicted(run, [["a", "b"], []], 8, False) == {PREDICTION: [["O", "O"], []]}


def test_gold_is_read_as_each_task_reads_it():
    run = SimpleNamespace(labels=["B-X", "O"], string_labels=True)
    np.testing.assert_array_equal(TASKS["classification"].gold(run, ["O", "B-X"], ["t", "u"], "in", "label", 1),
                                  [1, 0])
    tags = TASKS["tagging"].gold(run, ["B-X O", []], [["a", "b"], []], "in", "tags", 1)
    assert [t.tolist() for t in tags] == [[0, 1], []]
    np.testing.assert_array_equal(TASKS["regression"].gold(run, ["1.5", 2], ["t", "u"], "in", "label", 1), [1.5, 2.0])
    with pytest.raises(DataError, match=r"data row 8 .*1 tokens but 2 tags"):
        TASKS["tagging"].gold(run, ["O O"], [["a"]], "in.csv", "tags", 8)


@pytest.mark.parametrize("name, message", [("classification", "at least one labelled row"),
                                           ("tagging", "at least one tagged token"),
                                           ("regression", "at least one row with a target")])
def test_each_tasks_running_evaluation_names_an_input_without_gold(name, message):
    labels = TASKS[name].labels(["B-X", "O"] if name == "tagging" else [], 2)[0]
    tally = TASKS[name].running_evaluation(SimpleNamespace(task=name, labels=labels), 8)
    tally.add([], [])  # an empty chunk adds nothing
    with pytest.raises(DataError, match=f"evaluate needs {message}, the input has none"):
        tally.report()
