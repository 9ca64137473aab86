"""encoders.use.evaluation: labels read as training read them, each bad one named with its row."""
import math

import numpy as np
import pytest

from encoders.errors import DataError
from encoders.use.evaluation import format_report, gold_ids
from encoders.run.files import is_training_output


def test_string_labels_go_through_the_names():
    assert gold_ids(["prose", "code", "prose"], ["code", "prose"], True).tolist() == [1, 0, 1]
    assert gold_ids([1, 2], ["1", "2"], True).tolist() == [0, 1]  # JSON numbers for names "1", "2"


def test_integer_labels_are_class_ids():
    assert gold_ids(["0", "1", 1, 0.0, np.int64(1)], [0, 1], False).tolist() == [0, 1, 1, 0, 1]


@pytest.mark.parametrize("values,string,message", [
    (["code", "spam"], True, "data row 2 \(line 3\): label 'spam' never occurs"),
    (["code", None], True, "data row 2 \(line 3\): no label"),
    (["code", ""], True, "data row 2 \(line 3\): no label"),
    ([0, math.nan], False, "data row 2 \(line 3\): no label"),
    ([0, 2], False, "data row 2 \(line 3\): label 2 never occurs"),
    ([0, "x"], False, "data row 2 \(line 3\): label 'x' is not an integer class id"),
    ([0, 1.5], False, "is not an integer class id"),
    ([True], False, "is not an integer class id"),
])
def test_bad_labels_name_their_row(values, string, message):
    with pytest.raises(DataError, match=message):
        gold_ids(values, ["code", "prose"] if string else [0, 1], string, "in.csv")


def test_format_report_lists_every_class():
    report = {"num_examples": 3, "accuracy": 2 / 3, "macro_f1": 0.5, "loss": 0.7, "labels": ["a", "bb"],
              "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2},
                            "bb": {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 1}}}
    text = format_report(report)
    assert "accuracy  0.6667" in text and text.splitlines()[-1].startswith("bb ")


def test_training_outputs_are_recognised(tmp_path):
    run = str(tmp_path)
    for rel in ("metrics.json", "vocab.json", "checkpoints/best.ckpt", ".hydra/config.yaml", "tb/x"):
        assert is_training_output(run, f"{run}/{rel}")
    for rel in ("evaluation.json", "export/model.onnx", "confusion_matrix.png"):
        assert not is_training_output(run, f"{run}/{rel}")
    assert not is_training_output(run, "/elsewhere/metrics.json")
