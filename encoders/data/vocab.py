"""The run's tokenizer and vocabulary: text in, token ids out (pad=0, unk=1), one text or a column.

Two kinds share one interface (``tokens``, ``labels``, ``len()``, ``encode(text)``,
``encode_many(texts) -> TokenBuffer``, ``save(run_dir)``; ``load_vocab(run_dir)`` reads either):

* ``Vocab``: word-level, ``whitespace`` (``str.split``) or ``char`` (every character), built
  from the training split's counts. Encoding a column runs ``str.lower``/``str.split`` and one
  dict lookup per token in C (``map``/``np.fromiter``), with no Python list per example kept.
* ``SubwordVocab``: a Hugging Face ``tokenizers`` tokenizer (``bpe``/``wordpiece`` trained on
  the training split, or ``data.tokenizer_file``), run batched in Rust.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from encoders.config import PAD, UNK, UNK_ID
from encoders.data.flat import TokenBuffer
from encoders.data.tokenizers import encode_batch, load_tokenizer_file, pad_id, save_tokenizer
from encoders.data.words import ranked, split_column, tokenize  # noqa: F401 (importable here)
from encoders.run.files import TOKENIZER_FILE, vocab_file

WORD_KINDS = ("whitespace", "char")


def _buffer(values: np.ndarray, lengths: np.ndarray) -> TokenBuffer:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenBuffer(values, offsets)


class _FirstSeen(dict):
    """token -> id in order of first sight (ids for a column before the vocabulary is known)."""

    def __missing__(self, token: str) -> int:
        i = self[token] = len(self)
        return i


@dataclass
class Vocab:
    tokens: List[str]
    labels: List[str] = field(default_factory=list)  # label names by id ([] when labels were ints)
    tokenizer: str = "whitespace"
    lowercase: bool = True

    def __post_init__(self):
        if self.tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {[PAD, UNK]}, got {self.tokens[:2]}")
        self.index: Dict[str, int] = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> List[int]:
        get = self.index.get
        return [get(t, UNK_ID) for t in tokenize(text, self.tokenizer, self.lowercase)]

    def encode_many(self, texts: Sequence[str]) -> TokenBuffer:
        """``encode`` of every text, as one buffer (``None`` is an empty text)."""
        texts = [t if t is not None else "" for t in texts]
        flat, lengths = split_column(texts, self.tokenizer, self.lowercase)
        values = np.fromiter(map(self.index.get, flat, repeat(UNK_ID)), np.int32, len(flat))
        return _buffer(values, lengths)

    @classmethod
    def build(cls, texts: Iterable[str], tokenizer: str, lowercase: bool = True, min_freq: int = 1,
              max_size: Optional[int] = None) -> "Vocab":
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text, tokenizer, lowercase))
        return cls.from_counts(counts, tokenizer, lowercase, min_freq, max_size)

    @classmethod
    def from_counts(cls, counts: Dict[str, int], tokenizer: str, lowercase: bool = True, min_freq: int = 1,
                    max_size: Optional[int] = None) -> "Vocab":
        return cls(ranked(counts, min_freq, max_size), tokenizer=tokenizer, lowercase=lowercase)

    @classmethod
    def build_and_encode(cls, chunks: Iterable[Tuple[str, Sequence[str]]], counted: Sequence[str], tokenizer: str,
                         lowercase: bool = True, min_freq: int = 1, max_size: Optional[int] = None
                         ) -> Tuple["Vocab", Dict[str, TokenBuffer]]:
        """One pass over every split's texts: the vocabulary of the ``counted`` splits and every split's ids.

        ``chunks`` yields ``(split name, texts)`` pairs, each split's texts in order. Equal to
        ``build`` on the counted splits' texts followed by ``encode`` of every text, without
        splitting any text twice or keeping a Python object per example. In memory; ``build_streaming``
        writes the ids out as it goes.
        """
        parts: Dict[str, List[TokenBuffer]] = {}
        vocab, remap = cls.build_streaming(chunks, counted, lambda split, buf: parts.setdefault(split, []).append(buf),
                                           tokenizer, lowercase, min_freq, max_size)
        out = {}
        for split, pieces in parts.items():
            # remapped piece by piece into one new buffer, each piece freed once copied: memory
            # stays at about one copy of the ids whatever the number of rows
            lengths = np.concatenate([p.lengths for p in pieces])
            values = np.empty(int(lengths.sum()), dtype=np.int32)
            start = 0
            for i, piece in enumerate(pieces):
                np.take(remap, piece.values, out=values[start:start + len(piece.values)])
                start += len(piece.values)
                pieces[i] = None
            out[split] = _buffer(values, lengths)
        return vocab, out

    @classmethod
    def build_streaming(cls, chunks: Iterable[Tuple[str, Sequence[str]]], counted: Sequence[str],
                        emit: Callable[[str, TokenBuffer], None], tokenizer: str, lowercase: bool = True,
                        min_freq: int = 1, max_size: Optional[int] = None) -> Tuple["Vocab", np.ndarray]:
        """One pass over ``(split, texts)`` chunks: ``emit(split, ids)`` for each chunk as it is split,
        its words numbered in order of first sight, then the vocabulary of the ``counted`` splits
        and ``remap`` (``remap[first-sight id]`` is the vocabulary's id; ``UNK_ID`` for dropped words).

        Memory is one chunk plus one entry per distinct word (its text and count): it grows with
        the vocabulary, not with the rows.
        """
        seen = _FirstSeen()
        counts = np.zeros(0, dtype=np.int64)
        for split, texts in chunks:
            flat, n = split_column(texts, tokenizer, lowercase)
            ids = np.fromiter(map(seen.__getitem__, flat), np.int32, len(flat))
            del flat
            if split in counted:
                counts = _add_counts(counts, np.bincount(ids, minlength=len(seen)))
            emit(split, _buffer(ids, n))
        first_seen = list(seen)
        del seen
        counts = _add_counts(counts, np.zeros(len(first_seen), np.int64))
        vocab = cls.from_counts({t: int(c) for t, c in zip(first_seen, counts) if c},
                                tokenizer, lowercase, min_freq, max_size)
        remap = np.fromiter(map(vocab.index.get, first_seen, repeat(UNK_ID)), np.int32, len(first_seen))
        return vocab, remap

    def save(self, run_dir: str) -> None:
        from encoders.io import atomic_write_text

        atomic_write_text(_vocab_path(run_dir), json.dumps({
            "tokens": self.tokens, "labels": self.labels, "tokenizer": self.tokenizer, "lowercase": self.lowercase}))

    @classmethod
    def load(cls, path: str) -> "Vocab":
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls(d["tokens"], d.get("labels", []), d.get("tokenizer", "whitespace"), d.get("lowercase", True))


def _add_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))) + np.pad(b, (0, n - len(b)))


def _vocab_path(run_dir: str) -> str:
    """``run_dir/vocab.json``; a path ending in ``.json`` is taken as the file itself."""
    return run_dir if run_dir.endswith(".json") else vocab_file(run_dir)


class SubwordVocab:
    """A ``tokenizers.Tokenizer`` as the run's vocabulary (``bpe``, ``wordpiece`` or a file)."""

    def __init__(self, tokenizer, kind: str, labels: Optional[List[str]] = None):
        if pad_id(tokenizer) != 0 or tokenizer.token_to_id(UNK) not in (None, UNK_ID):
            raise ValueError(f"the tokenizer's pad token must have id 0 (it has {pad_id(tokenizer)})")
        self.tokenizer, self.tokenizer_kind, self.labels = tokenizer, kind, list(labels or [])
        vocab = tokenizer.get_vocab()
        self.tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer_kind

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> List[int]:
        return self.encode_many([text]).row(0).tolist()

    def encode_many(self, texts: Sequence[str]) -> TokenBuffer:
        return TokenBuffer(*encode_batch(self.tokenizer, list(texts)))

    def save(self, run_dir: str) -> None:
        from encoders.io import atomic_write_text

        save_tokenizer(self.tokenizer, os.path.join(run_dir, TOKENIZER_FILE))
        atomic_write_text(_vocab_path(run_dir), json.dumps({
            "tokens": self.tokens, "labels": self.labels, "tokenizer": self.tokenizer_kind, "lowercase": None,
            "tokenizer_file": TOKENIZER_FILE}))


def load_vocab(run_dir: str):
    """The vocabulary a run saved (``vocab.json``, and ``tokenizer.json`` for subword kinds)."""
    path = _vocab_path(run_dir)
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if d.get("tokenizer_file"):
        tok = load_tokenizer_file(os.path.join(os.path.dirname(path), d["tokenizer_file"]))
        return SubwordVocab(tok, d.get("tokenizer", "file"), d.get("labels", []))
    return Vocab(d["tokens"], d.get("labels", []), d.get("tokenizer", "whitespace"), d.get("lowercase", True))
