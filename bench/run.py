"""Every performance comparison of the project, side by side in one run.

    python bench/run.py [--quick] [--smoke] [--skip-tf]

Prints progress to stderr and, as the LAST stdout line, one JSON object with every figure
(see BENCHMARKS.md for what each one means). ``--quick`` stays under 3 minutes on 2 CPU cores;
``--smoke`` only checks that everything runs (tiny sizes, meaningless figures; used by tests).

Order: padding efficiency, torch encoder kernels, peak memory (fresh child processes), the
Lightning-vs-hand-loop training comparison and ``padding_matters``, data at scale (a generated
csv to the first batch, previous path vs columnar, cold and warm), then Keras/TensorFlow in a
child process (so TF's thread pools never share a process with torch's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python bench/run.py` from the repo root, without PYTHONPATH
    sys.path.insert(0, ROOT)

from bench.common import SIZES, machine, mode_of, rounded, run_child  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def tf_part(s) -> dict:
    env = {k: os.environ.get(k, v) for k, v in (("KERAS_BACKEND", "tensorflow"), ("TF_CPP_MIN_LOG_LEVEL", "2"))}
    return json.loads(run_child("bench.tf_bench", json.dumps(s), **env))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller repeats, < 3 minutes on 2 CPU cores")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs")
    ap.add_argument("--skip-tf", action="store_true", help="leave out the Keras/TensorFlow part")
    ap.add_argument("--encoder-device", default="cpu",
                    help="device of the encoder kernel comparison (cpu, or cuda where a GPU is present)")
    args = ap.parse_args(argv)
    mode = mode_of(args.quick, args.smoke)
    s = SIZES[mode]
    start = time.perf_counter()

    import torch  # after argparse, so --help is instant

    from bench import encoder_bench, memory_bench, padding_bench, scale_bench, training_bench

    out = {"machine": machine(), "torch_version": torch.__version__, "quick": args.quick, "mode": mode}
    parts = [("padding efficiency", lambda: padding_bench.run(mode)),
             ("encoder kernels (bi-LSTM, bi-GRU)", lambda: encoder_bench.run(s, args.encoder_device)),
             ("peak memory", lambda: memory_bench.run(s)),
             ("Lightning vs hand loop, padding_matters", lambda: training_bench.run(s)),
             ("data at scale (csv to first batch, training tokens/s)", lambda: scale_bench.run(s))]
    if not args.skip_tf:
        parts.append(("Keras/TensorFlow", lambda: tf_part(s)))
    for name, fn in parts:
        t = time.perf_counter()
        log(f"{name} ...")
        out.update(fn())
        log(f"{name}: {time.perf_counter() - t:.1f} s")
    out.setdefault("tf_version", None)
    out["wall_time_s"] = time.perf_counter() - start
    out = rounded(out)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
