"""Tagging and regression data: list columns and CoNLL files to aligned word/tag buffers, with errors
that name the row; regression targets as floats."""

import logging

import numpy as np
import pytest

from encoders.config import TAG_PAD_ID, DataConfig
from encoders.data.flat import TokenBuffer
from encoders.data.sources import load_splits
from encoders.errors import DataError
from tests.helpers import write_jsonl

ROWS = [{"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]},
        {"tokens": [], "tags": []},
        {"tokens": ["Mary", "Smith", "left"], "tags": ["B-PER", "I-PER", "O"]}]


def cfg(tmp_path, **kw):
    return DataConfig(source="files", cache_dir=str(tmp_path / "cache"), **kw)


def test_jsonl_and_conll_give_aligned_word_and_tag_ids(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS)
    (tmp_path / "v.conll").write_text("-DOCSTART- O\n\nJohn NNP B-PER\nsaw VBD O\n\n\nParis NNP B-LOC\n")
    c = cfg(tmp_path, train_file=train, validation_file=str(tmp_path / "v.conll"))
    for _ in range(2):  # the second time from the cache
        s = load_splits(c, 0, task="tagging")
        assert s.vocab.labels == ["B-LOC", "B-PER", "I-PER", "O"] and s.num_classes == 4
        assert s.vocab.tokens[:2] == ["<pad>", "<unk>"] and "john" in s.vocab.tokens  # lowercased
        assert s.train.tags.to_lists() == [[1, 3, 3, 0], [], [1, 2, 3]]
        assert s.validation.tags.to_lists() == [[1, 3], [0]]
        assert np.array_equal(s.train.tags.lengths, s.train.tokens.lengths)
        saw = s.vocab.index.get("saw", 1)
        assert s.validation.tokens.to_lists() == [[s.vocab.index["john"], saw], [s.vocab.index["paris"]]]
    b = s.train.tokens.pad([0, 1, 2], tags=s.train.tags)
    assert b["tags"].shape == b["tokens"].shape
    assert (b["tags"][~b["mask"]] == TAG_PAD_ID).all() and (b["tags"][b["mask"]] >= 0).all()


def test_tagging_truncation_is_logged_like_classification(tmp_path, caplog):
    rows = [{"tokens": ["w"] * 300, "tags": ["O"] * 300}, {"tokens": ["v", "w"], "tags": ["B-X", "O"]}]
    c = cfg(tmp_path, train_file=write_jsonl(tmp_path / "t.jsonl", rows),
            validation_file=write_jsonl(tmp_path / "v.jsonl", rows[1:]), max_tokens_per_example=50)
    for _ in range(2):  # the second time from the cache: still said
        caplog.clear()
        with caplog.at_level(logging.INFO):
            s = load_splits(c, 0, task="tagging")
        assert s.train.tokens.lengths.tolist() == [50, 2]
        assert "data.max_tokens_per_example=50 cut 1 train rows" in caplog.text


def test_held_out_rows_and_truncation_keep_words_and_tags_aligned(tmp_path):
    rows = [{"tokens": [f"w{i}"] * (i % 7), "tags": (["O", "B-X"] * 4)[: i % 7]} for i in range(40)]
    s = load_splits(cfg(tmp_path, train_file=write_jsonl(tmp_path / "t.jsonl", rows), max_tokens_per_example=4),
                    0, task="tagging")
    assert len(s.train) + len(s.validation) == 40
    for split in (s.train, s.validation):
        assert np.array_equal(split.tags.lengths, split.tokens.lengths) and split.tokens.lengths.max() <= 4
        for i, r in enumerate(split.rows):
            assert [s.vocab.labels[t] for t in split.tags.row(i)] == rows[r]["tags"][:4]


def test_a_validation_tag_unseen_in_training_is_named_with_its_row(tmp_path):
    val = write_jsonl(tmp_path / "v.jsonl", [ROWS[0], {"tokens": ["x"], "tags": ["B-ORG"]}])
    c = cfg(tmp_path, train_file=write_jsonl(tmp_path / "t.jsonl", ROWS), validation_file=val)
    with pytest.raises(DataError, match=r"validation data row 2: tag 'B-ORG' never occurs in the training split.*v\.jsonl, line 2"):
        load_splits(c, 0, task="tagging")


def test_tokens_and_tags_of_different_lengths_are_named_with_their_row(tmp_path):
    bad = ROWS + [{"tokens": ["a", "b"], "tags": ["O"]}]
    with pytest.raises(DataError, match=r"train data row 4: 2 tokens but 1 tags.*line 4"):
        load_splits(cfg(tmp_path, train_file=write_jsonl(tmp_path / "t.jsonl", bad)), 0, task="tagging")
    (tmp_path / "c.conll").write_text("a O\nb\n")
    with pytest.raises(DataError, match=r"line 2"):
        load_splits(cfg(tmp_path, train_file=str(tmp_path / "c.conll")), 0, task="tagging")


def test_non_string_tags_and_csv_files_are_refused(tmp_path):
    bad = [{"tokens": ["a"], "tags": [1.5]}, {"tokens": ["b"], "tags": [2.5]}]
    with pytest.raises(DataError, match="tags"):
        load_splits(cfg(tmp_path, train_file=write_jsonl(tmp_path / "t.jsonl", bad)), 0, task="tagging")
    (tmp_path / "t.csv").write_text("tokens,tags\na,O\n")
    with pytest.raises(DataError, match="csv/tsv can't"):
        load_splits(cfg(tmp_path, train_file=str(tmp_path / "t.csv")), 0, task="tagging")
    with pytest.raises(DataError, match=r"no column\(s\) \['words'\]"):
        load_splits(cfg(tmp_path, train_file=write_jsonl(tmp_path / "u.jsonl", ROWS), tokens_column="words"), 0,
                    task="tagging")


def test_regression_targets_are_floats_and_a_null_is_named(tmp_path):
    rows = [{"text": "a b c", "label": 1.5}, {"text": "", "label": -2}, {"text": "b", "label": 0.25}] * 4
    s = load_splits(cfg(tmp_path, train_file=write_jsonl(tmp_path / "r.jsonl", rows)), 0, task="regression")
    assert s.num_classes == 1 and s.train.labels.dtype == np.float32
    assert sorted(set(s.train.labels.tolist()) | set(s.validation.labels.tolist())) == [-2.0, 0.25, 1.5]
    b = s.train.tokens.pad(np.arange(len(s.train)), labels=s.train.labels)
    assert b["labels"].dtype == np.float32
    rows[5] = {"text": "x", "label": None}
    with pytest.raises(DataError, match="train data row 6: regression target is null"):
        load_splits(cfg(tmp_path, train_file=write_jsonl(tmp_path / "r2.jsonl", rows)), 0, task="regression")


@pytest.mark.parametrize("cell,shown", [("abc", "'abc'"), ("1,5", "'1,5'"), ("inf", "'inf'"), ("-inf", "'-inf'")])
def test_a_bad_regression_target_is_named_at_its_row_as_the_file_has_it(tmp_path, cell, shown):
    lines = [f"w{i},{i / 10}" for i in range(1200)]
    lines[999] = f'w999,"{cell}"'  # data row 1000, line 1001
    t = tmp_path / "r.csv"
    t.write_text("text,label\n" + "\n".join(lines) + "\n")
    c = cfg(tmp_path, train_file=str(t), validation_file=str(t))
    what = "is not a finite number" if "inf" in cell else "is not a number"
    with pytest.raises(DataError, match=rf"^train data row 1000: regression target {shown} {what} "
                                        rf"\(data\.train_file=.*r\.csv, line 1001\)$"):
        load_splits(c, 0, task="regression")


def test_an_infinite_regression_target_of_a_typed_file_is_shown_as_a_number(tmp_path):
    import pandas as pd

    path = tmp_path / "r.parquet"
    pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, float("inf"), 2.0]}).to_parquet(path)
    with pytest.raises(DataError, match=r"^train data row 2: regression target inf is not a finite number"):
        load_splits(cfg(tmp_path, train_file=str(path), validation_file=str(path)), 0, task="regression")


def test_pad_refuses_tags_that_do_not_fit_the_tokens():
    tokens = TokenBuffer.from_lists([[2, 3], [4]])
    with pytest.raises(ValueError, match="same rows and row lengths"):
        tokens.pad([0, 1], tags=TokenBuffer.from_lists([[0], [1]]))
