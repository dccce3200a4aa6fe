"""Shared fixtures: one tiny generated cohort and its prepared directory, built once per test session
through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcam_lab.cli import main

TINY_PATIENTS = 60


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory) -> Path:
    """A generated MIMIC-shaped cohort (official layouts) with ~60 patients."""
    out = tmp_path_factory.mktemp("raw")
    assert main(["synth", "--out", str(out), "--patients", str(TINY_PATIENTS), "--seed", "1"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_manifest(tiny_raw) -> dict:
    return json.loads((tiny_raw / "synth_manifest.json").read_text())


@pytest.fixture(scope="session")
def tiny_cohort(tiny_raw, tmp_path_factory) -> Path:
    """``medcam-lab prepare`` run on the tiny cohort (32-px image cache)."""
    out = tmp_path_factory.mktemp("cohort")
    argv = ["prepare", "--mimic-cxr", str(tiny_raw / "mimic-cxr-jpg"), "--mimic-iv", str(tiny_raw / "mimic-iv"),
            "--out", str(out), "--image-cache-size", "36"]
    assert main(argv) == 0
    return out


from fixtures_aligned import tiny_align_run  # noqa: E402,F401  (session fixture of the notebook/explain tests)
