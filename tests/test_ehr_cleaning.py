"""Cleaning tests: each medfuse rule of spec ``ehr.md`` §5 on literal events (``mode="medfuse"``), and the
item-id map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medcam_lab.ehr import CHART_ITEMIDS, ITEMID_TO_VARIABLE, LAB_ITEMIDS, clean_events


def events(rows: list[tuple]) -> pd.DataFrame:
    """rows of (itemid, value, valuenum, label)."""
    frame = pd.DataFrame(rows, columns=["itemid", "value", "valuenum", "label"])
    frame["valuenum"] = frame["valuenum"].astype(float)
    frame["valueuom"] = np.nan
    frame["stay_id"] = 7
    return frame


def cleaned(rows: list[tuple]) -> list[str]:
    kept, _ = clean_events(events(rows), mode="medfuse")
    return kept["clean_value"].tolist()


def test_itemid_map_matches_spec_table() -> None:
    assert ITEMID_TO_VARIABLE[220045] == "Heart Rate"
    assert ITEMID_TO_VARIABLE[51478] == "Glucose" and ITEMID_TO_VARIABLE[50831] == "pH"
    assert {50931, 50809, 51478, 50817, 50820, 51491, 51094, 50831} == set(LAB_ITEMIDS)
    assert 223761 in CHART_ITEMIDS and 226531 in CHART_ITEMIDS and not CHART_ITEMIDS & LAB_ITEMIDS
    assert len(ITEMID_TO_VARIABLE) == 44
    variables = set(ITEMID_TO_VARIABLE.values())
    assert "Capillary refill rate" not in variables and "Glascow coma scale total" not in variables
    assert (
        223951 not in ITEMID_TO_VARIABLE
        and 224308 not in ITEMID_TO_VARIABLE
        and 198 not in ITEMID_TO_VARIABLE
    )
    by_variable = {v: sorted(k for k, x in ITEMID_TO_VARIABLE.items() if x == v) for v in variables}
    assert by_variable["Systolic blood pressure"] == [220050, 220179, 224167, 225309, 227243]
    assert by_variable["Respiratory rate"] == [220210, 224422, 224689, 224690]
    assert by_variable["Weight"] == [224639, 226512, 226531]


def test_fio2_always_divided_by_100() -> None:
    assert cleaned(
        [
            (223835, "0.5", 0.5, "Inspired O2 Fraction"),
            (223835, "50", 50, "Inspired O2 Fraction"),
            (223835, "100", 100, "Inspired O2 Fraction"),
        ]
    ) == ["0.005", "0.5", "1.0"]


def test_sbp_dbp_split_slash() -> None:
    assert cleaned(
        [
            (220179, "120/80", None, "NBP s"),
            (220180, "120/80", None, "NBP d"),
            (220050, "131", 131, "ABP s"),
            (220051, "65", 65, "ABP d"),
        ]
    ) == ["120.0", "80.0", "131.0", "65.0"]


def test_spo2_fraction_times_100_and_non_numeric_dropped() -> None:
    kept, counts = clean_events(
        events(
            [
                (220277, "0.97", 0.97, "SpO2"),
                (220277, "99", 99, "SpO2"),
                (220277, "1", 1, "SpO2"),
                (50817, "ERROR", None, "Oxygen Saturation"),
            ]
        ),
        mode="medfuse",
    )
    assert kept["clean_value"].tolist() == ["97.0", "99.0", "100.0"]
    assert counts["dropped"] == {"Oxygen saturation: non-numeric value": 1}


def test_glucose_and_ph_non_numeric_dropped_and_counted() -> None:
    kept, counts = clean_events(
        events(
            [
                (50931, "ERROR", None, "Glucose"),
                (50931, "___", None, "Glucose"),
                (51478, "NEG", None, "Glucose"),
                (51478, "100", 100, "Glucose"),
                (50820, "7.35", 7.35, "pH"),
                (51491, "6.5", 6.5, "pH"),
                (220274, "ERROR", None, "PH (Venous)"),
            ]
        ),
        mode="medfuse",
    )
    assert kept["clean_value"].tolist() == ["100.0", "7.35", "6.5"]
    assert kept["variable"].tolist() == ["Glucose", "pH", "pH"]
    assert (counts["kept"], counts["dropped"]) == (3, {"Glucose: non-numeric value": 3, "pH: non-numeric value": 1})


def test_strict_decimal_for_spo2_glucose_ph() -> None:
    kept, counts = clean_events(
        events(
            [
                (50931, "100.", None, "Glucose"),
                (50931, "1e2", None, "Glucose"),
                (50931, "-5", None, "Glucose"),
                (50931, ">500", None, "Glucose"),
                (50820, "7", None, "pH"),
            ]
        ),
        mode="medfuse",
    )
    assert kept["clean_value"].tolist() == ["100.0", "7.0"]
    assert counts["dropped"] == {"Glucose: non-numeric value": 3}


def test_temperature_fahrenheit_converted_only_from_79() -> None:
    assert cleaned(
        [
            (223761, "98.6", 98.6, "Temperature Fahrenheit"),
            (223762, "37", 37, "Temperature Celsius"),
            (223761, "78.9", 78.9, "Temperature Fahrenheit"),
            (223761, "212", 212, "Temperature F"),
        ]
    ) == ["37.0", "37.0", "78.9", "100.0"]


def test_weight_pounds_and_ounces_by_label() -> None:
    assert cleaned(
        [
            (226531, "150", 150, "Admission Weight (lbs.)"),
            (226512, "70.5", 70.5, "Admission Weight (Kg)"),
            (224639, "32", 32, "Birth weight (oz)"),
        ]
    ) == ["68.0388", "70.5", "0.907184"]


def test_height_label_height_not_converted() -> None:
    assert cleaned(
        [
            (226707, "65", 65, "Height"),
            (226730, "170", 170, "Height (cm)"),
            (226707, "65", 65, "Height inches"),
        ]
    ) == ["65.0", "170.0", "165.0"]


def test_uncleaned_variables_keep_raw_strings() -> None:
    kept, _ = clean_events(
        events(
            [
                (220045, "86", 86, "Heart Rate"),
                (220210, "18.5", 18.5, "Respiratory Rate"),
                (220052, " 77", 77, "ABP mean"),
                (220739, "Spontaneously", 4, "GCS - Eye Opening"),
                (223900, "No Response-ETT", 1, "GCS - Verbal Response"),
            ]
        ),
        mode="medfuse",
    )
    assert kept["clean_value"].tolist() == ["86", "18.5", " 77", "Spontaneously", "No Response-ETT"]


def test_valuenum_used_when_value_empty() -> None:
    kept, counts = clean_events(
        events(
            [
                (220045, None, 90.0, "Heart Rate"),
                (223835, "", 40.0, "Inspired O2 Fraction"),
                (220277, np.nan, 0.95, "SpO2"),
                (220045, None, None, "Heart Rate"),
                (220045, "  ", None, "Heart Rate"),
                (50931, None, np.inf, "Glucose"),
            ]
        ),
        mode="medfuse",
    )
    assert kept["clean_value"].tolist() == ["90.0", "0.4", "95.0"]
    assert counts["dropped"] == {"Glucose: not finite": 1, "Heart Rate: empty value": 2}


def test_unknown_itemid_dropped_and_counted_and_extra_columns_kept() -> None:
    frame = events(
        [(220045, "80", 80, "Heart Rate"), (999999, "1", 1, "Other"), (223951, "Brisk", None, "Cap")]
    )
    frame["charttime"] = pd.to_datetime(["2020-01-01 10:00"] * 3)
    kept, counts = clean_events(frame, mode="medfuse")
    assert (counts["kept"], counts["dropped"]) == (1, {"(unmapped): unknown itemid": 2})
    assert list(kept.columns) == [
        "itemid",
        "value",
        "valuenum",
        "label",
        "valueuom",
        "stay_id",
        "charttime",
        "variable",
        "clean_value",
    ]
    assert kept.index.tolist() == [0] and kept["charttime"].iloc[0] == pd.Timestamp("2020-01-01 10:00")


def test_not_finite_and_non_numeric_temperature() -> None:
    kept, counts = clean_events(
        events(
            [
                (223762, "inf", None, "Temperature Celsius"),
                (223762, "nan", None, "Temperature Celsius"),
                (223762, "warm", None, "Temperature Celsius"),
            ]
        ),
        mode="medfuse",
    )
    assert len(kept) == 0
    assert counts["dropped"] == {"Temperature: not finite": 2, "Temperature: non-numeric value": 1}


def test_capillary_refill_strings_with_custom_map() -> None:
    rows = [
        (3348, "Normal <3 secs", None, "Capillary refill"),
        (3348, "Brisk", None, "Capillary refill"),
        (3348, "Abnormal >3 secs", None, "Capillary refill"),
        (3348, "Delayed", None, "Capillary refill"),
        (3348, "Comment", None, "Capillary refill"),
    ]
    kept, counts = clean_events(events(rows), mode="medfuse", itemid_map={3348: "Capillary refill rate"})
    assert kept["clean_value"].tolist() == ["0.0", "0.0", "1.0", "1.0"]
    assert counts["dropped"] == {"Capillary refill rate: unrecognised value": 1}


def test_numeric_value_column_and_vectorized_size() -> None:
    frame = pd.DataFrame(
        {
            "itemid": [223835] * 3,
            "value": [50.0, 21.0, np.nan],
            "valuenum": [50.0, 21.0, np.nan],
            "label": ["FiO2"] * 3,
        }
    )
    kept, counts = clean_events(frame, mode="medfuse")
    assert kept["clean_value"].tolist() == ["0.5", "0.21"]
    assert counts["dropped"] == {"Fraction inspired oxygen: empty value": 1}
    big = events([(220045, "80", 80, "HR"), (50931, "ERROR", None, "Glucose")] * 50_000)
    kept, counts = clean_events(big, mode="medfuse")
    assert (counts["kept"], counts["dropped"]) == (50_000, {"Glucose: non-numeric value": 50_000})


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown compat 'fixed'"):
        clean_events(events([(220045, "80", 80, "HR")]), mode="fixed")
