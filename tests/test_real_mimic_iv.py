"""The real MIMIC-IV Clinical Database Demo v2.2 tables (``tests/data/real/``, ODbL) through the item-id table
and ``prepare``, checked against oracles written here with pandas from spec ``ehr.md`` (not the library's code).

The demo ships no ``chartevents``: ``prepare`` is given either a **header-only** ``icu/chartevents.csv.gz``
(the v2.2 header), so every EHR value comes from the real ``labevents``, or chart events **generated here for
the real stays** (SpO2, finger-stick glucose, arterial pH every 4 h, some outside the stay, with planted
fractions, masked and empty values, ``ERROR``, an out-of-range pH, duplicates and an unmapped item). One AP
image per real ICU stay is placed inside the stay (``intime + min(30 h, 3/4 of the stay)``), with a small
generated JPEG.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcam_lab.cli import main
from medcam_lab.ehr import Normalizer
from medcam_lab.ehr.itemids import CLEAN_EXTRA_ITEMS, ITEMID_TABLE

DEMO = Path(__file__).parent / "data" / "real" / "mimic-iv-demo-2.2"
CHART_HEADER = "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,warning\n"
HOUR = pd.Timedelta(hours=1)

# ---- the item-id table against the real dictionaries ---------------------------------------------------

# What spec ehr.md §5 (and §7 for capillary refill) implies for every mapped item: chart items as
# (label, param_type, unit) with linksto chartevents; lab items as (label, fluid, category).
CHART_ITEMS = {
    220051: ("Arterial Blood Pressure diastolic", "Numeric", "mmHg"),
    225310: ("ART BP Diastolic", "Numeric", "mmHg"),
    220180: ("Non Invasive Blood Pressure diastolic", "Numeric", "mmHg"),
    224643: ("Manual Blood Pressure Diastolic Left", "Numeric", "mmHg"),
    223835: ("Inspired O2 Fraction", "Numeric", None),
    220739: ("GCS - Eye Opening", "Text", None),
    223901: ("GCS - Motor Response", "Text", None),
    223900: ("GCS - Verbal Response", "Text", None),
    225664: ("Glucose finger stick (range 70-100)", "Numeric", None),
    220621: ("Glucose (serum)", "Numeric", None),
    226537: ("Glucose (whole blood)", "Numeric", None),
    220045: ("Heart Rate", "Numeric", "bpm"),
    226707: ("Height", "Numeric", "Inch"),  # the label the medfuse "in" test misses
    226730: ("Height (cm)", "Numeric", "cm"),
    220052: ("Arterial Blood Pressure mean", "Numeric", "mmHg"),
    225312: ("ART BP Mean", "Numeric", "mmHg"),
    224322: ("IABP Mean", "Numeric", "mmHg"),
    220181: ("Non Invasive Blood Pressure mean", "Numeric", "mmHg"),
    220277: ("O2 saturation pulseoxymetry", "Numeric", "%"),
    220227: ("Arterial O2 Saturation", "Numeric", "%"),
    220210: ("Respiratory Rate", "Numeric", "insp/min"),
    224689: ("Respiratory Rate (spontaneous)", "Numeric", "insp/min"),
    224422: ("Spont RR", "Numeric", "bpm"),
    224690: ("Respiratory Rate (Total)", "Numeric", "insp/min"),
    220050: ("Arterial Blood Pressure systolic", "Numeric", "mmHg"),
    225309: ("ART BP Systolic", "Numeric", "mmHg"),
    220179: ("Non Invasive Blood Pressure systolic", "Numeric", "mmHg"),
    224167: ("Manual Blood Pressure Systolic Left", "Numeric", "mmHg"),
    227243: ("Manual Blood Pressure Systolic Right", "Numeric", "mmHg"),
    223762: ("Temperature Celsius", "Numeric", "°C"),
    223761: ("Temperature Fahrenheit", "Numeric", "°F"),
    224639: ("Daily Weight", "Numeric", "kg"),
    226512: ("Admission Weight (Kg)", "Numeric", "kg"),
    226531: ("Admission Weight (lbs.)", "Numeric", None),  # the label carries the unit (the "lb" test)
    223830: ("PH (Arterial)", "Numeric", None),
    220274: ("PH (Venous)", "Numeric", None),
    223951: ("Capillary Refill R", "Text", None),
    224308: ("Capillary Refill L", "Text", None),
}
LAB_ITEMS = {
    50931: ("Glucose", "Blood", "Chemistry"),
    50809: ("Glucose", "Blood", "Blood Gas"),
    51478: ("Glucose", "Urine", "Hematology"),
    50817: ("Oxygen Saturation", "Blood", "Blood Gas"),
    50820: ("pH", "Blood", "Blood Gas"),
    51491: ("pH", "Urine", "Hematology"),
    51094: ("pH", "Urine", "Chemistry"),
    50831: ("pH", "Other Body Fluid", "Blood Gas"),
}


def test_every_mapped_item_exists_in_the_real_dictionaries_as_the_spec_implies() -> None:
    d_items = pd.read_csv(DEMO / "icu" / "d_items.csv.gz").set_index("itemid")
    d_lab = pd.read_csv(DEMO / "hosp" / "d_labitems.csv.gz").set_index("itemid")
    mapped = {r.itemid: r.table for r in (*ITEMID_TABLE, *CLEAN_EXTRA_ITEMS)}
    assert set(mapped) == set(CHART_ITEMS) | set(LAB_ITEMS), "the item-id table and the spec disagree"
    problems = []
    for itemid, table in sorted(mapped.items()):
        if table == "chartevents":
            if itemid not in d_items.index:
                problems.append(f"{itemid}: not in icu/d_items")
                continue
            row, (label, param_type, unit) = d_items.loc[itemid], CHART_ITEMS[itemid]
            unit_found = None if pd.isna(row["unitname"]) else row["unitname"]
            found = (row["label"], row["linksto"], row["param_type"], unit_found)
            if found != (label, "chartevents", param_type, unit):
                problems.append(f"{itemid}: expected {(label, 'chartevents', param_type, unit)}, found {found}")
        else:
            if itemid not in d_lab.index:
                problems.append(f"{itemid}: not in hosp/d_labitems")
                continue
            row = d_lab.loc[itemid]
            found = (row["label"], row["fluid"], row["category"])
            if found != LAB_ITEMS[itemid]:
                problems.append(f"{itemid}: expected {LAB_ITEMS[itemid]}, found {found}")
    assert not problems, "\n".join(problems)


# ---- prepare on the real tables (header-only chartevents) ----------------------------------------------

LAB_CHANNELS = {  # item -> channel, per mode (spec §5 for medfuse, §7 blood-only labs for clean)
    "medfuse": {50931: "Glucose", 50809: "Glucose", 51478: "Glucose", 50817: "Oxygen saturation", 50820: "pH",
                51491: "pH", 51094: "pH", 50831: "pH"},
    "clean": {50931: "Glucose", 50809: "Glucose", 50817: "Oxygen saturation", 50820: "pH"},
}
RANGES = {"Glucose": (10, 2000), "Oxygen saturation": (40, 100), "pH": (6.5, 8.0)}  # data card, clean only
LABELS14 = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
            "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
            "Pneumothorax", "Support Devices"]


def image_times(stays: pd.DataFrame) -> pd.Series:
    return stays["intime"] + np.minimum(30 * HOUR, (stays["outtime"] - stays["intime"]) * 0.75)


#: chart items generated for the real stays (both modes map them; no unit conversion): item -> channel
CHART_CHANNELS = {220277: "Oxygen saturation", 225664: "Glucose", 223830: "pH"}
OTHER_CHART_ITEM = 220048  # Heart Rhythm: not one of the 17 variables


def generated_chart_events(stays: pd.DataFrame) -> pd.DataFrame:
    """Chart events for the real stays in the v2.2 layout: every 4 h from 3 h before ``intime`` to 1 h after
    ``outtime`` (so some fall outside the stay), with planted cases by stay number j: an SpO2 fraction
    (0.93), a masked glucose (``___`` with valuenum), an out-of-range pH (9.10, dropped in clean mode only),
    an empty value with valuenum, an ``ERROR`` without valuenum, an exact duplicate, and an unmapped item."""
    rows = []
    for j, stay in enumerate(stays.itertuples()):
        times = pd.date_range(stay.intime - 3 * HOUR, stay.outtime + HOUR, freq="4h")
        for k, t in enumerate(times):
            for item, value in ((220277, f"{95 + (j + k) % 5}"), (225664, f"{90 + (7 * j + 11 * k) % 120}"),
                                (223830, f"{7.30 + ((j + k) % 10) / 100:.2f}")):
                rows.append([stay.subject_id, stay.hadm_id, stay.stay_id, 1000 + j, t, t + 10 * pd.Timedelta("1min"),
                             item, value, float(value), None, 0])
            rows.append([stay.subject_id, stay.hadm_id, stay.stay_id, 1000 + j, t, t, OTHER_CHART_ITEM,
                         "SR (Sinus Rhythm)", np.nan, None, 0])
        t = stay.intime + HOUR  # inside every stay
        planted = {0: (220277, "0.93", 0.93), 1: (225664, "___", 144.0), 2: (223830, "9.10", 9.1),
                   3: (225664, "", 120.0), 4: (220277, "ERROR", np.nan)}
        if j % 6 in planted:
            item, value, number = planted[j % 6]
            rows.append([stay.subject_id, stay.hadm_id, stay.stay_id, 1000 + j, t + 30 * pd.Timedelta("1min"),
                         t + HOUR, item, value, number, None, 0])
        if j % 4 == 0:
            rows.append(list(rows[-1]))
    frame = pd.DataFrame(rows, columns=CHART_HEADER.strip().split(","))
    for col in ("charttime", "storetime"):
        frame[col] = frame[col].dt.strftime("%Y-%m-%d %H:%M:%S")
    return frame


@pytest.fixture(scope="module", params=["header_only_chartevents", "generated_chartevents"])
def real_raw(request, tmp_path_factory) -> Path:
    """The real demo tables plus a chartevents (header only, or generated for the real stays), and one AP
    image per real ICU stay."""
    root = tmp_path_factory.mktemp("real")
    iv = root / "mimic-iv"
    shutil.copytree(DEMO / "hosp", iv / "hosp")
    shutil.copytree(DEMO / "icu", iv / "icu")
    stays = pd.read_csv(DEMO / "icu" / "icustays.csv.gz", parse_dates=["intime", "outtime"])
    with gzip.open(iv / "icu" / "chartevents.csv.gz", "wt") as f:
        if request.param == "header_only_chartevents":
            f.write(CHART_HEADER)
        else:
            generated_chart_events(stays).to_csv(f, index=False)
    when = image_times(stays)
    cxr = root / "mimic-cxr-jpg"
    meta = pd.DataFrame({
        "dicom_id": [f"real{k:04d}" for k in range(len(stays))], "subject_id": stays["subject_id"],
        "study_id": 50000000 + np.arange(len(stays)), "PerformedProcedureStepDescription": "CHEST (PORTABLE AP)",
        "ViewPosition": "AP", "Rows": 16, "Columns": 16, "StudyDate": when.dt.strftime("%Y%m%d").astype(int),
        "StudyTime": when.dt.strftime("%H%M%S.000"), "ProcedureCodeSequence_CodeMeaning": "CHEST (PORTABLE AP)",
        "ViewCodeSequence_CodeMeaning": "antero-posterior", "PatientOrientationCodeSequence_CodeMeaning": "Recumbent",
    })
    cxr.mkdir()
    meta.to_csv(cxr / "mimic-cxr-2.0.0-metadata.csv", index=False)
    labels = meta[["subject_id", "study_id"]].copy()
    for name in LABELS14:
        labels[name] = np.nan
    labels["Atelectasis"] = 1.0
    labels.to_csv(cxr / "mimic-cxr-2.0.0-chexpert.csv", index=False)
    for k, r in enumerate(meta.itertuples()):
        path = cxr / "files" / f"p{str(r.subject_id)[:2]}" / f"p{r.subject_id}" / f"s{r.study_id}" / f"{r.dicom_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((np.arange(256) * (k + 1)) % 251).astype(np.uint8).reshape(16, 16)).save(path)
    return root


def run_prepare(raw: Path, out: Path, compat: str) -> tuple[dict, pd.DataFrame, np.ndarray, list[str], str, Path]:
    argv = ["prepare", "--mimic-cxr", str(raw / "mimic-cxr-jpg"), "--mimic-iv", str(raw / "mimic-iv"),
            "--out", str(out), "--image-cache-size", "16", "--compat", compat, "--split-fractions", "1", "0", "0"]
    assert main(argv) == 0
    return (json.loads((out / "report.json").read_text()), pd.read_parquet(out / "pairs.parquet"),
            np.load(out / "ehr_values.npy"), json.loads((out / "ehr_columns.json").read_text()),
            (out / "report.md").read_text(), out)


@pytest.fixture(scope="module", params=["medfuse", "clean"])
def prepared(request, real_raw, tmp_path_factory):
    return (request.param, run_prepare(real_raw, tmp_path_factory.mktemp(request.param), request.param),
            pd.read_csv(real_raw / "mimic-iv" / "icu" / "chartevents.csv.gz"))


def oracle(compat: str, chart: pd.DataFrame) -> dict:
    """Spec ehr.md §5–7 on the real tables, with pandas: kept stays, pairs, lab values per (pair, bin), counts."""
    stays = pd.read_csv(DEMO / "icu" / "icustays.csv.gz", parse_dates=["intime", "outtime"])
    patients = pd.read_csv(DEMO / "hosp" / "patients.csv.gz")
    stays = stays.merge(patients[["subject_id", "anchor_age"]], on="subject_id")
    stays["image_time"] = image_times(stays)
    stays["dicom_id"] = [f"real{k:04d}" for k in range(len(stays))]
    steps, dropped = {"ICU stays in icustays": len(stays)}, {}
    same = stays[stays["first_careunit"] == stays["last_careunit"]]
    dropped["stay: transferred between care units"] = len(stays) - len(same)
    one = same[same.groupby("hadm_id")["stay_id"].transform("size") == 1]
    dropped["stay: admission has more than one ICU stay"] = len(same) - len(one)
    kept = one[one["anchor_age"] >= 18]
    steps.update({"stays with first_careunit == last_careunit": len(same),
                  "stays of admissions with exactly one ICU stay": len(one),
                  "stays of adults (anchor_age >= 18)": len(kept)})
    dropped["image: subject has no kept ICU stay"] = int((~stays["subject_id"].isin(kept["subject_id"])).sum())
    # an image of a dropped stay can still fall inside another kept stay of the same subject
    cand = stays[["dicom_id", "subject_id", "image_time"]].merge(
        kept[["subject_id", "hadm_id", "stay_id", "intime", "outtime"]], on="subject_id")
    cand = cand[(cand["image_time"] >= cand["intime"]) & (cand["image_time"] <= cand["outtime"])]
    in_subject = stays["subject_id"].isin(kept["subject_id"]).sum()
    dropped["image: taken outside every kept ICU stay"] = int(in_subject - cand["dicom_id"].nunique())
    pairs = cand.drop_duplicates("dicom_id").copy()
    pairs["window_start"] = np.maximum(pairs["intime"], pairs["image_time"] - 48 * HOUR)
    pairs["window_hours"] = (pairs["image_time"] - pairs["window_start"]) / HOUR
    steps["images taken during a kept ICU stay"] = len(pairs)

    lab = pd.read_csv(DEMO / "hosp" / "labevents.csv.gz", low_memory=False)
    channels = LAB_CHANNELS[compat]
    steps["labevents: rows read"] = len(lab)
    of_items = lab[lab["itemid"].isin(list(channels))]
    steps["labevents: rows of the 17 variables' item ids"] = len(of_items)
    paired_stays = kept[kept["stay_id"].isin(pairs["stay_id"])]
    ev = of_items.merge(paired_stays[["hadm_id", "stay_id", "intime", "outtime"]], on="hadm_id")
    steps["labevents: rows of the 17 variables for kept stays"] = len(ev)
    steps["chartevents: rows read"] = len(chart)
    of_chart = chart[chart["itemid"].isin(list(CHART_CHANNELS))]
    steps["chartevents: rows of the 17 variables' item ids"] = len(of_chart)
    ev_chart = of_chart.merge(paired_stays[["stay_id", "intime", "outtime"]], on="stay_id")
    steps["chartevents: rows of the 17 variables for kept stays"] = len(ev_chart)
    channels = channels | CHART_CHANNELS
    ev = pd.concat([ev_chart, ev], ignore_index=True) if len(ev_chart) else ev
    ev["valuenum"] = pd.to_numeric(ev["valuenum"])
    ev["charttime"] = pd.to_datetime(ev["charttime"])
    inside = (ev["charttime"] >= ev["intime"]) & (ev["charttime"] <= ev["outtime"])
    dropped["event: charttime outside its ICU stay"] = int((~inside).sum())
    ev = ev[inside]
    dup = ev.duplicated(["stay_id", "charttime", "itemid", "value", "valuenum"])
    dropped["event: exact duplicate row"] = int(dup.sum())
    ev = ev[~dup].copy()
    ev["variable"] = ev["itemid"].map(channels)
    # the value: an unsigned decimal `value`, else valuenum where value is empty or (clean) masked
    text = ev["value"].fillna("").astype(str).str.strip()
    is_number = text.str.fullmatch(r"\d+(\.\d*)?")
    has_valuenum = ev["valuenum"].notna()
    masked = (text != "") & ~is_number & has_valuenum
    ev["number"] = np.where(is_number, pd.to_numeric(text.where(is_number), errors="coerce"), np.nan)
    from_valuenum = ((text == "") & has_valuenum) | (masked if compat == "clean" else False)
    ev.loc[from_valuenum, "number"] = ev.loc[from_valuenum, "valuenum"]
    reason = pd.Series("", index=ev.index)
    reason[(text == "") & ~has_valuenum] = "empty value"
    in_comments = (text == "") & ~has_valuenum & (ev["comments"].fillna("").astype(str).str.strip() != "")
    reason[in_comments] = "empty value, result only in comments"
    reason[(text != "") & ~is_number & ~has_valuenum] = "non-numeric value"
    if compat == "medfuse":
        reason[masked] = "value '" + text[masked] + "': dropped, valuenum ignored as in the reference"
    spo2 = ev["variable"] == "Oxygen saturation"
    ev.loc[spo2 & (ev["number"] <= 1), "number"] *= 100
    if compat == "clean":
        for var, (low, high) in RANGES.items():
            out = (reason == "") & (ev["variable"] == var) & ~ev["number"].between(low, high)
            reason[out] = f"out of range [{low:g}, {high:g}]"
    bad = reason != ""
    for (var, why), n in pd.Series(list(zip(ev["variable"][bad], reason[bad]))).value_counts().items():
        dropped[f"event: {var}: {why}"] = int(n)
    masked_counts = {}
    for var, n in ev.loc[masked, "variable"].value_counts().items():
        what = "value masked, valuenum used" if compat == "clean" else \
            "value masked: dropped, valuenum ignored as in the reference"
        masked_counts[var] = {"rows": int((ev["variable"] == var).sum()), what: int(n)}
    ev0, ev = ev, ev[~bad]
    steps["events kept after cleaning"] = len(ev)
    with_events = paired_stays["stay_id"].isin(ev["stay_id"])
    dropped["stay: no event of the 17 variables during the stay"] = int((~with_events).sum())
    steps["paired stays with events"] = int(with_events.sum())
    # one value per (stay, charttime, variable): the numeric maximum; then the window of each image
    per_time = ev.groupby(["stay_id", "charttime", "variable"], as_index=False)["number"].max()
    w = pairs.merge(per_time, on="stay_id")
    w = w[(w["charttime"] >= w["window_start"]) & (w["charttime"] <= w["image_time"])].copy()
    w["hours"] = (w["charttime"] - w["window_start"]) / HOUR
    w["bin"] = (w["hours"] / 2.0 - 1e-6).astype(int)  # spec §2 step 5 (int truncates toward zero)
    w = w.sort_values(["dicom_id", "variable", "charttime"])
    bins = w.groupby(["dicom_id", "variable", "bin"])["number"].last()  # the latest row of a bin wins
    has_ehr = pairs["dicom_id"].isin(w["dicom_id"])
    dropped["pair: no EHR event in the window before the image"] = int((~has_ehr).sum())
    final = pairs[has_ehr]
    steps["pairs with EHR in the window"] = len(final)
    steps["pairs with a readable image"] = len(final)
    steps["pairs in train"], steps["pairs in val"], steps["pairs in test"] = len(final), 0, 0
    return {"steps": steps, "dropped": {k: v for k, v in dropped.items() if v}, "bins": bins,
            "pairs": final.set_index("dicom_id"), "masked": masked_counts, "comment_only": ev0[in_comments]}


def test_prepare_on_the_real_tables_equals_the_oracle(prepared) -> None:
    compat, (report, pairs, values, columns, _, _), chart = prepared
    want = oracle(compat, chart)
    steps = {s["step"]: s["count"] for s in report["steps"]}
    for name, n in want["steps"].items():
        assert steps[name] == n, f"{compat}: step {name!r}: {steps[name]} vs oracle {n}"
    assert report["dropped"] == want["dropped"]
    assert report["valuenum_fallback"] == want["masked"]
    assert sorted(pairs["dicom_id"]) == sorted(want["pairs"].index)
    for dicom, start in zip(pairs["dicom_id"], pairs["window_start"]):
        assert start == want["pairs"].loc[dicom, "window_start"]
    for channel in ("Glucose", "pH", "Oxygen saturation"):
        col, mask = columns.index(channel), columns.index(f"mask->{channel}")
        got = {(d, int(b)): float(values[i, b, col]) for i, d in enumerate(pairs["dicom_id"])
               for b in np.flatnonzero(values[i, :, mask])}
        expected = {(d, int(b)): float(v) for (d, var, b), v in want["bins"].items() if var == channel}
        assert got.keys() == expected.keys(), f"{compat}: observed bins of {channel}"
        assert [got[k] for k in sorted(got)] == pytest.approx([expected[k] for k in sorted(got)]), channel


def test_clean_mode_keeps_every_real_glucose_and_medfuse_names_the_loss(prepared) -> None:
    compat, (report, _, _, _, markdown, _), _ = prepared
    glucose = report["valuenum_fallback"]["Glucose"]
    if compat == "clean":
        assert glucose["value masked, valuenum used"] > 0
        assert not any("valuenum ignored" in k for k in report["dropped"])
        assert "**Warning:**" not in markdown
    else:
        key = "event: Glucose: value '___': dropped, valuenum ignored as in the reference"
        assert report["dropped"][key] == glucose["value masked: dropped, valuenum ignored as in the reference"]
        assert glucose["value masked: dropped, valuenum ignored as in the reference"] / glucose["rows"] > 0.1
        assert "**Warning:** Glucose loses" in markdown


def test_urine_glucose_results_only_in_comments_are_counted_as_such(prepared) -> None:
    """Urine glucose 51478 (mapped in medfuse mode only) often has neither value nor valuenum: the result
    (``NEG.``, ``TR.``) is written in ``comments`` alone. Those rows are dropped under their own name."""
    compat, (report, *_), chart = prepared
    rows = oracle(compat, chart)["comment_only"]
    key = "event: Glucose: empty value, result only in comments"
    if compat == "clean":
        assert rows.empty and key not in report["dropped"]  # urine items are not read in clean mode
        return
    assert set(rows["itemid"]) == {51478} and {"NEG.", "TR."} <= set(rows["comments"])
    assert report["dropped"][key] == len(rows) > 0
    assert "event: Glucose: empty value" not in report["dropped"]


def test_normalizer_fitted_on_the_real_cohort(prepared) -> None:
    """Finite statistics; only the continuous columns are standardized; in clean mode the lab channels' mean
    and std are those of their observed bins (pandas, ddof 1), every pair being in the training split."""
    compat, (_, _, values, columns, _, out), _ = prepared
    norm = Normalizer.load(out / "normalizer.json")
    assert np.isfinite(norm.mean).all() and np.isfinite(norm.std).all() and (np.asarray(norm.std) > 0).all()
    continuous = [i for i, name in enumerate(columns) if "->" not in name]
    assert norm.continuous_indices == continuous and len(continuous) == 12
    episode = values[0]
    moved = np.flatnonzero(~np.isclose(norm.transform(episode), episode).all(axis=0))
    assert set(moved) <= set(continuous)
    if compat == "clean":
        for channel in ("Glucose", "pH", "Oxygen saturation"):
            col, mask = columns.index(channel), columns.index(f"mask->{channel}")
            observed = pd.Series(values[:, :, col][values[:, :, mask] == 1].astype(float))
            assert norm.mean[col] == pytest.approx(observed.mean(), rel=1e-5)
            assert norm.std[col] == pytest.approx(observed.std(ddof=1), rel=1e-4)


def test_generated_chart_events_reach_the_cohort_with_their_planted_cases(prepared) -> None:
    """With chart events generated for the real stays: each planted case is counted under its own name, and
    the SpO2 fraction 0.93 arrives as 93 % in some bin (the bins themselves equal the oracle's above)."""
    compat, (report, pairs, values, columns, _, _), chart = prepared
    dropped = report["dropped"]
    steps = {s["step"]: s["count"] for s in report["steps"]}
    if chart.empty:  # header only: no chart row is read, so nothing chart-made can be counted
        assert steps["chartevents: rows read"] == 0 and "event: exact duplicate row" not in dropped
        return
    assert steps["chartevents: rows of the 17 variables for kept stays"] > 0
    assert dropped["event: exact duplicate row"] > 0
    assert dropped["event: Oxygen saturation: non-numeric value"] == oracle(compat, chart)["dropped"][
        "event: Oxygen saturation: non-numeric value"] > 0
    if compat == "clean":
        assert dropped["event: pH: out of range [6.5, 8]"] > 0
    else:
        assert not any("out of range" in k for k in dropped)
    col, mask = columns.index("Oxygen saturation"), columns.index("mask->Oxygen saturation")
    assert np.isclose(values[:, :, col][values[:, :, mask] == 1], 93.0).any()
