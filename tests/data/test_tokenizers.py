"""encoders.data.tokenizers: the Rust tokenizers give Vocab's ids; subword kinds; files; flat encoding."""
import json
import os
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from encoders.data.tokenizers import (  # noqa: E402
    TokenizerFileError, encode_batch, load_tokenizer_file, lowercase_mismatches, pad_id, save_tokenizer,
    train_tokenizer)
from encoders.data.vocab import Vocab  # noqa: E402
from encoders.errors import DataError  # noqa: E402

MISMATCHES = lowercase_mismatches()
# characters that make the rules bite: Python-only whitespace (U+001C..U+001F), unicode spaces,
# final sigma and its contexts (case-ignorable ʰ and '), multi-char lowercase (İ), upper case
TRICKY = [" ", "\t", "\n", "\r", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000", "\u200b",
          "\u03a3", "\u03c3", "\u03c2", "\u02b0", "'", "\u0130", "A", "a", "B", "b", "\u00c9", "\u00e9", "ß", "ẞ"]
# no lone surrogates (category Cs): they are not text (test_lone_surrogates_are_a_data_error_naming_the_text)
CHARS = st.one_of(st.sampled_from(TRICKY), st.characters(exclude_characters=MISMATCHES, exclude_categories=["Cs"]))
TEXTS = st.lists(st.one_of(st.none(), st.text(CHARS, max_size=30)), min_size=0, max_size=25)


def rows(values, offsets):
    return [values[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


def no_special_words(texts, kind, lowercase):
    if kind != "whitespace":
        return True
    words = {w for t in texts if t for w in (t.lower() if lowercase else t).split()}
    return not words & {"<pad>", "<unk>"}


@settings(max_examples=60, deadline=None)
@given(texts=TEXTS, new=TEXTS, kind=st.sampled_from(["whitespace", "char"]), lowercase=st.booleans(),
       min_freq=st.integers(1, 3), max_size=st.one_of(st.none(), st.integers(0, 12)))
def test_word_level_ids_equal_vocab(texts, new, kind, lowercase, min_freq, max_size):
    assume(no_special_words(texts, kind, lowercase))
    vocab = Vocab.build(texts, kind, lowercase, min_freq, max_size)
    tok = train_tokenizer(texts, kind, lowercase=lowercase, min_freq=min_freq, max_vocab_size=max_size)
    assert tok.get_vocab_size() == len(vocab)
    assert [tok.id_to_token(i) for i in range(len(vocab))] == vocab.tokens
    for batch in (texts, new):  # seen and unseen text
        values, offsets = encode_batch(tok, batch)
        assert values.dtype == np.int32 and offsets.dtype == np.int64
        assert rows(values, offsets) == [vocab.encode(t) for t in batch]


def test_lone_surrogates_are_a_data_error_naming_the_text():
    tok = train_tokenizer(["a b"], "whitespace")
    with pytest.raises(DataError, match=r"text 1 holds a lone surrogate U\+D800 at character 2"):
        encode_batch(tok, ["ok", "ab\ud800c"])
    for kind in ("whitespace", "char", "bpe", "wordpiece"):
        with pytest.raises(DataError, match=r"text 1 holds a lone surrogate U\+DC80 at character 1.*replace it"):
            train_tokenizer(["fine", "x\udc80"], kind)
    # a proper pair is one character, and fine
    got = rows(*encode_batch(train_tokenizer(["\U0001F600 a"], "whitespace"), ["\U0001F600"]))
    assert got == [Vocab.build(["\U0001F600 a"], "whitespace").encode("\U0001F600")] and got[0][0] > 1


def test_word_level_fixed_cases():
    texts = ["Hello  world\thello\nWORLD", "ΑΣ ΑΣΑ Α'Σ ʰΣ σ", "a\x1cb c\u3000d", "", None, "İstanbul ẞ"]
    for kind in ("whitespace", "char"):
        for lowercase in (True, False):
            vocab = Vocab.build(texts, kind, lowercase)
            tok = train_tokenizer(iter(texts), kind, lowercase=lowercase)  # an iterator is fine too
            assert rows(*encode_batch(tok, texts)) == [vocab.encode(t) for t in texts]
    tok = train_tokenizer(["A b"], "char")
    assert tok.get_vocab()[" "] > 1  # spaces are char tokens


def test_min_freq_and_max_vocab_size():
    texts = ["a a a b b c", "d d d d", "e"]
    tok = train_tokenizer(texts, "whitespace", min_freq=2)
    assert [tok.id_to_token(i) for i in range(tok.get_vocab_size())] == ["<pad>", "<unk>", "d", "a", "b"]
    assert rows(*encode_batch(tok, ["c a zzz"])) == [[1, 3, 1]]
    tok = train_tokenizer(texts, "whitespace", max_vocab_size=3)
    assert tok.get_vocab_size() == 3 and tok.id_to_token(2) == "d"
    for size in (0, 1, 2):
        assert train_tokenizer(texts, "whitespace", max_vocab_size=size).get_vocab_size() == 2


def test_literal_special_words_keep_special_ids():
    """The one deliberate difference from Vocab: a text word "<pad>"/"<unk>" gets id 0/1.

    Vocab.build counts it as a word and gives it a second id, which WordLevel cannot express
    while "<unk>" stays the unknown id 1. The slot is kept, so every other id is still Vocab's."""
    texts = ["x <pad> <UNK> y y"]
    vocab = Vocab.build(texts, "whitespace")
    tok = train_tokenizer(texts, "whitespace")
    assert tok.get_vocab_size() == len(vocab)
    assert vocab.encode("x <pad> <unk> y q") == [vocab.index["x"], vocab.index["<pad>"], vocab.index["<unk>"], 2, 1]
    ids = rows(*encode_batch(tok, ["x <pad> <unk> y q"]))[0]
    assert ids == [vocab.index["x"], 0, 1, 2, 1]
    assert pad_id(tok) == 0


def test_lowercase_mismatches_are_unassigned_in_python():
    # the library's Unicode tables are newer than Python's: only characters Python does not know differ
    assert all(unicodedata.category(c) == "Cn" for c in MISMATCHES)


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_subword_train_encode_save_load(tmp_path, kind):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "lambda"]
    texts = [" ".join(rng.choice(words, 8)).title() for _ in range(300)]
    tok = train_tokenizer(texts, kind, vocab_size=60)
    assert tok.token_to_id("<pad>") == 0 and tok.token_to_id("<unk>") == 1 and pad_id(tok) == 0
    size = tok.get_vocab_size()
    assert 2 < size <= 60
    values, offsets = encode_batch(tok, ["alpha BETA", "", "Zeta zeta", "\u4e2d"])
    got = rows(values, offsets)
    assert got[1] == []
    assert all(0 < i < size for r in got for i in r)  # never the pad id
    assert got[2][: len(got[2]) // 2] == got[2][len(got[2]) // 2:]  # lowercased: "Zeta" == "zeta"
    assert got[3] == [1]  # an unseen character is unknown
    path = str(tmp_path / "tokenizer.json")
    save_tokenizer(tok, path)
    again = load_tokenizer_file(path)
    assert rows(*encode_batch(again, texts[:50])) == rows(*encode_batch(tok, texts[:50]))
    assert train_tokenizer(texts, kind, vocab_size=500, max_vocab_size=40).get_vocab_size() <= 40


@pytest.mark.parametrize("kind", ["whitespace", "char"])
def test_word_level_save_load_round_trip(tmp_path, kind):
    texts = ["The ΑΣ cat\x1csat", "on the\tMAT", None]
    tok = train_tokenizer(texts, kind)
    path = str(tmp_path / "tokenizer.json")
    save_tokenizer(tok, path)
    again = load_tokenizer_file(path)
    new = ["the cat SAT on a mat\x1e", "ΑΣ'"]
    vocab = Vocab.build(texts, kind)
    assert rows(*encode_batch(again, new)) == [vocab.encode(t) for t in new]


def test_bad_tokenizer_files(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(TokenizerFileError, match="nope.json: no such file"):
        load_tokenizer_file(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON"):
        load_tokenizer_file(str(bad))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(TokenizerFileError, match=r"other.json: not a tokenizer"):
        load_tokenizer_file(str(other))

    from tokenizers import Tokenizer, models

    no_pad = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    path = str(tmp_path / "nopad.json")
    no_pad.save(path)
    with pytest.raises(TokenizerFileError, match=r"nopad.json: no pad token.*<pad>.*\[PAD\]"):
        load_tokenizer_file(path)
    bert = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 5, "a": 1}, unk_token="[UNK]"))
    path = str(tmp_path / "bert.json")
    bert.save(path)
    assert pad_id(load_tokenizer_file(path)) == 5


def test_encode_batch_truncation_and_inputs():
    tok = train_tokenizer(["a b c d e f"], "whitespace")
    texts = ["a b c d e f", "a", "", None, "a b c"] * 500  # several 1000-text chunks
    values, offsets, cut = encode_batch(tok, texts, max_tokens_per_example=3, return_truncated=True)
    assert cut == 500
    assert np.diff(offsets).max() == 3
    assert rows(values, offsets)[:5] == [[2, 3, 4], [2], [], [], [2, 3, 4]]
    full_values, full_offsets = encode_batch(tok, texts)
    assert len(full_values) == 500 * (6 + 1 + 3)
    assert encode_batch(tok, [])[1].tolist() == [0]
    with pytest.raises(TypeError, match="text 1 must be a string"):
        encode_batch(tok, ["a", 3])
    tok.enable_padding()
    with pytest.raises(ValueError, match="padding enabled"):
        encode_batch(tok, ["a"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        train_tokenizer(["a"], "sentencepiece")
    with pytest.raises(ValueError, match="min_freq"):
        train_tokenizer(["a"], "whitespace", min_freq=0)
    with pytest.raises(TypeError, match="text 0"):
        train_tokenizer([b"a"], "bpe")
