"""``medcam-lab prepare`` on the generated cohort: layout, pairing rules, counted drops, splits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medcam_lab.config import LABELS_CHEXPERT14, PrepareConfig
from medcam_lab.datasets import mimic_cxr
from medcam_lab.datasets.mimic_iv import MimicLayoutError, locate_mimic_iv
from medcam_lab.ehr import Discretizer, EHRMode
from medcam_lab.ehr.channels import CHANNELS
from medcam_lab.prepare.cohort import collect_windows, discretize_group, make_discretizer
from medcam_lab.prepare.report import CohortReport


def test_cohort_directory_contents(tiny_cohort):
    for name in ("pairs.parquet", "labels_raw.parquet", "ehr_values.npy", "ehr_columns.json", "normalizer.json",
                 "images_uint8.npy", "report.json", "report.md", "config.json", "run_info.json"):
        assert (tiny_cohort / name).exists(), name
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    for col in ("subject_id", "stay_id", "study_id", "dicom_id", "split", *LABELS_CHEXPERT14):
        assert col in pairs.columns
    assert pairs["dicom_id"].is_unique
    values = np.load(tiny_cohort / "ehr_values.npy")
    # the default mode is clean: canonical GCS / capillary refill categories -> 60 features
    assert values.shape[0] == len(pairs) and values.shape[2] == 60
    assert json.loads((tiny_cohort / "ehr_columns.json").read_text()) == Discretizer(mode="clean").feature_names
    # zero past each episode's end; at most 24 bins for a 48 h window at Δt = 2 h
    assert pairs["n_bins"].between(1, 24).all()
    for i, n in enumerate(pairs["n_bins"]):
        assert not values[i, n:].any()


def test_patient_level_split_no_subject_in_two_splits(tiny_cohort):
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    assert (pairs.groupby("subject_id")["split"].nunique() == 1).all()
    assert set(pairs["split"]) == {"train", "val", "test"}


def test_pairs_follow_the_pairing_rules(tiny_cohort, tiny_raw):
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    assert pairs["ViewPosition"].isin(["AP", "PA"]).all()
    assert ((pairs["study_datetime"] >= pairs["intime"]) & (pairs["study_datetime"] <= pairs["outtime"])).all()
    expected_start = np.maximum(pairs["intime"], pairs["study_datetime"] - pd.Timedelta(hours=48))
    assert (pairs["window_start"] == expected_start).all()
    assert np.allclose(pairs["n_bins"], np.ceil(pairs["window_hours"] / 2.0 - 1e-6))
    # labels follow the default policy (blank → 0, −1 → 0) applied to the raw study labels
    raw = mimic_cxr.read_chexpert_labels(tiny_raw / "mimic-cxr-jpg").set_index("study_id")
    expected = raw.loc[pairs["study_id"], list(LABELS_CHEXPERT14)].fillna(0).replace(-1.0, 0.0).to_numpy()
    assert np.array_equal(pairs[list(LABELS_CHEXPERT14)].to_numpy(), expected)


def test_planted_defects_are_counted_not_silently_lost(tiny_cohort, tiny_manifest):
    report = json.loads((tiny_cohort / "report.json").read_text())
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    defects = tiny_manifest["defects"]
    broken = {d["dicom_id"] for d in defects["missing_jpg"] + defects["corrupt_jpg"]}
    assert not broken & set(pairs["dicom_id"])
    dropped = report["dropped"]
    failures = {f["path"].split("/")[-1][:-4] for f in report["image_failures"]}
    assert failures <= broken
    assert dropped.get("pair: file missing", 0) + dropped.get("pair: unreadable image", 0) == len(failures)
    no_stay = {d["subject_id"] if isinstance(d, dict) else d for d in defects["subjects_without_icu_stay"]}
    assert not no_stay & set(pairs["subject_id"])
    assert "image: subject has no kept ICU stay" in dropped
    # the report is complete: every filter step and every drop reason is in report.md too
    text = (tiny_cohort / "report.md").read_text()
    for reason in dropped:
        assert reason in text


@pytest.mark.parametrize("compat", ["medfuse", "clean"])
def test_unknown_gcs_spelling_and_garbage_values_are_counted(tmp_path, tiny_raw, tiny_cohort, compat):
    import gzip
    import shutil

    from medcam_lab.cli import main

    # Copy the raw cohort and inject values into a kept stay's chartevents.
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw)
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    stay = pairs.iloc[0]
    chart = raw / "mimic-iv" / "icu" / "chartevents.csv.gz"
    frame = pd.read_csv(chart, dtype=str, keep_default_na=False)
    row = frame.iloc[0].copy()
    extra = []
    for itemid, value in ((220739, "Eyes wide shut"), (220045, "ERROR"), (220045, "inf")):
        r = row.copy()
        r["subject_id"], r["hadm_id"], r["stay_id"] = str(stay.subject_id), str(stay.hadm_id), str(stay.stay_id)
        r["charttime"] = str(stay.study_datetime - pd.Timedelta(hours=1))
        r["itemid"], r["value"], r["valuenum"] = str(itemid), value, ""
        extra.append(r)
    frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
    with gzip.open(chart, "wt") as fh:
        frame.to_csv(fh, index=False)
    out = tmp_path / "cohort"
    assert main(["prepare", "--mimic-cxr", str(raw / "mimic-cxr-jpg"), "--mimic-iv", str(raw / "mimic-iv"),
                 "--out", str(out), "--image-cache-size", "36", "--compat", compat]) == 0
    report = json.loads((out / "report.json").read_text())
    dropped = report["dropped"]
    if compat == "medfuse":  # HR is not cleaned by the reference: the discretizer would reject these
        assert dropped["event: Glascow coma scale eye opening: unknown category 'Eyes wide shut'"] == 1
        assert dropped["event: Heart Rate: not a finite number 'ERROR'"] >= 1
        assert dropped["event: Heart Rate: not a finite number 'inf'"] >= 1
    else:  # clean: cleaning parses HR and canonicalizes GCS; the unknown string is listed with its count
        assert dropped["event: Glascow coma scale eye opening: unknown category"] >= 1
        assert report["unknown_categories"]["Glascow coma scale eye opening: 'Eyes wide shut'"] == 1
        assert dropped["event: Heart Rate: non-numeric value"] >= 1
        assert dropped["event: Heart Rate: not finite"] >= 1
    assert "Eyes wide shut" in (out / "report.md").read_text()


def test_missing_table_is_a_clear_error(tmp_path, tiny_raw):
    import shutil

    root = tmp_path / "mimic-iv"
    shutil.copytree(tiny_raw / "mimic-iv", root)
    (root / "icu" / "chartevents.csv.gz").unlink()
    with pytest.raises(MimicLayoutError, match="chartevents"):
        locate_mimic_iv(root)


def test_window_discretization_by_hand():
    """Two images of one stay: each gets only the events of its own 48 h window, hours from the window start."""
    t0 = pd.Timestamp("2150-01-01 00:00")
    pairs = pd.DataFrame({
        "stay_id": [1, 1], "subject_id": [7, 7], "dicom_id": ["a", "b"],
        "window_start": [t0, t0 + pd.Timedelta(hours=12)],
        "study_datetime": [t0 + pd.Timedelta(hours=5), t0 + pd.Timedelta(hours=60)],
    })
    pairs["window_hours"] = (pairs["study_datetime"] - pairs["window_start"]) / pd.Timedelta(hours=1)
    wide = pd.DataFrame({"stay_id": [1, 1, 1], "charttime": [t0 + pd.Timedelta(hours=h) for h in (1.0, 4.5, 30.0)]})
    for ch in CHANNELS:
        wide[ch] = ""
    wide["Heart Rate"] = ["80", "90", "120"]
    discretizer = make_discretizer(PrepareConfig(compat="medfuse"), EHRMode.of("medfuse"))
    kept, values, _ = collect_windows(pairs, discretize_group(pairs, wide, discretizer), discretizer, CohortReport())
    hr = Discretizer(mode="medfuse").feature_names.index("Heart Rate")
    mask = Discretizer(mode="medfuse").feature_names.index("mask->Heart Rate")
    # image a: window [0, 5] h → 3 bins; 1.0 h → bin 0, 4.5 h → bin 2; bin 1 carries 80 forward
    assert kept["n_bins"].tolist() == [3, 24]
    assert values[0][:, hr].tolist() == [80.0, 80.0, 90.0]
    assert values[0][:, mask].tolist() == [1.0, 0.0, 1.0]
    # image b: window [12, 60] h → only the 30 h event, at 18 h from the window start → bin 8
    assert values[1][8, hr] == 120.0 and values[1][:, mask].sum() == 1.0 and values[1][8, mask] == 1.0
    assert values[1][0, hr] == 86.0  # before the first observation: the normal value


def test_every_image_is_accounted_for(tiny_cohort):
    """Images in metadata = pairs + every image-level drop: nothing disappears without a reason."""
    report = json.loads((tiny_cohort / "report.json").read_text())
    counts = {s["step"]: s["count"] for s in report["steps"]}
    image_drops = sum(n for reason, n in report["dropped"].items() if reason.startswith(("image:", "pair:")))
    assert counts["CXR images in metadata"] == counts["pairs with a readable image"] + image_drops
    assert counts["pairs with a readable image"] == sum(counts[f"pairs in {s}"] for s in ("train", "val", "test"))


def test_cli_reports_a_wrong_root_clearly(tmp_path, capsys):
    from medcam_lab.cli import main

    code = main(["prepare", "--mimic-cxr", str(tmp_path), "--mimic-iv", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "MIMIC-IV root" in err and "nope" in err and "Traceback" not in err


def test_loaded_cohort_standardizes_continuous_columns_and_keeps_padding_zero(tiny_cohort):
    from medcam_lab.data.cohort import load_cohort
    from medcam_lab.ehr import EHRMode, Normalizer

    cohort = load_cohort(tiny_cohort)
    raw = np.load(tiny_cohort / "ehr_values.npy")
    normalizer = Normalizer.load(tiny_cohort / "normalizer.json")
    for i, n in enumerate(cohort.lengths):
        np.testing.assert_allclose(cohort.ehr[i, :n], normalizer.transform(raw[i, :n]), rtol=1e-6)
        assert not cohort.ehr[i, n:].any()
    train = cohort.pairs["split"].to_numpy() == "train"
    pooled = np.concatenate([cohort.ehr[i, :n] for i, n in enumerate(cohort.lengths) if train[i]])
    # clean mode: statistics over observed bins only -> observed training values have mean 0 and std 1
    columns = cohort.ehr_columns
    assert normalizer.observed_only
    for col in EHRMode.of("clean").layout.continuous_indices:
        observed = pooled[pooled[:, columns.index(f"mask->{columns[col]}")] > 0, col]
        if len(observed) >= 2:
            np.testing.assert_allclose(observed.mean(), 0.0, atol=1e-4)
            np.testing.assert_allclose(observed.std(ddof=1), 1.0, rtol=1e-3)


def _policy_by_loop(raw: dict[str, float], uncertain: str, blank: str) -> dict[str, float]:
    """The CheXpert label policy, one study at a time (spec/cxr.md; data_cards/mimic_cxr.md)."""
    to = {"zeros": 0.0, "ones": 1.0, "ignore": float("nan")}
    out = {}
    for name, value in raw.items():
        if value == -1.0:
            out[name] = to[uncertain]
        elif np.isnan(value):
            normal = raw["No Finding"] == 1.0 and name not in ("No Finding", "Support Devices")
            out[name] = 0.0 if blank == "zeros" or normal else float("nan")
        else:
            out[name] = value
    return out


def test_prepare_and_the_dataset_class_label_studies_by_one_policy(tiny_raw, tmp_path):
    """``--uncertain-policy ones --blank-policy ignore``: the cohort's labels, the labels of
    ``MIMICCXRDataset``/``load_labels`` and a literal loop of the policy agree, "No Finding" rule included."""
    from medcam_lab.cli import main
    from medcam_lab.datasets import load_labels

    root = tiny_raw / "mimic-cxr-jpg"
    assert main(["prepare", "--mimic-cxr", str(root), "--mimic-iv", str(tiny_raw / "mimic-iv"), "--out",
                 str(tmp_path), "--image-cache-size", "20", "--uncertain-policy", "ones", "--blank-policy",
                 "ignore"]) == 0
    pairs = pd.read_parquet(tmp_path / "pairs.parquet")
    raw = mimic_cxr.read_chexpert_labels(root).set_index("study_id")[list(LABELS_CHEXPERT14)]
    table = load_labels("mimic_cxr", mimic_cxr.find_table(root, "chexpert"), uncertain="ones", blank="ignore")
    normal_rows = 0
    for study, row in zip(pairs["study_id"], pairs[list(LABELS_CHEXPERT14)].to_numpy()):
        raw_row = raw.loc[study].to_dict()
        expected = [_policy_by_loop(raw_row, "ones", "ignore")[name] for name in LABELS_CHEXPERT14]
        np.testing.assert_array_equal(row, expected)
        np.testing.assert_array_equal(table.loc[study, list(LABELS_CHEXPERT14)].to_numpy(dtype=float), expected)
        normal_rows += raw_row["No Finding"] == 1.0 and any(np.isnan(v) for v in raw_row.values())
    assert normal_rows > 0  # the "No Finding" rule was exercised
