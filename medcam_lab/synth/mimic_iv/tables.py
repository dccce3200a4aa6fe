"""MIMIC-IV v2.2 tables of the synthetic cohort: times and numbers formatted as MIMIC writes them, the
official column lists, and the frames of patients, admissions, icustays, chartevents, labevents,
d_items and d_labitems.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medcam_lab.synth.mimic_iv.items import CHART_ITEMS, D_ITEMS_ONLY, LAB_ITEMS
from medcam_lab.synth.mimic_iv.patients import Patient, _provider

CHARTEVENTS_COLUMNS = [
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
]
LABEVENTS_COLUMNS = [
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
]
PATIENTS_COLUMNS = ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"]
ADMISSIONS_COLUMNS = [
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
]
ICUSTAYS_COLUMNS = [
    "subject_id",
    "hadm_id",
    "stay_id",
    "first_careunit",
    "last_careunit",
    "intime",
    "outtime",
    "los",
]
D_ITEMS_COLUMNS = [
    "itemid",
    "label",
    "abbreviation",
    "linksto",
    "category",
    "unitname",
    "param_type",
    "lownormalvalue",
    "highnormalvalue",
]
D_LABITEMS_COLUMNS = ["itemid", "label", "fluid", "category"]


def fmt_times(seconds: np.ndarray) -> np.ndarray:
    """int seconds -> 'YYYY-MM-DD HH:MM:SS' strings (vectorised)."""
    s = np.datetime_as_string(np.asarray(seconds, np.int64).astype("datetime64[s]"), unit="s").astype("S19")
    s.view("S1").reshape(-1, 19)[:, 10] = b" "
    return s.astype("U19")


def fmt_optional_time(value: int | None) -> str | None:
    """One time as :func:`fmt_times` writes it, or ``None`` (an empty cell) for no time."""
    return None if value is None else str(fmt_times(np.array([value]))[0])


def fmt_numbers(num: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """Numbers as MIMIC writes them (integers without a fraction); NaN -> None. Shape kept."""
    out = np.full(num.shape, None, object)
    finite = np.isfinite(num)
    for d in np.unique(decimals[finite]):
        sel = finite & (decimals == d)
        if d <= 0:
            out[sel] = np.round(num[sel]).astype(np.int64).astype(str)
        else:
            rounded = np.round(num[sel], int(d))
            whole = rounded == np.round(rounded)
            txt = rounded.astype(str)
            txt[whole] = np.round(rounded[whole]).astype(np.int64).astype(str)
            out[sel] = txt
    return out


def chartevents_frame(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Assemble the chartevents table (official column order) from per-stay parts."""
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    itemid = cat["itemid"]
    items = pd.Series(itemid)
    decimals = items.map({i: spec.decimals for i, spec in CHART_ITEMS.items()}).to_numpy(np.int64).copy()
    decimals[(itemid == 223835) & (cat["num"] <= 1)] = 2  # FiO2 charted as a fraction by mistake
    num_txt = fmt_numbers(cat["num"], decimals)
    value = np.where(pd.isna(cat["text"]), num_txt, cat["text"])
    uom_map = {i: (spec.unitname or None) for i, spec in CHART_ITEMS.items()}
    frame = pd.DataFrame(
        {
            "subject_id": cat["subject_id"],
            "hadm_id": cat["hadm_id"],
            "stay_id": cat["stay_id"],
            "caregiver_id": cat["caregiver_id"],
            "charttime": cat["charttime"],
            "storetime": cat["storetime"],
            "itemid": itemid,
            "value": value,
            "valuenum": num_txt,
            "valueuom": items.map(uom_map).to_numpy(object),
            "warning": cat["warning"],
        }
    )
    return frame.sort_values(["subject_id", "stay_id", "charttime", "itemid"], kind="stable").reset_index(
        drop=True
    )


def labevents_frame(parts: list[dict[str, np.ndarray]], rng: np.random.Generator) -> pd.DataFrame:
    """Assemble labevents (official column order); labevent_id and specimen_id assigned here."""
    parts = [p for p in parts if p]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # one specimen per (part, panel)
    offsets = np.cumsum([0] + [int(p["panel"].max()) + 1 for p in parts])
    panel_global = np.concatenate([p["panel"] + offsets[i] for i, p in enumerate(parts)])
    specimen_ids = rng.choice(90_000_000, size=int(offsets[-1]), replace=False) + 10_000_000
    itemid = cat["itemid"]
    items = pd.Series(itemid)
    decimals = items.map({i: s.decimals for i, s in LAB_ITEMS.items()}).to_numpy(np.int64)
    num = cat["num"]
    num_txt = fmt_numbers(num, decimals)
    value = np.where(pd.isna(cat["text"]), num_txt, cat["text"])
    nan = float("nan")
    lo = items.map({i: nan if s.ref_lower is None else s.ref_lower for i, s in LAB_ITEMS.items()}).to_numpy(
        float
    )
    hi = items.map({i: nan if s.ref_upper is None else s.ref_upper for i, s in LAB_ITEMS.items()}).to_numpy(
        float
    )
    flag = np.full(len(num), None, object)
    flag[(num < lo) | (num > hi)] = "abnormal"
    n = len(itemid)
    providers = np.array([_provider(rng) for _ in range(40)], object)
    ordered = rng.random(n) < 0.6
    drawn = providers[rng.integers(0, 40, n)]
    order_provider = np.full(n, None, object)
    order_provider[ordered] = drawn[ordered]
    frame = pd.DataFrame(
        {
            "labevent_id": np.zeros(n, np.int64),
            "subject_id": cat["subject_id"],
            "hadm_id": pd.array(cat["hadm_id"], dtype="Int64"),
            "specimen_id": specimen_ids[panel_global],
            "itemid": itemid,
            "order_provider_id": order_provider,
            "charttime": cat["charttime"],
            "storetime": cat["storetime"],
            "value": value,
            "valuenum": num_txt,
            "valueuom": items.map({i: s.uom for i, s in LAB_ITEMS.items()}).to_numpy(object),
            "ref_range_lower": fmt_numbers(lo, np.full(n, 2)),
            "ref_range_upper": fmt_numbers(hi, np.full(n, 2)),
            "flag": flag,
            "priority": cat["priority"],
            "comments": np.full(n, None, object),
        }
    )
    frame = frame.sort_values(
        ["subject_id", "charttime", "specimen_id", "itemid"], kind="stable"
    ).reset_index(drop=True)
    frame["labevent_id"] = np.arange(1, len(frame) + 1)
    return frame


def patients_frame(patients: list[Patient]) -> pd.DataFrame:
    """``hosp/patients`` (official column order)."""
    dod = [None if p.dod is None else str(fmt_times(np.array([p.dod]))[0])[:10] for p in patients]
    frame = pd.DataFrame(
        {
            "subject_id": [p.subject_id for p in patients],
            "gender": [p.gender for p in patients],
            "anchor_age": [p.anchor_age for p in patients],
            "anchor_year": [p.anchor_year for p in patients],
            "anchor_year_group": [p.anchor_year_group for p in patients],
            "dod": dod,
        }
    )
    return frame.sort_values("subject_id", kind="stable").reset_index(drop=True)[PATIENTS_COLUMNS]


def admissions_frame(patients: list[Patient]) -> pd.DataFrame:
    """``hosp/admissions`` (official column order)."""
    rows = []
    for p in patients:
        for a in p.admissions:
            rows.append(
                {
                    "subject_id": a.subject_id,
                    "hadm_id": a.hadm_id,
                    "admittime": fmt_optional_time(a.admittime),
                    "dischtime": fmt_optional_time(a.dischtime),
                    "deathtime": fmt_optional_time(a.deathtime),
                    "admission_type": a.admission_type,
                    "admit_provider_id": a.admit_provider_id,
                    "admission_location": a.admission_location,
                    "discharge_location": a.discharge_location,
                    "insurance": a.insurance,
                    "language": a.language,
                    "marital_status": a.marital_status,
                    "race": a.race,
                    "edregtime": fmt_optional_time(a.edregtime),
                    "edouttime": fmt_optional_time(a.edouttime),
                    "hospital_expire_flag": int(a.deathtime is not None),
                }
            )
    frame = pd.DataFrame(rows, columns=ADMISSIONS_COLUMNS)
    return frame.sort_values(["subject_id", "admittime"], kind="stable").reset_index(drop=True)


def icustays_frame(patients: list[Patient]) -> pd.DataFrame:
    """``icu/icustays`` (official column order; ``los`` in fractional days)."""
    rows = []
    for p in patients:
        for s in p.stays:
            rows.append(
                {
                    "subject_id": s.subject_id,
                    "hadm_id": s.hadm_id,
                    "stay_id": s.stay_id,
                    "first_careunit": s.first_careunit,
                    "last_careunit": s.last_careunit,
                    "intime": fmt_optional_time(s.intime),
                    "outtime": fmt_optional_time(s.outtime),
                    "los": f"{(s.outtime - s.intime) / 86400:.4f}".rstrip("0").rstrip("."),
                }
            )
    frame = pd.DataFrame(rows, columns=ICUSTAYS_COLUMNS)
    return frame.sort_values(["subject_id", "intime"], kind="stable").reset_index(drop=True)


def d_items_frame() -> pd.DataFrame:
    """``icu/d_items`` for every charted item plus the mapped items never charted here."""
    items = {**CHART_ITEMS, **D_ITEMS_ONLY}
    normal = {220045: (60, 100), 220277: (92, 100), 220210: (12, 20)}
    rows = [
        {
            "itemid": i,
            "label": s.label,
            "abbreviation": s.abbreviation,
            "linksto": "chartevents",
            "category": s.category,
            "unitname": s.unitname or None,
            "param_type": s.param_type,
            "lownormalvalue": normal.get(i, (None, None))[0],
            "highnormalvalue": normal.get(i, (None, None))[1],
        }
        for i, s in sorted(items.items())
    ]
    frame = pd.DataFrame(rows, columns=D_ITEMS_COLUMNS)
    for col in ("lownormalvalue", "highnormalvalue"):
        frame[col] = pd.array(frame[col], dtype="Int64")
    return frame


def d_labitems_frame() -> pd.DataFrame:
    """``hosp/d_labitems`` for every lab item written."""
    rows = [
        {"itemid": i, "label": s.label, "fluid": s.fluid, "category": s.category}
        for i, s in sorted(LAB_ITEMS.items())
    ]
    return pd.DataFrame(rows, columns=D_LABITEMS_COLUMNS)


def finalize_events(chart: pd.DataFrame, lab: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn the integer-second times into MIMIC time strings."""
    chart = chart.copy()
    lab = lab.copy()
    for frame in (chart, lab):
        for col in ("charttime", "storetime"):
            frame[col] = fmt_times(frame[col].to_numpy(np.int64))
    return chart[CHARTEVENTS_COLUMNS], lab[LABEVENTS_COLUMNS]
