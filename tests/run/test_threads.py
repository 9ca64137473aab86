"""Each process of ours takes its fair share of the cores: counted through real processes that
register and exit, per process for torch and TensorFlow, and a user's fixed count wins."""
import os
import pickle
import subprocess
import sys

import pytest

from encoders.run import threads
from encoders.config import TrainerConfig
from encoders.errors import ConfigError
from tests.helpers import ROOT

HOLD = "import sys, time; from encoders.run.threads import register; register(); print('up', flush=True); sys.stdin.read()"


def _env(registry, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ENCODERS_THREADS_AUTO")}
    env.update(ENCODERS_PROCS=str(registry), PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def _holders(registry, n):
    """``n`` live registered processes (each ends when its stdin closes)."""
    procs = [subprocess.Popen([sys.executable, "-c", HOLD], env=_env(registry), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "up"
    return procs


def _child(registry, code, **extra):
    out = subprocess.run([sys.executable, "-c", code], env=_env(registry, **extra), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1]


def test_live_processes_are_counted_and_ended_ones_forgotten(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCODERS_PROCS", str(tmp_path))
    procs = _holders(tmp_path, 3)
    assert threads.live_processes() == 3
    procs[0].stdin.close()
    procs[0].wait()
    assert threads.live_processes() == 2
    procs[1].kill()  # however a process ends, its lock goes with it
    procs[1].wait()
    assert threads.live_processes() == 1 and len(os.listdir(tmp_path)) == 1  # the ended ones' files are gone
    procs[2].stdin.close()
    procs[2].wait()


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_each_process_sets_its_share_for_its_framework(tmp_path, backend):
    read = ("import torch; from encoders.torch.runtime import set_threads; set_threads(None); "
            "print(torch.get_num_threads())") if backend == "torch" else (
        "import tensorflow as tf; from encoders.keras.runtime import set_threads; set_threads(None); "
        "print(tf.config.threading.get_intra_op_parallelism_threads())")
    procs = _holders(tmp_path, 3)  # three others running: a quarter each
    try:
        assert int(_child(tmp_path, read)) == max(1, threads.cores() // 4)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()


def test_trainer_num_threads_wins_over_the_share(tmp_path, monkeypatch):
    import torch

    from encoders.torch.runtime import set_threads

    monkeypatch.setenv("ENCODERS_PROCS", str(tmp_path))
    before = torch.get_num_threads()
    try:
        assert set_threads(3) == 3 and torch.get_num_threads() == 3
        assert set_threads(None) == threads.cores() // threads.live_processes()
    finally:
        threads.release()
        torch.set_num_threads(before)
        for key in ("OMP_NUM_THREADS", "ENCODERS_THREADS_AUTO"):  # set by the code, not by monkeypatch
            os.environ.pop(key, None)


def test_the_users_omp_num_threads_is_fixed_but_a_parents_choice_is_recounted(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCODERS_PROCS", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own: fixed
    monkeypatch.delenv("ENCODERS_THREADS_AUTO", raising=False)
    assert threads.fixed_threads(None) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads.mark_chosen(7)  # what a parent exports for the libraries it starts
    try:
        assert os.environ["OMP_NUM_THREADS"] == "7" and threads.fixed_threads(None) is None
    finally:
        for key in ("OMP_NUM_THREADS", "ENCODERS_THREADS_AUTO"):  # set by the code, not by monkeypatch
            os.environ.pop(key, None)


def test_torch_threads_follow_processes_that_start_during_training(tmp_path, monkeypatch):
    import torch

    from encoders.torch.runner import ThreadShare

    monkeypatch.setenv("ENCODERS_PROCS", str(tmp_path))
    before = torch.get_num_threads()
    cb = pickle.loads(pickle.dumps(ThreadShare(every_s=0.0)))  # ddp_spawn sends it to its workers
    procs = _holders(tmp_path, 2 * threads.cores())  # more processes than cores: one thread each
    try:
        torch.set_num_threads(threads.cores())
        cb.on_train_batch_start(None, None, None, 0)
        assert torch.get_num_threads() == 1
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()
        torch.set_num_threads(before)


def test_torch_threads_recount_by_time_not_steps(tmp_path, monkeypatch):
    """The first step counts; later steps count again once every_s seconds have passed, however many
    steps that is, so a process that started first settles as soon as its neighbour registers."""
    import torch

    import encoders.torch.runner as runner

    monkeypatch.setenv("ENCODERS_PROCS", str(tmp_path))
    clock = [100.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: clock[0])
    before = torch.get_num_threads()
    cb = runner.ThreadShare(every_s=0.5)
    torch.set_num_threads(threads.cores())
    try:
        cb.on_train_batch_start(None, None, None, 0)  # alone: every core
        assert torch.get_num_threads() == threads.cores()
        procs = _holders(tmp_path, 2 * threads.cores())
        try:
            clock[0] += 0.4
            cb.on_train_batch_start(None, None, None, 1)  # too soon: not counted again
            assert torch.get_num_threads() == threads.cores()
            clock[0] += 0.1
            cb.on_train_batch_start(None, None, None, 2)  # half a second on, at step 2 (not step 20)
            assert torch.get_num_threads() == 1
        finally:
            for p in procs:
                p.stdin.close()
                p.wait()
    finally:
        torch.set_num_threads(before)


def test_a_released_process_is_no_longer_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCODERS_PROCS", str(tmp_path))
    procs = _holders(tmp_path, 1)
    try:
        threads.register()
        assert threads.live_processes() == 2
        threads.release()
        assert threads.live_processes() == 1 and os.listdir(tmp_path) == [str(procs[0].pid)]
    finally:
        procs[0].stdin.close()
        procs[0].wait()


def test_num_threads_below_one_is_refused():
    with pytest.raises(ConfigError, match="trainer.num_threads must be >= 1, got 0"):
        TrainerConfig(num_threads=0).validate()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_predict_and_evaluate_take_their_share_beside_a_training_run(tmp_path, tmp_path_factory, backend, command):
    """A command that runs a model counts as one of our processes: beside one other (a training
    run), it runs on half the cores, in its own framework."""
    from tests.helpers import text_run, text_run_data

    if threads.cores() < 2:
        pytest.skip("a share smaller than every core needs at least 2 cores")
    run_dir = text_run(tmp_path_factory, backend)
    out = tmp_path / ("out.csv" if command == "predict" else "out.json")
    read = ("import torch; print(torch.get_num_threads())" if backend == "torch" else
            "import tensorflow as tf; print(tf.config.threading.get_intra_op_parallelism_threads())")
    code = (f"from encoders.use.cli import main; "
            f"assert main([{command!r}, {str(run_dir)!r}, {str(text_run_data(run_dir))!r}, '-o', {str(out)!r}]) == 0; "
            f"{read}")
    procs = _holders(tmp_path / "procs", 1)
    try:
        assert int(_child(tmp_path / "procs", code)) == threads.cores() // 2
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()
    assert out.stat().st_size > 0
