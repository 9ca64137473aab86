"""Tokenizers and a vocabulary built from the training split (pad=0, unk=1)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from encoders.config import PAD, TOKENIZERS, UNK, UNK_ID


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

    @classmethod
    def build(cls, texts: Iterable[str], tokenizer: str, lowercase: bool = True, min_freq: int = 1,
              max_size: Optional[int] = None) -> "Vocab":
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text, tokenizer, lowercase))
        # most frequent first; ties alphabetical so the vocabulary is reproducible
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK] + kept, tokenizer=tokenizer, lowercase=lowercase)

    def save(self, path: str) -> None:
        from encoders.io import atomic_write_text

        atomic_write_text(path, json.dumps({"tokens": self.tokens, "labels": self.labels,
                                            "tokenizer": self.tokenizer, "lowercase": self.lowercase}))

    @classmethod
    def load(cls, path: str) -> "Vocab":
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls(d["tokens"], d.get("labels", []), d.get("tokenizer", "whitespace"), d.get("lowercase", True))
