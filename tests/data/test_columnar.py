"""The columnar data layer: one-pass vocabulary + ids equal the per-text path, text stays text,
messages name the file's row, long texts are bounded, the cache, subword tokenizers, budgets."""
import json
import logging
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders.config import DataConfig
from encoders.data.sources import check_token_budget, load_splits
from encoders.data.vocab import Vocab, load_vocab
from encoders.errors import DataError


def files_cfg(train, validation=None, **kw):
    kw.setdefault("cache_dir", None)
    return DataConfig(source="files", train_file=str(train), validation_file=validation and str(validation), **kw)


def csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


# -- one pass equals Vocab.build + encode -----------------------------------------------------------
TEXT = st.text(alphabet=st.sampled_from(list("abcAB ΣσςİI\t\n\x1c é")), max_size=12)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=12), counted=st.lists(st.booleans(), min_size=12, max_size=12),
       kind=st.sampled_from(["whitespace", "char"]), lowercase=st.booleans(), min_freq=st.integers(1, 2),
       max_size=st.sampled_from([None, 3, 6]), cut=st.integers(0, 12))
def test_build_and_encode_equals_build_then_encode(texts, counted, kind, lowercase, min_freq, max_size, cut):
    mask = np.array(counted[:len(texts)])
    train = [t for t, c in zip(texts, mask) if c]
    other = [t for t, c in zip(texts, mask) if not c]
    chunks = [("train", train[:cut]), ("other", other), ("train", train[cut:])]
    vocab, out = Vocab.build_and_encode(chunks, ("train",), kind, lowercase, min_freq, max_size)
    ref = Vocab.build(train, kind, lowercase, min_freq, max_size)
    assert vocab.tokens == ref.tokens
    assert out["train"].to_lists() == [ref.encode(t) for t in train]
    assert out["other"].to_lists() == [ref.encode(t) for t in other]
    assert vocab.encode_many(texts).to_lists() == [ref.encode(t) for t in texts]


# -- text is text ---------------------------------------------------------------------------------------
def test_na_like_texts_stay_words_and_an_empty_cell_is_an_empty_text(tmp_path):
    t = csv(tmp_path / "t.csv", ["NA,1", "null,0", "None,1", "nan,0", "N/A,1", ",0", "n/a NULL,1"])
    v = csv(tmp_path / "v.csv", ["NA,1", ",0"])
    s = load_splits(files_cfg(t, v), 0)
    inv = {i: w for w, i in s.vocab.index.items()}
    assert [[inv[i] for i in row] for row in s.train["tokens"]] == [
        ["na"], ["null"], ["none"], ["nan"], ["n/a"], [], ["n/a", "null"]]
    assert s.validation["tokens"] == [[s.vocab.index["na"]], []]


def test_a_text_column_of_numbers_is_text(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_text("".join(json.dumps({"text": n, "label": n % 2}) + "\n" for n in [12, 7, 12, 3]))
    v = tmp_path / "v.jsonl"
    v.write_text(json.dumps({"text": 12, "label": 0}) + "\n")
    s = load_splits(files_cfg(t, v), 0)
    assert s.vocab.tokens[2] == "12" and s.validation["tokens"] == [[2]]


def test_label_na_values_are_still_missing(tmp_path):
    t = csv(tmp_path / "t.csv", ["a,0", "b,1", "c,NA"])
    with pytest.raises(DataError, match=r"train data row 3: label is null \(data\.train_file=.*t\.csv, line 4\)"):
        load_splits(files_cfg(t, csv(tmp_path / "v.csv", ["a,0"])), 0)


def test_messages_name_the_file_row_even_when_rows_are_held_out(tmp_path):
    rows = [f"w{i},{'pos' if i % 2 else 'neg'}" for i in range(40)] + ["w40,maybe"]
    t = csv(tmp_path / "t.csv", rows)
    for seed in range(8):  # wherever the odd row lands, it is named by its line in the file
        try:
            load_splits(files_cfg(t), seed)
        except DataError as e:
            assert "data row 41" in str(e) and "line 42" in str(e) and "'maybe'" in str(e), e
            break
    else:
        pytest.fail("the held-out row with an unseen label was never refused")


def test_empty_text_column_is_named(tmp_path):
    t = csv(tmp_path / "t.csv", [",0", ",1", ",0"])
    with pytest.raises(DataError, match=r"text column 'text' is empty in every training row"):
        load_splits(files_cfg(t, csv(tmp_path / "v.csv", [",0"])), 0)


# -- bounded work per example -----------------------------------------------------------------------------
def test_one_huge_text_is_cut_to_the_default_and_counted(tmp_path, caplog):
    t = csv(tmp_path / "t.csv", ["x" * 50_000 + ",0", "ab,1", "a,0"])
    v = csv(tmp_path / "v.csv", ["abc,1"])
    with caplog.at_level(logging.INFO):
        s = load_splits(files_cfg(t, v, tokenizer="char"), 0)
    assert s.lengths("train").tolist() == [DataConfig().max_tokens_per_example, 2, 1]
    assert s.truncated == {"train": 1, "validation": 0}
    assert "cut 1 train rows" in caplog.text
    s = load_splits(files_cfg(t, v, tokenizer="char", max_tokens_per_example=None), 0)
    assert s.lengths("train")[0] == 50_000


def test_token_budget_smaller_than_an_example_says_which_and_what_to_do(tmp_path):
    t = csv(tmp_path / "t.csv", ["a b c d e f,0", "a,1", "b c,0"])
    s = load_splits(files_cfg(t, csv(tmp_path / "v.csv", ["a,1"])), 0)
    check_token_budget(s, 6)
    with pytest.raises(DataError, match=r"data\.max_tokens=5 is smaller than train data row 1, which has 6 tokens: "
                                        r"truncate with data\.max_tokens_per_example=5 or raise data\.max_tokens"):
        check_token_budget(s, 5)


# -- the cache ----------------------------------------------------------------------------------------------
def test_second_load_reads_the_cache_and_a_changed_file_is_tokenized_again(tmp_path):
    t = csv(tmp_path / "t.csv", ["good movie,pos", "bad movie,neg", "fine,pos"])
    v = csv(tmp_path / "v.csv", ["good,pos"])
    cfg = files_cfg(t, v, cache_dir=str(tmp_path / "cache"))
    first = load_splits(cfg, 0)
    entries = os.listdir(tmp_path / "cache" / "tokens")
    assert len(entries) == 1
    mtime = os.stat(tmp_path / "cache" / "tokens" / entries[0] / "train.values.npy").st_mtime_ns
    again = load_splits(cfg, 0)
    # both read the entry memory-mapped (the first run wrote it as it tokenized); the second did not write it
    assert _memory_mapped(again.train.tokens.values) and _memory_mapped(first.train.tokens.values)
    assert os.stat(tmp_path / "cache" / "tokens" / entries[0] / "train.values.npy").st_mtime_ns == mtime
    assert again.train["tokens"] == first.train["tokens"] and again.validation["label"] == first.validation["label"]
    assert again.vocab.tokens == first.vocab.tokens and again.vocab.labels == ["neg", "pos"]
    load_splits(files_cfg(t, v, cache_dir=str(tmp_path / "cache"), min_freq=2), 0)  # other settings
    assert len(os.listdir(tmp_path / "cache" / "tokens")) == 2
    csv(t, ["good movie,pos", "bad movie,neg", "awful,neg"])
    os.utime(t, ns=(1, 1))
    changed = load_splits(cfg, 0)
    assert "awful" in changed.vocab.tokens and len(os.listdir(tmp_path / "cache" / "tokens")) == 3


def _memory_mapped(array) -> bool:
    import mmap

    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def test_a_damaged_cache_entry_is_rebuilt(tmp_path):
    t = csv(tmp_path / "t.csv", ["a b,0", "b c,1"])
    cfg = files_cfg(t, csv(tmp_path / "v.csv", ["a,0"]), cache_dir=str(tmp_path / "cache"))
    first = load_splits(cfg, 0).train["tokens"]  # read before the file it maps is damaged
    entry = tmp_path / "cache" / "tokens" / os.listdir(tmp_path / "cache" / "tokens")[0]
    (entry / "train.values.npy").write_bytes(b"garbage")
    assert load_splits(cfg, 0).train["tokens"] == first


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_a_damaged_cache_entry_is_replaced_by_the_rebuilt_one(tmp_path, caplog, damage):
    t = csv(tmp_path / "t.csv", ["a b c d e f g h,0", "b c,1"])
    cfg = files_cfg(t, csv(tmp_path / "v.csv", ["a,0"]), cache_dir=str(tmp_path / "cache"))
    first = load_splits(cfg, 0).train["tokens"]  # read before the file it maps is damaged
    entry = tmp_path / "cache" / "tokens" / os.listdir(tmp_path / "cache" / "tokens")[0]
    npy = entry / "train.values.npy"
    npy.write_bytes(b"garbage" if damage == "garbage" else npy.read_bytes()[:-8])
    with caplog.at_level(logging.WARNING):
        load_splits(cfg, 0)
    assert "unreadable" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = load_splits(cfg, 0)  # the rebuilt entry took the damaged one's place
    assert "unreadable" not in caplog.text and "read from the cache" in caplog.text
    assert _memory_mapped(again.train.tokens.values) and again.train["tokens"] == first
    assert os.listdir(tmp_path / "cache" / "tokens") == [entry.name]


@pytest.mark.parametrize("how", ["same size and mtime", "cp -p"])
def test_an_edit_that_keeps_size_and_mtime_is_tokenized_again(tmp_path, how):
    t = csv(tmp_path / "t.csv", ["good movie,pos", "bad movie,neg"])
    cfg = files_cfg(t, csv(tmp_path / "v.csv", ["good,pos"]), cache_dir=str(tmp_path / "cache"))
    assert "awful" not in load_splits(cfg, 0).vocab.tokens
    st = os.stat(t)
    if how == "cp -p":  # another file of the same size and times copied over it (cp -p, rsync -a)
        other = csv(tmp_path / "other.csv", ["good movie,pos", "awful lol,neg"])
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, t)
    else:  # rewritten in place, then touch -r back to the old times
        csv(t, ["good movie,pos", "awful lol,neg"])
        os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.path.getsize(t) == st.st_size and os.stat(t).st_mtime_ns == st.st_mtime_ns
    assert "awful" in load_splits(cfg, 0).vocab.tokens


# -- subword tokenizers and tokenizer files ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_the_trained_subword_vocabulary_size_is_logged(tmp_path, caplog, kind):
    t = csv(tmp_path / "t.csv", [f"ab ba abba {i % 3},{i % 2}" for i in range(20)])
    with caplog.at_level(logging.INFO):
        s = load_splits(files_cfg(t, csv(tmp_path / "v.csv", ["ab,1"]), tokenizer=kind, subword_vocab_size=8000), 0)
    assert s.vocab_size < 8000
    assert f"data.tokenizer={kind}: trained vocabulary of {s.vocab_size} tokens (8000 asked" in caplog.text


def test_bpe_trains_on_the_training_split_and_round_trips_through_the_run_dir(tmp_path):
    words = "the quick brown fox jumps over the lazy dog".split()
    rows = [f"{' '.join(words[i % 9:] + words[:i % 9])},{i % 2}" for i in range(60)]
    t = csv(tmp_path / "t.csv", rows)
    s = load_splits(files_cfg(t, csv(tmp_path / "v.csv", ["quick foxes,1", ",0"]), tokenizer="bpe",
                              subword_vocab_size=60), 0)
    assert 2 < s.vocab_size <= 60 and s.validation["tokens"][1] == []
    assert all(0 < i < s.vocab_size for row in s.train["tokens"] for i in row)
    run = tmp_path / "run"
    run.mkdir()
    s.vocab.save(str(run))
    back = load_vocab(str(run))
    assert back.encode("quick foxes") == s.validation["tokens"][0] and len(back) == s.vocab_size
    # the saved tokenizer.json is a tokenizer file another run can use as it is
    s2 = load_splits(files_cfg(t, csv(tmp_path / "v.csv", ["quick foxes,1", ",0"]),
                               tokenizer_file=str(run / "tokenizer.json")), 0)
    assert s2.validation["tokens"] == s.validation["tokens"]


def test_a_tokenizer_file_that_does_not_load_is_named(tmp_path):
    t = csv(tmp_path / "t.csv", ["a,0", "b,1"])
    bad = tmp_path / "tok.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"tokenizer file .*tok\.json: not valid JSON"):
        load_splits(files_cfg(t, csv(tmp_path / "v.csv", ["a,0"]), tokenizer_file=str(bad)), 0)


def test_splits_equal_the_examples_of_the_file(tmp_path):
    """Rows, labels and file rows of a held-out split line up with the file."""
    df = pd.DataFrame({"text": [f"w{i} x" for i in range(50)], "label": [i % 3 for i in range(50)]})
    path = tmp_path / "all.parquet"
    df.to_parquet(path)
    s = load_splits(files_cfg(path), 3)
    inv = {i: w for w, i in s.vocab.index.items()}
    for split in (s.train, s.validation):
        for row, tokens, label in zip(split.rows, split["tokens"], split["label"]):
            assert label == df.label[row]
            if tokens[0] != 1:
                assert inv[tokens[0]] == f"w{row}"
    assert sorted(np.concatenate([s.train.rows, s.validation.rows]).tolist()) == list(range(50))
