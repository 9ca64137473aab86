"""Data and config errors stop before training with a message naming the problem.

tests/test_sources.py already covers the basic cases (missing csv/parquet file, '.txt', a missing
'text'/'label' column in csv, empty validation splits, null labels in json/csv, 1.5 and negative
labels, unseen string labels); this file adds the other formats and spellings of each item and
the impossible config combinations of the runtime helpers.
"""

import numpy as np
import pandas as pd
import pytest

from encoders.config import DataConfig
from encoders.errors import ConfigError
from encoders.errors import DataError
from encoders.data.sources import load_splits


def files_cfg(train, validation=None, **kw):
    return DataConfig(source="files", train_file=str(train), validation_file=validation and str(validation), **kw)


def write(df, path):
    path = str(path)
    if path.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif path.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False)
    return path


TRAIN = pd.DataFrame({"text": ["good fun", "bad plot", "good", "bad"], "label": [1, 0, 1, 0]})
VAL = pd.DataFrame({"text": ["good"], "label": [1]})


# -- missing file / unknown extension ---------------------------------------------------------------
def test_directory_instead_of_a_file_names_the_path(tmp_path):
    folder = tmp_path / "data_dir"
    folder.mkdir()
    with pytest.raises(DataError, match=r"data\.train_file: .*data_dir is a directory; give a file"):
        load_splits(files_cfg(folder), 0)


@pytest.mark.parametrize("name,ext", [("train.csv.gz", "'.gz'"), ("train", "''"), ("train.xlsx", "'.xlsx'")])
def test_unknown_extension_names_it_and_lists_the_known_ones(tmp_path, name, ext):
    path = tmp_path / name
    path.write_text("text,label\na,0\n")
    with pytest.raises(DataError, match=rf"data\.train_file: unknown extension {ext} of .*{name}.*'\.csv'.*'\.parquet'"):
        load_splits(files_cfg(path), 0)


def test_unknown_extension_of_the_validation_file_names_that_key(tmp_path):
    t = write(TRAIN, tmp_path / "t.csv")
    v = tmp_path / "v.txt"
    v.write_text("text,label\na,0\n")
    with pytest.raises(DataError, match=r"data\.validation_file: unknown extension '\.txt'"):
        load_splits(files_cfg(t, v), 0)


# -- missing column -------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".parquet", ".jsonl"])
def test_missing_column_in_other_formats_names_it_and_the_columns_present(tmp_path, ext):
    t = write(TRAIN.rename(columns={"label": "stars"}), tmp_path / f"t{ext}")
    with pytest.raises(DataError, match=r"train split has no column\(s\) \['label'\] \(columns: \['text', 'stars'\]\)"):
        load_splits(files_cfg(t), 0)
    with pytest.raises(DataError, match=r"no column\(s\) \['review'\].*data\.text_column"):
        load_splits(files_cfg(t, text_column="review", label_column="stars"), 0)


# -- empty split -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,content", [("t.json", "[]"), ("t.csv", "text,label\n"), ("t.jsonl", "\n\n")])
def test_empty_training_file_says_which_split(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    v = write(VAL, tmp_path / "v.csv")
    with pytest.raises(DataError, match=rf"train split is empty.*{name}"):
        load_splits(files_cfg(path, v), 0)


def test_empty_training_parquet(tmp_path):
    t = write(TRAIN.iloc[:0], tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"train split is empty"):
        load_splits(files_cfg(t, write(VAL, tmp_path / "v.csv")), 0)


# -- null and unparsable labels --------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [[1, None, 0, 1], ["pos", None, "neg", "pos"]], ids=["numeric", "string"])
def test_null_label_in_parquet_names_split_and_row(tmp_path, labels):
    t = write(pd.DataFrame({"text": ["a", "b", "c", "d"], "label": labels}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"train data row 2: label is null"):
        load_splits(files_cfg(t), 0)


def test_nan_label_in_csv_is_null(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("text,label\na,0\nb,1\nc,nan\n")
    with pytest.raises(DataError, match=r"train data row 3: label is null"):
        load_splits(files_cfg(t, write(VAL, tmp_path / "v.csv")), 0)


@pytest.mark.parametrize("value,shown", [("[1]", r"\[1\]"), ('{"c": 1}', r"\{'c': 1\}")])
def test_unparsable_json_label_names_value_split_and_row(tmp_path, value, shown):
    t = tmp_path / "t.jsonl"  # json can't mix a list/dict with ints in one column: every row gets one
    t.write_text("\n".join(f'{{"text": "w{i}", "label": {value}}}' for i in range(4)) + "\n")
    v = tmp_path / "v.jsonl"
    v.write_text('{"text": "w0", "label": 0}\n')
    with pytest.raises(DataError, match=rf"train data row 1: label {shown} is not an integer class id"):
        load_splits(files_cfg(t, v), 0)


@pytest.mark.parametrize("value", ["1e400", "-inf", "2.5"])
def test_a_csv_label_that_is_not_a_class_id_is_a_name_as_written(tmp_path, value):
    t = tmp_path / "t.csv"
    t.write_text(f"text,label\na,0\nb,1\nc,{value}\n")
    s = load_splits(files_cfg(t, t), 0)
    assert s.vocab.labels == sorted(["0", "1", value])


def test_number_json_cannot_store_names_the_file(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1e400}\n')
    with pytest.raises(DataError, match=r"data\.train_file: could not read .*t\.jsonl as json"):
        load_splits(files_cfg(t), 0)


def test_unparsable_validation_label_names_the_validation_split(tmp_path):
    t = write(TRAIN, tmp_path / "t.jsonl")
    v = tmp_path / "v.jsonl"
    v.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 0.25}\n')
    with pytest.raises(DataError, match=r"validation data row 2: label 0\.25 is not an integer class id"):
        load_splits(files_cfg(t, v), 0)


# -- validation labels never seen in training ---------------------------------------------------------------
def test_validation_string_label_unseen_in_parquet(tmp_path):
    t = write(pd.DataFrame({"text": ["a", "b"], "label": ["pos", "neg"]}), tmp_path / "t.parquet")
    v = write(pd.DataFrame({"text": ["a", "b"], "label": ["neg", "Pos"]}), tmp_path / "v.parquet")
    with pytest.raises(DataError, match=r"validation data row 2: label 'Pos' never occurs in the training split"):
        load_splits(files_cfg(t, v), 0)


def test_validation_int_label_in_a_gap_of_the_training_labels(tmp_path):
    t = write(pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 2, 0]}), tmp_path / "t.csv")
    v = write(pd.DataFrame({"text": ["a"], "label": [1]}), tmp_path / "v.csv")
    with pytest.raises(DataError, match=r"(validation label 1|class 1) never occurs in the training split"):
        load_splits(files_cfg(t, v), 0)


def test_absurd_integer_label_is_refused_before_training(tmp_path):
    t = write(pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 10**12]}), tmp_path / "t.csv")
    v = write(pd.DataFrame({"text": ["a"], "label": [1]}), tmp_path / "v.csv")
    with pytest.raises(DataError, match=r"1000000000000|class 2 never occurs"):
        load_splits(files_cfg(t, v), 0)


# -- impossible config combinations ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["tf", "torch"])
def test_memory_limit_with_growth_refused_by_the_runtime_helper(backend):
    """The combination is refused before any framework call, for either backend (no GPU needed)."""
    from encoders.runtime import limit_gpu_memory

    with pytest.raises(ValueError, match=r"gpu\.memory_limit_mb and gpu\.allow_growth=true can't be combined.*set one"):
        limit_gpu_memory(backend, 512, allow_growth=True)


@pytest.mark.parametrize("limit", [0, -100])
def test_non_positive_memory_limit_fails_at_start_naming_the_key(limit):
    from encoders.app import check_config
    from encoders.config import TrainConfig

    cfg = TrainConfig()
    cfg.gpu.memory_limit_mb = limit
    with pytest.raises(ConfigError, match=rf"gpu\.memory_limit_mb must be a positive number of MiB, got {limit}"):
        check_config(cfg)


def test_tf_gpu_accelerator_without_a_gpu_is_refused(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    from encoders.keras.runtime import make_strategy

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # as on a CPU-only machine
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"trainer\.accelerator=gpu but TensorFlow sees no GPU.*trainer\.accelerator=cpu"):
        make_strategy(2, accelerator="gpu")


@pytest.mark.parametrize("devices,visible", [(4, 1), (3, 2)])
def test_tf_devices_larger_than_visible_gpus_is_refused(monkeypatch, devices, visible):
    tf = pytest.importorskip("tensorflow")
    from encoders.keras import runtime as tf_dist

    fake = [f"/physical_device:GPU:{i}" for i in range(visible)]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake if kind == "GPU" else [])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=rf"trainer\.devices={devices} but only {visible} GPU\(s\) are visible: "
                                          r"lower trainer\.devices"):
        tf_dist.make_strategy(devices, accelerator="auto")


@pytest.mark.parametrize("devices", [0, -3])
def test_tf_devices_below_one_is_refused(monkeypatch, devices):
    pytest.importorskip("tensorflow")
    from encoders.keras.runtime import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=rf"trainer\.devices must be >= 1, got {devices}"):
        make_strategy(devices, accelerator="cpu")


def test_tf_devices_not_a_number_names_the_key(monkeypatch):
    pytest.importorskip("tensorflow")
    from encoders.keras.runtime import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"trainer\.devices.*'two'"):
        make_strategy("two", accelerator="cpu")


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_a_latin1_training_file_is_named_not_utf8_with_its_line(tmp_path, ext):
    rows = {".csv": ["text,label", "café,a", "naïve,b", "ok,a"], ".tsv": ["text\tlabel", "café\ta", "naïve\tb", "ok\ta"],
            ".jsonl": ['{"text": "café", "label": "a"}', '{"text": "naïve", "label": "b"}', '{"text": "ok", "label": "a"}']}
    t = tmp_path / f"t{ext}"
    t.write_bytes(("\n".join(rows[ext]) + "\n").encode("latin-1"))
    line = 1 if ext == ".jsonl" else 2  # the first non-ASCII byte: é of café
    with pytest.raises(DataError, match=rf"^data\.train_file=.*t{ext}: not UTF-8 text \(line {line}: byte 0xe9\); "
                                        r"save it as UTF-8$"):
        load_splits(files_cfg(t, t), 0)


# -- labels read a piece at a time (a file's record batches: 1000 rows each for csv) -------------------
def _many(labels, path):
    return write(pd.DataFrame({"text": [f"w{i % 7} w{i % 5}" for i in range(len(labels))], "label": labels}), path)


@pytest.mark.parametrize("kind", ["csv ids", "csv names", "parquet ints", "parquet bools", "jsonl floats"])
def test_labels_of_every_piece_land_on_their_rows(tmp_path, kind):
    """Each split's class ids equal the file's labels looked up row by row (held-out rows included),
    across pieces, whatever the label's type; names are sorted, ids kept as written."""
    n = 2600
    raw = {"csv ids": [i % 3 for i in range(n)], "csv names": [["b", "a", "c"][i % 3] for i in range(n)],
           "parquet ints": [i % 3 for i in range(n)], "parquet bools": [i % 3 == 0 for i in range(n)],
           "jsonl floats": [float(i % 3) for i in range(n)]}[kind]
    ext = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}[kind.split()[0]]
    s = load_splits(files_cfg(_many(raw, tmp_path / f"t.{ext}")), 3)
    names = s.vocab.labels
    want = (lambda v: names.index(str(v))) if names else int
    for split in (s.train, s.validation):
        assert split.labels.dtype == np.int64  # as the loaders map them: no copy per run
        assert split.labels.tolist() == [want(raw[r]) for r in split.rows.tolist()]
    assert len(s.train) + len(s.validation) == n
    assert sorted(s.train.rows.tolist() + s.validation.rows.tolist()) == list(range(n))


def test_a_null_label_in_a_later_piece_is_named_by_its_row(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("text,label\n" + "".join(f"w{i},{'' if i == 2300 else i % 2}\n" for i in range(2600)))
    with pytest.raises(DataError, match=r"train data row 2301: label is null"):
        load_splits(files_cfg(t), 0)


def test_a_negative_label_in_a_later_piece_is_named_by_its_row(tmp_path):
    t = _many([-4 if i == 2205 else i % 2 for i in range(2600)], tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"train data row 2206: label -4 is negative"):
        load_splits(files_cfg(t), 0)


def test_a_name_in_a_later_piece_makes_every_csv_label_a_name(tmp_path):
    t = _many(["maybe" if i == 2450 else i % 2 for i in range(2600)], tmp_path / "t.csv")
    s = load_splits(files_cfg(t, t), 0)
    assert s.vocab.labels == ["0", "1", "maybe"]
    assert s.train.labels[2450] == 2 and s.train.labels[:4].tolist() == [0, 1, 0, 1]


def test_an_unseen_validation_name_in_a_later_piece_is_named_by_its_row(tmp_path):
    t = _many([["neg", "pos"][i % 2] for i in range(2600)], tmp_path / "t.csv")
    v = _many(["Pos" if i == 2300 else ["neg", "pos"][i % 2] for i in range(2600)], tmp_path / "v.csv")
    with pytest.raises(DataError, match=r"validation data row 2301: label 'Pos' never occurs in the training split"):
        load_splits(files_cfg(t, v), 0)


def test_regression_targets_of_every_piece_land_on_their_rows(tmp_path):
    """Targets are read a piece at a time: each split's float32 targets equal the file's, row by row."""
    n = 2600
    raw = [round((i * 37 % 101) / 7 - 5, 3) for i in range(n)]
    for ext in ("csv", "parquet"):
        s = load_splits(files_cfg(_many(raw, tmp_path / f"t.{ext}")), 3, task="regression")
        for split in (s.train, s.validation):
            assert split.labels.dtype == np.float32
            np.testing.assert_array_equal(split.labels, np.asarray(raw, np.float32)[split.rows])


@pytest.mark.parametrize("bad,message", [("", "regression target is null"),
                                         ("abc", "regression target 'abc' is not a number"),
                                         ("inf", "regression target 'inf' is not a finite number")])
def test_a_bad_regression_target_in_a_later_piece_is_named_by_its_row(tmp_path, bad, message):
    t = tmp_path / "t.csv"
    t.write_text("text,label\n" + "".join(f"w{i},{bad if i == 2300 else i / 4}\n" for i in range(2600)))
    with pytest.raises(DataError, match=rf"train data row 2301: {message}"):
        load_splits(files_cfg(t), 0, task="regression")


def test_a_null_in_a_names_split_is_named_before_a_kind_mismatch_in_another(tmp_path):
    """Nulls are looked for in every piece of every split first, as when whole columns were checked:
    a names split decided at its first piece still has its later pieces checked."""
    t = tmp_path / "t.jsonl"
    t.write_text("".join(f'{{"text": "w{i}", "label": {"null" if i == 1500 else chr(34) + "ab"[i % 2] + chr(34)}}}\n'
                         for i in range(2500)))
    v = tmp_path / "v.jsonl"
    v.write_text("".join(f'{{"text": "w{i}", "label": {i % 2}}}\n' for i in range(1500)))
    with pytest.raises(DataError, match=r"train data row 1501: label is null"):
        load_splits(files_cfg(t, v), 0)
