"""Batched tokenization with the Hugging Face ``tokenizers`` library (Rust), into flat id buffers.

Four kinds:

* ``whitespace`` and ``char`` give exactly the ids of ``Vocab.build(...).encode(...)``
  (``encoders.data.vocab``): Python's ``str.lower`` (final sigma included) and Python's
  whitespace set are written into the tokenizer as a normalizer and pre-tokenizer, and the
  vocabulary is ordered as ``Vocab.build`` orders it, in a ``WordLevel`` model.
* ``bpe`` and ``wordpiece`` are trained with the library's own trainers.

Every tokenizer made here has ``"<pad>"`` = 0 and ``"<unk>"`` = 1. It is saved as the
library's own ``tokenizer.json`` (``save_tokenizer``), and ``load_tokenizer_file`` reads it
back (or any other ``tokenizer.json``) offline, so a run encodes new text as training did.
"""
from __future__ import annotations

import functools
import json
import numbers
import os
import re
import sys
from collections import Counter
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from encoders.config import PAD, UNK
from encoders.data.flat import TokenBuffer
from encoders.data.words import ranked, tokenize
from encoders.errors import DataError, TokenizerFileError  # noqa: F401 (TokenizerFileError: importable here)

KINDS = ("whitespace", "char", "bpe", "wordpiece")
PAD_TOKENS = (PAD, "[PAD]")  # what load_tokenizer_file accepts as the pad token, in this order
_CHUNK = 1000  # texts per batch handed to the library
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: no UTF-8 form, so the library can't take it


# --------------------------------------------------------------------------- Python's text rules

def _class(codepoints: Iterable[int]) -> str:
    """An Oniguruma character class matching exactly ``codepoints``."""
    cps = sorted(codepoints)
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def _all_chars() -> Iterator[str]:
    return (chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)


@functools.lru_cache(maxsize=None)
def _python_whitespace() -> str:
    """The characters ``str.split()`` splits on (includes U+001C..U+001F, unlike Rust's)."""
    return _class(ord(c) for c in _all_chars() if c.isspace())


@functools.lru_cache(maxsize=None)
def _final_sigma_pattern() -> str:
    """A regex for the capital sigmas that Python's ``str.lower`` turns into final ``ς``.

    Python lowers Σ to ς when, skipping case-ignorable characters, a cased character comes
    before it and none comes after it. Both sets are read off the running Python's own
    ``str.lower`` so the rule matches it exactly:
    ``cased`` (cased and not case-ignorable) = x where ``(x + "Σ").lower()`` ends in ς, and
    ``ignorable`` = x not in cased where ``("A" + x + "Σ").lower()`` ends in ς.
    """
    cased, ignorable = [], []
    for c in _all_chars():
        if (c + "\u03a3").lower().endswith("\u03c2"):
            cased.append(ord(c))
        elif ("A" + c + "\u03a3").lower().endswith("\u03c2"):
            ignorable.append(ord(c))
    cased_cls, ign_cls = _class(cased), _class(ignorable)
    return f"(?<={cased_cls}{ign_cls}*)\\x{{3A3}}(?!{ign_cls}*{cased_cls})"


def _lowercase_normalizer() -> Any:
    from tokenizers import Regex, normalizers

    return normalizers.Sequence([normalizers.Replace(Regex(_final_sigma_pattern()), "\u03c2"),
                                 normalizers.Lowercase()])


def lowercase_mismatches() -> List[str]:
    """Characters whose lowercase differs between this tokenizer and Python's ``str.lower``.

    The library's ``Lowercase`` uses its own (newer) Unicode tables; on Python 3.11
    (Unicode 14) these are 55 characters that Python's database does not assign at all
    (category ``Cn``), so Python leaves them alone and the library lowers them. Real text
    does not contain them; they are listed so tests and users can see the whole difference.
    """
    from tokenizers import normalizers

    low = normalizers.Lowercase()
    return [c for c in _all_chars() if c.lower() != low.normalize_str(c)]


def _whitespace_split() -> Any:
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Split(Regex(_python_whitespace() + "+"), behavior="removed")


def _char_split() -> Any:
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every code point alone


# --------------------------------------------------------------------------- training

def train_tokenizer(texts: Iterable[Optional[str]], kind: str, lowercase: bool = True, min_freq: int = 1,
                    max_vocab_size: Optional[int] = None, vocab_size: int = 8000) -> Any:
    """Train a ``tokenizers.Tokenizer`` on ``texts``.

    Args:
        texts: the training split's texts (``None`` counts as an empty text). Read once for the
            subword kinds, twice for ``whitespace``/``char`` (an iterator is listed first).
        kind: ``whitespace``, ``char``, ``bpe`` or ``wordpiece``.
        lowercase: lowercase as Python's ``str.lower`` does, before splitting (saved in the tokenizer).
        min_freq: ``whitespace``/``char``: keep tokens seen at least this often (``Vocab.build``);
            ``bpe``/``wordpiece``: the trainers' ``min_frequency``.
        max_vocab_size: ``whitespace``/``char``: at most this many ids including ``<pad>`` and
            ``<unk>``, as ``Vocab.build(max_size=...)``. ``bpe``/``wordpiece``: caps ``vocab_size``
            when given.
        vocab_size: ``bpe``/``wordpiece`` only: the trainers' target size (special tokens included).

    Returns:
        A ``tokenizers.Tokenizer`` with ``"<pad>"`` = 0 and ``"<unk>"`` = 1, no special tokens added
        on encoding and no padding or truncation set.

    Raises:
        ValueError: an unknown ``kind``, or a size or frequency that is not a positive integer.
    """
    if kind not in KINDS:
        raise ValueError(f"tokenizer kind must be one of {KINDS}, got {kind!r}")
    for name, value in (("min_freq", min_freq), ("vocab_size", vocab_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if max_vocab_size is not None and (isinstance(max_vocab_size, bool) or not isinstance(
            max_vocab_size, numbers.Integral) or max_vocab_size < 0):
        raise ValueError(f"max_vocab_size must be None or an integer >= 0, got {max_vocab_size!r}")
    if kind in ("whitespace", "char"):
        return _train_word_level(texts, kind, lowercase, min_freq, max_vocab_size)
    return _train_subword(texts, kind, lowercase, min_freq,
                          vocab_size if max_vocab_size is None else min(vocab_size, max_vocab_size))


def _bare(kind: str, model: Any, lowercase: bool) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer(model)
    if lowercase:
        tok.normalizer = _lowercase_normalizer()
    tok.pre_tokenizer = _char_split() if kind == "char" else _whitespace_split()
    return tok


def word_level_tokenizer(vocab) -> Any:
    """The ``tokenizers`` form of a word-level ``Vocab`` (``whitespace``/``char``): the same ids for
    every text, so a server that runs the library encodes text exactly as training did.

    Args:
        vocab: anything with a ``Vocab``'s ``tokens``, ``tokenizer`` and ``lowercase``.

    Returns:
        A ``tokenizers.Tokenizer`` (a ``WordLevel`` model) giving ``vocab``'s ids.
    """
    return _word_level(vocab.tokens, vocab.tokenizer, vocab.lowercase)


def _word_level(tokens: Sequence[str], kind: str, lowercase: bool) -> Any:
    from tokenizers import models

    ids = {PAD: 0, UNK: 1}
    for i, token in enumerate(tokens[2:], start=2):
        # the literal words "<pad>"/"<unk>" keep their special ids; their slot stays (unused)
        # so every other id and the vocabulary size equal the Vocab's
        ids[f"{token} (duplicate of id {ids[token]})" if token in ids else token] = i
    return _bare(kind, models.WordLevel(ids, unk_token=UNK), lowercase)


def _train_word_level(texts: Iterable[Optional[str]], kind: str, lowercase: bool, min_freq: int,
                      max_size: Optional[int]) -> Any:
    """The word-level tokenizer of ``texts``: the tokens ``Vocab.build`` ranks (``encoders.data.words``)."""
    counts: Counter = Counter()
    for i, text in enumerate(texts):
        counts.update(tokenize(_checked(text, i), kind, lowercase))
    return _word_level(ranked(counts, min_freq, max_size), kind, lowercase)


def _train_subword(texts: Iterable[Optional[str]], kind: str, lowercase: bool, min_freq: int,
                   size: int) -> Any:
    from tokenizers import decoders, models, trainers

    specials = [PAD, UNK]
    if kind == "bpe":
        tok = _bare(kind, models.BPE(unk_token=UNK), lowercase)
        trainer = trainers.BpeTrainer(vocab_size=size, min_frequency=min_freq, special_tokens=specials,
                                      show_progress=False)
    else:
        tok = _bare(kind, models.WordPiece(unk_token=UNK), lowercase)
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=size, min_frequency=min_freq, special_tokens=specials,
                                            show_progress=False)
    tok.train_from_iterator(_chunks(texts), trainer)
    if tok.token_to_id(PAD) != 0 or tok.token_to_id(UNK) != 1:  # the trainers put specials first
        raise AssertionError(f"{kind} trainer did not give {PAD}=0, {UNK}=1")
    return tok


def _chunks(texts: Iterable[Optional[str]]) -> Iterator[List[str]]:
    batch: List[str] = []
    for i, t in enumerate(texts):
        batch.append(_checked(t, i))
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _checked(text: Any, index: int) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError(f"text {index} must be a string, got {text!r:.40} ({type(text).__name__})")
    if not text.isascii():
        bad = _SURROGATE.search(text)
        if bad:
            raise DataError(f"text {index} holds a lone surrogate U+{ord(bad.group()):04X} at character "
                            f"{bad.start()}: not Unicode text, so no tokenizer can encode it (bytes decoded with "
                            f"errors='surrogateescape'?); replace it, e.g. text.encode('utf-8', 'replace').decode()")
    return text


# --------------------------------------------------------------------------- files

def save_tokenizer(tokenizer: Any, path: str) -> None:
    """Write ``tokenizer`` as the library's ``tokenizer.json`` (atomically: a crash leaves the old file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    tokenizer.save(tmp)
    os.replace(tmp, path)


def load_tokenizer_file(path: str) -> Any:
    """Load a ``tokenizer.json`` offline and check it can pad.

    The pad token must be ``"<pad>"`` (this project's) or ``"[PAD]"`` (BERT's), looked up in
    that order; ``pad_id(tokenizer)`` gives its id. Anything else raises.

    Args:
        path: the ``tokenizer.json`` file.

    Returns:
        The ``tokenizers.Tokenizer``.

    Raises:
        TokenizerFileError: (a ``ValueError``) naming the file and the reason: missing file, not
            JSON, not a tokenizer the library reads, or no pad token.
    """
    from tokenizers import Tokenizer

    if not os.path.isfile(path):
        raise TokenizerFileError(f"tokenizer file {path}: no such file")
    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # the library raises a bare Exception with serde's message
        reason = "not valid JSON" if not _is_json(path) else "not a tokenizer the tokenizers library reads"
        raise TokenizerFileError(f"tokenizer file {path}: {reason} ({type(e).__name__}: {e})") from e
    try:
        pad_id(tok)
    except ValueError as e:
        raise TokenizerFileError(f"tokenizer file {path}: {e}") from None
    return tok


def _is_json(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
        return True
    except Exception:
        return False


def pad_id(tokenizer: Any) -> int:
    """The id of ``"<pad>"`` or else ``"[PAD]"``; a ValueError when there is neither."""
    for token in PAD_TOKENS:
        i = tokenizer.token_to_id(token)
        if i is not None:
            return int(i)
    raise ValueError(f"no pad token: the vocabulary has none of {list(PAD_TOKENS)}; "
                     f"add one (tokenizer.add_special_tokens([{PAD!r}])) and save it again")


# --------------------------------------------------------------------------- encoding

def encode_batch(tokenizer: Any, texts: Sequence[Optional[str]], max_tokens_per_example: Optional[int] = None,
                 return_truncated: bool = False
                 ) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, int]]:
    """Encode ``texts`` into one flat id buffer.

    Uses the library's ``encode_batch_fast`` (parallel, no character offsets), with no special
    tokens added, in chunks of 1000 texts. ``None`` encodes as an empty text.

    Args:
        tokenizer: a ``tokenizers.Tokenizer``; must not have padding enabled (lengths would include
            the padding).
        texts: the texts.
        max_tokens_per_example: keep only the first N ids of each text (as
            ``data.max_tokens_per_example`` does).
        return_truncated: also return how many texts were cut.

    Returns:
        ``(values, offsets)``: ``values`` int32 ``[total ids]``, ``offsets`` int64 ``[N + 1]``
        (text ``i`` is ``values[offsets[i]:offsets[i+1]]``), plus ``n_truncated`` when asked.

    Raises:
        ValueError: the tokenizer pads.
        DataError: a text holds a lone surrogate (no UTF-8 form).
    """
    if tokenizer.padding is not None:
        raise ValueError("the tokenizer has padding enabled; call tokenizer.no_padding() first "
                         "(padding is done per batch by TokenBuffer.pad)")
    if not isinstance(texts, (list, tuple)):
        texts = list(texts)
    parts: List[np.ndarray] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start:start + _CHUNK]
        try:
            encs = tokenizer.encode_batch_fast(chunk, add_special_tokens=False)
        except Exception:  # None, a non-string or a lone surrogate: find it, say which
            chunk = [_checked(t, start + i) for i, t in enumerate(chunk)]
            encs = tokenizer.encode_batch_fast(chunk, add_special_tokens=False)
        ids = [e.ids for e in encs]
        lengths[start:start + len(ids)] = [len(x) for x in ids]
        parts.append(np.fromiter(_flatten(ids), dtype=np.int32, count=int(lengths[start:start + len(ids)].sum())))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    n_truncated = 0
    if max_tokens_per_example is not None:
        buf, n_truncated = TokenBuffer(values, offsets).truncate(max_tokens_per_example)
        values, offsets = buf.values, buf.offsets
    return (values, offsets, n_truncated) if return_truncated else (values, offsets)


def _flatten(lists: List[List[int]]) -> Iterator[int]:
    from itertools import chain

    return chain.from_iterable(lists)
