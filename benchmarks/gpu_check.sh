#!/usr/bin/env bash
# One-call GPU check (≤ 8 min on one H100): correctness smoke tests on CUDA, then every benchmark.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: ${OUT:-gpu_check_out}
#
# Works offline from a checkout (PYTHONPATH, no install) on a machine whose Python already has torch,
# torchvision, numpy, pandas, pyarrow, scikit-learn and pillow; a step whose dependencies are missing is
# reported as FAILED with its log, and the script goes on. Every step has its own time limit. Results:
# OUT_DIR/*.json (one JSON line per figure), OUT_DIR/*.log, OUT_DIR/summary.txt. Paste the JSON lines
# into benchmarks/RESULTS.md with the card name.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check_out}}/gpu_check"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"

BUDGET_S="${BUDGET_S:-470}"  # the whole script stays under 8 minutes: later steps get what is left

step() {  # step NAME LIMIT_S COMMAND...
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS left=$((BUDGET_S - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "SKIPPED $name (time budget of ${BUDGET_S} s spent)" | tee -a "$SUMMARY"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  if timeout "$limit" "$@" > "$OUT_DIR/$name.json" 2> "$OUT_DIR/$name.log"; then
    echo "ok      $name ($((SECONDS - t0)) s)" | tee -a "$SUMMARY"
  else
    echo "FAILED  $name (code $?, $((SECONDS - t0)) s; see $name.log)" | tee -a "$SUMMARY"
    tail -5 "$OUT_DIR/$name.log" | sed 's/^/        /' | tee -a "$SUMMARY"
  fi
}

"$PY" - > "$OUT_DIR/device.json" <<'EOF'
import json, torch, torchvision
print(json.dumps({"card": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "torch": torch.__version__, "torchvision": torchvision.__version__,
                  "cuda": torch.version.cuda, "cpus": __import__("os").cpu_count()}))
EOF
cat "$OUT_DIR/device.json" | tee -a "$SUMMARY"

# 1. Correctness: the data-parallel tests (gloo, CPU) and the loss tests, on this machine's torch.
step tests_distributed_losses 100 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_distributed.py tests/test_losses.py

# 2. CUDA smoke: a tiny generated cohort, alignment on the GPU (bf16, channels_last, compile on), then the
#    same under torchrun with the NCCL backend (one process: all a one-GPU machine can show).
SMOKE="$OUT_DIR/smoke"
rm -rf "$SMOKE"
step smoke_cohort 60 bash -c "'$PY' -m medcam_lab.cli synth --out '$SMOKE/raw' --patients 60 --seed 1 && \
  '$PY' -m medcam_lab.cli prepare --mimic-cxr '$SMOKE/raw/mimic-cxr-jpg' --mimic-iv '$SMOKE/raw/mimic-iv' \
  --out '$SMOKE/cohort' --image-cache-size 72"
ALIGN_ARGS="--cohort $SMOKE/cohort --encoder resnet50 --image-size 64 --epochs 2 --batch-size 8 --k 3 --device cuda"
step smoke_align_cuda_compiled 100 "$PY" -m medcam_lab.cli align $ALIGN_ARGS --out "$SMOKE/align1" --compile on
step smoke_align_torchrun_nccl 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
  -m medcam_lab.cli align $ALIGN_ARGS --out "$SMOKE/align_ddp" --compile off

# 3. Alignment step vs the plain reference at the anchor sizes (ResNet-50, 224 px, B = 256).
B="--device cuda --batch 256 --image-size 224 --steps 12 --rounds 3"
step bench_align_fp32_nchw 50 "$PY" benchmarks/bench_align_step.py $B --precision fp32 --channels-last off
step bench_align_bf16_cl 45 "$PY" benchmarks/bench_align_step.py $B
step bench_align_bf16_cl_compile 120 "$PY" benchmarks/bench_align_step.py $B --compile on

# 4. Loader: can the CPU side feed the step rate above? (all cores as workers)
WORKERS=$("$PY" -c "import os; print(max(2, (os.cpu_count() or 2) - 2))")
step bench_loader 60 "$PY" benchmarks/bench_loader.py --workers "$WORKERS" --jpegs 32 --cache-rows 32768 --batch 256

# 5. Bootstrap (CPU).
step bench_bootstrap 50 "$PY" benchmarks/bench_bootstrap.py --sklearn-resamples 50

echo "--- figures ---" | tee -a "$SUMMARY"
cat "$OUT_DIR"/bench_*.json | tee -a "$SUMMARY"
