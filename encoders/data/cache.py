"""Tokenized local files, cached: a second run on the same files and settings does not tokenize again.

The key is a hash of every input file's path, inode, size and change time (``st_ctime``: any
write, ``touch -r``, ``cp -p`` or a rename over the file moves it, and no user can set it back,
unlike the modification time) and of every setting
that changes the ids (columns, tokenizer, vocabulary limits, truncation, the hold-out seed when
validation rows come from the training file). An entry is a folder of ``.npy`` buffers per split
(token values, offsets, labels, file rows), the vocabulary and a ``meta.json``. It is written to
a temporary folder and renamed into place, so a run killed while writing leaves no entry, and
read back memory-mapped, so processes on one machine (DDP ranks included) share its pages.

The folder is ``data.cache_dir``, else ``$ENCODERS_CACHE``, else ``~/.cache/padded-encoders``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from types import SimpleNamespace
from typing import Any, Callable, Optional

import numpy as np

from encoders.data.flat import TokenBuffer

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what an entry holds changes
SPLITS = ("train", "validation", "test")
_SETTINGS = ("text_column", "label_column", "tokenizer", "lowercase", "min_freq", "max_vocab_size",
             "subword_vocab_size", "max_tokens_per_example", "tokens_column", "tags_column")


def cache_root(cfg: Any) -> str:
    return (cfg.cache_dir or os.environ.get("ENCODERS_CACHE")
            or os.path.join(os.path.expanduser("~"), ".cache", "padded-encoders"))


def scratch_folder(cache_dir: Optional[str] = None) -> str:
    """A fresh folder under ``<cache root>/scratch`` for a temporary copy of the input (the
    ``datasets`` Arrow file); its reader deletes it. ``cache clear`` removes leftovers of killed runs."""
    root = os.path.join(cache_root(SimpleNamespace(cache_dir=cache_dir)), "scratch")
    os.makedirs(root, exist_ok=True)
    return tempfile.mkdtemp(dir=root)


def _stat(path: str) -> list:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def cache_key(cfg: Any, seed: int, task: str = "classification") -> str:
    files = {k: _stat(getattr(cfg, k)) for k in ("train_file", "validation_file", "test_file", "tokenizer_file")
             if getattr(cfg, k) and os.path.isfile(getattr(cfg, k))}
    parts = {"format": FORMAT, "files": files, "settings": {k: getattr(cfg, k) for k in _SETTINGS}, "task": task,
             "hold_out_seed": None if cfg.validation_file else seed}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached(cfg: Any, seed: int, build: Callable[[], Any], task: str = "classification"):
    """``build()``'s ``Splits``, or the same read back from the cache entry of these files and settings."""
    entry = os.path.join(cache_root(cfg), "tokens", cache_key(cfg, seed, task))
    damaged = False
    if os.path.isfile(os.path.join(entry, "meta.json")):
        try:
            splits = _load(entry)
            log.info("tokenized data read from the cache: %s", entry)
            return splits
        except (OSError, ValueError, KeyError) as e:  # a damaged entry is rebuilt, never trusted
            log.warning("cache entry %s is unreadable (%s): tokenizing again", entry, e)
            damaged = True
    splits = build()
    try:
        _save(splits, entry, replace=damaged)
    except OSError as e:  # a read-only or full disk must not stop training
        log.warning("could not write the cache entry %s (%s); the next run tokenizes again", entry, e)
    return splits


def _save(splits: Any, entry: str, replace: bool = False) -> None:
    from encoders.io import atomic_folder

    with atomic_folder(entry, replace=replace) as tmp:
        for name in SPLITS:
            split = getattr(splits, name)
            if split is None:
                continue
            tokens = split.tokens.take(np.arange(len(split))) if split.tokens.offsets[0] else split.tokens
            for what, array in (("values", tokens.values), ("offsets", tokens.offsets), ("labels", split.labels),
                                ("rows", split.rows)):
                np.save(os.path.join(tmp, f"{name}.{what}.npy"), np.ascontiguousarray(array))
            if split.tags is not None:  # task=tagging: same offsets as the tokens
                tags = split.tags.take(np.arange(len(split))) if split.tags.offsets[0] else split.tags
                np.save(os.path.join(tmp, f"{name}.tags.npy"), np.ascontiguousarray(tags.values))
        splits.vocab.save(tmp)
        meta = {"num_classes": splits.num_classes, "vocab_size": splits.vocab_size, "truncated": splits.truncated,
                "splits": [n for n in SPLITS if getattr(splits, n) is not None]}
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)


def _load(entry: str):
    from encoders.data.sources import Split, Splits
    from encoders.data.vocab import load_vocab

    with open(os.path.join(entry, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)

    def arr(name: str, what: str) -> np.ndarray:
        return np.load(os.path.join(entry, f"{name}.{what}.npy"), mmap_mode="r")

    def tags(name: str):
        has = os.path.isfile(os.path.join(entry, f"{name}.tags.npy"))
        return TokenBuffer(arr(name, "tags"), arr(name, "offsets")) if has else None

    splits = {n: Split(TokenBuffer(arr(n, "values"), arr(n, "offsets")), np.asarray(arr(n, "labels")),
                       np.asarray(arr(n, "rows")), tags(n)) for n in meta["splits"]}
    return Splits(splits["train"], splits["validation"], num_classes=meta["num_classes"],
                  vocab_size=meta["vocab_size"], vocab=load_vocab(entry), test=splits.get("test"),
                  truncated=meta.get("truncated", {}))
