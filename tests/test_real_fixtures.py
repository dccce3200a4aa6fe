"""The real, openly licensed files under ``tests/data/real/`` are the published bytes: every file matches its
line of the release's ``SHA256SUMS.txt`` (PhysioNet's for the MIMIC-IV demo, ours for the radiographs), and
nothing is there that no line names (except the provenance and licence files)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

REAL = Path(__file__).parent / "data" / "real"
UNLISTED = {"SHA256SUMS.txt", "README.md"}


def checksums(folder: Path) -> dict[str, str]:
    lines = (folder / "SHA256SUMS.txt").read_text().splitlines()
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in lines if line.strip())}


@pytest.mark.parametrize("folder", ["mimic-iv-demo-2.2", "cxr"])
def test_every_real_file_matches_its_published_checksum(folder: str) -> None:
    root = REAL / folder
    listed = checksums(root)
    present = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in UNLISTED)
    assert present, f"no file under {root}"
    unlisted = [name for name in present if name not in listed]
    assert not unlisted, f"files without a checksum line: {unlisted}"
    wrong = [name for name in present if hashlib.sha256((root / name).read_bytes()).hexdigest() != listed[name]]
    assert not wrong, f"files that differ from the published bytes (Git LFS pointer or edited copy?): {wrong}"


def test_the_demo_holds_the_tables_the_pipeline_reads() -> None:
    root = REAL / "mimic-iv-demo-2.2"
    for name in ("hosp/patients.csv.gz", "hosp/admissions.csv.gz", "hosp/labevents.csv.gz",
                 "hosp/d_labitems.csv.gz", "icu/icustays.csv.gz", "icu/d_items.csv.gz", "LICENSE.txt"):
        assert (root / name).is_file(), name
    assert "ODC Open Database License (ODbL)" in (root / "LICENSE.txt").read_text()
    assert not (root / "icu" / "chartevents.csv.gz").exists()  # not carried: tests write their own
