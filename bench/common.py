"""Shared helpers: sizes per mode, interleaved timing with medians, machine description."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

# Sizes per mode. "full" is the default, "quick" must stay under 3 minutes on 2 CPU cores,
# "smoke" only checks that every part runs (tests/test_bench.py); its figures mean nothing.
SIZES = {
    "full": dict(enc_batch=64, enc_max_len=200, enc_emb=64, enc_hidden=128, enc_repeats=15,
                 lit_train=20000, lit_batches=313, lit_repeats=5, tiny_batches=300, tiny_repeats=3, aa_repeats=3, pm_train=20000, pm_epochs=1, pm_val=2000,
                 tf_batches=60, tf_repeats=10, tf_epoch_repeats=5,
                 scale_rows=[100_000, 1_000_000], scale_train_steps=300),
    "quick": dict(enc_batch=64, enc_max_len=200, enc_emb=64, enc_hidden=128, enc_repeats=5,
                  lit_train=20000, lit_batches=150, lit_repeats=8, tiny_batches=200, tiny_repeats=3, aa_repeats=3, pm_train=4000, pm_epochs=2, pm_val=1000,
                  tf_batches=40, tf_repeats=10, tf_epoch_repeats=3,
                  scale_rows=[100_000], scale_train_steps=100),
    "smoke": dict(enc_batch=8, enc_max_len=20, enc_emb=8, enc_hidden=8, enc_repeats=2,
                  lit_train=1000, lit_batches=3, lit_repeats=1, tiny_batches=3, tiny_repeats=1, aa_repeats=1, pm_train=256, pm_epochs=1, pm_val=128,
                  tf_batches=3, tf_repeats=1, tf_epoch_repeats=1,
                  scale_rows=[2_000], scale_train_steps=3),
}

# The default run's data and model, read from the schema (encoders/config.py), the one place
# they are stated; the Lightning side builds its Trainer from the composed config itself
# (training_bench.default_run_config).
def _default_run() -> Dict[str, object]:
    from encoders.config import DEFAULT_EMBEDDING_DIM, TrainConfig

    c = TrainConfig()
    return dict(seed=c.seed, num_train=c.data.num_train, num_val=c.data.num_val, vocab_size=c.data.vocab_size,
                max_length=c.data.max_length, batch_size=c.data.batch_size, pool_batches=c.data.bucket_pool_batches,
                embedding_dim=c.model.embedding_dim or DEFAULT_EMBEDDING_DIM, hidden_size=c.encoder.hidden_size, lr=c.optimizer.lr,
                clip=c.trainer.gradient_clip_val)


DEFAULT = _default_run()


def mode_of(quick: bool, smoke: bool) -> str:
    return "smoke" if smoke else ("quick" if quick else "full")


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> Dict[str, List[float]]:
    """Wall times of each function, one per repeat; each repeat runs every function once, in
    turn, so that a slow spell of the machine hits all alternatives alike (compare them with
    ``paired_ratio``)."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    for r in range(repeats):
        # alternate the order so no alternative always runs right after the same neighbour
        order = list(fns) if r % 2 == 0 else list(reversed(list(fns)))
        for k in order:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return times


def paired_ratio(num: List[float], den: List[float]) -> float:
    """Median over repeats of ``num[r] / den[r]``: times taken side by side in one repeat share
    the machine's state, so their ratio is steadier than a ratio of separate medians."""
    return statistics.median(n / d for n, d in zip(num, den))


def quartiles(values: List[float]) -> List[float]:
    """[first quartile, median, third quartile]: the run-to-run spread of a figure."""
    return statistics.quantiles(values, n=4) if len(values) > 1 else list(values) * 3


def run_child(module: str, *args: str, **env: str) -> str:
    """``python -m MODULE ARGS`` from the repo root in a fresh process (extra environment
    variables in ``env``); returns the last line it printed to stdout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])), **env)
    res = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=full_env, stdout=subprocess.PIPE,
                         text=True)
    if res.returncode:
        raise RuntimeError(f"python -m {module} {' '.join(args)[:80]} failed with exit status {res.returncode}")
    return res.stdout.strip().splitlines()[-1]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}"


def rounded(x, digits: int = 4):
    """Floats to ``digits`` significant digits (a small share must not round to 0)."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v, digits) for v in x]
    return x
