"""``clean`` mode (spec ``ehr.md`` §7): each named switch tested on its own against the reference
behaviour (the same switch off), with hand-computed expected values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medcam_lab.ehr import Discretizer, EHRMode, Normalizer, clean_events, events_to_wide
from medcam_lab.ehr.categories import canonical_category
from medcam_lab.ehr.channels import CLEAN_POSSIBLE_VALUES
from medcam_lab.ehr.ranges import VALID_RANGES

EYE, VERBAL, MOTOR, TOTAL, CAP = (
    "Glascow coma scale eye opening",
    "Glascow coma scale verbal response",
    "Glascow coma scale motor response",
    "Glascow coma scale total",
    "Capillary refill rate",
)
T0 = pd.Timestamp("2150-01-01 08:00")
MEDFUSE = EHRMode.of("medfuse")


def events(rows: list[tuple], times: list[float] | None = None) -> pd.DataFrame:
    """rows of (itemid, value, valuenum, label); one stay, charttimes T0 + times hours (default all T0)."""
    frame = pd.DataFrame(rows, columns=["itemid", "value", "valuenum", "label"])
    frame["valuenum"] = pd.to_numeric(frame["valuenum"], errors="coerce")
    frame["stay_id"] = 7
    frame["charttime"] = [T0 + pd.Timedelta(hours=h) for h in (times or [0.0] * len(frame))]
    return frame


def only(**on: bool) -> EHRMode:
    """The reference (every switch off) with the named switches on."""
    return MEDFUSE.with_switches(**on)


def values_of(frame: pd.DataFrame, mode: EHRMode) -> list[str]:
    kept, _ = clean_events(frame, mode=mode)
    return kept["clean_value"].tolist()


def test_modes_differ_only_by_the_switches() -> None:
    assert set(EHRMode.of("clean").switches.to_dict().values()) == {True}
    assert set(MEDFUSE.switches.to_dict().values()) == {False}
    with pytest.raises(ValueError, match="unknown compat"):
        EHRMode.of("strict")


def test_layout_of_clean_mode() -> None:
    layout = EHRMode.of("clean").layout
    assert [len(CLEAN_POSSIBLE_VALUES[c]) for c in (CAP, EYE, MOTOR, TOTAL, VERBAL)] == [2, 4, 6, 13, 6]
    assert layout.num_value_columns == 2 + 1 + 1 + 4 + 6 + 13 + 6 + 10 and layout.n_features == 60
    names = layout.feature_names()
    assert names[4:8] == [f"{EYE}->1 No Response", f"{EYE}->2 To Pain", f"{EYE}->3 To Speech",
                          f"{EYE}->4 Spontaneously"]
    assert names[-1] == "mask->pH" and EHRMode.of("medfuse").layout.n_features == 76


# ---- canonical_gcs + numeric_codes --------------------------------------------------------------------


@pytest.mark.parametrize("channel, spellings, canonical", [
    (EYE, ["Spontaneously", "4 Spontaneously", " spontaneously ", "4", "4.0"], "4 Spontaneously"),
    (EYE, ["None", "1 No Response", "No Response", "1"], "1 No Response"),
    (EYE, ["To Pain", "2 To pain"], "2 To Pain"),
    (VERBAL, ["No Response-ETT", "1.0 ET/Trach"], "ET/Trach"),
    (VERBAL, ["Incomprehensible sounds", "2 Incomp sounds", "2"], "2 Incomprehensible sounds"),
    (MOTOR, ["Abnormal extension", "2 Abnorm extensn"], "2 Abnormal extension"),
    (MOTOR, ["Obeys Commands", "6 Obeys Commands", "6.0"], "6 Obeys Commands"),
    (TOTAL, ["15", "15.0"], "15"),
    (CAP, ["Normal <3 Seconds", "Brisk", "0", "0.0"], "Normal <3 secs"),
    (CAP, ["Abnormal >3 Seconds", "Delayed", "1"], "Abnormal >3 secs"),
])
def test_aliases_and_numeric_codes_merge_into_one_category(channel, spellings, canonical) -> None:
    assert {canonical_category(channel, s) for s in spellings} == {canonical}


@pytest.mark.parametrize("channel, text", [(EYE, "5"), (EYE, "2.5"), (TOTAL, "2"), (TOTAL, "16"), (VERBAL, "6"),
                                           (EYE, "Eyes wide shut"), (CAP, "2")])
def test_out_of_scale_codes_and_unknown_strings_are_unknown(channel, text) -> None:
    assert canonical_category(channel, text) is None


def test_switch_canonical_gcs() -> None:
    frame = events([(220739, "Spontaneously", None, "GCS - Eye Opening"), (220739, "Eyes wide shut", None, "x")])
    # reference: raw strings kept (the unknown one survives cleaning and would crash the reference discretizer)
    assert values_of(frame, MEDFUSE) == ["Spontaneously", "Eyes wide shut"]
    kept, counts = clean_events(frame, mode=only(canonical_gcs=True))
    assert kept["clean_value"].tolist() == ["4 Spontaneously"]
    assert counts["dropped"] == {f"{EYE}: unknown category": 1}
    assert counts["unknown_categories"] == {f"{EYE}: 'Eyes wide shut'": 1}


def test_switch_numeric_codes() -> None:
    frame = events([(223901, "6", 6.0, "GCS - Motor Response")])
    _, counts = clean_events(frame, mode=only(canonical_gcs=True))
    assert counts["unknown_categories"] == {f"{MOTOR}: '6'": 1}
    assert values_of(frame, only(canonical_gcs=True, numeric_codes=True)) == ["6 Obeys Commands"]


def test_clean_discretizer_accepts_aliases_and_counts_unknown_strings() -> None:
    frame = pd.DataFrame({"Hours": [1.0, 3.0, 5.0], EYE: ["Spontaneously", "3", "Eyes wide shut"],
                          "Heart Rate": ["80", "ERROR", ""]})
    with pytest.raises(ValueError, match="unknown value '3'"):
        Discretizer(mode="medfuse").transform(frame.iloc[[1]], end=6.0)
    disc = Discretizer(mode="clean", impute_strategy="zero")
    values, names = disc.transform(frame, end=6.0)
    assert values.shape == (3, 60)
    eye = [names.index(f"{EYE}->{c}") for c in CLEAN_POSSIBLE_VALUES[EYE]]
    np.testing.assert_array_equal(values[:, eye], [[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert values[:, names.index(f"mask->{EYE}")].tolist() == [1.0, 1.0, 0.0]
    assert values[:, names.index("mask->Heart Rate")].tolist() == [1.0, 0.0, 0.0]
    assert disc.unknown_values == {(EYE, "Eyes wide shut"): 1, ("Heart Rate", "ERROR"): 1}


def test_clean_normal_values_are_the_top_scores() -> None:
    values, names = Discretizer(mode="clean", impute_strategy="normal_value").transform(
        pd.DataFrame({"Hours": [1.0]}), end=2.0)
    hot = {n for n, v in zip(names, values[0], strict=True) if "->" in n and not n.startswith("mask") and v == 1}
    assert hot == {f"{CAP}->Normal <3 secs", f"{EYE}->4 Spontaneously", f"{MOTOR}->6 Obeys Commands",
                   f"{TOTAL}->15", f"{VERBAL}->5 Oriented"}


# ---- items ---------------------------------------------------------------------------------------------


def test_switch_capillary_refill_items() -> None:
    frame = events([(223951, "Normal <3 Seconds", None, "Capillary Refill R"),
                    (224308, "Abnormal >3 Seconds", None, "Capillary Refill L")])
    kept, counts = clean_events(frame, mode=only(canonical_gcs=True))
    assert kept.empty and counts["dropped"] == {"(unmapped): unknown itemid": 2}
    assert values_of(frame, only(canonical_gcs=True, capillary_refill_items=True)) == [
        "Normal <3 secs", "Abnormal >3 secs"]


def test_switch_blood_only_labs() -> None:
    frame = events([(51478, "100", 100, "Glucose"), (50931, "120", 120, "Glucose"), (51491, "6.0", 6.0, "pH"),
                    (51094, "7.0", 7.0, "pH"), (50831, "7.1", 7.1, "pH"), (50820, "7.35", 7.35, "pH")])
    assert values_of(frame, MEDFUSE) == ["100.0", "120.0", "6.0", "7.0", "7.1", "7.35"]
    kept, counts = clean_events(frame, mode=only(blood_only_labs=True))
    assert kept["clean_value"].tolist() == ["120.0", "7.35"]
    assert counts["dropped"] == {"(unmapped): unknown itemid": 4}


# ---- derive_gcs_total --------------------------------------------------------------------------------


def test_switch_derive_gcs_total() -> None:
    frame = events(
        [(220739, "Spontaneously", None, "e"), (223900, "Confused", None, "v"), (223901, "Localizes Pain", None, "m"),
         (220739, "To Pain", None, "e"), (223900, "No Response-ETT", None, "v"), (223901, "Flex-withdraws", None, "m"),
         (220739, "To Speech", None, "e"), (223901, "Obeys Commands", None, "m")],
        times=[0, 0, 0, 1, 1, 1, 2, 2],
    )
    kept, counts = clean_events(frame, mode=only(canonical_gcs=True))
    assert TOTAL not in set(kept["variable"])
    kept, counts = clean_events(frame, mode=only(canonical_gcs=True, derive_gcs_total=True))
    totals = kept.loc[kept["variable"] == TOTAL]
    # 4 + 4 + 5 at 0 h; 1 h is intubated (no verbal score); at 2 h the verbal component is missing
    assert totals["clean_value"].tolist() == ["13"] and totals["charttime"].tolist() == [T0]
    assert counts["derived"] == {"GCS total: derived": 1, "GCS total: not derived, verbal ET/Trach": 1,
                                 "GCS total: not derived, component missing at that time": 1}
    assert kept.index.is_unique and len(kept) == len(frame) + 1


def test_derived_gcs_total_is_per_stay() -> None:
    frame = events([(220739, "Spontaneously", None, "e"), (223900, "Oriented", None, "v"),
                    (223901, "Obeys Commands", None, "m")])
    frame.loc[2, "stay_id"] = 8  # the motor score belongs to another stay: no total
    _, counts = clean_events(frame, mode="clean")
    assert counts["derived"]["GCS total: derived"] == 0


# ---- numbers ------------------------------------------------------------------------------------------


def test_switch_fio2_fraction_above_one() -> None:
    frame = events([(223835, "50", 50, "Inspired O2 Fraction"), (223835, "0.5", 0.5, "Inspired O2 Fraction"),
                    (223835, "100", 100, "Inspired O2 Fraction")])
    assert values_of(frame, MEDFUSE) == ["0.5", "0.005", "1.0"]
    assert values_of(frame, only(fio2_fraction_above_one=True)) == ["0.5", "0.5", "1.0"]


def test_switch_units_by_itemid() -> None:
    frame = events([(223761, "75.2", 75.2, "Temperature Fahrenheit"), (223762, "80", 80, "Temperature Celsius"),
                    (226707, "70", 70, "Height"), (226531, "200", 200, "Admission Weight (lbs.)"),
                    (224639, "90", 90, "Daily Weight")])
    # reference: 75.2 °F is kept as °C (< 79), 80 °C is "converted", inches are not converted
    ref = values_of(frame, MEDFUSE)
    assert ref[0] == "75.2" and float(ref[1]) == pytest.approx((80 - 32) * 5 / 9) and ref[2] == "70.0"
    assert float(ref[3]) == pytest.approx(200 * 0.453592)
    got = [float(v) for v in values_of(frame, only(units_by_itemid=True))]
    assert got == pytest.approx([(75.2 - 32) * 5 / 9, 80.0, 70 * 2.54, 200 * 0.453592, 90.0])


def test_switch_numeric_vitals() -> None:
    frame = events([(220045, "ERROR", None, "Heart Rate"), (220045, "086", 86, "Heart Rate"),
                    (220210, "18.0", 18, "Respiratory Rate")])
    assert values_of(frame, MEDFUSE) == ["ERROR", "086", "18.0"]
    kept, counts = clean_events(frame, mode=only(numeric_vitals=True))
    assert kept["clean_value"].tolist() == ["86.0", "18.0"]
    assert counts["dropped"] == {"Heart Rate: non-numeric value": 1}


def test_switch_valuenum_fallback() -> None:
    """MIMIC-IV v2.2 masks the value of every blood chemistry glucose (``___``) and keeps the number in
    valuenum: clean mode reads valuenum there; the reference (switch off) drops the row, under its own name."""
    frame = events([(50931, "___", 101, "Glucose"), (50931, "100", 100, "Glucose"), (50931, "___", None, "Glucose"),
                    (50820, "___", 7.31, "pH"), (220045, "___", 77, "Heart Rate"), (220179, "___", 120, "NBP s"),
                    (50809, "ERROR", None, "Glucose"), (220739, "___", 4, "GCS - Eye Opening")])
    kept, counts = clean_events(frame, mode=only(valuenum_fallback=True))
    # glucose, pH, systolic (cleaned) and heart rate (a raw string in the reference) read from valuenum; the
    # GCS text is no number to replace (categories are never masked values; the discretizer rejects it)
    assert sorted(zip(kept["itemid"], kept["clean_value"])) == [
        (50820, "7.31"), (50931, "100.0"), (50931, "101.0"), (220045, "77.0"), (220179, "120.0"), (220739, "___")]
    used = "value masked, valuenum used"
    assert counts["valuenum_fallback"] == {
        "Glucose": {"rows": 4, used: 1}, "Heart Rate": {"rows": 1, used: 1}, "pH": {"rows": 1, used: 1},
        "Systolic blood pressure": {"rows": 1, used: 1},
    }
    # a value without any valuenum is still non-numeric
    assert counts["dropped"] == {"Glucose: non-numeric value": 2}
    kept, counts = clean_events(frame, mode=MEDFUSE)
    assert sorted(zip(kept["itemid"], kept["clean_value"])) == [(50931, "100.0"), (220739, "___")]
    ignored = "value masked: dropped, valuenum ignored as in the reference"
    assert counts["valuenum_fallback"]["Glucose"] == {"rows": 4, ignored: 1}
    for variable in ("Glucose", "pH", "Heart Rate", "Systolic blood pressure"):
        assert counts["dropped"][f"{variable}: value '___': dropped, valuenum ignored as in the reference"] == 1
    assert counts["dropped"]["Glucose: non-numeric value"] == 2  # ``___`` and ``ERROR`` without valuenum


def test_switch_valid_ranges() -> None:
    frame = events([(220045, "0", 0, "Heart Rate"), (220045, "80", 80, "Heart Rate"), (220045, "301", 301, "HR"),
                    (223762, "98.6", 98.6, "Temperature Celsius"), (223835, "21", 21, "FiO2"),
                    (223835, "0.1", 0.1, "FiO2"), (50820, "9.1", 9.1, "pH")])
    no_ranges = EHRMode.of("clean").with_switches(valid_ranges=False)
    assert len(values_of(frame, no_ranges)) == 7
    kept, counts = clean_events(frame, mode="clean")
    assert kept["clean_value"].tolist() == ["80.0", "0.21"]
    assert counts["dropped"] == {
        "Fraction inspired oxygen: out of range [0.21, 1]": 1,
        "Heart Rate: out of range [10, 300]": 2,
        "Temperature: out of range [25, 45]": 1,
        "pH: out of range [6.5, 8]": 1,
    }


def test_valid_range_table_covers_every_continuous_channel() -> None:
    from medcam_lab.ehr.channels import CHANNELS, IS_CATEGORICAL

    assert set(VALID_RANGES) == {c for c in CHANNELS if not IS_CATEGORICAL[c]}
    assert all(r.low < r.high for r in VALID_RANGES.values())


# ---- normalizer_observed_only -------------------------------------------------------------------------


def test_switch_normalizer_observed_only() -> None:
    frame = pd.DataFrame({"Hours": [1.0, 7.0], "Heart Rate": ["60", "100"]})
    values, names = Discretizer(mode="clean", impute_strategy="previous").transform(frame, end=8.0)
    hr = names.index("Heart Rate")
    assert values[:, hr].tolist() == [60.0, 60.0, 60.0, 100.0]  # two imputed bins
    pooled = Normalizer.fit([values], names, mode=EHRMode.of("clean").with_switches(normalizer_observed_only=False))
    observed = Normalizer.fit([values], names, mode=only(normalizer_observed_only=True))
    assert not pooled.observed_only and observed.observed_only
    assert pooled.mean[hr] == pytest.approx(70.0) and pooled.std[hr] == pytest.approx(np.std([60] * 3 + [100], ddof=1))
    assert observed.mean[hr] == pytest.approx(80.0) and observed.std[hr] == pytest.approx(np.std([60, 100], ddof=1))
    # a channel never observed: mean 0, std 1, listed
    assert observed.mean[names.index("pH")] == 0.0 and observed.std[names.index("pH")] == 1.0
    assert "pH" in observed.unfitted
    assert Normalizer.from_dict(observed.to_dict()).unfitted == observed.unfitted


def test_clean_wide_table_keeps_the_numeric_maximum_and_best_category() -> None:
    ev = pd.DataFrame({"stay_id": [1] * 4, "charttime": [T0] * 4,
                       "variable": ["Heart Rate", "Heart Rate", TOTAL, TOTAL],
                       "clean_value": ["100.0", "86.0", "9", "15"]})
    wide = events_to_wide(ev, mode="clean")
    assert wide["Heart Rate"].tolist() == ["100.0"] and wide[TOTAL].tolist() == ["15"]
    assert events_to_wide(ev, mode="medfuse")["Heart Rate"].tolist() == ["86.0"]  # reference: string order
