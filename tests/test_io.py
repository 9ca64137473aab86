"""encoders.io: leftovers of killed writes are removed at the next start, writes under way are not."""
import os
import time

from encoders.io import STALE_AFTER_S, TEMP_PREFIX, atomic_write_text, remove_leftover_temporaries


def test_leftovers_of_killed_writes_go_and_writes_under_way_stay(tmp_path):
    atomic_write_text(str(tmp_path / "last.ckpt"), "good")
    dead_file = tmp_path / f"{TEMP_PREFIX}abc123last.ckpt"  # what kill -9 during atomic_write_with leaves
    dead_file.write_bytes(b"\0" * 2048)
    dead_dir = tmp_path / f"{TEMP_PREFIX}xyz"  # ... and during atomic_folder
    (dead_dir / "inner").mkdir(parents=True)
    old = time.time() - 10 * STALE_AFTER_S
    for p in (dead_file, dead_dir):
        os.utime(p, (old, old))
    live = tmp_path / f"{TEMP_PREFIX}now.ckpt"  # another process is writing it right now
    live.write_bytes(b"x")
    (tmp_path / "notes.tmp-keep").write_text("mine")
    removed = remove_leftover_temporaries(str(tmp_path))
    assert sorted(removed) == sorted([str(dead_file), str(dead_dir)])
    assert sorted(os.listdir(tmp_path)) == sorted(["last.ckpt", live.name, "notes.tmp-keep"])
    assert (tmp_path / "last.ckpt").read_text() == "good"
    assert remove_leftover_temporaries(str(tmp_path / "missing")) == []
