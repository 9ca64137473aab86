"""What a resume must share and what it resumes from, read without any framework."""
import json
import os
import re
import shlex

import pytest

from encoders.config import ClassifierSpec
from encoders.errors import ConfigError
from encoders.run.resume import (check_ckpt_path, check_loads, check_same_run, has_backup, resume_hint,
                                  vocab_fingerprint)


def _vocab(run, tokens, labels, **more):
    run.mkdir(parents=True, exist_ok=True)
    (run / "vocab.json").write_text(json.dumps({"tokens": tokens, "labels": labels, **more}))
    return str(run)


def test_the_fingerprint_follows_tokens_and_labels_only(tmp_path):
    assert vocab_fingerprint(str(tmp_path)) is None  # no vocab.json: nothing to compare
    a = vocab_fingerprint(_vocab(tmp_path / "a", ["<pad>", "<unk>", "x"], ["neg", "pos"], lowercase=True))
    same = vocab_fingerprint(_vocab(tmp_path / "b", ["<pad>", "<unk>", "x"], ["neg", "pos"], lowercase=False))
    ids = vocab_fingerprint(_vocab(tmp_path / "c", ["<pad>", "x", "<unk>"], ["neg", "pos"]))
    labels = vocab_fingerprint(_vocab(tmp_path / "d", ["<pad>", "<unk>", "x"], ["pos", "neg"]))
    assert a == same and len({a, ids, labels}) == 3


def test_another_model_or_vocabulary_is_named_key_by_key():
    spec = ClassifierSpec(vocab_size=10, num_classes=2)
    check_same_run("old.ckpt", spec.to_dict(), "v1", spec, "v1")  # the same run: no error
    check_same_run("old.ckpt", {"hidden_size": spec.hidden_size}, None, spec, "v2")  # unknown: not compared
    old = dict(spec.to_dict(), hidden_size=32, cell="gru")
    with pytest.raises(ConfigError) as err:
        check_same_run("old.ckpt", old, "v1", spec, "v2")
    msg = str(err.value)
    assert msg.startswith("ckpt_path=old.ckpt was trained with another model or data")
    assert "encoder.hidden_size 32 -> 64" in msg and "encoder.cell 'gru' -> 'lstm'" in msg
    assert "the vocabulary (vocab.json" in msg and "start a fresh run (drop ckpt_path)" in msg


def test_torch_resumes_from_a_checkpoint_file(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for given, named in [(run, run / "checkpoints" / "last.ckpt"), (run / "checkpoints", run / "checkpoints" / "last.ckpt")]:
        if not named.exists():
            with pytest.raises(ConfigError, match="ckpt_path=RUN_DIR/checkpoints/last.ckpt"):
                check_ckpt_path(str(given), "torch")
        named.write_bytes(b"not read here")
        with pytest.raises(ConfigError, match=re.escape(f"{given} is a directory; torch resumes from a checkpoint "
                                                        f"file: ckpt_path={named}")):
            check_ckpt_path(str(given), "torch")
    with pytest.raises(ConfigError, match="no such checkpoint file: .*e.g. RUN_DIR/checkpoints/last.ckpt"):
        check_ckpt_path(str(run / "nope.ckpt"), "torch")
    check_ckpt_path(str(run / "checkpoints" / "last.ckpt"), "torch")  # a file: its loading is torch's to check


def _load_json(path):
    """A loader as the backends' are: ``ValueError`` naming a file that does not load."""
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        raise ValueError(f"checkpoint {path} is truncated or corrupt") from None


def test_a_checkpoint_that_does_not_load_is_named_with_the_ones_beside_it_that_do(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for name, text in [("best.ckpt", "{}"), ("epoch3.ckpt", "{}"), ("last.ckpt", '{"cut'), ("other.ckpt", "[")]:
        (ckpts / name).write_text(text)
    (ckpts / "best.keras").write_text("{}")  # another backend's: not offered
    check_loads(str(ckpts / "best.ckpt"), _load_json, "torch")  # it loads: nothing to say
    with pytest.raises(ConfigError) as err:
        check_loads(str(ckpts / "last.ckpt"), _load_json, "torch")
    assert str(err.value) == (f"ckpt_path: checkpoint {ckpts / 'last.ckpt'} is truncated or corrupt. checkpoints "
                              f"beside it that load: {ckpts / 'best.ckpt'}, {ckpts / 'epoch3.ckpt'}; resume with "
                              f"ckpt_path={ckpts / 'epoch3.ckpt'}")
    for name in ("best.ckpt", "epoch3.ckpt"):
        (ckpts / name).unlink()
    with pytest.raises(ConfigError, match="truncated or corrupt. no other checkpoint beside it loads$"):
        check_loads(str(ckpts / "last.ckpt"), _load_json, "torch")


@pytest.mark.parametrize("backend", ["tf", "jax"])
def test_keras_resumes_from_a_run_dir(tmp_path, backend):
    (tmp_path / "run").mkdir()
    (tmp_path / "last.keras").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file; tf resumes from the run dir it belongs to"):
        check_ckpt_path(str(tmp_path / "last.keras"), backend)
    with pytest.raises(ConfigError, match="no such run dir: .*nope"):
        check_ckpt_path(str(tmp_path / "nope"), backend)
    check_ckpt_path(str(tmp_path / "run"), backend)


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_the_ctrl_c_line_names_what_to_resume_from_or_that_there_is_nothing(tmp_path, backend):
    run = tmp_path / "run dir"
    (run / "checkpoints").mkdir(parents=True)
    overrides = ["encoder=gru", "ckpt_path=/old/one", "data.train_file=a b.csv"]
    nothing = resume_hint(str(run), backend, overrides)
    assert nothing.startswith(f"interrupted before the first checkpoint of {run} was written: nothing to resume")
    assert nothing.endswith("python train.py encoder=gru 'data.train_file=a b.csv'")
    if backend == "torch":
        (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
        target = run / "checkpoints" / "last.ckpt"
    else:
        (run / "backup").mkdir()
        assert not has_backup(str(run))  # an empty backup/ holds nothing to continue
        (run / "backup" / "state").write_bytes(b"x")
        assert has_backup(str(run))
        target = run
    line = resume_hint(str(run), backend, overrides)
    assert line.startswith(f"interrupted: the last checkpoint is {run / 'checkpoints' / 'last'}")
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command == ["python", "train.py", "encoder=gru", "data.train_file=a b.csv", f"ckpt_path={target}"]
    assert os.path.basename(line.split(";")[0]).endswith(".ckpt" if backend == "torch" else ".keras")
