#!/usr/bin/env bash
# One-call GPU check (≤ 7 min on one H100/H200): every benchmark, then smoke runs of `align` on CUDA and tests.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: ${OUT:-gpu_check_out}
#   ONLY="bench_loader bench_bootstrap" bash benchmarks/gpu_check.sh   # rerun some steps only
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh /tmp/rehearsal  # every step at toy sizes on the CPU
#
# Works offline from a checkout (PYTHONPATH, no install) on a machine whose Python already has torch,
# torchvision, numpy, pandas, pyarrow, scikit-learn, pillow, numba, tqdm, pyyaml and pytest. Other packages
# the project needs (isal) travel as wheels in .whl/ (made beforehand by `bash benchmarks/gpu_wheels.sh`)
# and are installed into a temporary folder first. A step that fails is reported as FAILED with the end of its log,
# and the script goes on; every step has its own time limit. OUT_DIR receives two files only (a remote
# machine may send back only a few): summary.txt (step results, then one JSON line per figure) and
# gpu_check_logs.tar.gz (each step's JSON and log, refreshed after every step). Paste the figures into
# benchmarks/RESULTS.md with the card's name. The CPU rehearsal checks the script and every code path it
# runs, not the speed; tests/test_gpu_check.py runs it.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"  # per-step files; only a tarball of them goes to OUT_DIR
trap 'rm -rf "$WORK"' EXIT
PY="${PYTHON:-python3}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
ONLY="${ONLY:-}"
SUMMARY="$OUT_DIR/summary.txt"
LOGS="$OUT_DIR/gpu_check_logs.tar.gz"
: > "$SUMMARY"
WHEELS_DIR="${WHEELS_DIR:-.whl}"
if ls "$WHEELS_DIR"/*.whl > /dev/null 2>&1; then  # carried wheels of packages the machine's Python lacks
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" \
      "$WHEELS_DIR"/*.whl 2> "$WORK/wheels.log"; then
    echo "WARNING installing the wheels of $WHEELS_DIR failed (steps that import them will fail):" | tee -a "$SUMMARY"
    tail -3 "$WORK/wheels.log" | sed 's/^/        /' | tee -a "$SUMMARY"
  fi
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"

BUDGET_S="${BUDGET_S:-420}"  # the whole script stays under 7 minutes: later steps get what is left

step() {  # step NAME LIMIT_S COMMAND...
  local name="$1" limit="$2"; shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  local t0=$SECONDS left=$((BUDGET_S - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "SKIPPED $name (time budget of ${BUDGET_S} s spent)" | tee -a "$SUMMARY"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  if timeout "$limit" "$@" > "$WORK/$name.json" 2> "$WORK/$name.log"; then
    echo "ok      $name ($((SECONDS - t0)) s)" | tee -a "$SUMMARY"
  else
    echo "FAILED  $name (code $?, $((SECONDS - t0)) s; see $name.log in $(basename "$LOGS"))" | tee -a "$SUMMARY"
    tail -5 "$WORK/$name.log" | sed 's/^/        /' | tee -a "$SUMMARY"
  fi
  tar czf "$LOGS" -C "$WORK" --exclude=./smoke .
}

"$PY" - > "$WORK/device.json" <<'EOF'
import json, torch, torchvision
print(json.dumps({"card": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "torch": torch.__version__, "torchvision": torchvision.__version__,
                  "cuda": torch.version.cuda, "cpus": __import__("os").cpu_count()}))
EOF
tee -a "$SUMMARY" < "$WORK/device.json"

if [ "$DEVICE" = cpu ]; then  # rehearsal: the same steps at toy sizes
  TESTS="tests/test_distributed.py::test_single_process_path_is_the_plain_formula"
  COMPILE=off SMOKE_SIZE="--image-size 32 --batch-size 4 --epochs 1"
  B="--device cpu --batch 4 --image-size 32 --steps 2 --rounds 1"
  LOADER="--jpegs 2 --cache-rows 256 --batch 32 --crop 224 --device cpu"
  BOOT="--rows 2000 --labels 3 --resamples 20 --sklearn-resamples 2"
else
  TESTS="tests/test_distributed.py tests/test_losses.py"
  COMPILE=on SMOKE_SIZE="--image-size 64 --batch-size 8 --epochs 2"
  B="--device cuda --batch 256 --image-size 224 --steps 12 --rounds 3"
  LOADER="--jpegs 32 --cache-rows 32768 --batch 256 --device cuda"
  BOOT="--sklearn-resamples 50"
fi

# Steps in order of importance: when the time budget runs out, the last ones are skipped.
# 1. Alignment step vs the plain reference at the anchor sizes (ResNet-50, 224 px, B = 256), with the GPU
#    defaults (bf16 autocast, channels_last; host synchronisations of one step counted), then compiled.
step bench_align_bf16_cl 60 "$PY" benchmarks/bench_align_step.py $B
step bench_align_bf16_cl_compile 150 "$PY" benchmarks/bench_align_step.py $B --compile $COMPILE

# 2. Loader: can the CPU side feed the step rate above? (all cores but two as workers; crops on the GPU)
WORKERS=$("$PY" -c "import os; print(max(2, (os.cpu_count() or 2) - 2))")
step bench_loader 60 "$PY" benchmarks/bench_loader.py --workers "$WORKERS" $LOADER

# 3. The same step in plain fp32, NCHW: what the GPU defaults gain.
step bench_align_fp32_nchw 50 "$PY" benchmarks/bench_align_step.py $B --precision fp32 --channels-last off

# 4. Smoke: a tiny generated cohort, `medcam-lab align` on the device (bf16, channels_last, compiled), then
#    the same under torchrun (NCCL on CUDA; one process: all a one-GPU machine can show).
SMOKE="$WORK/smoke"
step smoke_cohort 60 bash -c "'$PY' -m medcam_lab.cli synth --out '$SMOKE/raw' --patients 60 --seed 1 && \
  '$PY' -m medcam_lab.cli prepare --mimic-cxr '$SMOKE/raw/mimic-cxr-jpg' --mimic-iv '$SMOKE/raw/mimic-iv' \
  --out '$SMOKE/cohort' --image-cache-size 72"
ALIGN_ARGS="--cohort $SMOKE/cohort --encoder resnet50 $SMOKE_SIZE --k 3 --device $DEVICE"
step smoke_align_compiled 100 "$PY" -m medcam_lab.cli align $ALIGN_ARGS --out "$SMOKE/align1" --compile $COMPILE
step smoke_align_torchrun 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
  -m medcam_lab.cli align $ALIGN_ARGS --out "$SMOKE/align_ddp" --compile off

# 5. Correctness on this machine's torch: the data-parallel tests (gloo, CPU) and the loss tests.
step tests_distributed_losses 100 "$PY" -m pytest -q -x -p no:cacheprovider $TESTS

# 6. Bootstrap (CPU; measured on the CPU machine already).
step bench_bootstrap 50 "$PY" benchmarks/bench_bootstrap.py $BOOT

echo "--- figures ---" | tee -a "$SUMMARY"
for figures in "$WORK"/bench_*.json; do
  [ -s "$figures" ] && tee -a "$SUMMARY" < "$figures"
done
grep -q '^FAILED' "$SUMMARY" && exit 1
exit 0
