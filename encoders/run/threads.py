"""CPU threads that share the machine: each process of ours uses its fair share of the cores.

Two processes that each run as many threads as there are cores are many times slower than one
after the other: every parallel step waits for a thread the other process has pushed off its
core (BENCHMARKS.md, "Two runs at once, DDP, and a predict beside training"). So each training
or inference process registers itself here (a locked file per process in one folder per user)
and uses ``cores // live processes`` threads, at least one. The count is taken at start and again every half second of training (torch
can change its thread count between steps; TensorFlow only before it starts). DDP ranks,
parallel Hydra launchers and a ``predict`` beside a training run are all just processes here.

``trainer.num_threads`` (or ``OMP_NUM_THREADS`` set by the user) fixes the count instead.
Backend-neutral: the framework calls live in the runtimes.
"""
from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from typing import Optional, Tuple

from encoders.io import held_by_a_live_process

log = logging.getLogger(__name__)
_MARK = "ENCODERS_THREADS_AUTO"  # set beside the OMP_NUM_THREADS we choose: a child does not take it as the user's
_registration: Optional[int] = None  # this process's locked file (kept open while the process lives)


def registry() -> str:
    return os.environ.get("ENCODERS_PROCS") or os.path.join(tempfile.gettempdir(), f"padded-encoders-{os.getuid()}")


def register() -> None:
    """Count this process among the live ones (once; the lock goes when the process ends, however it ends)."""
    global _registration
    if _registration is not None:
        return
    folder = registry()
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".new-")
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, os.path.join(folder, str(os.getpid())))  # only locked files ever carry a pid name
        _registration = fd
    except OSError as e:  # no shared temp folder: count this process alone
        log.info("threads: can't register in %s (%s); counting this process alone", folder, e)


def release() -> None:
    """Stop counting this process (its run is over; a notebook that trained once should not keep a share)."""
    global _registration
    if _registration is None:
        return
    try:
        os.unlink(os.path.join(registry(), str(os.getpid())))
    except OSError:
        pass
    os.close(_registration)
    _registration = None


def live_processes() -> int:
    """Processes registered and alive on this machine (this one included); stale files are removed."""
    folder = registry()
    alive = 0
    try:
        names = [n for n in os.listdir(folder) if n.isdigit()]
    except OSError:
        return 1
    for name in names:
        path = os.path.join(folder, name)
        if held_by_a_live_process(path):
            alive += 1
        elif int(name) != os.getpid():
            try:
                os.unlink(path)  # its owner is gone
            except OSError:
                pass
    return max(alive, 1)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fixed_threads(num_threads: Optional[int]) -> Optional[int]:
    """The count the user fixed: ``trainer.num_threads``, else their own ``OMP_NUM_THREADS``; None = fair share."""
    if num_threads:
        return int(num_threads)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0 and not os.environ.get(_MARK):
        return int(env)
    return None


def fair_share(num_threads: Optional[int] = None) -> Tuple[int, str]:
    """(threads, why) for this process; registers it first."""
    fixed = fixed_threads(num_threads)
    if fixed:
        return fixed, "trainer.num_threads" if num_threads else "OMP_NUM_THREADS"
    register()
    n, c = live_processes(), cores()
    return max(1, c // n), f"fair share: {c} cores / {n} processes"


def mark_chosen(threads: int) -> None:
    """Export the chosen count for libraries that read it later (Lightning's DDP launcher sets its own
    unless ``OMP_NUM_THREADS`` is set), marked as ours so a child process recomputes its share."""
    if not fixed_threads(None):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ[_MARK] = "1"
