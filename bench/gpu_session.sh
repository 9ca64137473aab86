#!/usr/bin/env bash
# One GPU session, prepared in advance (BENCHMARKS.md "GPU"). From the repo root:
#
#   PYTHONPATH=. bash bench/gpu_session.sh [all|tests|bench|runs]      (default: all)
#
# tests: the GPU tests (tests/torch/test_runtime_gpu.py; each parity test runs with TF32 off and on)
# bench: bench/gpu_bench.py with trainer.fp32_precision ieee, then tf32
# runs:  the default run on the GPU (fp32; tf32; bf16-mixed; 16-mixed) and load_run(device="cuda")
#
# Everything goes to $OUT (default ./gpu_session_out), with one line per stage in summary.txt.
# Uses the machine's python3 ($PYTHON to choose another). Wheels in .whl/ (git-ignored) are installed
# first, without the network: hydra-core, omegaconf... where the machine lacks them. Without CUDA,
# the GPU tests skip, the benchmark says so, the runs are skipped, and the script exits 0.
set -u
STAGE=${1:-all}
PY=${PYTHON:-python3}
OUT=${OUT:-gpu_session_out}
export PYTHONPATH=${PYTHONPATH:-.}
mkdir -p "$OUT"
note() { echo "== $*" | tee -a "$OUT/summary.txt"; }
want() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }

if compgen -G ".whl/*" > /dev/null; then
  $PY -m pip install --no-index --no-build-isolation --find-links .whl .whl/* > "$OUT/pip.txt" 2>&1 \
    && note "installed the wheels in .whl/" || note "pip install from .whl/ failed: see pip.txt"
fi
$PY -c "import torch; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(0) if ok else 'no CUDA device')" 2>&1 | tee -a "$OUT/summary.txt"
CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))")

if want tests; then
  if $PY -c "import pytest" 2> /dev/null; then
    timeout 600 $PY -m pytest -q -p no:cacheprovider -rs tests/torch/test_runtime_gpu.py > "$OUT/gpu_tests.txt" 2>&1
    note "gpu tests: exit $? ($(tail -n 1 "$OUT/gpu_tests.txt"))"
  else
    note "gpu tests: not run, no pytest here (add its wheels to .whl/)"
  fi
fi

if want bench; then
  for p in ieee tf32; do
    timeout 600 $PY -m bench.gpu_bench --fp32-precision "$p" --steps 150 --warmup 20 \
      > "$OUT/gpu_bench_$p.json" 2> "$OUT/gpu_bench_$p.err"
    note "gpu_bench $p: exit $? $(tail -n 1 "$OUT/gpu_bench_$p.json")"
    [ "$CUDA" = 1 ] || break
  done
fi

if want runs; then
  if [ "$CUDA" != 1 ]; then
    note "runs: skipped, no CUDA device"
  elif ! $PY -c "import hydra, omegaconf" 2> /dev/null; then
    note "runs: skipped, no hydra-core/omegaconf here (add their wheels to .whl/)"
  else
    for extra in "" trainer.fp32_precision=tf32 trainer.precision=bf16-mixed trainer.precision=16-mixed; do
      name=run_${extra:-fp32}
      name=${name//[.=]/_}
      timeout 300 $PY train.py trainer.accelerator=gpu trainer.enable_progress_bar=false $extra \
        hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1
      code=$?
      note "$name: exit $code $($PY -c "import json, sys; m = json.load(open(sys.argv[1])); \
print({k: m.get(k) for k in ('val_acc', 'best_val_acc', 'wall_time_s', 'global_step')})" "$OUT/$name/metrics.json" 2>&1 | tail -n 1)"
    done
    $PY - "$OUT/run_fp32" > "$OUT/load_run.txt" 2>&1 <<'EOF'
import sys, numpy as np, encoders
gpu, cpu = (encoders.load_run(sys.argv[1], device=d) for d in ("cuda", "cpu"))
texts = ["3 4 5 6", "", "7 " * 300, "9 10"] * 50
p_gpu, p_cpu = gpu.predict_proba(texts, batch_size=64), cpu.predict_proba(texts, batch_size=64)
alone = gpu.predict_proba(texts[:8], batch_size=1)
print("load_run devices", gpu.device, cpu.device, "max |gpu - cpu|", float(np.abs(p_gpu - p_cpu).max()),
      "max |batch 1 - batch 64| on gpu", float(np.abs(alone - p_gpu[:8]).max()))
EOF
    note "load_run: exit $? $(tail -n 1 "$OUT/load_run.txt")"
  fi
fi
exit 0
