"""Planted bad inputs of the synthetic MIMIC-IV event tables: the de-identification mask ``___`` on
released glucose values and the documented defects (unparseable and non-finite values, unknown GCS
spellings, events outside their stay, duplicate rows), each recorded with its ids for the manifest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medcam_lab.synth.mimic_iv.patients import HOUR, Stay
from medcam_lab.synth.mimic_iv.tables import fmt_times


def _chart_record(chart: pd.DataFrame, i: int, **extra: object) -> dict:
    row = chart.loc[i]
    return {
        "table": "chartevents",
        "subject_id": int(row["subject_id"]),
        "hadm_id": int(row["hadm_id"]),
        "stay_id": int(row["stay_id"]),
        "itemid": int(row["itemid"]),
        "charttime": str(fmt_times(np.array([row["charttime"]]))[0]),
        **extra,
    }


def _lab_record(lab: pd.DataFrame, i: int, **extra: object) -> dict:
    row = lab.loc[i]
    return {
        "table": "labevents",
        "labevent_id": int(row["labevent_id"]),
        "subject_id": int(row["subject_id"]),
        "hadm_id": None if pd.isna(row["hadm_id"]) else int(row["hadm_id"]),
        "itemid": int(row["itemid"]),
        "charttime": str(fmt_times(np.array([row["charttime"]]))[0]),
        **extra,
    }


def mask_values_as_released(lab: pd.DataFrame, rng: np.random.Generator, fraction: float,
                            itemids: tuple[int, ...] = (50931,)) -> tuple[pd.DataFrame, int]:
    """Write ``value`` as the de-identification mask ``___`` on a seeded share ``fraction`` of the rows of
    ``itemids`` that hold a plain number, keeping the number in ``valuenum`` (MIMIC-IV v2.2 does so for every
    blood chemistry glucose row). Returns the table and the number of rows masked."""
    lab = lab.copy()
    text = lab["value"].astype(str)
    plain = (lab["itemid"].isin(list(itemids)) & text.str.fullmatch(r"\d+(\.\d*)?")
             & pd.to_numeric(lab["valuenum"], errors="coerce").notna()).to_numpy()
    rows = np.flatnonzero(plain)
    chosen = rows[rng.random(len(rows)) < fraction]
    lab.loc[lab.index[chosen], "value"] = "___"
    return lab, int(len(chosen))


def inject_event_defects(
    chart: pd.DataFrame,
    lab: pd.DataFrame,
    stays: dict[int, Stay],
    rng: np.random.Generator,
    exclude_stays: set[int],
    exclude_hadms: set[int],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[dict]]]:
    """Plant the documented bad event rows; returns the new tables and the records (manifest ``defects``).

    Times are still integer seconds here.
    """
    chart = chart.copy()
    lab = lab.copy()
    taken: set[int] = set()
    lab_taken: set[int] = set()
    ok_chart = ~chart["stay_id"].isin(exclude_stays)
    ok_lab = lab["hadm_id"].notna() & ~lab["hadm_id"].isin(list(exclude_hadms))

    def pick(frame: pd.DataFrame, mask: pd.Series, k: int, used: set[int]) -> list[int]:
        idx = np.flatnonzero(mask.to_numpy() & ~frame.index.isin(list(used)))
        chosen = sorted(int(frame.index[j]) for j in rng.choice(idx, size=k, replace=False))
        used.update(chosen)
        return chosen

    numeric_vitals = chart["itemid"].isin([220045, 220277, 220179, 220050, 223762, 223761, 220210]) & ok_chart
    records: dict[str, list[dict]] = {}

    rec = []
    for i, text in zip(pick(chart, numeric_vitals, 4, taken), ["ERROR", "___", "ERROR", "___"]):
        chart.loc[i, ["value", "valuenum"]] = [text, None]
        rec.append(_chart_record(chart, i, value=text))
    records["chartevents_unparseable_value"] = rec

    rec = []
    for i, text in zip(pick(chart, numeric_vitals, 3, taken), ["inf", "nan", "-inf"]):
        chart.loc[i, ["value", "valuenum"]] = [text, text]
        rec.append(_chart_record(chart, i, value=text, valuenum=text))
    for i in pick(lab, ok_lab & lab["itemid"].isin([50931, 50912]), 1, lab_taken):
        lab.loc[i, ["value", "valuenum", "flag"]] = ["nan", "nan", None]
        rec.append(_lab_record(lab, i, value="nan", valuenum="nan"))
    records["nonfinite_numeric_text"] = rec

    rec = []
    for i in pick(chart, chart["itemid"].isin([220739, 223901]) & ok_chart, 2, taken):
        chart.loc[i, ["value", "valuenum"]] = ["Unknown", None]
        rec.append(_chart_record(chart, i, value="Unknown"))
    records["gcs_unknown_spelling"] = rec

    rec = []
    blood = ok_lab & lab["itemid"].isin([50931, 50820, 50809])
    for i, text in zip(pick(lab, blood, 3, lab_taken), ["___", "NEG", "___"]):
        lab.loc[i, ["value", "valuenum", "flag", "comments"]] = [
            text,
            None,
            None,
            "___" if text == "___" else None,
        ]
        rec.append(_lab_record(lab, i, value=text))
    records["labevents_non_numeric_value"] = rec

    rec, extra = [], []
    hr_rows = pick(chart, (chart["itemid"] == 220045) & ok_chart, 3, taken)
    for i, where in zip(hr_rows, ["before_intime_30h", "after_outtime_26h", "after_outtime_72h"]):
        row = chart.loc[i].copy()
        stay = stays[int(row["stay_id"])]
        new_t = {
            "before_intime_30h": stay.intime - 30 * HOUR,
            "after_outtime_26h": stay.outtime + 26 * HOUR,
            "after_outtime_72h": stay.outtime + 72 * HOUR,
        }[where]
        row["storetime"] = new_t + (row["storetime"] - row["charttime"])
        row["charttime"] = new_t
        extra.append(row)
        rec.append(
            {
                "table": "chartevents",
                "subject_id": int(row["subject_id"]),
                "hadm_id": int(row["hadm_id"]),
                "stay_id": int(row["stay_id"]),
                "itemid": 220045,
                "charttime": str(fmt_times(np.array([new_t]))[0]),
                "where": where,
            }
        )
    records["events_outside_stay"] = rec

    rec = []
    for i in pick(chart, ok_chart, 3, taken):
        extra.append(chart.loc[i].copy())
        rec.append(_chart_record(chart, i, value=chart.loc[i, "value"]))
    lab_extra = []
    for i in pick(lab, ok_lab, 2, lab_taken):
        lab_extra.append(lab.loc[i].copy())
        rec.append(_lab_record(lab, i, value=lab.loc[i, "value"]))
    records["duplicate_event_rows"] = rec

    chart = pd.concat([chart, pd.DataFrame(extra)], ignore_index=True)
    chart = chart.sort_values(["subject_id", "stay_id", "charttime", "itemid"], kind="stable").reset_index(
        drop=True
    )
    lab = pd.concat([lab, pd.DataFrame(lab_extra)], ignore_index=True)
    lab = lab.sort_values(["labevent_id"], kind="stable").reset_index(drop=True)
    for col in (
        "subject_id",
        "hadm_id",
        "stay_id",
        "caregiver_id",
        "itemid",
        "warning",
        "charttime",
        "storetime",
    ):
        chart[col] = chart[col].astype(np.int64)
    lab["hadm_id"] = pd.array(lab["hadm_id"], dtype="Int64")
    return chart, lab, records
