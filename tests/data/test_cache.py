"""The tokens cache stays under data.cache_max_gb by dropping its least recently used entries, and
``python -m encoders cache list|clear`` shows and empties it."""
import os
import time

import pytest

from encoders.use.cli import main
from encoders.config import DataConfig
from encoders.data.cache import entries, evict
from encoders.data.sources import load_splits
from encoders.errors import DataConfigError


def _cfg(tmp_path, min_freq, **kw):
    t = tmp_path / "t.csv"
    if not t.exists():
        t.write_text("text,label\n" + "".join(f"w{i} w{i % 7} x,{i % 2}\n" for i in range(40)), encoding="utf-8")
    return DataConfig(source="files", train_file=str(t), cache_dir=str(tmp_path / "cache"), min_freq=min_freq, **kw)


def _load(tmp_path, min_freq, **kw):
    load_splits(_cfg(tmp_path, min_freq, **kw), 0)
    time.sleep(0.01)  # distinct last-use times, whatever the file system's clock grain


def test_least_recently_used_entries_go_first(tmp_path):
    for m in (1, 2, 3):
        _load(tmp_path, m)
    _load(tmp_path, 1)  # read again: now the most recently used
    tokens = str(tmp_path / "cache" / "tokens")
    by_use = entries(tokens)
    assert len(by_use) == 3
    total = sum(e["bytes"] for e in by_use)
    # min_freq=2 is the least recently used, then 3, then 1
    assert evict(tokens, total - 1) == [by_use[0]["path"]]
    assert evict(tokens, by_use[2]["bytes"]) == [by_use[1]["path"]]
    assert [e["path"] for e in entries(tokens)] == [by_use[2]["path"]]


def test_a_new_entry_past_the_cap_evicts_older_ones_but_never_itself(tmp_path):
    for m in (1, 2):
        _load(tmp_path, m)
    s = load_splits(_cfg(tmp_path, 3, cache_max_gb=1e-9), 0)  # smaller than any entry
    left = entries(str(tmp_path / "cache" / "tokens"))
    assert len(left) == 1 and len(s.train) > 0
    assert load_splits(_cfg(tmp_path, 3), 0).vocab.tokens == s.vocab.tokens  # the kept one is the new one
    assert len(entries(str(tmp_path / "cache" / "tokens"))) == 1


def test_cache_list_and_clear(tmp_path, capsys):
    for m in (1, 2):
        _load(tmp_path, m)
    leftover = tmp_path / "cache" / "scratch" / "killed-run"  # what a killed run leaves
    leftover.mkdir(parents=True)
    os.utime(leftover, (time.time() - 60, time.time() - 60))
    cache = str(tmp_path / "cache")
    assert main(["cache", "list", "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert out.count(" MB  ") == 2 and "2 entries" in out and "1 leftovers" in out
    assert main(["cache", "clear", "--cache-dir", cache]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert entries(os.path.join(cache, "tokens")) == [] and not leftover.exists()
    main(["cache", "list", "--cache-dir", cache])
    assert "0 entries" in capsys.readouterr().out


def test_cache_max_gb_must_be_positive():
    with pytest.raises(DataConfigError, match="data.cache_max_gb must be > 0"):
        DataConfig(source="files", train_file="x.csv", cache_max_gb=0).validate()


@pytest.mark.parametrize("seed", range(4))
def test_labels_and_rows_written_in_pieces_are_the_bytes_np_save_writes(tmp_path, seed):
    # the cold path writes labels and file rows a step at a time; a warm run reads them as np.save's files
    import numpy as np

    from encoders.data.cache import EntryWriter
    from encoders.data.flat import TokenBuffer

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    labels = (rng.integers(0, 10**12, n) if seed % 2 else rng.normal(size=n).astype(np.float32))
    rows = np.sort(rng.choice(10 * n + 1, n, replace=False)).astype(np.int64)
    cuts = np.sort(rng.integers(0, n + 1, int(rng.integers(0, 6))))
    pieces = [(labels[a:b], rows[a:b]) for a, b in zip([0, *cuts], [*cuts, n])]
    writer = EntryWriter(str(tmp_path))
    writer.append("train", TokenBuffer(np.zeros(0, np.int32), np.zeros(n + 1, np.int64)))
    writer.finish_steps("train", pieces, labels.dtype)
    np.save(tmp_path / "want.labels.npy", labels)
    np.save(tmp_path / "want.rows.npy", rows)
    for what in ("labels", "rows"):
        assert (tmp_path / f"train.{what}.npy").read_bytes() == (tmp_path / f"want.{what}.npy").read_bytes()


# -- what killed runs leave: swept by the next cold build, never a live run's folders -------------------
HANG_AT_CLOSE = """
import sys, time
import encoders.data.cache as cache
from encoders.config import DataConfig
from encoders.data.sources import load_splits

def hang(self, *args, **kwargs):  # every split written, the entry not yet renamed into place
    print("writing", flush=True)
    time.sleep(600)

cache.EntryWriter.close = hang
load_splits(DataConfig(source="files", train_file=sys.argv[1], cache_dir=sys.argv[2]), 0)
"""


def _tokenizing_child(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    t = tmp_path / "big.csv"
    t.write_text("text,label\n" + "".join(f"w{i % 97} w{i % 13} x,{i % 2}\n" for i in range(3000)), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), HF_HUB_OFFLINE="1")
    child = subprocess.Popen([sys.executable, "-c", HANG_AT_CLOSE, str(t), str(tmp_path / "cache")], env=env,
                             stdout=subprocess.PIPE, text=True)
    if child.stdout.readline().strip() != "writing":
        child.kill()
        raise AssertionError("the tokenizing child did not reach the entry's close")
    return t, child


def _working_folders(cache):
    return sorted(str(p.relative_to(cache)) for d in ("tokens", "scratch") if (cache / d).is_dir()
                  for p in (cache / d).iterdir() if p.name.startswith((".tmp-", ".old-")) or d == "scratch")


def test_a_run_killed_while_tokenizing_leaves_folders_the_next_cold_build_sweeps(tmp_path, monkeypatch):
    import signal

    import encoders.data.cache as cache

    t, child = _tokenizing_child(tmp_path)
    try:
        live = _working_folders(tmp_path / "cache")
        assert any(f.startswith("tokens/.tmp-") for f in live) and any(f.startswith("scratch/") for f in live)
        monkeypatch.setattr(cache, "LEFTOVER_AFTER_S", 0.0)
        assert cache.sweep_leftovers(str(tmp_path / "cache")) == []  # held by a live run: left alone
        assert main(["cache", "clear", "--cache-dir", str(tmp_path / "cache")]) == 0
        assert _working_folders(tmp_path / "cache") == live  # `cache clear` too
    finally:
        child.send_signal(signal.SIGKILL)  # killed as a user's run would be
        child.wait()
    assert len(cache.leftovers(str(tmp_path / "cache"))) == len(live)  # its folders are leftovers now
    s = load_splits(DataConfig(source="files", train_file=str(t), cache_dir=str(tmp_path / "cache")), 0)
    assert len(s.train) + len(s.validation) == 3000
    assert _working_folders(tmp_path / "cache") == []  # swept, and the new build's own are gone too
    assert len(entries(str(tmp_path / "cache" / "tokens"))) == 1


def test_young_leftovers_are_left_for_their_maker(tmp_path):
    """A folder is made a moment before it is held: one younger than LEFTOVER_AFTER_S is not swept."""
    from encoders.data.cache import leftovers, sweep_leftovers

    young = tmp_path / "cache" / "scratch" / "just-made"
    young.mkdir(parents=True)
    old = tmp_path / "cache" / "tokens" / ".tmp-killed"
    old.mkdir(parents=True)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert sorted(leftovers(str(tmp_path / "cache"))) == sorted([str(young), str(old)])
    assert sweep_leftovers(str(tmp_path / "cache")) == [str(old)]
    assert young.exists() and not old.exists()


HANG_UNCACHED = """
import time
import encoders.data.cache as cache

def hang(writer):  # hub data is tokenized into a temporary entry: a run killed meanwhile
    print("writing", flush=True)
    time.sleep(600)

cache.uncached(hang)
"""


def test_a_run_killed_while_tokenizing_hub_data_leaves_a_folder_the_next_one_sweeps(tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys
    import tempfile

    import numpy as np

    import encoders.data.cache as cache
    from encoders.data.flat import TokenBuffer
    from encoders.data.splits import Split, Splits
    from tests.helpers import ROOT

    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", HANG_UNCACHED], env=env, stdout=subprocess.PIPE, text=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(cache, "LEFTOVER_AFTER_S", 0.0)
    split = Split(TokenBuffer.from_lists([[3, 4], [5]]), np.array([0, 1]))

    def build(writer):
        class Vocab:
            labels = []

            def save(self, folder):
                pass
        writer.save(Splits(split, split, num_classes=2, vocab_size=6, vocab=Vocab()))

    try:
        assert child.stdout.readline().strip() == "writing"
        made = [p.name for p in temp.iterdir() if p.name.startswith(cache.UNCACHED_PREFIX)]
        assert len(made) == 1
        monkeypatch.setattr(cache, "_load", lambda entry: sorted(os.listdir(entry)))
        assert "meta.json" in cache.uncached(build)
        assert (temp / made[0]).exists()  # held by the live run: left alone
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    cache.uncached(build)
    assert [p.name for p in temp.iterdir()] == []  # the killed run's folder swept, the new one gone
