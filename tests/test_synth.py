"""Tests of the synthetic MIMIC-shaped cohort (``medcam_lab.synth``): layout, determinism, defects, signal."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcam_lab.synth import SynthConfig, generate_cohort
from medcam_lab.synth import latent as L
from medcam_lab.synth import mimic_iv as IV

CHEXPERT = list(L.CHEXPERT_LABELS)
EXPECTED_COLUMNS = {
    "mimic-iv/hosp/patients.csv.gz": [
        "subject_id",
        "gender",
        "anchor_age",
        "anchor_year",
        "anchor_year_group",
        "dod",
    ],
    "mimic-iv/hosp/admissions.csv.gz": [
        "subject_id",
        "hadm_id",
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "admit_provider_id",
        "admission_location",
        "discharge_location",
        "insurance",
        "language",
        "marital_status",
        "race",
        "edregtime",
        "edouttime",
        "hospital_expire_flag",
    ],
    "mimic-iv/hosp/labevents.csv.gz": [
        "labevent_id",
        "subject_id",
        "hadm_id",
        "specimen_id",
        "itemid",
        "order_provider_id",
        "charttime",
        "storetime",
        "value",
        "valuenum",
        "valueuom",
        "ref_range_lower",
        "ref_range_upper",
        "flag",
        "priority",
        "comments",
    ],
    "mimic-iv/hosp/d_labitems.csv.gz": ["itemid", "label", "fluid", "category"],
    "mimic-iv/icu/icustays.csv.gz": [
        "subject_id",
        "hadm_id",
        "stay_id",
        "first_careunit",
        "last_careunit",
        "intime",
        "outtime",
        "los",
    ],
    "mimic-iv/icu/chartevents.csv.gz": [
        "subject_id",
        "hadm_id",
        "stay_id",
        "caregiver_id",
        "charttime",
        "storetime",
        "itemid",
        "value",
        "valuenum",
        "valueuom",
        "warning",
    ],
    "mimic-iv/icu/d_items.csv.gz": [
        "itemid",
        "label",
        "abbreviation",
        "linksto",
        "category",
        "unitname",
        "param_type",
        "lownormalvalue",
        "highnormalvalue",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz": [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
        "StudyDate",
        "StudyTime",
        "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz": ["subject_id", "study_id", *CHEXPERT],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz": ["dicom_id", "study_id", "subject_id", "split"],
    "nih/Data_Entry_2017.csv": [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
        "OriginalImage[Width",
        "Height]",
        "OriginalImagePixelSpacing[x",
        "y]",
    ],
}
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DICOM_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


def _read(root: Path, rel: str) -> pd.DataFrame:
    # only an empty cell is missing: MIMIC's GCS eye value "None" must stay a string
    return pd.read_csv(root / rel, low_memory=False, keep_default_na=False, na_values=[""])


def _header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return fh.readline().rstrip("\n").split(",")


def _image_path(root: Path, row: pd.Series) -> Path:
    s = str(int(row["subject_id"]))
    return (
        root
        / "mimic-cxr-jpg"
        / "files"
        / f"p{s[:2]}"
        / f"p{s}"
        / f"s{int(row['study_id'])}"
        / f"{row['dicom_id']}.jpg"
    )


def _study_times(meta: pd.DataFrame) -> pd.Series:
    hhmmss = np.floor(meta["StudyTime"].astype(float)).astype(np.int64).astype(str).str.zfill(6)
    return pd.to_datetime(meta["StudyDate"].astype(str) + hhmmss, format="%Y%m%d%H%M%S")


def _frontal_in_stay(root: Path) -> pd.DataFrame:
    """Frontal images inside an ICU stay of their subject: dicom_id, subject/study/stay ids, time."""
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    meta = meta[meta["ViewPosition"].isin(["AP", "PA"])].copy()
    meta["when"] = _study_times(meta)
    stays = _read(root, "mimic-iv/icu/icustays.csv.gz")
    stays["intime"] = pd.to_datetime(stays["intime"])
    stays["outtime"] = pd.to_datetime(stays["outtime"])
    joined = meta.merge(stays[["subject_id", "stay_id", "intime", "outtime"]], on="subject_id")
    return joined[(joined["when"] >= joined["intime"]) & (joined["when"] <= joined["outtime"])]


def _decompressed(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth40")
    manifest = generate_cohort(root, SynthConfig(n_patients=40, n_ood_patients=20, seed=0))
    return root, manifest


# ----------------------------------------------------------------------------------------------------
# layout


def test_every_file_and_column_in_official_order(cohort):
    root, manifest = cohort
    for rel, columns in EXPECTED_COLUMNS.items():
        assert (root / rel).exists(), rel
        assert _header(root / rel) == columns, rel
    assert json.loads((root / "synth_manifest.json").read_text())["counts"] == manifest["counts"]
    for key, rel in manifest["paths"].items():
        assert (root / rel).exists(), key
    assert (root / "nih" / "train_val_list.txt").exists() and (root / "nih" / "test_list.txt").exists()


def test_ids_times_and_formats(cohort):
    root, _ = cohort
    patients = _read(root, "mimic-iv/hosp/patients.csv.gz")
    adm = _read(root, "mimic-iv/hosp/admissions.csv.gz")
    stays = _read(root, "mimic-iv/icu/icustays.csv.gz")
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    assert patients["subject_id"].between(10_000_000, 19_999_999).all() and patients["subject_id"].is_unique
    assert adm["hadm_id"].between(20_000_000, 29_999_999).all() and adm["hadm_id"].is_unique
    assert stays["stay_id"].between(30_000_000, 39_999_999).all() and stays["stay_id"].is_unique
    assert meta["study_id"].between(50_000_000, 59_999_999).all()
    assert meta["dicom_id"].map(lambda d: bool(DICOM_RE.match(d))).all() and meta["dicom_id"].is_unique
    for frame, cols in ((adm, ["admittime", "dischtime"]), (stays, ["intime", "outtime"])):
        for col in cols:
            assert frame[col].map(lambda t: bool(TIME_RE.match(t))).all(), col
            years = frame[col].str[:4].astype(int)
            assert years.between(2110, 2200).all(), col
    los_days = (pd.to_datetime(stays["outtime"]) - pd.to_datetime(stays["intime"])).dt.total_seconds() / 86400
    assert los_days.between(1.0, 8.0 + 1e-6).all()
    assert np.allclose(stays["los"], los_days, atol=1e-3)
    # StudyDate int YYYYMMDD; StudyTime float HHMMSS.fff, some with no fraction, some before 10:00
    assert meta["StudyDate"].between(21100101, 22001231).all()
    assert meta["StudyTime"].dtype == float and (meta["StudyTime"] < 240000).all()
    assert (
        (meta["StudyTime"] < 100000).any()
        and (meta["StudyTime"] % 1 == 0).any()
        and (meta["StudyTime"] % 1 > 0).any()
    )
    assert _study_times(meta).notna().all()
    assert set(meta["ViewPosition"]) >= {"AP", "PA", "LATERAL"} and set(meta["ViewPosition"]) <= {
        "AP",
        "PA",
        "LATERAL",
        "LL",
    }
    assert patients["dod"].dropna().map(lambda d: bool(re.match(r"^\d{4}-\d{2}-\d{2}$", d))).all()


def test_image_files_exist_and_decode(cohort):
    root, manifest = cohort
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    missing = {d["dicom_id"] for d in manifest["defects"]["missing_jpg"]}
    corrupt = {d["dicom_id"] for d in manifest["defects"]["corrupt_jpg"]}
    assert 2 <= len(missing) <= 5 and 2 <= len(corrupt) <= 5
    shapes = set()
    for _, row in meta.iterrows():
        path = _image_path(root, row)
        if row["dicom_id"] in missing:
            assert not path.exists()
            continue
        assert path.exists(), path
        if row["dicom_id"] in corrupt:
            with pytest.raises(OSError):
                Image.open(path).load()
            continue
        with Image.open(path) as im:
            assert im.mode == "L" and im.format == "JPEG"
            assert im.size == (row["Columns"], row["Rows"])
            shapes.add(im.size)
    assert (128, 160) in shapes  # default (rows, cols) = (160, 128), portrait
    assert manifest["counts"]["jpg_files_written"] == len(meta) - len(missing)


def test_every_study_has_a_chexpert_row_with_valid_values(cohort):
    root, _ = cohort
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    chex = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    assert chex["study_id"].is_unique
    assert set(meta["study_id"]) == set(chex["study_id"])
    pairs = (
        meta[["subject_id", "study_id"]]
        .drop_duplicates()
        .merge(chex, on=["subject_id", "study_id"], how="left")
    )
    assert len(pairs) == chex["study_id"].nunique()
    values = chex[CHEXPERT]
    assert (values.isna() | values.isin([-1.0, 0.0, 1.0])).all().all()
    for label in CHEXPERT:
        assert (values[label] == 1.0).any(), label
    others = values.drop(columns="No Finding").isin([1.0, -1.0]).any(axis=1)
    assert (values.loc[others, "No Finding"].isna()).all()
    assert (values.loc[~others, "No Finding"] == 1.0).all()
    assert (values == -1.0).any().any() and (values == 0.0).any().any()


def test_split_is_patient_level(cohort):
    root, _ = cohort
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    split = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz")
    assert set(split["dicom_id"]) == set(meta["dicom_id"]) and len(split) == len(meta)
    assert set(split["split"]) <= {"train", "validate", "test"}
    assert (split.groupby("subject_id")["split"].nunique() == 1).all()


def test_item_ids_are_the_documented_real_ones(cohort):
    root, manifest = cohort
    chart = _read(root, "mimic-iv/icu/chartevents.csv.gz")
    lab = _read(root, "mimic-iv/hosp/labevents.csv.gz")
    d_items = _read(root, "mimic-iv/icu/d_items.csv.gz")
    d_lab = _read(root, "mimic-iv/hosp/d_labitems.csv.gz")
    ids = manifest["item_ids"]
    chart_ok = (
        set(ids["chart_17_variables"]) | set(ids["chart_capillary_refill"]) | set(ids["chart_unrelated"])
    )
    lab_ok = set(ids["lab_17_variables"]) | set(ids["lab_unrelated"])
    assert set(chart["itemid"]) <= chart_ok
    assert set(lab["itemid"]) <= lab_ok
    assert set(chart["itemid"]) <= set(d_items["itemid"]) and set(lab["itemid"]) <= set(d_lab["itemid"])
    # the quirky items occur
    must_chart = {
        220045,
        220277,
        220210,
        223762,
        223761,
        223835,
        220739,
        223900,
        223901,
        226730,
        226707,
        224639,
        226512,
        225664,
        223951,
        224308,
        220048,
    }
    assert must_chart <= set(chart["itemid"]), must_chart - set(chart["itemid"])
    assert {50931, 50820, 51478, 51491, 50817} <= set(lab["itemid"])
    assert set(ids["chart_unrelated"]) & set(chart["itemid"]) and set(ids["lab_unrelated"]) & set(
        lab["itemid"]
    )
    labels = dict(zip(d_items["itemid"], d_items["label"]))
    assert labels[226707] == "Height" and labels[226730] == "Height (cm)"
    assert labels[226531] == "Admission Weight (lbs.)" and labels[223761] == "Temperature Fahrenheit"
    fluids = dict(zip(d_lab["itemid"], d_lab["fluid"]))
    assert fluids[51478] == "Urine" and fluids[50831] == "Other Body Fluid" and fluids[50820] == "Blood"
    # the mapped items of the reference pipeline are a superset of what is charted for the 17 variables
    assert (
        set(ids["chart_17_variables"]) | set(ids["lab_17_variables"])
        <= IV.CHART_ITEMIDS_17 | IV.LAB_ITEMIDS_17
    )


def test_event_values_look_like_mimic(cohort):
    root, manifest = cohort
    chart = _read(root, "mimic-iv/icu/chartevents.csv.gz")
    lab = _read(root, "mimic-iv/hosp/labevents.csv.gz")
    assert chart["charttime"].map(lambda t: bool(TIME_RE.match(t))).all()
    gcs = chart[chart["itemid"].isin([220739, 223900, 223901])]
    spellings = (
        set(IV.GCS_EYE.values())
        | set(IV.GCS_VERBAL.values())
        | set(IV.GCS_MOTOR.values())
        | {IV.GCS_VERBAL_ETT}
    )
    known = gcs["value"].isin(spellings)
    assert set(gcs.loc[~known, "value"]) <= {"Unknown"}
    assert (pd.to_numeric(chart.loc[chart["value"] == IV.GCS_VERBAL_ETT, "valuenum"]) == 1).all()
    assert "No Response-ETT" in set(gcs["value"])
    fio2 = pd.to_numeric(chart.loc[chart["itemid"] == 223835, "valuenum"], errors="coerce")
    assert (chart.loc[chart["itemid"] == 223835, "valueuom"] == "%").all() and fio2.max() > 21
    temp_f = pd.to_numeric(chart.loc[chart["itemid"] == 223761, "valuenum"], errors="coerce")
    temp_c = pd.to_numeric(chart.loc[chart["itemid"] == 223762, "valuenum"], errors="coerce")
    assert temp_f.dropna().between(90, 110).all() and temp_c.dropna().between(32, 43).all()
    hr = pd.to_numeric(chart.loc[chart["itemid"] == 220045, "valuenum"], errors="coerce")
    assert hr[np.isfinite(hr)].between(30, 200).all()
    assert "NEG" in set(lab.loc[lab["itemid"] == 51478, "value"])
    assert set(chart.loc[chart["itemid"] == 223951, "value"]) <= {"Normal <3 Seconds", "Abnormal >3 Seconds"}
    assert lab["hadm_id"].isna().any() == (manifest["quirks"]["outpatient_lab_rows_without_hadm_id"] > 0)


def test_cohort_structure_quirks(cohort):
    root, manifest = cohort
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    stays = _read(root, "mimic-iv/icu/icustays.csv.gz")
    frontal = _frontal_in_stay(root)
    inside = set(frontal["study_id"])
    assert len(inside) > 0.5 * meta["study_id"].nunique()
    assert meta["study_id"].nunique() > len(inside)  # some studies outside any stay
    no_icu = set(manifest["defects"]["subjects_without_icu_stay"])
    assert no_icu and no_icu <= set(meta["subject_id"]) and not no_icu & set(stays["subject_id"])
    per_study = meta[meta["ViewPosition"].isin(["AP", "PA"])].groupby("study_id").size()
    assert (per_study > 1).any()
    lateral_studies = set(meta.loc[meta["ViewPosition"].isin(["LATERAL", "LL"]), "study_id"])
    assert lateral_studies & set(meta.loc[meta["ViewPosition"].isin(["AP", "PA"]), "study_id"])
    assert {"AP", "PA"} <= set(frontal["ViewPosition"])
    assert manifest["counts"]["frontal_images_in_icu_stay"] == frontal["dicom_id"].nunique()


def test_nih_layout(cohort):
    root, manifest = cohort
    entry = pd.read_csv(root / "nih" / "Data_Entry_2017.csv")
    assert entry["Image Index"].map(lambda n: bool(re.match(r"^\d{8}_\d{3}\.png$", n))).all()
    assert (entry["Image Index"].str[:8].astype(int) == entry["Patient ID"]).all()
    tokens = entry["Finding Labels"].str.split("|")
    allowed = set(L.NIH_LABELS)
    assert tokens.map(lambda t: t == ["No Finding"] or set(t) <= allowed).all()
    assert set(entry["View Position"]) <= {"PA", "AP"} and (entry["View Position"] == "PA").mean() > 0.5
    for name in entry["Image Index"]:
        with Image.open(root / "nih" / "images" / name) as im:
            assert im.format == "PNG" and im.mode == "L" and im.size == (128, 128)
    train = (root / "nih" / "train_val_list.txt").read_text().split()
    test = (root / "nih" / "test_list.txt").read_text().split()
    assert sorted(train + test) == sorted(entry["Image Index"]) and not set(train) & set(test)
    pid = dict(zip(entry["Image Index"], entry["Patient ID"]))
    assert not {pid[n] for n in train} & {pid[n] for n in test}
    assert manifest["counts"]["nih"]["images"] == len(entry)


# ----------------------------------------------------------------------------------------------------
# defects


def test_defects_are_listed_and_present(cohort):
    root, manifest = cohort
    defects = manifest["defects"]
    chart = _read(root, "mimic-iv/icu/chartevents.csv.gz")
    lab = _read(root, "mimic-iv/hosp/labevents.csv.gz")
    stays = _read(root, "mimic-iv/icu/icustays.csv.gz").set_index("stay_id")
    for key in (
        "chartevents_unparseable_value",
        "nonfinite_numeric_text",
        "gcs_unknown_spelling",
        "labevents_non_numeric_value",
        "events_outside_stay",
        "duplicate_event_rows",
        "stay_without_events_48h_before_cxr",
        "missing_jpg",
        "corrupt_jpg",
    ):
        assert 2 <= len(defects[key]) <= 5, key

    def chart_rows(rec: dict) -> pd.DataFrame:
        return chart[
            (chart["stay_id"] == rec["stay_id"])
            & (chart["itemid"] == rec["itemid"])
            & (chart["charttime"] == rec["charttime"])
        ]

    for rec in defects["chartevents_unparseable_value"]:
        rows = chart_rows(rec)
        assert rec["value"] in ("ERROR", "___") and (rows["value"] == rec["value"]).any()
        assert rows.loc[rows["value"] == rec["value"], "valuenum"].isna().all()
    for rec in defects["gcs_unknown_spelling"]:
        assert (chart_rows(rec)["value"] == "Unknown").any()
    for rec in defects["nonfinite_numeric_text"]:
        if rec["table"] == "chartevents":
            rows = chart_rows(rec)
            assert (rows["value"] == rec["value"]).any()
        else:
            rows = lab[lab["labevent_id"] == rec["labevent_id"]]
            assert (rows["value"] == rec["value"]).all()
        assert not np.isfinite(rows.loc[rows["value"] == rec["value"], "valuenum"].astype(float)).any()
    for rec in defects["labevents_non_numeric_value"]:
        rows = lab[lab["labevent_id"] == rec["labevent_id"]]
        assert (rows["value"] == rec["value"]).all() and rows["valuenum"].isna().all()
    for rec in defects["events_outside_stay"]:
        stay = stays.loc[rec["stay_id"]]
        assert len(chart_rows(rec)) == 1
        assert not (stay["intime"] <= rec["charttime"] <= stay["outtime"])
    n_dup_chart = sum(r["table"] == "chartevents" for r in defects["duplicate_event_rows"])
    assert chart.duplicated().sum() == n_dup_chart
    assert lab.duplicated().sum() == len(defects["duplicate_event_rows"]) - n_dup_chart
    assert lab["labevent_id"].duplicated().sum() == lab.duplicated().sum()
    for rec in defects["stay_without_events_48h_before_cxr"]:
        c = chart[chart["stay_id"] == rec["stay_id"]]
        assert c["charttime"].between(rec["window_start"], rec["study_time"]).sum() == 0
        assert (c["charttime"] > rec["study_time"]).any()  # the stay itself has events after the image
        labs = lab[lab["hadm_id"] == rec["hadm_id"]]
        assert labs["charttime"].between(rec["window_start"], rec["study_time"]).sum() == 0
        assert rec["dicom_ids"]


def test_no_defects_when_disabled(tmp_path):
    manifest = generate_cohort(
        tmp_path, SynthConfig(n_patients=12, n_ood_patients=0, seed=3, defects=False, write_images=False)
    )
    assert set(manifest["defects"]) == {"subjects_without_icu_stay"}
    chart = _read(tmp_path, "mimic-iv/icu/chartevents.csv.gz")
    assert not chart["value"].isin(["ERROR", "___", "Unknown", "inf", "nan", "-inf"]).any()
    assert not chart.duplicated().any()
    assert (
        manifest["counts"]["jpg_files_written"] == 0 and not (tmp_path / "mimic-cxr-jpg" / "files").exists()
    )


def test_refuses_to_overwrite_foreign_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate_cohort(tmp_path, SynthConfig(n_patients=10, n_ood_patients=0))


# ----------------------------------------------------------------------------------------------------
# determinism


def _snapshot(root: Path) -> dict[str, object]:
    snap: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir() or rel == "synth_manifest.json":
            continue
        if path.suffix in (".jpg", ".png"):
            try:
                with Image.open(path) as im:
                    snap[rel] = np.asarray(im).copy()
            except OSError:
                snap[rel] = path.read_bytes()  # the planted corrupt file
        else:
            snap[rel] = _decompressed(path)
    return snap


def test_same_seed_same_cohort_different_seed_different(tmp_path):
    cfg = SynthConfig(n_patients=14, n_ood_patients=6, seed=7)
    m1 = generate_cohort(tmp_path / "a", cfg)
    m2 = generate_cohort(tmp_path / "b", cfg)
    generate_cohort(tmp_path / "c", SynthConfig(n_patients=14, n_ood_patients=6, seed=8))
    a, b, c = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b"), _snapshot(tmp_path / "c")
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key
    m1.pop("root"), m2.pop("root")
    assert m1 == m2
    for rel in (
        "mimic-iv/icu/chartevents.csv.gz",
        "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz",
        "nih/Data_Entry_2017.csv",
    ):
        assert a[rel] != c[rel], rel
    # regenerating into a previous synthetic cohort replaces it
    generate_cohort(tmp_path / "a", cfg)
    assert _snapshot(tmp_path / "a").keys() == a.keys()


# ----------------------------------------------------------------------------------------------------
# default size: prevalences


def test_label_prevalence_at_default_size(tmp_path):
    manifest = generate_cohort(
        tmp_path, SynthConfig(n_patients=400, n_ood_patients=0, write_images=False, write_truth=False)
    )
    chex = _read(tmp_path, "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    assert 700 <= manifest["counts"]["frontal_images_in_icu_stay"] <= 1000
    positive = chex[CHEXPERT] == 1.0
    for label in CHEXPERT:
        assert positive[label].mean() >= 0.03, (label, positive[label].mean())
        assert positive[label].mean() <= 0.6, (label, positive[label].mean())
    # five patient-level folds of 20 %: both classes of every label in each (blank / -1 counted as 0)
    subjects = np.sort(chex["subject_id"].unique())
    fold = dict(zip(subjects, np.random.default_rng(0).permutation(len(subjects)) % 5))
    folds = chex["subject_id"].map(fold)
    for k in range(5):
        part = positive[folds == k]
        assert part.any().all() and (~part).any().all(), (k, part.sum().to_dict())
    # clinically plausible correlation: edema comes with cardiomegaly / effusion more than without
    assert (
        positive.loc[positive["Edema"], "Pleural Effusion"].mean()
        > positive.loc[~positive["Edema"], "Pleural Effusion"].mean()
    )


# ----------------------------------------------------------------------------------------------------
# the planted signal


def test_ehr_signal_temperature_before_pneumonia_images(cohort):
    root, _ = cohort
    frontal = _frontal_in_stay(root)
    chex = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    chart = _read(root, "mimic-iv/icu/chartevents.csv.gz")
    temp = chart[chart["itemid"].isin([223762, 223761])].copy()
    temp["celsius"] = pd.to_numeric(temp["valuenum"], errors="coerce")
    fahrenheit = temp["itemid"] == 223761
    temp.loc[fahrenheit, "celsius"] = (temp.loc[fahrenheit, "celsius"] - 32) * 5 / 9
    temp["charttime"] = pd.to_datetime(temp["charttime"])
    joined = frontal[["dicom_id", "study_id", "stay_id", "when"]].merge(
        temp[["stay_id", "charttime", "celsius"]], on="stay_id"
    )
    window = joined[
        (joined["charttime"] <= joined["when"])
        & (joined["charttime"] >= joined["when"] - pd.Timedelta(hours=48))
    ]
    per_image = (
        window.groupby(["dicom_id", "study_id"])["celsius"].mean().reset_index().merge(chex, on="study_id")
    )
    pneumonia = per_image["Pneumonia"] == 1.0
    assert pneumonia.sum() >= 5 and (~pneumonia).sum() >= 5
    diff = per_image.loc[pneumonia, "celsius"].mean() - per_image.loc[~pneumonia, "celsius"].mean()
    assert diff > 0.4, diff


def _lower_zone(a: np.ndarray) -> float:
    """Mean intensity of the lower lung zones minus the image mean (brightness-invariant)."""
    h, w = a.shape
    return float(a[int(0.5 * h) : int(0.7 * h), int(0.1 * w) : int(0.9 * w)].mean() - a.mean())


def test_image_signal_lower_zones_brighter_with_effusion(cohort, tmp_path):
    """The same cohort rendered with ``visual_gain=0`` has identical nuisance; the difference isolates the
    planted pattern, which must brighten the lower zones of Pleural Effusion = 1 films far more than others."""
    root, _ = cohort
    twin = tmp_path / "twin"
    generate_cohort(twin, SynthConfig(n_patients=40, n_ood_patients=0, seed=0, visual_gain=0.0))
    meta = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    chex = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    meta = meta[meta["ViewPosition"].isin(["AP", "PA"])].merge(chex, on=["subject_id", "study_id"])
    diffs = []
    for _, row in meta.iterrows():
        try:
            with Image.open(_image_path(root, row)) as im:
                signal = np.asarray(im, float) / 255
            with Image.open(_image_path(twin, row)) as im:
                flat = np.asarray(im, float) / 255
        except (OSError, FileNotFoundError):
            diffs.append(np.nan)  # planted missing / corrupt files
            continue
        diffs.append(_lower_zone(signal) - _lower_zone(flat))
    meta["diff"] = diffs
    meta = meta.dropna(subset=["diff"])
    effusion = meta["Pleural Effusion"] == 1.0
    assert effusion.sum() >= 5
    pos, neg = meta.loc[effusion, "diff"].mean(), meta.loc[~effusion, "diff"].mean()
    assert pos > 0.004 and pos > 2.5 * max(neg, 0.0), (pos, neg)


def test_truth_table_matches_labels(cohort):
    root, _ = cohort
    truth = _read(root, "synth_truth/studies.csv.gz")
    chex = _read(root, "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    merged = truth.merge(chex, on=["subject_id", "study_id"])
    assert len(merged) == len(chex)
    for label in ("Pleural Effusion", "Pneumonia", "Cardiomegaly"):
        pos = merged[label] == 1.0
        assert merged.loc[pos, f"find_{label}"].mean() > merged.loc[~pos, f"find_{label}"].mean() + 0.2


def test_blood_glucose_values_are_masked_with_the_number_in_valuenum_as_in_the_release(cohort):
    """MIMIC-IV v2.2 writes blood chemistry glucose (50931) as ``___`` with the number in ``valuenum``."""
    root, manifest = cohort
    lab = _read(root, "mimic-iv/hosp/labevents.csv.gz")
    glucose = lab[lab["itemid"] == 50931]
    masked = glucose[(glucose["value"] == "___") & glucose["valuenum"].notna()]
    assert len(masked) == manifest["quirks"]["blood_glucose_value_masked_rows"] > 0
    assert 0.15 < len(masked) / len(glucose) < 0.45
    assert pd.to_numeric(masked["valuenum"]).between(10, 2000).all()


def test_vitals_per_hour_sets_the_charting_density_of_the_vitals_only(tmp_path):
    def rows(rate: float) -> pd.DataFrame:
        out = tmp_path / f"rate_{rate}"
        generate_cohort(out, SynthConfig(n_patients=20, n_ood_patients=0, defects=False, write_images=False,
                                         write_truth=False, vitals_per_hour=rate))
        return pd.read_csv(out / "mimic-iv" / "icu" / "chartevents.csv.gz", usecols=["stay_id", "itemid"])

    hourly, dense = rows(1.0), rows(6.0)
    heart_rate = 220045
    ratio = (dense["itemid"] == heart_rate).sum() / (hourly["itemid"] == heart_rate).sum()
    assert 5.0 < ratio < 7.0  # six times as many heart rates
    temperature = [223761, 223762]  # charted every ~4 h whatever the vitals rate
    n_temp = [int(f["itemid"].isin(temperature).sum()) for f in (hourly, dense)]
    assert abs(n_temp[1] - n_temp[0]) < 0.2 * n_temp[0]
    with pytest.raises(ValueError, match="vitals_per_hour"):
        SynthConfig(vitals_per_hour=0)
