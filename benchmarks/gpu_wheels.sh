#!/usr/bin/env bash
# Download, here, the wheels of the packages `benchmarks/gpu_check.sh` needs that a GPU machine's Python may
# lack, for that machine's Python (default CPython 3.12, x86-64 manylinux), into .whl/ (git-ignored: a remote
# run must carry it).
# gpu_check.sh installs whatever it finds there into a temporary folder before its first step.
#
#   bash benchmarks/gpu_wheels.sh                      # isal, at the version installed in .venv
#   GPU_PY=3.11 bash benchmarks/gpu_wheels.sh isal==1.9.1 other==1.0
#
# Only packages with no dependencies of their own beyond what such an image has belong here: the check's
# other needs (torch, torchvision, numpy, pandas, pyarrow, scikit-learn, pillow, numba, tqdm, pyyaml,
# pytest) are part of the usual CUDA images. `GPU_CHECK_DEVICE=cpu` with PYTHON set to an interpreter that
# has only those shows what is missing (see the rehearsal test, tests/test_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_PY="${GPU_PY:-3.12}"
PY="${PYTHON:-python3}"
if [ "$#" -eq 0 ]; then
  if ! version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('isal'))" 2>/dev/null); then
    echo "gpu_wheels.sh: no isal in .venv to take the version from: run 'make install' or name the wheels," \
      "e.g. bash benchmarks/gpu_wheels.sh isal==1.9.1" >&2
    exit 2
  fi
  set -- "isal==$version"
fi
mkdir -p .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
           manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$GPU_PY" --implementation cp "${platforms[@]}" -d .whl "$@"
ls -l .whl
