"""Wide-table tests: one row per (stay, charttime), and which value survives (spec ``ehr.md`` §5; ``mode="medfuse"``,
the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medcam_lab.ehr import CHANNELS, events_to_wide


def make(rows: list[tuple[int, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["stay_id", "charttime", "variable", "clean_value"])
    frame["charttime"] = pd.to_datetime(frame["charttime"])
    return frame


def test_columns_rows_and_order() -> None:
    wide = events_to_wide(
        make(
            [
                (2, "2020-01-01 02:00", "Heart Rate", "80"),
                (1, "2020-01-01 05:00", "Glucose", "120.0"),
                (1, "2020-01-01 03:00", "pH", "7.3"),
                (1, "2020-01-01 03:00", "Heart Rate", "90"),
            ]
        ),
        mode="medfuse",
    )
    assert list(wide.columns) == ["stay_id", "charttime"] + list(CHANNELS)
    assert wide["stay_id"].tolist() == [1, 1, 2]
    assert wide["charttime"].tolist() == [
        pd.Timestamp("2020-01-01 03:00"),
        pd.Timestamp("2020-01-01 05:00"),
        pd.Timestamp("2020-01-01 02:00"),
    ]
    assert wide["Heart Rate"].tolist() == ["90", "", "80"]
    assert wide["pH"].tolist() == ["7.3", "", ""]
    assert wide["Glucose"].tolist() == ["", "120.0", ""]
    assert wide["Capillary refill rate"].tolist() == ["", "", ""]


def test_cleaned_variables_keep_numeric_max() -> None:
    wide = events_to_wide(
        make(
            [
                (1, "2020-01-01 00:00", "Glucose", "99.5"),
                (1, "2020-01-01 00:00", "Glucose", "100.0"),
                (1, "2020-01-01 00:00", "Glucose", "5.0"),
                (1, "2020-01-01 00:00", "Height", "65.0"),  # inches, not converted ...
                (1, "2020-01-01 00:00", "Height", "165.0"),  # ... so the cm value survives
            ]
        ),
        mode="medfuse",
    )
    assert wide["Glucose"].tolist() == ["100.0"] and wide["Height"].tolist() == ["165.0"]


def test_raw_string_variables_keep_string_max() -> None:
    wide = events_to_wide(
        make(
            [
                (1, "2020-01-01 00:00", "Heart Rate", "100"),
                (1, "2020-01-01 00:00", "Heart Rate", "86"),
                (1, "2020-01-01 00:00", "Glascow coma scale eye opening", "To Speech"),
                (1, "2020-01-01 00:00", "Glascow coma scale eye opening", "Spontaneously"),
                (1, "2020-01-01 00:00", "Mean blood pressure", "77"),
                (1, "2020-01-01 00:00", "Mean blood pressure", "120"),
            ]
        ),
        mode="medfuse",
    )
    assert wide["Heart Rate"].tolist() == ["86"]
    assert wide["Glascow coma scale eye opening"].tolist() == ["To Speech"]
    assert wide["Mean blood pressure"].tolist() == ["77"]


def test_custom_key_empty_input_and_bad_variable() -> None:
    frame = make([(1, "2020-01-01 00:00", "Weight", "80.0")]).rename(columns={"stay_id": "hadm_id"})
    assert events_to_wide(frame, by="hadm_id", mode="medfuse")["Weight"].tolist() == ["80.0"]
    empty = events_to_wide(make([]), mode="medfuse")
    assert len(empty) == 0 and list(empty.columns) == ["stay_id", "charttime"] + list(CHANNELS)
    with pytest.raises(ValueError, match="unknown variable"):
        events_to_wide(make([(1, "2020-01-01 00:00", "Lactate", "2.0")]), mode="medfuse")


def reference_wide(frame: pd.DataFrame) -> dict[tuple[int, pd.Timestamp], dict[str, str]]:
    """Literal per-group loop: float max for cleaned variables, string max for the others."""
    numeric = {
        "Capillary refill rate",
        "Diastolic blood pressure",
        "Systolic blood pressure",
        "Fraction inspired oxygen",
        "Oxygen saturation",
        "Glucose",
        "pH",
        "Temperature",
        "Weight",
        "Height",
    }
    groups: dict[tuple[int, pd.Timestamp], dict[str, list[str]]] = {}
    for stay, time, variable, value in frame.itertuples(index=False):
        groups.setdefault((stay, time), {}).setdefault(variable, []).append(value)
    return {
        key: {v: (max(vals, key=float) if v in numeric else max(vals)) for v, vals in cells.items()}
        for key, cells in groups.items()
    }


def test_matches_literal_reference_on_random_events() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    variables = np.array(["Heart Rate", "Glucose", "Glascow coma scale eye opening", "Temperature", "pH"])
    var = variables[rng.integers(0, len(variables), n)]
    numbers = rng.choice([5.0, 7.3, 7.35, 36.6, 37.0, 98.0, 100.0, 120.5], n)
    strings = rng.choice(["86", "100", "9", "Spontaneously", "To Speech", "None"], n)
    cleaned_vars = np.isin(var, ["Glucose", "Temperature", "pH"])
    value = np.where(cleaned_vars, [repr(float(x)) for x in numbers], strings)
    frame = pd.DataFrame(
        {
            "stay_id": rng.integers(0, 20, n),
            "charttime": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="h"),
            "variable": var,
            "clean_value": value,
        }
    )
    wide = events_to_wide(frame, mode="medfuse")
    want = reference_wide(frame)
    assert list(zip(wide["stay_id"], wide["charttime"], strict=True)) == sorted(want)
    for row in wide.itertuples(index=False):
        cells = want[(row[0], row[1])]
        for name, cell in zip(CHANNELS, row[2:], strict=True):
            assert cell == cells.get(name, ""), (row[0], row[1], name)
