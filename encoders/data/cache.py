"""Tokenized local files, cached: a second run on the same files and settings does not tokenize again.

The key is a hash of every input file's path, inode, size and change time (``st_ctime``: any
write, ``touch -r``, ``cp -p`` or a rename over the file moves it, and no user can set it back,
unlike the modification time) and of every setting
that changes the ids (columns, tokenizer, vocabulary limits, truncation, the hold-out seed when
validation rows come from the training file). An entry is a folder of ``.npy`` buffers per split
(token values, offsets, labels, file rows), the vocabulary and a ``meta.json``. It is written to
a temporary folder and renamed into place, so a run killed while writing leaves no entry (what it
does leave, the half-written folder and the scratch copy of its input, is held by the run while it
lives and swept by the next cold build once it is gone), and read back memory-mapped, so processes
on one machine (DDP ranks included) share its pages.

The folder is ``data.cache_dir``, else ``$ENCODERS_CACHE``, else ``~/.cache/padded-encoders``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from encoders.data.flat import TokenBuffer
from encoders.io import held_by_a_live_process, try_flock
from encoders.data.splits import Split, Splits

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what an entry holds changes
SPLITS = ("train", "validation", "test")
REMAP_STEP = 1 << 20  # ids renumbered at a time on disk
_SETTINGS = ("text_column", "label_column", "tokenizer", "lowercase", "min_freq", "max_vocab_size",
             "subword_vocab_size", "max_tokens_per_example", "tokens_column", "tags_column")


def cache_root(cfg: Any) -> str:
    return (cfg.cache_dir or os.environ.get("ENCODERS_CACHE")
            or os.path.join(os.path.expanduser("~"), ".cache", "padded-encoders"))


def scratch_folder(cache_dir: Optional[str] = None) -> str:
    """A fresh folder under ``<cache root>/scratch`` for a temporary copy of the input (the
    ``datasets`` Arrow file), held by this process (``hold``); its reader deletes it with
    ``drop_scratch``. What a killed run leaves is swept by the next cold build (``sweep_leftovers``)."""
    root = os.path.join(cache_root(SimpleNamespace(cache_dir=cache_dir)), "scratch")
    os.makedirs(root, exist_ok=True)
    return hold(tempfile.mkdtemp(dir=root))


def drop_scratch(folder: str) -> None:
    """Delete a scratch folder and let go of it."""
    shutil.rmtree(folder, ignore_errors=True)
    let_go(folder)


# -- working folders: held while their process lives, swept once it is gone ------------------------
LEFTOVER_AFTER_S = 60.0  # a working folder is made a moment before it is held: younger ones are left alone
_held: Dict[str, int] = {}  # folder -> an open descriptor holding its lock


def hold(folder: str) -> str:
    """Mark ``folder`` as this process's work in progress: an exclusive lock on the folder itself,
    let go by ``let_go`` or when the process ends, however it ends (a kill -9 included)."""
    try:
        fd = try_flock(folder)
    except OSError:
        return folder
    if fd is not None:
        _held[folder] = fd
    return folder


def let_go(folder: str) -> None:
    fd = _held.pop(folder, None)
    if fd is not None:
        os.close(fd)


def leftovers(root: str) -> List[str]:
    """What runs that ended before finishing left under the cache ``root``: entries half written
    (``tokens/.tmp-*``) or half deleted (``tokens/.old-*``) and scratch copies (``scratch/*``) that no
    live process holds."""
    found = []
    for d in (os.path.join(root, "tokens"), os.path.join(root, "scratch")):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        found += [os.path.join(d, n) for n in names
                  if (d.endswith("scratch") or n.startswith((".tmp-", ".old-")))
                  and not held_by_a_live_process(os.path.join(d, n))]
    return found


def sweep_leftovers(root: str, min_age_s: float = None, found: Optional[List[str]] = None) -> List[str]:
    """Delete ``leftovers(root)`` (or ``found``, folders no live process holds) not touched for
    ``min_age_s`` (default ``LEFTOVER_AFTER_S``): a run killed while tokenizing (Ctrl-C twice, out of
    memory) leaves a copy of its input and a half entry, each as large as the data; the next cold
    build removes them. Returns the paths deleted."""
    import time

    min_age_s = LEFTOVER_AFTER_S if min_age_s is None else min_age_s
    removed = []
    for path in leftovers(root) if found is None else found:
        try:
            if time.time() - os.stat(path).st_mtime < min_age_s:
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):  # a read-only cache keeps them: say only what went
            removed.append(path)
    if removed:
        log.info("removed %d leftover(s) of runs that ended while tokenizing, under %s", len(removed), root)
    return removed


def _stat(path: str) -> list:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def cache_key(cfg: Any, seed: int, task: str = "classification") -> str:
    files = {k: _stat(getattr(cfg, k)) for k in ("train_file", "validation_file", "test_file", "tokenizer_file")
             if getattr(cfg, k) and os.path.isfile(getattr(cfg, k))}
    parts = {"format": FORMAT, "files": files, "settings": {k: getattr(cfg, k) for k in _SETTINGS}, "task": task,
             "hold_out_seed": None if cfg.validation_file else seed}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached(cfg: Any, seed: int, build: Callable[["EntryWriter"], None], task: str = "classification"):
    """The ``Splits`` of these files and settings, read memory-mapped from their cache entry;
    ``build(writer)`` writes the entry first when there is none (or a damaged one, which it replaces)."""
    entry = os.path.join(cache_root(cfg), "tokens", cache_key(cfg, seed, task))
    damaged = False
    if os.path.isfile(os.path.join(entry, "meta.json")):
        try:
            splits = _load(entry)
            log.info("tokenized data read from the cache: %s", entry)
            _touch(entry)
            return splits
        except (OSError, ValueError, KeyError) as e:  # a damaged entry is rebuilt, never trusted
            log.warning("cache entry %s is unreadable (%s): tokenizing again", entry, e)
            damaged = True
    sweep_leftovers(cache_root(cfg))
    tmp = None
    try:
        from encoders.io import atomic_folder

        with atomic_folder(entry, replace=damaged) as tmp:
            hold(tmp)  # until it is renamed into place (or deleted)
            build(EntryWriter(tmp))
    except OSError as e:  # a read-only or full disk must not stop training
        log.warning("could not write the cache entry %s (%s); the next run tokenizes again", entry, e)
        return uncached(build)
    finally:
        if tmp is not None:
            let_go(tmp)
    _touch(entry)
    max_gb = getattr(cfg, "cache_max_gb", None)
    if max_gb:
        evict(os.path.dirname(entry), int(max_gb * 2**30), keep=entry)
    return _load(entry)


# -- the cache's size: least recently used entries go first ----------------------------------------
def _touch(entry: str) -> None:
    """Mark the entry used now (its folder's mtime is the last use)."""
    try:
        os.utime(entry)
    except OSError:
        pass


def entries(tokens_dir: str) -> List[Dict[str, Any]]:
    """Complete entries under ``tokens_dir``, least recently used first: path, bytes, last use (epoch s)."""
    out = []
    try:
        names = os.listdir(tokens_dir)
    except OSError:
        return out
    for name in names:
        path = os.path.join(tokens_dir, name)
        if name.startswith(".") or not os.path.isfile(os.path.join(path, "meta.json")):
            continue
        try:
            size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
            out.append({"path": path, "bytes": size, "used": os.stat(path).st_mtime})
        except OSError:  # removed meanwhile
            continue
    return sorted(out, key=lambda e: (e["used"], e["path"]))


def remove_entry(path: str) -> None:
    """Rename away, then delete: a reader never sees half an entry (mapped files stay readable)."""
    gone = os.path.join(os.path.dirname(path), f".old-{os.path.basename(path)}-{os.getpid()}")
    try:
        os.rename(path, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def evict(tokens_dir: str, max_bytes: int, keep: Optional[str] = None) -> List[str]:
    """Delete least recently used entries until the rest fit in ``max_bytes`` (``keep`` stays); returns them."""
    found = entries(tokens_dir)
    total = sum(e["bytes"] for e in found)
    removed = []
    for e in found:
        if total <= max_bytes:
            break
        if keep and os.path.abspath(e["path"]) == os.path.abspath(keep):
            continue
        remove_entry(e["path"])
        total -= e["bytes"]
        removed.append(e["path"])
    if removed:
        log.info("tokens cache over %.1f GB: removed %d least recently used entr%s", max_bytes / 2**30,
                 len(removed), "y" if len(removed) == 1 else "ies")
    return removed


UNCACHED_PREFIX = "encoders-tokens-"


def uncached(build: Callable[["EntryWriter"], None]):
    """``build``'s ``Splits`` through a temporary entry in the system's temporary folder (deleted once
    mapped: POSIX keeps mapped pages). Hub data always goes this way: the entry is held while it is
    written, and what a killed run left there is swept first, as cold builds do in the cache."""
    import glob

    found = [p for p in glob.glob(os.path.join(tempfile.gettempdir(), UNCACHED_PREFIX + "*"))
             if not held_by_a_live_process(p)]
    sweep_leftovers(tempfile.gettempdir(), found=found)
    tmp = hold(tempfile.mkdtemp(prefix=UNCACHED_PREFIX))
    try:
        build(EntryWriter(tmp))
        return _load(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        let_go(tmp)


class NpyAppender:
    """A 1-D ``.npy`` file written piece by piece; its header (which holds the length) is written last."""

    HEADER = 128  # bytes: magic, version, header length, then the padded dict (fits any 1-D length)

    def __init__(self, path: str, dtype: Any):
        self.path, self.dtype, self.size = path, np.dtype(dtype), 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * self.HEADER)

    def append(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=self.dtype)
        self.file.write(memoryview(array).cast("B"))
        self.size += array.size

    def close(self) -> None:
        if self.file.closed:
            return
        text = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (
            np.lib.format.dtype_to_descr(self.dtype), self.size)
        text = text.ljust(self.HEADER - 10 - 1) + "\n"
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1"))
        self.file.close()


class EntryWriter:
    """Writes a cache entry split by split, a chunk of rows at a time, so memory stays at one chunk.

    Per split: ``append`` each chunk's ids (optionally tags) in row order, then ``finish`` with the
    labels and file rows. ``remap`` rewrites the written ids in place (word ids numbered by first
    sight, renumbered once the vocabulary is known). ``close`` writes the vocabulary and
    ``meta.json``, which marks the entry complete.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.files: Dict[str, Dict[str, NpyAppender]] = {}
        self.ends: Dict[str, int] = {}  # tokens written so far, per split
        self.truncated: Dict[str, int] = {}

    def _path(self, split: str, what: str) -> str:
        return os.path.join(self.folder, f"{split}.{what}.npy")

    def append(self, split: str, tokens: TokenBuffer, tags: Optional[TokenBuffer] = None,
               max_tokens: Optional[int] = None) -> None:
        """Rows of ``tokens`` after those written; ``max_tokens`` cuts each row (counted in ``truncated``)."""
        if split not in self.files:
            self.files[split] = {"values": NpyAppender(self._path(split, "values"), tokens.values.dtype),
                                 "offsets": NpyAppender(self._path(split, "offsets"), np.int64)}
            if tags is not None:
                self.files[split]["tags"] = NpyAppender(self._path(split, "tags"), tags.values.dtype)
            self.files[split]["offsets"].append(np.zeros(1, np.int64))
            self.ends[split], self.truncated[split] = 0, 0
        if max_tokens:
            tokens, cut = tokens.truncate(max_tokens)
            self.truncated[split] += cut
        files, lo, hi = self.files[split], tokens.offsets[0], tokens.offsets[-1]
        files["values"].append(tokens.values[lo:hi])
        files["offsets"].append(tokens.offsets[1:] - lo + self.ends[split])
        if tags is not None:
            tags = tags.truncate(max_tokens)[0] if max_tokens else tags
            files["tags"].append(tags.values[tags.offsets[0]:tags.offsets[-1]])
        self.ends[split] += int(hi - lo)

    def finish(self, split: str, labels: np.ndarray, rows: np.ndarray) -> None:
        self.finish_steps(split, [(labels, rows)], labels.dtype, rows.dtype)

    def finish_steps(self, split: str, steps: Iterable[Tuple[np.ndarray, np.ndarray]], label_dtype: Any,
                     rows_dtype: Any = np.int64) -> None:
        """``finish`` with the labels and file rows given as ``(labels, rows)`` pieces in row order,
        written as they come (the same files as one piece: no array of every row in memory)."""
        if split not in self.files:  # a split with no rows at all
            self.append(split, TokenBuffer(np.zeros(0, np.int32), np.zeros(1, np.int64)))
        for f in self.files[split].values():
            f.close()
        labels = NpyAppender(self._path(split, "labels"), label_dtype)
        rows = NpyAppender(self._path(split, "rows"), rows_dtype)
        for some_labels, some_rows in steps:
            labels.append(some_labels)
            rows.append(some_rows)
        labels.close()
        rows.close()

    def remap(self, split: str, table: np.ndarray) -> None:
        """``values = table[values]`` in place, ``step`` ids at a time (read and written, not mapped:
        a mapping would keep every page it touched resident)."""
        out, step = self.files[split]["values"], REMAP_STEP
        out.close()
        with open(out.path, "r+b") as f:
            for start in range(0, out.size, step):
                at = NpyAppender.HEADER + start * out.dtype.itemsize
                f.seek(at)
                chunk = np.fromfile(f, dtype=out.dtype, count=min(step, out.size - start))
                f.seek(at)
                f.write(memoryview(np.ascontiguousarray(table[chunk], dtype=out.dtype)).cast("B"))

    def save(self, splits: Any) -> None:
        """Write ``Splits`` built in memory (tagging) as one chunk per split."""
        for name in SPLITS:
            split = getattr(splits, name)
            if split is not None:
                self.append(name, split.tokens, split.tags)
                self.finish(name, split.labels, split.rows)
        self.close(splits.vocab, splits.num_classes, splits.vocab_size, splits.truncated)

    def close(self, vocab: Any, num_classes: int, vocab_size: int, truncated: Dict[str, int]) -> None:
        vocab.save(self.folder)
        meta = {"num_classes": num_classes, "vocab_size": vocab_size, "truncated": truncated,
                "splits": [n for n in SPLITS if n in self.files]}
        with open(os.path.join(self.folder, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)


def _load(entry: str):
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


def command(action: str, cache_dir: Optional[str] = None) -> int:
    """``python -m encoders cache list|clear``: the entries, least recently used first, or delete them all."""
    import time

    root = cache_root(SimpleNamespace(cache_dir=cache_dir))
    found = entries(os.path.join(root, "tokens"))
    left = leftovers(root)  # a run tokenizing now holds its folders: they are not leftovers
    if action == "clear":
        for e in found:
            remove_entry(e["path"])
        # a folder made this instant is not held yet: one second old at least
        left = sweep_leftovers(root, min_age_s=1.0)
        print(f"removed {len(found)} entries ({sum(e['bytes'] for e in found) / 2**20:.1f} MB) and "
              f"{len(left)} leftovers from {root}")
        return 0
    for e in found:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["used"]))
        print(f"{used}  {e['bytes'] / 2**20:10.1f} MB  {e['path']}")
    print(f"{len(found)} entries, {sum(e['bytes'] for e in found) / 2**20:.1f} MB in {root}"
          + (f"; {len(left)} leftovers of killed runs (cache clear removes them)" if left else ""))
    return 0
