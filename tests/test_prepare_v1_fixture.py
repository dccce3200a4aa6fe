"""Both EHR modes on the hand-written MIMIC-IV v1.0 fixture (``tests/fixtures/``): layout and version,
every planted bad input counted with its reason, and hand-computed bins that differ between the modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcam_lab.cli import main
from medcam_lab.datasets.mimic_iv import locate_mimic_iv

FIXTURES = Path(__file__).parent / "fixtures"
EYE, VERBAL, TOTAL, CAP = (
    "Glascow coma scale eye opening",
    "Glascow coma scale verbal response",
    "Glascow coma scale total",
    "Capillary refill rate",
)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """The fixture copied to a temporary folder, with a small JPEG written for each metadata row."""
    root = tmp_path_factory.mktemp("v1")
    shutil.copytree(FIXTURES / "mimic_iv_v1_0", root / "mimic-iv")
    shutil.copytree(FIXTURES / "mimic_cxr_small", root / "mimic-cxr-jpg")
    meta = pd.read_csv(root / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-metadata.csv")
    for k, row in enumerate(meta.itertuples()):
        path = root / "mimic-cxr-jpg" / "files" / f"p{str(row.subject_id)[:2]}" / f"p{row.subject_id}" / \
            f"s{row.study_id}" / f"{row.dicom_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((np.arange(64 * 64) * (k + 1)) % 251).astype(np.uint8).reshape(64, 64)).save(path)
    return root


def prepare(raw: Path, out: Path, compat: str) -> tuple[dict, pd.DataFrame, np.ndarray, list[str]]:
    argv = ["prepare", "--mimic-cxr", str(raw / "mimic-cxr-jpg"), "--mimic-iv", str(raw / "mimic-iv"),
            "--out", str(out), "--image-cache-size", "16", "--compat", compat, "--split-fractions", "0.5", "0.5", "0"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    pairs = pd.read_parquet(out / "pairs.parquet")
    return report, pairs, np.load(out / "ehr_values.npy"), json.loads((out / "ehr_columns.json").read_text())


@pytest.fixture(scope="module")
def medfuse(raw, tmp_path_factory):
    return prepare(raw, tmp_path_factory.mktemp("medfuse"), "medfuse")


@pytest.fixture(scope="module")
def clean(raw, tmp_path_factory):
    return prepare(raw, tmp_path_factory.mktemp("clean"), "clean")


def test_v1_layout_and_version_are_detected(raw):
    layout = locate_mimic_iv(raw / "mimic-iv")
    assert layout.version == "1.0" and layout.version_source == "layout"
    assert layout.demographic_column == "ethnicity"
    assert layout.patients.parent.name == "core" and layout.chartevents.suffix == ".csv"


@pytest.mark.parametrize("mode", ["medfuse", "clean"])
def test_both_modes_build_the_same_pairs(mode, medfuse, clean):
    report, pairs, values, columns = {"medfuse": medfuse, "clean": clean}[mode]
    assert report["versions"]["mimic_iv"] == "1.0" and report["versions"]["compat"] == mode
    assert report["versions"]["medcam_lab"] and report["versions"]["mimic_cxr"].startswith("2.0.0")
    # child (16 y) and transferred stays are filtered; the stay without events loses its image;
    # 3 images of the 2 other kept stays remain
    assert sorted(pairs["dicom_id"]) == ["aaaaaaa1-00000001", "aaaaaaa2-00000002", "aaaaaaa3-00000003"]
    assert values.shape == (3, 24, 76 if mode == "medfuse" else 60) and len(columns) == values.shape[2]
    steps = {s["step"]: s["count"] for s in report["steps"]}
    assert steps["ICU stays in icustays"] == 5 and steps["stays of adults (anchor_age >= 18)"] == 3
    # every row of the events files is read and accounted for
    files = report["event_files"]
    assert files["chartevents"]["rows_read"] == 30 and files["labevents"]["rows_read"] == 7
    assert files["chartevents"]["rows_other_items"] == 1 + (2 if mode == "medfuse" else 0)  # 229999; cap refill
    dropped = report["dropped"]
    assert dropped["event: charttime outside its ICU stay"] == 1
    assert dropped["event: exact duplicate row"] == 1
    # the stay without any event, and its image, are counted
    assert dropped["stay: no event of the 17 variables during the stay"] == 1
    assert dropped["pair: no EHR event in the window before the image"] == 1
    assert report["dropped_examples"]["stay: no event of the 17 variables during the stay"] == [30000005]


def row(pairs: pd.DataFrame, dicom: str) -> int:
    return int(np.flatnonzero(pairs["dicom_id"].to_numpy() == dicom)[0])


def test_first_image_bins_by_hand(medfuse, clean):
    """Image 1: taken 36 h after ICU admission at 08:00 → 18 bins of 2 h; bin k holds (2k, 2k+2] h."""
    out = {}
    for mode, (_, pairs, values, columns) in {"medfuse": medfuse, "clean": clean}.items():
        v = values[row(pairs, "aaaaaaa1-00000001")]
        assert pairs.loc[row(pairs, "aaaaaaa1-00000001"), "n_bins"] == 18 and not v[18:].any()
        out[mode] = (v, columns)
    (vm, cm), (vc, cc) = out["medfuse"], out["clean"]
    # FiO2: 50 % at 1 h (bin 0), 0.4 at 7 h (bin 3): the reference divides both by 100
    assert vm[[0, 3], cm.index("Fraction inspired oxygen")] == pytest.approx([0.5, 0.004])
    assert vc[[0, 3], cc.index("Fraction inspired oxygen")] == pytest.approx([0.5, 0.4])
    # 70 inches: the reference keeps 70 (label "Height"), clean converts by item id
    assert vm[0, cm.index("Height")] == pytest.approx(70.0) and vc[0, cc.index("Height")] == pytest.approx(177.8)
    # 98.6 °F -> 37 °C in both (>= 79 in the reference, item 223761 in clean)
    assert vm[0, cm.index("Temperature")] == pytest.approx(37.0)
    assert vc[0, cc.index("Temperature")] == pytest.approx(37.0)
    # heart rate: 88 at 1 h; ERROR (5 h) dropped; 92 with empty valuenum at 5.5 h (bin 2); 400 at 9 h
    # (bin 4) is kept by the reference and dropped as out of range in clean
    assert vm[[0, 2, 4], cm.index("Heart Rate")] == pytest.approx([88, 92, 400])
    assert vc[[0, 2, 4], cc.index("Heart Rate")] == pytest.approx([88, 92, 92])
    assert vc[4, cc.index("mask->Heart Rate")] == 0
    # urine glucose (100 at 6 h, bin 2) reaches the blood channel only in the reference
    assert vm[2, cm.index("Glucose")] == 100 and vm[2, cm.index("mask->Glucose")] == 1
    assert vc[2, cc.index("Glucose")] == 110 and vc[2, cc.index("mask->Glucose")] == 0
    # GCS total: never observed in the reference; derived 4 + 5 + 6 = 15 at 1 h in clean
    assert vm[:, cm.index(f"mask->{TOTAL}")].sum() == 0
    assert vc[0, cc.index(f"mask->{TOTAL}")] == 1 and vc[0, cc.index(f"{TOTAL}->15")] == 1
    # capillary refill item 223951 is mapped only in clean
    assert vm[:, cm.index(f"mask->{CAP}")].sum() == 0
    assert vc[0, cc.index(f"mask->{CAP}")] == 1 and vc[0, cc.index(f"{CAP}->Normal <3 secs")] == 1
    # eye "4" at 7 h: an unknown string for the reference (dropped, counted), the top score in clean
    assert vm[3, cm.index(f"mask->{EYE}")] == 0
    assert vc[3, cc.index(f"mask->{EYE}")] == 1 and vc[3, cc.index(f"{EYE}->4 Spontaneously")] == 1
    # intubated verbal response at 26 h (bin 12): its own category in clean
    assert vc[12, cc.index(f"{VERBAL}->ET/Trach")] == 1 and vm[12, cm.index(f"{VERBAL}->No Response-ETT")] == 1


def test_drops_are_counted_with_their_reason(medfuse, clean):
    dm, dc = medfuse[0]["dropped"], clean[0]["dropped"]
    assert dm["event: Heart Rate: not a finite number 'ERROR'"] == 1
    assert dm[f"event: {EYE}: unknown category '4'"] == 1
    assert dm["event: Glucose: non-numeric value"] == 1  # '___'
    assert dc["event: Heart Rate: non-numeric value"] == 1
    assert dc["event: Heart Rate: out of range [10, 300]"] == 1
    assert dc["event: Glucose: non-numeric value"] == 1
    assert clean[0]["unknown_categories"] == {}
    assert clean[0]["derived"]["GCS total: derived"] == 1
    assert clean[0]["derived"]["GCS total: not derived, component missing at that time"] >= 1


def test_second_stay_units_and_blood_only_ph(medfuse, clean):
    (_, pm, vm, cm), (_, pc, vc, cc) = medfuse, clean
    a, b = vm[row(pm, "aaaaaaa3-00000003")], vc[row(pc, "aaaaaaa3-00000003")]
    # 80 kg and 176 lb at the same time: the larger survives (80 vs 79.83 kg) in both modes
    assert a[1, cm.index("Weight")] == pytest.approx(80.0) and b[1, cc.index("Weight")] == pytest.approx(80.0)
    # urine pH 6.0 (item 51491) is on the blood pH channel only in the reference
    assert a[1, cm.index("mask->pH")] == 1 and a[1, cm.index("pH")] == pytest.approx(6.0)
    assert b[:, cc.index("mask->pH")].sum() == 0
