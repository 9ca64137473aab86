"""Processes that share the machine: ``python train.py`` alone against two at once, with today's
thread count (the fair share of ``encoders.run.threads``) and with every process on all cores (what
torch does by itself; ``trainer.num_threads=<cores>``), interleaved so that load from elsewhere
hits every variant alike.

    python -m bench.contention [--repeats 2] [--ddp] [OVERRIDE ...]

``--ddp`` adds a third shape of run: one ``train.py`` with two DDP ranks on the CPU
(``trainer.accelerator=cpu trainer.devices=2 trainer.strategy=ddp``), with each variant's threads.
``--beside ROWS`` adds ``python -m encoders predict`` on a generated csv of ROWS rows (with a run
trained on it first), alone and started together with one ``train.py``; its figure is the
command's wall time (start-up included). "All cores" for it is ``OMP_NUM_THREADS=<cores>``.

Overrides go to every ``train.py`` (e.g. ``trainer.limit_train_batches=50`` for a shorter run).
The figure per run is its ``wall_time_s`` (metrics.json: model build, training and validation).
Prints one JSON object: medians per variant and the slowdown of a pair against one alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _runs(n: int, overrides: List[str], work: str, tag: str) -> List[float]:
    """``n`` train.py processes started together; each one's wall_time_s."""
    procs, dirs = [], []
    for i in range(n):
        run_dir = os.path.join(work, f"{tag}-{i}")
        dirs.append(run_dir)
        cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"hydra.run.dir={run_dir}",
               "trainer.enable_progress_bar=false", *overrides]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"train.py failed ({p.returncode}): {err[-2000:]}")
    return [json.load(open(os.path.join(d, "metrics.json")))["wall_time_s"] for d in dirs]


DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]


def _predict_setup(work: str, rows: int) -> List[str]:
    """A csv of ``rows`` rows and a run trained on it (one epoch): the predict command to time."""
    from bench.scale_data import write_csv

    import pandas as pd

    data, run_dir = os.path.join(work, "predict.csv"), os.path.join(work, "predict-run")
    write_csv(data, rows)
    table = pd.read_csv(data)
    table["label"] = table.index % 2  # the generated labels can be one class in a few rows; speed is the point
    table.to_csv(data, index=False)
    subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), f"hydra.run.dir={run_dir}", "data=files",
                    f"data.train_file={data}", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [sys.executable, "-m", "encoders", "predict", run_dir, data, "-o", os.path.join(work, "predicted.csv")]


def _beside(predict: List[str], train: Optional[List[str]], all_cores: bool, work: str, tag: str):
    """``predict``'s wall time, started together with one train.py (``train``: its overrides) or alone;
    and that train.py's wall_time_s (None alone)."""
    from encoders.run.threads import cores

    env = dict(os.environ, OMP_NUM_THREADS=str(cores())) if all_cores else None
    start = time.perf_counter()
    proc = subprocess.Popen(predict, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trained = _runs(1, train, work, tag)[0] if train is not None else None
    _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"predict failed ({proc.returncode}): {err[-2000:]}")
    return time.perf_counter() - start, trained


def run(repeats: int, overrides: List[str], ddp: bool = False, beside: int = 0) -> Dict:
    from encoders.run.threads import cores

    variants = {"all_cores": [f"trainer.num_threads={cores()}"], "fair_share": []}
    shapes = {"alone": (1, []), "pair": (2, [])}
    if ddp:
        shapes["ddp2"] = (1, DDP)  # one process, two ranks
    times: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="contention-") as work:
        predict = _predict_setup(work, beside) if beside else None
        for r in range(repeats):
            for shape, (n, shape_overrides) in shapes.items():
                for name, extra in variants.items():
                    key = f"{name}_{shape}"
                    got = _runs(n, [*extra, *shape_overrides, *overrides], work, f"{key}-{r}")
                    times.setdefault(key, []).extend(got)
                    print(f"[contention] {key}: {got}", file=sys.stderr, flush=True)
            for name, extra in variants.items() if predict else ():
                alone, _ = _beside(predict, None, name == "all_cores", work, "")
                both, trained = _beside(predict, [*extra, *overrides], name == "all_cores", work, f"{name}_beside-{r}")
                for key, got in ((f"{name}_predict_alone", alone), (f"{name}_predict_beside", both),
                                 (f"{name}_train_beside", trained)):
                    times.setdefault(key, []).append(got)
                print(f"[contention] {name}: predict alone {alone:.2f}, beside {both:.2f}, its train.py {trained}",
                      file=sys.stderr, flush=True)
    out = {"cores": cores(), "repeats": repeats, "overrides": overrides}
    out.update({f"{k}_s": statistics.median(v) for k, v in times.items()})
    for name in variants:
        for shape in shapes:
            if shape != "alone":
                out[f"{name}_{shape}_vs_alone"] = out[f"{name}_{shape}_s"] / out[f"{name}_alone_s"]
        if predict:
            out[f"{name}_predict_beside_vs_alone"] = out[f"{name}_predict_beside_s"] / out[f"{name}_predict_alone_s"]
            out[f"{name}_train_beside_vs_alone"] = out[f"{name}_train_beside_s"] / out[f"{name}_alone_s"]
    out["fair_share_alone_vs_all_cores_alone"] = out["fair_share_alone_s"] / out["all_cores_alone_s"]
    return out


if __name__ == "__main__":
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ddp", action="store_true", help="also one run with two DDP ranks on the CPU")
    ap.add_argument("--beside", type=int, default=0, metavar="ROWS",
                    help="also predict on ROWS generated rows, alone and beside one train.py")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    out = run(args.repeats, args.overrides, args.ddp, args.beside)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
