"""encoders.data.flat: TokenBuffer from Arrow and lists, and pad() equal to collate()."""
import os
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from encoders.data.collate import collate  # noqa: E402
from encoders.data.flat import TokenBuffer  # noqa: E402

ROWS = st.lists(st.lists(st.integers(0, 1000), max_size=12), min_size=1, max_size=30)


def assert_batches_equal(got, want):
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rows=ROWS, sort=st.booleans(), pad_id=st.integers(0, 5),
       dtype=st.sampled_from([np.int32, np.int64]))
def test_pad_equals_collate(data, rows, sort, pad_id, dtype):
    n = len(rows)
    indices = data.draw(st.lists(st.integers(0, n - 1), max_size=40))  # any order, duplicates
    labels = np.asarray(data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)))
    buf = TokenBuffer.from_lists(rows, dtype=dtype)
    want = collate([{"tokens": rows[i], "label": int(labels[i])} for i in indices], pad_id=pad_id, sort=sort)
    assert_batches_equal(buf.pad(indices, pad_id=pad_id, sort=sort, labels=labels), want)
    without = buf.pad(np.asarray(indices, dtype=np.int64), pad_id=pad_id, sort=sort)
    assert "labels" not in without
    np.testing.assert_array_equal(without["tokens"], want["tokens"])


@settings(max_examples=100, deadline=None)
@given(rows=ROWS, cut=st.integers(0, 14))
def test_truncate(rows, cut):
    buf, n = TokenBuffer.from_lists(rows).truncate(cut)
    assert n == sum(len(r) > cut for r in rows)
    assert [buf.row(i).tolist() for i in range(len(buf))] == [r[:cut] for r in rows]


def test_basics():
    buf = TokenBuffer.from_lists([[5, 6], [], [7]])
    assert len(buf) == 3 and buf.lengths.tolist() == [2, 0, 1]
    assert buf.row(0).tolist() == [5, 6] and buf.row(-1).tolist() == [7]
    out = buf.pad([1, 1])  # all-empty batch still has a time axis
    assert out["tokens"].shape == (2, 1) and not out["mask"].any()
    assert buf.pad([])["tokens"].shape == (0, 1)
    with pytest.raises(IndexError, match="row 3"):
        buf.pad([0, 3])
    with pytest.raises(IndexError):
        buf.row(3)
    with pytest.raises(ValueError, match="pad_id"):
        buf.pad([0], pad_id=-1)
    with pytest.raises(ValueError, match="not decrease"):
        TokenBuffer(np.arange(4), [0, 3, 2, 4])
    with pytest.raises(ValueError, match="offsets must lie"):
        TokenBuffer(np.arange(4), [0, 5])
    with pytest.raises(ValueError, match="labels"):
        buf.pad([0], labels=[1, 2])
    neg = TokenBuffer(np.array([1, 2, -3, 4, -5]), [0, 2, 3, 5])
    for sort in (True, False):
        with pytest.raises(ValueError, match=r"row 1 \(example 1 of the batch\): negative token id -3 at position 0"):
            neg.pad([0, 1, 2], sort=sort)
        with pytest.raises(ValueError, match=r"row 2 \(example 0 of the batch\): negative token id -5 at position 1"):
            neg.pad([2, 1], sort=sort)


def rows_of(buf):
    return [buf.row(i).tolist() for i in range(len(buf))]


RAGGED = [[1, 2, 3], [], [4], [5, 6], [7, 8, 9, 10], [11]]


@pytest.mark.parametrize("list_type", [pa.list_(pa.int64()), pa.large_list(pa.int32())])
def test_from_arrow_arrays_and_slices(list_type):
    arr = pa.array(RAGGED, type=list_type)
    buf = TokenBuffer.from_arrow(arr)
    assert rows_of(buf) == RAGGED
    assert np.shares_memory(buf.values, arr.values.to_numpy(zero_copy_only=True))  # no copy
    sliced = arr.slice(2, 3)  # offsets start inside the parent's buffer
    buf = TokenBuffer.from_arrow(sliced)
    assert rows_of(buf) == RAGGED[2:5]
    assert buf.offsets[0] == 3
    np.testing.assert_array_equal(buf.pad([2, 0])["tokens"], collate(
        [{"tokens": RAGGED[4], "label": 0}, {"tokens": RAGGED[2], "label": 0}])["tokens"])


def test_from_arrow_chunked():
    arr = pa.chunked_array([pa.array(RAGGED[:2], pa.list_(pa.int64())), pa.array([], pa.list_(pa.int64())),
                            pa.array(RAGGED[2:], pa.list_(pa.int64())).slice(1)])
    assert rows_of(TokenBuffer.from_arrow(arr)) == RAGGED[:2] + RAGGED[3:]
    one = pa.chunked_array([pa.array(RAGGED, pa.list_(pa.int64()))])
    assert rows_of(TokenBuffer.from_arrow(one)) == RAGGED
    empty = pa.chunked_array([], type=pa.list_(pa.int64()))
    assert len(TokenBuffer.from_arrow(empty)) == 0


def test_from_arrow_rejects_nulls_and_non_lists():
    with pytest.raises(ValueError, match="row 1"):
        TokenBuffer.from_arrow(pa.array([[1], None, [2]], pa.list_(pa.int64())))
    with pytest.raises(ValueError, match="null token ids"):
        TokenBuffer.from_arrow(pa.array([[1, None]], pa.list_(pa.int64())))
    with pytest.raises(TypeError, match="list"):
        TokenBuffer.from_arrow(pa.array([1, 2]))
    with pytest.raises(TypeError, match="integer"):
        TokenBuffer.from_arrow(pa.array([["a"]]))


def test_from_memory_mapped_dataset(tmp_path):
    from datasets import Dataset, load_from_disk

    rows = [list(range(i % 7)) for i in range(2500)]
    Dataset.from_dict({"tokens": rows, "label": [i % 2 for i in range(2500)]}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    ds = ds.map(lambda b: {"tokens": [t[::-1] for t in b["tokens"]]}, batched=True, batch_size=1000)
    col = ds.data.column("tokens")
    buf = TokenBuffer.from_arrow(col)
    assert len(buf) == 2500 and buf.row(13).tolist() == rows[13][::-1]
    labels = np.asarray(ds.data.column("label"))
    out = buf.pad([13, 6, 5], labels=labels)
    want = collate([ds[i] for i in (13, 6, 5)])
    assert_batches_equal(out, want)


# -- row lengths and offsets read a window at a time --------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(rows=ROWS, window=st.integers(1, 7), long_row=st.sampled_from([0, 32767, 32768, 70000]))
def test_row_lengths_equal_lengths_in_the_narrowest_type_across_windows(rows, window, long_row):
    from unittest import mock

    import encoders.data.flat as flat

    rows = rows + [[1] * long_row]
    with mock.patch.object(flat, "_WINDOW", window):  # many windows, rows at their edges
        buf = TokenBuffer.from_lists(rows)
        got = buf.row_lengths()
    np.testing.assert_array_equal(got, [len(r) for r in rows])
    assert got.dtype == (np.int16 if long_row <= 32767 else np.int32)


@pytest.mark.parametrize("window", [1, 2, 3, 1 << 20])
def test_a_decreasing_offset_in_a_later_window_is_named_by_its_row(monkeypatch, window):
    import encoders.data.flat as flat

    monkeypatch.setattr(flat, "_WINDOW", window)
    with pytest.raises(ValueError, match=r"row 4 has offsets 6\.\.5"):
        TokenBuffer(np.arange(10), np.array([0, 1, 2, 4, 6, 5, 7]))


def _mapped_rss_kb(path: str) -> int:
    """Resident KB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, ours = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
                ours = len(head) >= 6 and head[-1] == path
            elif ours and line.startswith("Rss:"):
                total += int(head[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads /proc/self/smaps (Linux)")
def test_row_lengths_of_a_mapped_buffer_leave_its_offsets_unmapped(tmp_path):
    """A pass over a memory-mapped buffer's offsets (its construction check, then row_lengths) hands
    the pages back: read whole, they would stay resident (here 8 MB); read a window at a time, a
    page at each window's edge may stay."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 40, size=1_000_000)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    np.save(tmp_path / "o.npy", offsets)
    np.save(tmp_path / "v.npy", np.zeros(int(offsets[-1]), dtype=np.int32))
    path = str(tmp_path / "o.npy")
    mapped = np.load(path, mmap_mode="r")
    assert _mapped_rss_kb(path) < 64
    buf = TokenBuffer(np.load(tmp_path / "v.npy", mmap_mode="r"), mapped)
    got = buf.row_lengths()
    np.testing.assert_array_equal(got, lengths)
    assert _mapped_rss_kb(path) < 64  # 8 MB of offsets were read
    np.asarray(mapped).sum()  # read whole without a release: resident (the measure works)
    assert _mapped_rss_kb(path) > 7000


def test_release_mapped_leaves_arrays_in_memory_alone():
    from encoders.data.flat import release_mapped

    arr = np.arange(1 << 16)
    release_mapped(arr, 0, len(arr))
    np.testing.assert_array_equal(arr, np.arange(1 << 16))


def test_row_lengths_leave_a_copy_on_write_mapping_as_changed(tmp_path):
    """Pages of a private (copy-on-write) mapping hold this process's changes: they are never handed
    back, only read-only mappings' are."""
    np.save(tmp_path / "o.npy", np.arange(5001, dtype=np.int64))
    offsets = np.load(tmp_path / "o.npy", mmap_mode="c")
    offsets[1:] = np.arange(1, 5001) * 2
    buf = TokenBuffer(np.zeros(10000, np.int32), offsets)
    np.testing.assert_array_equal(buf.row_lengths(), np.full(5000, 2))
    assert int(offsets[1000]) == 2000
