"""Discretizer tests: every rule of spec ``ehr.md`` §2 on hand-made episodes with hand-computed arrays,
plus a slow literal reference (a per-row loop written from the spec) checked on random episodes; all in
``mode="medfuse"`` (the reference), asked for by name since ``clean`` is the default."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from medcam_lab.ehr import CONTINUOUS_FEATURE_INDICES, Discretizer, feature_names

# ---- literal configuration, copied from the spec's §1 table (not from the code under test) ----------

CONFIG: list[tuple[str, list[str] | None, str]] = [
    ("Capillary refill rate", ["0.0", "1.0"], "0.0"),
    ("Diastolic blood pressure", None, "59.0"),
    ("Fraction inspired oxygen", None, "0.21"),
    (
        "Glascow coma scale eye opening",
        [
            "To Pain",
            "3 To speech",
            "1 No Response",
            "4 Spontaneously",
            "None",
            "To Speech",
            "Spontaneously",
            "2 To pain",
        ],
        "4 Spontaneously",
    ),
    (
        "Glascow coma scale motor response",
        [
            "1 No Response",
            "3 Abnorm flexion",
            "Abnormal extension",
            "No response",
            "4 Flex-withdraws",
            "Localizes Pain",
            "Flex-withdraws",
            "Obeys Commands",
            "Abnormal Flexion",
            "6 Obeys Commands",
            "5 Localizes Pain",
            "2 Abnorm extensn",
        ],
        "6 Obeys Commands",
    ),
    (
        "Glascow coma scale total",
        ["11", "10", "13", "12", "15", "14", "3", "5", "4", "7", "6", "9", "8"],
        "15",
    ),
    (
        "Glascow coma scale verbal response",
        [
            "1 No Response",
            "No Response",
            "Confused",
            "Inappropriate Words",
            "Oriented",
            "No Response-ETT",
            "5 Oriented",
            "Incomprehensible sounds",
            "1.0 ET/Trach",
            "4 Confused",
            "2 Incomp sounds",
            "3 Inapprop words",
        ],
        "5 Oriented",
    ),
    ("Glucose", None, "128.0"),
    ("Heart Rate", None, "86"),
    ("Height", None, "170.0"),
    ("Mean blood pressure", None, "77.0"),
    ("Oxygen saturation", None, "98.0"),
    ("Respiratory rate", None, "19"),
    ("Systolic blood pressure", None, "118.0"),
    ("Temperature", None, "36.6"),
    ("Weight", None, "81.0"),
    ("pH", None, "7.4"),
]
NAMES = [c[0] for c in CONFIG]

HR, SBP, EYE, VERBAL, TOTAL, CAP = (
    "Heart Rate",
    "Systolic blood pressure",
    "Glascow coma scale eye opening",
    "Glascow coma scale verbal response",
    "Glascow coma scale total",
    "Capillary refill rate",
)
# literal column positions (spec §1)
C_HR, C_SBP, C_EYE, C_VERBAL, C_TOTAL, C_CAP = 50, 55, 4, 37, 24, 0
M_HR, M_SBP, M_EYE, M_VERBAL, M_TOTAL = 59 + 8, 59 + 13, 59 + 3, 59 + 6, 59 + 5
# the 59 value columns of an all-normal bin (spec §1 normal values), nonzero entries only
NORMAL_ROW = {
    0: 1.0,
    2: 59.0,
    3: 0.21,
    7: 1.0,
    21: 1.0,
    28: 1.0,
    43: 1.0,
    49: 128.0,
    50: 86.0,
    51: 170.0,
    52: 77.0,
    53: 98.0,
    54: 19.0,
    55: 118.0,
    56: 36.6,
    57: 81.0,
    58: 7.4,
}


def episode(rows: list[tuple[float, dict[str, str]]]) -> pd.DataFrame:
    """Episode frame with ``Hours`` and every channel as a string column ("" = not measured)."""
    data = {"Hours": [h for h, _ in rows]}
    for name in NAMES:
        data[name] = [cells.get(name, "") for _, cells in rows]
    return pd.DataFrame(data)


def zeros(n_bins: int, width: int = 76) -> np.ndarray:
    return np.zeros((n_bins, width), dtype=np.float32)


def normals(n_bins: int) -> np.ndarray:
    out = zeros(n_bins)
    for col, v in NORMAL_ROW.items():
        out[:, col] = v
    return out


def check(values: np.ndarray, expected: np.ndarray) -> None:
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, expected.astype(np.float32))


# ---- layout -----------------------------------------------------------------------------------------


def test_feature_names_layout() -> None:
    names = feature_names()
    assert len(names) == 76 and len(feature_names(store_masks=False)) == 59
    assert names[:4] == [
        "Capillary refill rate->0.0",
        "Capillary refill rate->1.0",
        "Diastolic blood pressure",
        "Fraction inspired oxygen",
    ]
    assert names[4] == "Glascow coma scale eye opening->To Pain"
    assert names[11] == "Glascow coma scale eye opening->2 To pain"
    assert names[12] == "Glascow coma scale motor response->1 No Response"
    assert names[24:27] == [
        "Glascow coma scale total->11",
        "Glascow coma scale total->10",
        "Glascow coma scale total->13",
    ]
    assert names[36] == "Glascow coma scale total->8"
    assert names[45] == "Glascow coma scale verbal response->1.0 ET/Trach"
    assert names[49:59] == [
        "Glucose",
        "Heart Rate",
        "Height",
        "Mean blood pressure",
        "Oxygen saturation",
        "Respiratory rate",
        "Systolic blood pressure",
        "Temperature",
        "Weight",
        "pH",
    ]
    assert names[59:] == [f"mask->{n}" for n in NAMES]
    assert list(CONTINUOUS_FEATURE_INDICES) == [2, 3, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58]
    expected = []
    for name, values, _ in CONFIG:
        expected += [f"{name}->{v}" for v in values] if values else [name]
    assert names[:59] == expected
    assert Discretizer(mode="medfuse").transform(episode([(1.0, {})]))[1] == names


def test_store_masks_false_gives_59_columns() -> None:
    values, names = Discretizer(mode="medfuse", store_masks=False, impute_strategy="zero").transform(
        episode([(0.5, {HR: "70"})]), end=2.0
    )
    expected = zeros(1, 59)
    expected[0, C_HR] = 70
    check(values, expected)
    assert names == feature_names(store_masks=False)


def test_defaults_and_unknown_mode() -> None:
    d = Discretizer()
    assert (d.timestep, d.impute_strategy, d.start_time, d.store_masks) == (2.0, "previous", "zero", True)
    assert d.mode.name == "clean" and len(d.feature_names) == 60
    with pytest.raises(ValueError, match="unknown compat 'fixed'"):
        Discretizer(mode="fixed")
    with pytest.raises(ValueError):
        Discretizer(mode="medfuse", impute_strategy="mean")
    with pytest.raises(ValueError):
        Discretizer(mode="medfuse", start_time="first")


# ---- number of bins ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestep, end, n_bins",
    [
        (2.0, 48.0, 24),  # exact multiple k*ts -> k bins
        (1.0, 48.0, 48),
        (2.0, 47.0, 24),  # ceil(23.5)
        (2.0, 5.0, 3),
        (2.0, 0.1, 1),
        (0.8, 2.4, 3),
        (2.0, 4.000001, 2),  # 2.0000005 + 1 - 1e-6 truncates to 2
        (2.0, 4.00001, 3),
    ],
)
def test_number_of_bins_with_end(timestep: float, end: float, n_bins: int) -> None:
    values, _ = Discretizer(mode="medfuse", timestep=timestep, impute_strategy="zero").transform(
        episode([(0.05, {})]), end=end
    )
    assert values.shape == (n_bins, 76)
    check(values, zeros(n_bins))


def test_number_of_bins_from_last_row_including_empty_rows() -> None:
    # max(t) = 5.0 comes from an empty row: span 5 -> 3 bins at ts 2
    values, _ = Discretizer(mode="medfuse", impute_strategy="zero").transform(episode([(0.5, {HR: "70"}), (5.0, {})]))
    expected = zeros(3)
    expected[0, C_HR], expected[0, M_HR] = 70, 1
    check(values, expected)


def test_span_zero_gives_zero_bins_and_fails_the_bin_check() -> None:
    # span 0 -> 0 bins; the single row then lands in bin 0, which is not in [0, 0)
    with pytest.raises(ValueError, match=r"row 0 \(Hours 5.0\)"):
        Discretizer(mode="medfuse", start_time="relative").transform(episode([(5.0, {})]))
    with pytest.raises(ValueError, match="row 0"):
        Discretizer(mode="medfuse").transform(episode([(0.0, {HR: "70"})]))


def test_zero_bins_when_every_row_is_after_end() -> None:
    # relative, end before the first row: span -1 -> int(0.4999..) = 0 bins, the row is skipped
    values, _ = Discretizer(mode="medfuse", start_time="relative").transform(episode([(5.0, {HR: "70"})]), end=4.0)
    assert values.shape == (0, 76)


# ---- bin assignment ---------------------------------------------------------------------------------


def test_bins_are_right_closed() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="zero").transform(
        episode([(2.0, {HR: "70"}), (2.01, {HR: "80"}), (4.0, {SBP: "120"})]), end=6.0
    )
    expected = zeros(3)
    expected[0, C_HR] = 70
    expected[1, C_HR] = 80
    expected[1, C_SBP] = 120  # 4.0 h is in (2, 4] -> bin 1
    expected[0, M_HR] = expected[1, M_HR] = expected[1, M_SBP] = 1
    check(values, expected)


def test_negative_hours_within_one_step_go_to_bin_zero() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="zero").transform(
        episode([(-1.9999, {HR: "60"}), (-1.5, {SBP: "100"}), (0.0, {}), (3.0, {HR: "70"})]), end=4.0
    )
    expected = zeros(2)
    expected[0, C_HR], expected[0, C_SBP], expected[1, C_HR] = 60, 100, 70
    expected[0, M_HR] = expected[0, M_SBP] = expected[1, M_HR] = 1
    check(values, expected)


@pytest.mark.parametrize("hour", [-2.0, -3.5])
def test_hours_at_or_before_minus_one_step_raise(hour: float) -> None:
    with pytest.raises(ValueError, match=r"row 0 \(Hours"):
        Discretizer(mode="medfuse", timestep=2.0).transform(episode([(hour, {HR: "70"}), (1.0, {})]), end=4.0)


def test_rows_after_end_are_skipped_even_if_invalid() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="zero").transform(
        episode([(4.0, {HR: "70"}), (4.0000005, {SBP: "110"}), (4.5, {HR: "99", EYE: "4"})]), end=4.0
    )
    expected = zeros(2)
    expected[1, C_HR], expected[1, C_SBP] = 70, 110  # within span + eps -> kept, bin 1
    expected[1, M_HR] = expected[1, M_SBP] = 1
    check(values, expected)


def test_last_row_in_bin_wins_per_channel() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="zero").transform(
        episode([(0.5, {HR: "70", SBP: "100"}), (1.0, {SBP: "110"}), (1.5, {HR: "90"}), (1.9, {})]), end=2.0
    )
    expected = zeros(1)
    expected[0, C_HR], expected[0, C_SBP] = 90, 110
    expected[0, M_HR] = expected[0, M_SBP] = 1
    check(values, expected)


def test_categorical_write_rewrites_whole_block() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="zero").transform(
        episode([(0.5, {EYE: "Spontaneously"}), (1.0, {EYE: "To Pain"}), (3.0, {EYE: "4 Spontaneously"})]),
        end=4.0,
    )
    expected = zeros(2)
    expected[0, 4] = 1  # "To Pain" only; "Spontaneously" (col 10) cleared
    expected[1, 7] = 1  # CareVue alias "4 Spontaneously" is its own column
    expected[:, M_EYE] = 1
    check(values, expected)


# ---- imputation -------------------------------------------------------------------------------------

IMPUTE_EPISODE = [(1.5, {HR: "70", VERBAL: "Confused"}), (3.5, {HR: "90.50"})]  # bins 1 and 3 of 5


def _impute_expected(hr: list[float], verbal_col: list[int]) -> np.ndarray:
    out = normals(5)
    out[:, C_HR] = hr
    out[:, C_VERBAL : C_VERBAL + 12] = 0
    for b, col in enumerate(verbal_col):
        out[b, col] = 1
    out[1, M_HR] = out[3, M_HR] = out[1, M_VERBAL] = 1
    return out


def test_impute_zero() -> None:
    disc = Discretizer(mode="medfuse", timestep=1.0, impute_strategy="zero")
    values, _ = disc.transform(episode(IMPUTE_EPISODE), end=5.0)
    expected = zeros(5)
    expected[1, C_HR], expected[3, C_HR] = 70, 90.5
    expected[1, 39] = 1  # verbal "Confused"
    expected[1, M_HR] = expected[3, M_HR] = expected[1, M_VERBAL] = 1
    check(values, expected)


def test_impute_normal_value() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=1.0, impute_strategy="normal_value").transform(
        episode(IMPUTE_EPISODE), end=5.0
    )
    check(values, _impute_expected([86, 70, 86, 90.5, 86], [43, 39, 43, 43, 43]))


def test_impute_previous() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=1.0, impute_strategy="previous").transform(
        episode(IMPUTE_EPISODE), end=5.0
    )
    check(values, _impute_expected([86, 70, 70, 90.5, 90.5], [43, 39, 39, 39, 39]))


def test_impute_next() -> None:
    disc = Discretizer(mode="medfuse", timestep=1.0, impute_strategy="next")
    values, _ = disc.transform(episode(IMPUTE_EPISODE), end=5.0)
    check(values, _impute_expected([70, 70, 90.5, 90.5, 86], [39, 39, 43, 43, 43]))


def test_previous_carries_the_raw_categorical_string() -> None:
    # MetaVision spelling carried forward stays in its own column (col 10), never the normal's col 7
    values, _ = Discretizer(mode="medfuse", timestep=1.0).transform(episode([(1.0, {EYE: "Spontaneously"})]), end=3.0)
    expected = normals(3)
    expected[:, C_EYE : C_EYE + 8] = 0
    expected[:, 10] = 1
    expected[0, M_EYE] = 1
    check(values, expected)


# ---- start time -------------------------------------------------------------------------------------


def test_start_time_relative_and_zero() -> None:
    rows = [(10.0, {HR: "60"}), (11.0, {HR: "70"}), (13.5, {HR: "80"})]
    disc = Discretizer(mode="medfuse", timestep=2.0, start_time="relative", impute_strategy="zero")
    rel, _ = disc.transform(episode(rows))
    expected = zeros(2)  # span 3.5 -> 2 bins; 0 and 1 h -> bin 0, 3.5 h -> bin 1
    expected[0, C_HR], expected[1, C_HR] = 70, 80
    expected[:, M_HR] = 1
    check(rel, expected)
    disc = Discretizer(mode="medfuse", timestep=2.0, start_time="zero", impute_strategy="zero")
    zero, _ = disc.transform(episode(rows))
    expected = zeros(7)  # span 13.5 -> 7 bins; 10 h -> bin 4, 11 h -> 5, 13.5 h -> 6
    expected[4, C_HR], expected[5, C_HR], expected[6, C_HR] = 60, 70, 80
    expected[4:, M_HR] = 1
    check(zero, expected)


def test_start_time_relative_uses_first_row_not_min() -> None:
    # second row is earlier by < eps (allowed). first=1.0000008 -> span 1.0000004 -> 1 bin, all rows in
    # bin 0; with min=1.0 it would be span 1.0000012 -> 2 bins.
    rows = [(1.0000008, {HR: "60"}), (1.0, {HR: "70"}), (2.0000012, {HR: "80"})]
    values, _ = Discretizer(mode="medfuse", timestep=1.0, start_time="relative", impute_strategy="zero").transform(
        episode(rows)
    )
    expected = zeros(1)
    expected[0, C_HR], expected[0, M_HR] = 80, 1
    check(values, expected)


def test_relative_with_end() -> None:
    values, _ = Discretizer(mode="medfuse", timestep=2.0, start_time="relative", impute_strategy="zero").transform(
        episode([(5.0, {HR: "60"}), (9.5, {HR: "70"})]), end=8.0
    )
    expected = zeros(2)  # span 3 -> 2 bins; the 9.5 h row (4.5 > 3) is skipped
    expected[0, C_HR], expected[0, M_HR] = 60, 1
    check(values, expected)


# ---- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "channel, bad",
    [(EYE, "4"), (CAP, "0"), (TOTAL, "15.0"), ("Glascow coma scale motor response", "6"), (VERBAL, "5")],
)
def test_unknown_category_raises(channel: str, bad: str) -> None:
    frame = episode([(0.5, {}), (1.0, {channel: bad})])
    with pytest.raises(ValueError) as info:
        Discretizer(mode="medfuse").transform(frame, end=2.0)
    message = str(info.value)
    assert channel in message and repr(bad) in message and "row 1" in message


def test_numeric_cells_become_reference_strings() -> None:
    frame = pd.DataFrame({"Hours": [0.5, 2.5], CAP: [1.0, np.nan], TOTAL: [15, 11], HR: [70.0, np.nan]})
    values, _ = Discretizer(mode="medfuse", impute_strategy="zero").transform(frame, end=4.0)
    expected = zeros(2)
    expected[0, 1] = 1  # float 1.0 -> "1.0"
    expected[0, 28], expected[1, 24] = 1, 1  # int 15 -> "15", 11 -> "11"
    expected[0, C_HR] = 70
    expected[0, 59] = expected[0, M_TOTAL] = expected[1, M_TOTAL] = expected[0, M_HR] = 1
    check(values, expected)
    with pytest.raises(ValueError, match="'15.0'"):
        Discretizer(mode="medfuse").transform(pd.DataFrame({"Hours": [0.5], TOTAL: [15.0]}), end=2.0)


def test_non_decreasing_hours() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        Discretizer(mode="medfuse").transform(episode([(1.0, {}), (0.5, {})]), end=2.0)
    values, _ = Discretizer(mode="medfuse").transform(episode([(1.0, {}), (0.9999995, {})]), end=2.0)  # within eps
    assert values.shape == (1, 76)


def test_batch_errors_name_the_episode() -> None:
    table = pd.concat(
        [
            episode([(0.5, {HR: "60"})]).assign(stay_id=11),
            episode([(0.5, {}), (1.0, {EYE: "4"})]).assign(stay_id=22),
        ]
    )
    with pytest.raises(ValueError, match="episode 22.*row 1"):
        Discretizer(mode="medfuse").transform_batch(table, end=4.0)
    with pytest.raises(ValueError, match="episode 22"):
        Discretizer(mode="medfuse").transform_batch(table, end={11: 4.0})


# ---- slow literal reference (spec §2, one row at a time, lists of strings) ----------------------------


def reference_transform(
    rows: list[list[str]], timestep: float, impute: str, start: str, masks: bool, end: float | None
) -> np.ndarray:
    eps = 1e-6
    for k in range(len(rows) - 1):
        if not float(rows[k][0]) < float(rows[k + 1][0]) + eps:
            raise ValueError("times")
    begin, pos = [], 0
    for _, values, _ in CONFIG:
        begin.append(pos)
        pos += len(values) if values else 1
    first = float(rows[0][0]) if start == "relative" else 0.0
    span = (end - first) if end is not None else max(float(r[0]) for r in rows) - first
    n_bins = int(span / timestep + 1.0 - eps)
    if n_bins < 0:
        raise ValueError("negative bins")
    data = [[0.0] * pos for _ in range(n_bins)]
    mask = [[0] * len(CONFIG) for _ in range(n_bins)]
    raw = [[""] * len(CONFIG) for _ in range(n_bins)]

    def write(b: int, j: int, s: str) -> None:
        values = CONFIG[j][1]
        if values is None:
            data[b][begin[j]] = float(s)
        else:
            idx = values.index(s)  # ValueError when unknown
            for k in range(len(values)):
                data[b][begin[j] + k] = 0.0
            data[b][begin[j] + idx] = 1.0

    for row in rows:
        t = float(row[0]) - first
        if t > span + eps:
            continue
        b = int(t / timestep - eps)
        if not 0 <= b < n_bins:
            raise ValueError("bin")
        for j in range(len(CONFIG)):
            s = row[j + 1]
            if s == "":
                continue
            mask[b][j] = 1
            raw[b][j] = s
            write(b, j, s)

    if impute != "zero":
        for j in range(len(CONFIG)):
            order = range(n_bins) if impute != "next" else range(n_bins - 1, -1, -1)
            carried: list[str] = []
            for b in order:
                if mask[b][j] == 1:
                    carried.append(raw[b][j])
                    continue
                if impute == "normal_value" or not carried:
                    write(b, j, CONFIG[j][2])
                else:
                    write(b, j, carried[-1])
    out = [data[b] + ([float(m) for m in mask[b]] if masks else []) for b in range(n_bins)]
    return np.array(out, dtype=np.float32).reshape(n_bins, pos + (len(CONFIG) if masks else 0))


CONT_STRINGS = ["86", "98.6", "0.5", "120", "7.35", "36.60", "1e2", "-3"]


def random_episode(rng: random.Random, timestep: float) -> tuple[list[list[str]], float | None]:
    n = rng.randint(1, 12)
    hours = sorted(round(rng.uniform(-timestep + 0.01, 20.0), 2) for _ in range(n))
    if rng.random() < 0.3:
        hours = sorted(hours + [timestep * rng.randint(0, 8)] * rng.randint(1, 2))  # exact multiples
    rows = []
    for h in hours:
        row = [repr(h)]
        for _, values, _ in CONFIG:
            if rng.random() < 0.6:
                row.append("")
            else:
                row.append(rng.choice(values) if values else rng.choice(CONT_STRINGS))
        rows.append(row)
    end = None if rng.random() < 0.4 else round(rng.uniform(max(hours) - 6.0, max(hours) + 6.0), 2)
    return rows, end


def rows_to_frame(rows: list[list[str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["Hours"] + NAMES)
    frame["Hours"] = frame["Hours"].astype(float)
    return frame


@pytest.mark.parametrize("impute", ["zero", "normal_value", "previous", "next"])
@pytest.mark.parametrize("start, timestep", [("zero", 2.0), ("relative", 0.8)])
def test_matches_literal_reference_on_random_episodes(impute: str, start: str, timestep: float) -> None:
    rng = random.Random(f"{impute}-{start}-{timestep}")
    disc = Discretizer(mode="medfuse", timestep=timestep, impute_strategy=impute, start_time=start, store_masks=True)
    batch_frames, batch_ends, expected = [], {}, {}
    for i in range(200):
        rows, end = random_episode(rng, timestep)
        try:
            want = reference_transform(rows, timestep, impute, start, True, end)
        except ValueError:
            with pytest.raises(ValueError):
                disc.transform(rows_to_frame(rows), end=end)
            continue
        got, _ = disc.transform(rows_to_frame(rows), end=end)
        np.testing.assert_array_equal(got, want, err_msg=f"episode {i}: {rows} end={end}")
        batch_frames.append(rows_to_frame(rows).assign(stay_id=1000 + i))
        batch_ends[1000 + i] = end
        expected[1000 + i] = want
    assert len(expected) > 150
    table = pd.concat(batch_frames, ignore_index=True)
    got_batch = disc.transform_batch(table, by="stay_id", end=batch_ends)
    assert list(got_batch) == list(expected)
    for key, want in expected.items():
        np.testing.assert_array_equal(got_batch[key], want, err_msg=f"episode {key}")


def test_batch_with_interleaved_episodes_and_scalar_end() -> None:
    rng = random.Random(7)
    disc = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="previous", store_masks=False)
    frames = []
    for i in range(30):
        rows, _ = random_episode(rng, 2.0)
        rows = [r for r in rows if float(r[0]) <= 20.0]
        frames.append(rows_to_frame(rows).assign(stay_id=f"s{i}", _k=np.arange(len(rows))))
    table = pd.concat(frames, ignore_index=True).sort_values(["_k", "stay_id"], kind="stable")
    got = disc.transform_batch(table, end=20.0)
    assert sorted(got) == sorted(f"s{i}" for i in range(30))
    for frame in frames:
        key = frame["stay_id"].iloc[0]
        np.testing.assert_array_equal(got[key], disc.transform(frame, end=20.0)[0])
        rows = frame.drop(columns=["stay_id", "_k"]).astype(str).values.tolist()
        np.testing.assert_array_equal(
            got[key], reference_transform(rows, 2.0, "previous", "zero", False, 20.0)
        )


def test_batch_end_none_and_numeric_columns() -> None:
    table = pd.DataFrame({"stay_id": [1, 1, 2], "Hours": [0.5, 3.0, 1.0], HR: [70.0, np.nan, 80.0]})
    got = Discretizer(mode="medfuse", impute_strategy="zero").transform_batch(table)
    assert got[1].shape == (2, 76) and got[2].shape == (1, 76)
    assert got[1][0, C_HR] == 70 and got[1][1, C_HR] == 0 and got[2][0, C_HR] == 80


@pytest.mark.parametrize("storage", ["pyarrow", "python", "object"])
def test_every_string_storage_gives_the_reference_output(storage: str) -> None:
    """Arrow-backed strings take a separate encoding path; Python strings and objects must agree with it."""
    rng = random.Random(f"storage-{storage}")
    frames, expected = [], {}
    for i in range(40):
        rows, _ = random_episode(rng, 2.0)
        rows = [r for r in rows if float(r[0]) <= 20.0]
        expected[i] = reference_transform(rows, 2.0, "previous", "zero", True, 20.0)
        frames.append(rows_to_frame(rows).assign(stay_id=i))
    table = pd.concat(frames, ignore_index=True)
    dtype = object if storage == "object" else pd.StringDtype(storage)
    for name in NAMES:
        table[name] = table[name].astype(dtype)
        if storage != "object":
            table.loc[table[name] == "", name] = pd.NA  # missing and empty cells are both "not measured"
    assert all(table[name].dtype == dtype for name in NAMES)
    got = Discretizer(mode="medfuse", timestep=2.0, impute_strategy="previous").transform_batch(table, end=20.0)
    for key, want in expected.items():
        np.testing.assert_array_equal(got[key], want, err_msg=f"episode {key}")


def test_threaded_channel_reading_equals_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large tables read their channels on several threads; outputs and the first error must not change."""
    import medcam_lab.ehr.discretizer as discretizer_module

    rng = random.Random("threads")
    frames = []
    for i in range(900):
        rows, _ = random_episode(rng, 2.0)
        frames.append(rows_to_frame([r for r in rows if float(r[0]) <= 20.0]).assign(stay_id=i))
    table = pd.concat(frames, ignore_index=True)
    table = pd.concat([table] * max(1, 120_000 // (17 * len(table)) + 1), ignore_index=True)  # > 100k cells
    table["stay_id"] = np.arange(len(table)) // 7  # regroup: 7 rows per episode, hours sorted within
    table["Hours"] = table.groupby("stay_id").cumcount().astype(float) * 1.5
    assert len(table) * 17 > 100_000
    disc = Discretizer(timestep=2.0, impute_strategy="previous", mode="clean")
    monkeypatch.setattr(discretizer_module.os, "cpu_count", lambda: 4)  # the threaded path even on one core
    pools = []
    real_pool = discretizer_module.ThreadPoolExecutor
    monkeypatch.setattr(discretizer_module, "ThreadPoolExecutor",
                        lambda **kwargs: pools.append(kwargs["max_workers"]) or real_pool(**kwargs))
    monkeypatch.setattr(discretizer_module, "ENCODE_THREADS", 4)
    threaded = disc.transform_batch(table, end=12.0)
    assert pools == [4]
    threaded_unknown = dict(disc.unknown_values)
    monkeypatch.setattr(discretizer_module, "ENCODE_THREADS", 1)
    disc.unknown_values.clear()
    single = disc.transform_batch(table, end=12.0)
    assert pools == [4]  # one thread: no pool
    assert list(threaded) == list(single) and dict(disc.unknown_values) == threaded_unknown
    for key in single:
        np.testing.assert_array_equal(threaded[key], single[key])

    broken = table.copy()
    broken.loc[[5, len(broken) - 3], "Glascow coma scale total"] = ["fifteen", "zero"]
    broken.loc[[7], "Heart Rate"] = "fast"
    messages = []
    for threads in (4, 1):
        monkeypatch.setattr(discretizer_module, "ENCODE_THREADS", threads)
        with pytest.raises(ValueError) as error:
            Discretizer(mode="medfuse", timestep=2.0).transform_batch(broken, end=12.0)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "fifteen" in messages[0]
