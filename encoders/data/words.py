"""Word-level tokens: how ``whitespace`` and ``char`` split a text, and how a word vocabulary is
ranked. Below both the vocabulary (``encoders.data.vocab``) and the ``tokenizers`` form of it
(``encoders.data.tokenizers``), which must agree on every id.
"""
from __future__ import annotations

from itertools import chain
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from encoders.config import PAD, TOKENIZERS, UNK


def tokenize(text: str, kind: str, lowercase: bool = True) -> List[str]:
    if text is None:
        return []
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {text!r} ({type(text).__name__})")
    if lowercase:
        text = text.lower()
    if kind == "char":
        return list(text)
    if kind == "whitespace":
        return text.split()
    raise ValueError(f"data.tokenizer must be one of {TOKENIZERS}, got {kind!r}")


def split_column(texts: Sequence[str], kind: str, lowercase: bool) -> Tuple[List[str], np.ndarray]:
    """All tokens of ``texts`` end to end, and each text's token count (exactly ``tokenize``'s)."""
    if lowercase:
        texts = [t.lower() for t in texts]
    if kind == "char":
        return list(chain.from_iterable(texts)), np.fromiter(map(len, texts), np.int64, len(texts))
    flat: List[str] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        words = t.split()
        lengths[i] = len(words)
        flat += words
    return flat, lengths


def ranked(counts: Dict[str, int], min_freq: int = 1, max_size: Optional[int] = None) -> List[str]:
    """A word vocabulary's tokens by id: ``<pad>``, ``<unk>``, then the words seen at least ``min_freq``
    times, most frequent first, ties alphabetical (so the vocabulary is reproducible).

    Args:
        counts: how often each word occurs in the training split.
        min_freq: the fewest occurrences a word needs to be kept.
        max_size: at most this many tokens, ``<pad>`` and ``<unk>`` included; None: no limit.

    Returns:
        The tokens, ``<pad>`` at id 0 and ``<unk>`` at id 1.
    """
    kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[: max(0, max_size - 2)]
    return [PAD, UNK] + kept
