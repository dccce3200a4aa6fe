"""The one-call GPU check (``benchmarks/gpu_check.sh``) rehearsed on the CPU at toy sizes.

A machine with a GPU is lent rarely and briefly, so the script that measures everything there must work the
first time: the rehearsal runs every one of its steps (same commands, toy sizes, CPU) and checks that each
passes and reports its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ("bench_align_bf16_cl", "bench_align_bf16_cl_compile", "bench_loader", "bench_align_fp32_nchw",
         "smoke_cohort", "smoke_align_compiled", "smoke_align_torchrun", "tests_distributed_losses",
         "bench_bootstrap")


def _rehearse(out: Path, tmp: Path, **env) -> subprocess.CompletedProcess:
    tmp.mkdir(exist_ok=True)
    run_env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DEVICE": "cpu", "TMPDIR": str(tmp),
               "WHEELS_DIR": str(tmp / "no_wheels"), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, env=run_env,
                          timeout=600)


def _figures(summary: str) -> list[dict]:
    return [json.loads(line) for line in summary.splitlines() if line.startswith('{"figure"')]


@pytest.mark.slow
def test_gpu_check_rehearsal_runs_every_step_and_reports_every_figure(tmp_path):
    done = _rehearse(tmp_path / "out", tmp_path / "tmp")
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert done.returncode == 0, summary + done.stderr[-2000:]
    results = {line.split()[1]: line.split()[0] for line in summary.splitlines()
               if line.split() and line.split()[0] in ("ok", "FAILED", "SKIPPED")}
    assert results == dict.fromkeys(STEPS, "ok"), summary
    figures = _figures(summary)
    assert sorted(f["figure"] for f in figures) == ["align_step"] * 3 + ["bootstrap", "loader"]
    for figure in figures:
        if figure["figure"] == "align_step":
            assert figure["reference_img_per_s"] > 0 and figure["medcam_lab_img_per_s"] > 0
        if figure["figure"] == "bootstrap":
            assert figure["max_abs_diff_of_macro_replicates"] < 1e-12
        if figure["figure"] == "loader":
            assert figure["crop_device"] == "cpu" and figure["speedup_vs_naive"] > 0
    # only two files reach OUT_DIR; every step's log and JSON are in the tarball; the work folder is removed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu_check_logs.tar.gz", "summary.txt"]
    with tarfile.open(tmp_path / "out" / "gpu_check_logs.tar.gz") as tar:
        paths = [Path(n) for n in tar.getnames()]
    assert {f"{s}.{ext}" for s in STEPS for ext in ("json", "log")} | {"device.json"} <= {p.name for p in paths}
    assert not any("smoke" in p.parts[:-1] for p in paths)  # the smoke cohort and runs stay behind
    assert not list((tmp_path / "tmp").glob("gpu_check.*"))


def test_gpu_check_reruns_only_the_named_steps_and_fails_loudly(tmp_path):
    done = _rehearse(tmp_path / "out", tmp_path / "tmp", ONLY="bench_bootstrap")
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert done.returncode == 0, summary
    assert [line.split()[1] for line in summary.splitlines() if line.startswith("ok")] == ["bench_bootstrap"]
    assert [f["figure"] for f in _figures(summary)] == ["bootstrap"]

    # a failing step is reported with the end of its log, and the script exits non-zero
    broken = _rehearse(tmp_path / "out2", tmp_path / "tmp", ONLY="bench_bootstrap", PYTHONPATH="/nonexistent",
                       PYTHON=str(tmp_path / "no_python"))
    summary = (tmp_path / "out2" / "summary.txt").read_text()
    assert broken.returncode != 0
    assert "FAILED  bench_bootstrap" in summary
