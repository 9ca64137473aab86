"""Short real runs through train.py's own entry point (subprocesses, as a user types them)."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, real_text_rows, run_train, write_text_csv

SMALL = ["data.num_train=600", "data.num_val=200", "data.batch_size=32", "trainer.max_epochs=2",
         "trainer.enable_progress_bar=false"]


train = run_train


def test_torch_run_writes_every_output_and_resumes(tmp_path):
    import torch

    run = tmp_path / "run"
    proc = train(run, "encoder=bilstm", "backend=torch", *SMALL)
    assert f"run dir: {run}" in proc.stdout
    # Lightning logs "`weights_only` was not set" when a checkpoint is saved without saying what it holds
    assert "weights_only" not in proc.stdout + proc.stderr
    # trainer.flush_denormal defaults to true, set before torch started its CPU threads
    assert "CPU denormal floats flushed to zero" in (run / "train.log").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("val_acc", "val_loss", "epochs", "backend", "encoder", "best_val_acc", "wall_time_s"):
        assert key in metrics, key
    assert metrics["backend"] == "torch" and metrics["encoder"] == "bilstm" and metrics["epochs"] == 2
    assert 0.0 <= metrics["val_acc"] <= 1.0 and len(metrics["history"]["val/acc"]) == 2
    for f in ("curves.png", "vocab.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "csv/metrics.csv"):
        assert (run / f).is_file(), f
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(run / "tb"))
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # nothing executable in a checkpoint: it loads with weights_only=True
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["cell"] == "lstm" and ckpt["epoch"] == 1

    # ckpt_path resumes: two more epochs on top of the two done
    resumed = tmp_path / "resumed"
    train(resumed, *SMALL[:-2], "trainer.max_epochs=4", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
          "trainer.flush_denormal=false")
    assert "CPU denormal floats kept" in (resumed / "train.log").read_text()
    m2 = json.loads((resumed / "metrics.json").read_text())
    assert m2["epochs"] == 4 and m2["global_step"] == 2 * metrics["global_step"]


def test_files_csv_of_real_text_with_char_tokenizer(tmp_path):
    rows = real_text_rows(1200)
    train_csv = write_text_csv(tmp_path / "train.csv", rows[:1000])
    val_csv = write_text_csv(tmp_path / "val.csv", rows[1000:])
    run = tmp_path / "run"
    train(run, "data=files", f"data.train_file={train_csv}", f"data.validation_file={val_csv}",
          "data.tokenizer=char", "data.batch_size=32", "trainer.max_epochs=3", "encoder=bigru",
          "trainer.enable_progress_bar=false")
    metrics = json.loads((run / "metrics.json").read_text())
    vocab = json.loads((run / "vocab.json").read_text())
    assert vocab["tokens"][:2] == ["<pad>", "<unk>"] and vocab["tokenizer"] == "char"
    assert sorted(vocab["labels"]) == ["code", "prose"]
    assert metrics["val_acc"] > 0.75, metrics  # prose vs code from characters: far above chance


@pytest.mark.parametrize("overrides,message", [
    (["data=hub", "data.name=no-such/dataset"], "no-such/dataset"),
    (["data=files", "data.train_file=/nonexistent.csv"], "no such file"),
    (["data=files"], "data.train_file"),
    (["gpu.memory_limit_mb=100", "gpu.allow_growth=true"], "allow_growth"),
])
def test_user_errors_stop_at_start_with_a_message_not_a_traceback(tmp_path, overrides, message):
    proc = train(tmp_path / "run", *overrides, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert message in out and "Traceback" not in out


def test_unknown_key_fails_at_start_naming_it(tmp_path):
    proc = train(tmp_path / "run", "encoder.hiden_size=3", check=False)
    assert proc.returncode != 0 and "hiden_size" in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_key_added_with_plus_is_refused_not_ignored(tmp_path):
    # Hydra's own message for `encoder.hiden_size=3` suggests `+encoder.hiden_size=3`, which used to
    # train with the default hidden size
    proc = train(tmp_path / "run", "+encoder.hiden_size=3", *SMALL, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "unknown key encoder.hiden_size" in out and "has cell, hidden_size" in out
    assert not (tmp_path / "run" / "metrics.json").exists()


CONFIG_ERRORS = [  # (overrides, what the one line must say)
    (["encoder=nope"], "encoder=nope: no such encoder config; choose one of bigru, bilstm, gru, lstm"),
    (["data.batch_size=abc"], "data.batch_size=abc"),
    (["encoder.hiden_size=3"], "Key 'hiden_size' not in 'EncoderConfig'"),
    (["seed=-1"], "seed must be in 0..4294967295"),
    ([f"seed={2**33}"], "seed must be in 0..4294967295"),
    (["trainer.devices=two"], "trainer.devices must be a number of devices"),
]
if not __import__("torch").cuda.is_available():
    CONFIG_ERRORS.append((["trainer.accelerator=gpu"], "trainer.accelerator=gpu but torch sees no GPU"))


@pytest.mark.parametrize("overrides,message", CONFIG_ERRORS, ids=lambda v: v[0] if isinstance(v, list) else "")
def test_config_errors_are_one_line_and_exit_code_2(tmp_path, overrides, message):
    proc = train(tmp_path / "run", *overrides, *SMALL, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr  # Hydra's log goes to stdout, its own errors went to stderr
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "ConfigError: " in lines[0], out[-2000:]
    assert "_schema" not in out  # no schema offered as a choice


def test_torch_ckpt_path_to_a_directory_names_the_checkpoint_in_it(tmp_path):
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "last.ckpt").write_bytes(b"")  # the check reads no checkpoint
    proc = train(tmp_path / "run", f"ckpt_path={old}", *SMALL, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out[-2000:]
    assert f"{old} is a directory; torch resumes from a checkpoint file: ckpt_path={old}/checkpoints/last.ckpt" in out


def test_hydra_full_error_still_gives_hydras_traceback(tmp_path):
    proc = train(tmp_path / "run", "encoder=nope", check=False, extra_env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "MissingConfigException" in proc.stderr


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_every_file_of_a_run_gets_the_umasks_permissions(tmp_path, backend):
    """Under umask 022 every file is group/other-readable (0644), checkpoints included: atomic
    writes go through temp files, which are owner-only (0600) unless given the umask's mode."""
    from tests.helpers import env, train_command

    run = tmp_path / "run"
    cmd = ["sh", "-c", 'umask 022; exec "$0" "$@"',
           *train_command(run, [f"backend={backend}", "data.num_train=200", "data.num_val=50", "trainer.max_epochs=1",
                                "trainer.enable_progress_bar=false"])]
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = [p for p in run.rglob("*") if p.is_file()]
    ext = ".ckpt" if backend == "torch" else ".keras"
    assert {"metrics.json", "vocab.json", "curves.png", "best" + ext, "last" + ext} <= {p.name for p in files}
    unreadable = {str(p.relative_to(run)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o044 != 0o044}
    assert not unreadable, unreadable


def test_multirun_sweeps_encoders_and_backends_in_either_order(tmp_path):
    # jobs run in one process: (lstm, torch), (lstm, tf), (gru, torch), (gru, tf): a tf job after a
    # torch job that came first (whose TF-free TensorBoard switch once broke it), and torch after tf
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "train.py", "-m", "encoder=lstm,gru", "backend=torch,tf",
                           f"hydra.sweep.dir={tmp_path}", "data.num_train=64", "data.num_val=32",
                           "trainer.max_epochs=1", "trainer.enable_progress_bar=false"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads((tmp_path / str(d) / "metrics.json").read_text()) for d in range(4)]
    assert [(m["encoder"], m["backend"]) for m in runs] == [("lstm", "torch"), ("lstm", "tf"), ("gru", "torch"),
                                                            ("gru", "tf")]


def test_tf_run_writes_the_same_outputs_and_resumes(tmp_path):
    run = tmp_path / "run"
    proc = train(run, "encoder=bigru", "backend=tf", *SMALL)
    assert f"run dir: {run}" in proc.stdout
    # Lightning logs "`weights_only` was not set" when a checkpoint is saved without saying what it holds
    assert "weights_only" not in proc.stdout + proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    torch_keys = {"val_acc", "val_loss", "train_loss", "best_val_acc", "epochs", "global_step", "backend",
                  "encoder", "wall_time_s", "best_checkpoint", "last_checkpoint", "history", "task", "stop_reason"}
    assert set(metrics) == torch_keys
    assert metrics["backend"] == "tf" and metrics["encoder"] == "bigru" and metrics["epochs"] == 2
    assert sorted(metrics["history"]) == ["lr", "train/acc", "train/loss", "val/acc", "val/loss"]
    for f in ("curves.png", "vocab.json", "checkpoints/best.keras", "checkpoints/last.keras", "csv/metrics.csv"):
        assert (run / f).is_file(), f
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(run / "tb" / "train"))

    # ckpt_path=RUN_DIR continues from its BackupAndRestore state
    resumed = tmp_path / "resumed"
    train(resumed, "encoder=bigru", "backend=tf", *SMALL[:-2], "trainer.max_epochs=3",
          "trainer.enable_progress_bar=false", f"ckpt_path={run}")
    m2 = json.loads((resumed / "metrics.json").read_text())
    assert m2["epochs"] == 3 and m2["global_step"] == metrics["global_step"] * 3 // 2


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_a_test_file_is_scored_with_the_best_checkpoint(tmp_path, backend):
    """data.test_file: metrics.json gains test_acc/test_loss/test_macro_f1, and test_acc is the
    accuracy of best.* (chosen on validation) on the test rows, recomputed here by hand."""
    import numpy as np

    rows = real_text_rows(700)
    paths = [write_text_csv(tmp_path / f"{n}.csv", r) for n, r in
             (("train", rows[:500]), ("val", rows[500:600]), ("test", rows[600:]))]
    run = tmp_path / "run"
    train(run, f"backend={backend}", "data=files", f"data.train_file={paths[0]}", f"data.validation_file={paths[1]}",
          f"data.test_file={paths[2]}", "data.tokenizer=char", "data.batch_size=32", "trainer.max_epochs=2",
          "trainer.enable_progress_bar=false")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_examples"] == 100 and 0.5 < metrics["test_acc"] <= 1.0
    assert 0 <= metrics["test_macro_f1"] <= 1 and metrics["test_loss"] > 0
    # the same figure from the saved vocabulary and the best checkpoint
    from encoders.data.vocab import load_vocab

    vocab = load_vocab(str(run))
    texts, gold = [t for t, _ in rows[600:]], [vocab.labels.index(y) for _, y in rows[600:]]
    buf = vocab.encode_many(texts)
    batch = buf.pad(np.arange(len(texts)), sort=False)
    if backend == "torch":
        import torch

        from encoders.torch.checkpoint_io import load_torch_checkpoint
        from encoders.torch.models import SequenceClassifier

        ckpt = load_torch_checkpoint(run / "checkpoints" / "best.ckpt")
        model = SequenceClassifier(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(batch["tokens"]), torch.from_numpy(batch["lengths"])).numpy()
    else:
        from encoders.keras.checkpoint_io import load_keras_model

        logits = np.asarray(load_keras_model(str(run / "checkpoints" / "best.keras"), compile=False)(batch["tokens"]))
    assert abs(float(np.mean(logits.argmax(-1) == np.array(gold))) - metrics["test_acc"]) < 1e-9


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, backend):
    """SIGINT once the first checkpoint exists: one line with the checkpoint and the command that resumes,
    exit code 130, no traceback. The run dir's leftover of a killed write is gone by then."""
    import shlex
    import signal
    import time

    from tests.helpers import env, train_command

    run = tmp_path / "run"
    leftover = run / "checkpoints" / ".tmp-k1ll3dlast.ckpt"  # what kill -9 during a checkpoint write leaves
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\0" * 4096)
    os.utime(leftover, (time.time() - 3600,) * 2)
    last = run / "checkpoints" / ("last.ckpt" if backend == "torch" else "last.keras")
    overrides = [f"backend={backend}", "data.num_train=64", "data.num_val=32", "trainer.max_epochs=1000",
                 "trainer.enable_progress_bar=false", "encoder.hidden_size=8"]
    # Ctrl-C as a shell gives it to a foreground job, whatever this process's own handler is
    proc = subprocess.Popen(train_command(run, overrides), cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (last.is_file() and (run / "backup").is_dir()
                                                                   if backend == "tf" else last.is_file()):
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in out + err and not leftover.exists()
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"interrupted: the last checkpoint is {last}; resume with: python train.py ")
    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    target = str(last) if backend == "torch" else str(run)
    assert command == ["python", "train.py", *overrides, f"ckpt_path={target}"]


def test_a_full_disk_during_training_ends_in_one_line_and_the_saved_checkpoint_loads(tmp_path):
    """ENOSPC from os.fsync on the second write of last.ckpt (where ext4/xfs report a full disk):
    exit code 2, one line naming the file, no traceback, the first last.ckpt intact."""
    import torch

    from tests.helpers import env

    run = tmp_path / "run"
    inject = ("import errno, os, runpy, sys\n"
              "real, seen = os.fsync, []\n"
              "def fsync(fd):\n"
              "    if os.readlink(f'/proc/self/fd/{fd}').endswith('last.ckpt'):\n"
              "        seen.append(fd)\n"
              "        if len(seen) == 2:\n"
              "            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
              "    return real(fd)\n"
              "os.fsync = fsync\n"
              "sys.argv = sys.argv[1:]\n"
              "runpy.run_path('train.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", inject, "train.py", f"hydra.run.dir={run}", "data.num_train=64",
                           "data.num_val=32", "trainer.max_epochs=2", "trainer.enable_progress_bar=false"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert f"StorageError: no space left on device while writing the checkpoint {last}: free some space" in out
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the first epoch's, as it was written
    assert not [f for f in os.listdir(last.parent) if f.startswith(".tmp-")]
