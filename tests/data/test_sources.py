"""encoders.data.sources.load_splits (synthetic, files, hub) and encoders.data.vocab."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from encoders.config import DataConfig
from encoders.data import collate
from encoders.errors import DataError
from encoders.data.sources import Splits, load_splits
from encoders.data.synthetic import synthetic_label
from encoders.data.vocab import PAD, UNK, Vocab, tokenize


# --------------------------------------------------------------------------- synthetic

def _synth(seed, **kw):
    kw = {"num_train": 1500, "num_val": 300, **kw}
    return load_splits(DataConfig(source="synthetic", **kw), seed)


def test_synthetic_deterministic_and_sized():
    a, b = _synth(3), _synth(3)
    assert isinstance(a, Splits)
    assert len(a.train) == 1500 and len(a.validation) == 300
    assert a.train["tokens"][:] == b.train["tokens"][:]
    assert a.train["label"][:] == b.train["label"][:]
    assert a.validation["tokens"][:] == b.validation["tokens"][:]
    assert a.num_classes == 2 and a.vocab_size == 32 and a.vocab is None


def test_synthetic_seeds_and_splits_differ():
    a, c = _synth(3), _synth(4)
    assert a.train["tokens"][:] != c.train["tokens"][:]
    assert a.train["tokens"][:300] != a.validation["tokens"][:]


def test_synthetic_content():
    s = _synth(0, vocab_size=12, max_length=40)
    toks, labels = s.train["tokens"][:], s.train["label"][:]
    lengths = s.lengths("train")
    assert lengths.tolist() == [len(t) for t in toks]
    assert (lengths == 0).any(), "the synthetic data must contain empty sequences"
    assert (lengths == 1).any()
    assert lengths.max() <= 40
    flat = [x for t in toks for x in t]
    assert min(flat) >= 2 and max(flat) < 12  # 0 is pad, 1 unk
    assert labels == [synthetic_label(t) for t in toks]
    assert labels == [int(len(t) > 0 and t[0] > t[-1]) for t in toks]
    assert 0.3 < np.mean(labels) < 0.7  # both classes well represented
    assert s.vocab_size == 12
    # a slice of the split goes straight through collate
    batch = collate([{"tokens": t, "label": l} for t, l in zip(toks[:50], labels[:50])])
    assert batch["tokens"].shape[0] == 50


@pytest.mark.parametrize("kw", [{"num_train": 0}, {"num_val": 0}])
def test_synthetic_bad_sizes(kw):
    with pytest.raises(DataError, match="num_train and data.num_val"):
        _synth(0, **kw)


def test_unknown_source():
    with pytest.raises(DataError, match="data.source must be one of"):
        load_splits(DataConfig(source="ftp"), 0)


# --------------------------------------------------------------------------- files

TRAIN = pd.DataFrame({
    "text": ["Good movie", "bad movie", "good good fun", "Bad acting", "fun plot", "bad bad plot"],
    "label": ["pos", "neg", "pos", "neg", "pos", "neg"],
})
VAL = pd.DataFrame({"text": ["good zebra", "", "BAD"], "label": ["pos", "neg", "neg"]})


def write(df, path):
    path = str(path)
    ext = os.path.splitext(path)[1]
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif ext == ".json":
        df.to_json(path, orient="records")  # one JSON array of objects
    elif ext == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif ext == ".parquet":
        df.to_parquet(path, index=False)
    else:
        with open(path, "w") as f:
            f.write(df.to_csv(index=False))
    return path


def files_cfg(train, validation=None, **kw):
    return DataConfig(source="files", train_file=train, validation_file=validation, **kw)


EXTS = [".csv", ".tsv", ".json", ".jsonl", ".parquet"]


@pytest.mark.parametrize("ext", EXTS)
def test_files_string_labels(tmp_path, ext):
    s = load_splits(files_cfg(write(TRAIN, tmp_path / f"train{ext}"), write(VAL, tmp_path / f"val{ext}")), 0)
    assert s.num_classes == 2
    v = s.vocab
    # most frequent first, ties alphabetical; lowercased by default
    assert v.tokens == [PAD, UNK, "bad", "good", "fun", "movie", "plot", "acting"]
    assert v.index[PAD] == 0 and v.index[UNK] == 1
    assert s.vocab_size == len(v) == 8
    assert v.labels == ["neg", "pos"]  # sorted names -> ids
    ids = v.index
    assert s.train["tokens"][:] == [[ids["good"], ids["movie"]], [ids["bad"], ids["movie"]],
                                    [ids["good"], ids["good"], ids["fun"]], [ids["bad"], ids["acting"]],
                                    [ids["fun"], ids["plot"]], [ids["bad"], ids["bad"], ids["plot"]]]
    assert s.train["label"][:] == [1, 0, 1, 0, 1, 0]
    # unseen validation token -> unk (1); an empty text -> empty sequence
    assert s.validation["tokens"][:] == [[ids["good"], 1], [], [ids["bad"]]]
    assert s.validation["label"][:] == [1, 0, 0]
    # labels are stored as int64 ids (not the strings "0"/"1") and collate accepts the rows
    assert s.train.labels.dtype == np.int64
    assert all(type(x) is int for x in s.train["label"][:])
    rows = [{"tokens": t, "label": l} for t, l in zip(s.validation["tokens"][:], s.validation["label"][:])]
    batch = collate(rows)
    assert batch["labels"][batch["restore"]].tolist() == [1, 0, 0]
    assert s.lengths("validation").tolist() == [2, 0, 1]


@pytest.mark.parametrize("ext", EXTS)
def test_files_int_labels(tmp_path, ext):  # csv: every cell a canonical integer
    train = pd.DataFrame({"text": ["a b", "b c", "c d", "d e", "a"], "label": [0, 2, 1, 2, 0]})
    val = pd.DataFrame({"text": ["a q", "e"], "label": [2, 1]})
    s = load_splits(files_cfg(write(train, tmp_path / f"t{ext}"), write(val, tmp_path / f"v{ext}")), 0)
    assert s.num_classes == 3
    assert s.vocab.labels == []
    assert s.train["label"][:] == [0, 2, 1, 2, 0]
    assert s.validation["label"][:] == [2, 1]
    assert s.validation["tokens"][:][0] == [s.vocab.index["a"], 1]
    assert s.train.labels.dtype == np.int64


LABEL_TEXTS = {  # csv cells as written -> the run's labels ([] for class ids)
    ("0", "1", "01"): ["0", "01", "1"],  # three labels: 01 is not 1
    ("True", "False", "True"): ["False", "True"],
    ("00", "01", "02"): ["00", "01", "02"],
    ("0.0", "1.0", "1.0"): ["0.0", "1.0"],
    ("-1", "1", "1"): ["-1", "1"],
    ("0", "1", "2"): [],  # canonical integers: class ids, as before
}


@pytest.mark.parametrize("ext", [".csv", ".tsv"])
@pytest.mark.parametrize("cells", list(LABEL_TEXTS))
def test_csv_labels_keep_their_text_unless_all_are_canonical_integers(tmp_path, ext, cells):
    sep = "," if ext == ".csv" else "\t"
    t = tmp_path / f"t{ext}"
    t.write_text(f"text{sep}label\n" + "".join(f"w{i}{sep}{c}\n" for i, c in enumerate(cells * 2)))
    v = tmp_path / f"v{ext}"
    v.write_text(f"text{sep}label\nw0{sep}{cells[-1]}\n")
    s = load_splits(files_cfg(str(t), str(v)), 0)
    names = LABEL_TEXTS[cells]
    assert s.vocab.labels == names and s.num_classes == (len(names) or 3)
    shown = [names[i] for i in s.train.labels] if names else s.train.labels.tolist()
    assert shown == [c if names else int(c) for c in cells * 2]


def test_class_ids_in_csv_beside_names_in_another_split_are_names(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("text,label\na,0\nb,01\nc,1\n")
    v = tmp_path / "v.csv"  # every cell canonical on its own, but the training file has names
    v.write_text("text,label\na,1\nb,0\n")
    s = load_splits(files_cfg(str(t), str(v)), 0)
    assert s.vocab.labels == ["0", "01", "1"] and s.validation.labels.tolist() == [2, 0]


def test_json_booleans_are_the_names_true_and_false(tmp_path):
    t = write(pd.DataFrame({"text": ["a", "b", "c"], "label": [True, False, True]}), tmp_path / "t.jsonl")
    s = load_splits(files_cfg(t, t), 0)
    assert s.vocab.labels == ["False", "True"] and s.train.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("ext", [".parquet", ".jsonl"])
def test_files_integral_float_labels_become_ints(tmp_path, ext):  # typed files; csv keeps "0.0" as text
    train = pd.DataFrame({"text": ["a", "b", "c"], "label": [0.0, 1.0, 1.0]})
    val = pd.DataFrame({"text": ["a"], "label": [1.0]})
    s = load_splits(files_cfg(write(train, tmp_path / f"t{ext}"), write(val, tmp_path / f"v{ext}")), 0)
    assert s.train["label"][:] == [0, 1, 1] and s.vocab.labels == []
    assert all(type(x) is int for x in s.train["label"][:])
    collate([{"tokens": t, "label": l} for t, l in zip(s.train["tokens"][:], s.train["label"][:])])


def test_char_tokenizer(tmp_path):
    train = pd.DataFrame({"text": ["Ab a", "bb"], "label": [0, 1]})
    val = pd.DataFrame({"text": ["abz"], "label": [1]})
    s = load_splits(files_cfg(write(train, tmp_path / "t.csv"), write(val, tmp_path / "v.csv"),
                              tokenizer="char"), 0)
    v = s.vocab
    assert v.tokens == [PAD, UNK, "b", "a", " "]
    assert v.tokenizer == "char"
    assert s.train["tokens"][:] == [[3, 2, 4, 3], [2, 2]]
    assert s.validation["tokens"][:] == [[3, 2, 1]]


def test_whitespace_tokenizer_case_sensitive(tmp_path):
    train = pd.DataFrame({"text": ["Hello  world\tHello", "hello"], "label": [0, 1]})
    val = pd.DataFrame({"text": ["HELLO world"], "label": [0]})
    s = load_splits(files_cfg(write(train, tmp_path / "t.csv"), write(val, tmp_path / "v.csv"),
                              lowercase=False), 0)
    v = s.vocab
    assert v.tokens == [PAD, UNK, "Hello", "hello", "world"]
    assert s.train["tokens"][:] == [[2, 4, 2], [3]]
    assert s.validation["tokens"][:] == [[1, 4]]


def test_custom_columns_and_max_tokens(tmp_path):
    train = pd.DataFrame({"review": ["x y z w", "y", "z z"], "stars": [1, 0, 1], "extra": [9, 9, 9]})
    val = pd.DataFrame({"review": ["w w w w w"], "stars": [0], "extra": [9]})
    cfg = files_cfg(write(train, tmp_path / "t.jsonl"), write(val, tmp_path / "v.jsonl"),
                    text_column="review", label_column="stars", max_tokens_per_example=3)
    s = load_splits(cfg, 0)
    assert sorted(s.train.column_names) == ["label", "tokens"]
    assert sorted(s.validation.column_names) == ["label", "tokens"]
    assert [len(t) for t in s.train["tokens"][:]] == [3, 1, 2]
    assert s.validation["tokens"][:] == [[s.vocab.index["w"]] * 3]
    assert s.train["label"][:] == [1, 0, 1]


def test_min_freq_and_max_vocab_size(tmp_path):
    train = pd.DataFrame({"text": ["a a a b b c", "a b d", "e"], "label": [0, 1, 0]})
    val = pd.DataFrame({"text": ["c d e a"], "label": [1]})
    t, v = write(train, tmp_path / "t.csv"), write(val, tmp_path / "v.csv")
    s = load_splits(files_cfg(t, v, min_freq=2), 0)
    assert s.vocab.tokens == [PAD, UNK, "a", "b"]
    assert s.validation["tokens"][:] == [[1, 1, 1, 2]]
    s = load_splits(files_cfg(t, v, max_vocab_size=3), 0)
    assert s.vocab.tokens == [PAD, UNK, "a"]
    assert s.vocab_size == 3
    assert max(x for row in s.train["tokens"][:] for x in row) == 2


def test_no_validation_file_holds_out_ten_percent(tmp_path):
    n = 60
    df = pd.DataFrame({"text": [f"w{i} common" for i in range(n)], "label": [i % 2 for i in range(n)]})
    path = write(df, tmp_path / "all.csv")
    s = load_splits(files_cfg(path), seed=5)
    assert len(s.validation) == 6 and len(s.train) == 54

    def train_words(splits):  # the word w<i> identifies each row
        inv = {i: t for t, i in splits.vocab.index.items()}
        return {inv[row[0]] for row in splits.train["tokens"][:]}

    words = train_words(s)
    assert len(words) == 54 and all(w.startswith("w") for w in words)
    # held-out rows' words never occur in training -> unk; "common" is known
    assert all(row == [1, s.vocab.index["common"]] for row in s.validation["tokens"][:])
    # seeded: the same seed holds out the same rows, another seed other rows
    assert train_words(load_splits(files_cfg(path), seed=5)) == words
    assert train_words(load_splits(files_cfg(path), seed=6)) != words


# --------------------------------------------------------------------------- file errors

def test_missing_train_file_setting():
    with pytest.raises(DataError, match=r"needs data.train_file=PATH"):
        load_splits(files_cfg(None), 0)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data.train_file: no such file: .*nope\.csv"):
        load_splits(files_cfg(str(tmp_path / "nope.csv")), 0)
    t = write(TRAIN, tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"data.validation_file: no such file"):
        load_splits(files_cfg(t, str(tmp_path / "missing.parquet")), 0)


def test_unknown_extension(tmp_path):
    path = write(TRAIN, tmp_path / "train.txt")
    with pytest.raises(DataError, match=r"unknown extension '\.txt'"):
        load_splits(files_cfg(path), 0)


def test_unknown_tokenizer(tmp_path):
    with pytest.raises(DataError, match="data.tokenizer must be one of"):
        load_splits(files_cfg(write(TRAIN, tmp_path / "t.csv"), tokenizer="sentencepiece"), 0)


def test_missing_column(tmp_path):
    t = write(TRAIN.rename(columns={"text": "sentence"}), tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"train split has no column\(s\) \['text'\].*data.text_column"):
        load_splits(files_cfg(t), 0)
    t = write(TRAIN, tmp_path / "t2.csv")
    v = write(VAL.drop(columns=["label"]), tmp_path / "v2.csv")
    with pytest.raises(DataError, match=r"validation split has no column\(s\) \['label'\]"):
        load_splits(files_cfg(t, v), 0)
    with pytest.raises(DataError, match=r"\['body'\]"):
        load_splits(files_cfg(t, text_column="body"), 0)


@pytest.mark.parametrize("ext", EXTS)
def test_empty_split(tmp_path, ext):
    t = write(TRAIN, tmp_path / "t.csv")
    v = write(VAL.iloc[:0], tmp_path / f"v{ext}")
    with pytest.raises(DataError, match=r"validation split is empty"):
        load_splits(files_cfg(t, v), 0)


def test_empty_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match=r"train split is empty"):
        load_splits(files_cfg(str(path)), 0)


def test_single_row_without_validation_file(tmp_path):
    t = write(TRAIN.iloc[:1], tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"too few to hold out a validation split"):
        load_splits(files_cfg(t), 0)


def test_null_label_json(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", "label": null}\n')
    v = write(pd.DataFrame({"text": ["a"], "label": [0]}), tmp_path / "v.jsonl")
    with pytest.raises(DataError, match=r"train data row 3: label is null"):
        load_splits(files_cfg(str(t), v), 0)


def test_null_label_csv(tmp_path):
    t = write(TRAIN, tmp_path / "t.csv")
    v = tmp_path / "v.csv"
    v.write_text("text,label\na,pos\nb,\n")
    with pytest.raises(DataError, match=r"validation data row 2: label is null"):
        load_splits(files_cfg(t, str(v)), 0)


def test_validation_label_unseen_in_training(tmp_path):
    t = write(TRAIN, tmp_path / "t.csv")
    v = write(pd.DataFrame({"text": ["a"], "label": ["neutral"]}), tmp_path / "v.csv")
    with pytest.raises(DataError, match=r"validation data row 1: label 'neutral' never occurs in the training split"):
        load_splits(files_cfg(t, v), 0)
    t = write(pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}), tmp_path / "ti.csv")
    v = write(pd.DataFrame({"text": ["a"], "label": [4]}), tmp_path / "vi.csv")
    with pytest.raises(DataError, match=r"validation label 4 never occurs in the training split"):
        load_splits(files_cfg(t, v), 0)


@pytest.mark.parametrize("ext", [".jsonl", ".parquet"])
def test_float_label(tmp_path, ext):
    t = write(pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1.5, 1]}), tmp_path / f"t{ext}")
    v = write(pd.DataFrame({"text": ["a"], "label": [0]}), tmp_path / f"v{ext}")
    with pytest.raises(DataError, match=r"train data row 2: label 1\.5 is not an integer class id"):
        load_splits(files_cfg(t, v), 0)


def test_negative_label(tmp_path):  # an integer column of a typed file (in csv "-1" is the name "-1")
    t = write(pd.DataFrame({"text": ["a", "b"], "label": [0, -1]}), tmp_path / "t.jsonl")
    v = write(pd.DataFrame({"text": ["a"], "label": [0]}), tmp_path / "v.jsonl")
    with pytest.raises(DataError, match=r"train data row 2: label -1 is negative"):
        load_splits(files_cfg(t, v), 0)


@pytest.mark.parametrize("labels,val_label", [([0, 0, 0], 0), (["pos", "pos", "pos"], "pos")])
def test_single_class_training_data(tmp_path, labels, val_label):
    t = write(pd.DataFrame({"text": ["a", "b", "c"], "label": labels}), tmp_path / "t.csv")
    v = write(pd.DataFrame({"text": ["a"], "label": [val_label]}), tmp_path / "v.csv")
    with pytest.raises(DataError, match=r"single class"):
        load_splits(files_cfg(t, v), 0)


def test_unreadable_file(tmp_path):
    t = tmp_path / "t.json"
    t.write_text('{"text": "a", "label": ')
    with pytest.raises(DataError, match=r"data.train_file: could not read .*t\.json as json"):
        load_splits(files_cfg(str(t)), 0)


# --------------------------------------------------------------------------- hub

def test_hub_without_name():
    with pytest.raises(DataError, match=r"data.source=hub needs data.name"):
        load_splits(DataConfig(source="hub"), 0)


def test_hub_offline_names_the_dataset(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    name = "no-such-user-xyz/no-such-dataset-123"
    with pytest.raises(DataError, match=r"no-such-user-xyz/no-such-dataset-123.*HF_HUB_OFFLINE is set"):
        load_splits(DataConfig(source="hub", name=name), 0)


# --------------------------------------------------------------------------- vocab

def test_vocab_save_load_round_trip(tmp_path):
    v = Vocab.build(["The cat sat", "the dog", "a cat"], "whitespace", lowercase=True)
    v.labels = ["neg", "pos"]
    path = str(tmp_path / "vocab.json")
    v.save(path)
    with open(path) as f:
        assert json.load(f)["tokens"][:2] == [PAD, UNK]
    w = Vocab.load(path)
    assert w.tokens == v.tokens and w.labels == ["neg", "pos"]
    assert w.tokenizer == "whitespace" and w.lowercase is True
    assert w.encode("THE cat zebra") == v.encode("THE cat zebra") == [v.index["the"], v.index["cat"], 1]
    c = Vocab.build(["Ab"], "char", lowercase=False)
    c.save(path)
    d = Vocab.load(path)
    assert d.tokenizer == "char" and d.lowercase is False and d.labels == []
    assert d.encode("AbA") == [2, 3, 2] and d.encode("a") == [1]


def test_vocab_build_order_min_freq_max_size():
    texts = ["c c c b b a", "b d", "e"]
    assert Vocab.build(texts, "whitespace").tokens == [PAD, UNK, "b", "c", "a", "d", "e"]
    assert Vocab.build(texts, "whitespace", min_freq=3).tokens == [PAD, UNK, "b", "c"]
    assert Vocab.build(texts, "whitespace", max_size=4).tokens == [PAD, UNK, "b", "c"]
    assert Vocab.build(texts, "whitespace", max_size=1).tokens == [PAD, UNK]
    assert Vocab.build([], "char").tokens == [PAD, UNK]
    assert Vocab.build([None, "x"], "whitespace").tokens == [PAD, UNK, "x"]  # null text: no tokens


def test_vocab_must_start_with_pad_unk():
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])


def test_tokenize():
    assert tokenize("A b  C", "whitespace") == ["a", "b", "c"]
    assert tokenize("A b", "char", lowercase=False) == ["A", " ", "b"]
    assert tokenize(None, "char") == []
    with pytest.raises(TypeError, match="text must be a string"):
        tokenize(5, "char")
    with pytest.raises(ValueError, match="data.tokenizer"):
        tokenize("a", "bpe")


def test_hold_out_rows_are_pinned():
    """The held-out rows of a seeded draw, written out: drawing them in less memory must not change
    which rows validate (a cached split and a rerun's results depend on them)."""
    from encoders.data.splits import hold_out

    assert np.flatnonzero(hold_out(40, 42)).tolist() == [7, 18, 32, 39]
    big = hold_out(100_003, 3)
    assert big.sum() == 10_001 and np.flatnonzero(big)[:4].tolist() == [23, 36, 53, 60]
