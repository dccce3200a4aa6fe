"""The EHR mode object: one constructor that checks the name, the two modes, one default everywhere (the
``ehr`` library's equals ``PrepareConfig.compat``'s), and a switch flipped alone."""

from __future__ import annotations

import dataclasses
import inspect

import pandas as pd
import pytest

from medcam_lab.config import PrepareConfig
from medcam_lab.ehr import (
    COMPAT_MODES,
    DEFAULT_MODE,
    CleanSwitches,
    Discretizer,
    EHRMode,
    Normalizer,
    clean_events,
    events_to_wide,
)
from medcam_lab.ehr.channels import CLEAN_POSSIBLE_VALUES, POSSIBLE_VALUES
from medcam_lab.ehr.itemids import ITEMID_TO_VARIABLE

SWITCHES = [f.name for f in dataclasses.fields(CleanSwitches)]


@pytest.mark.parametrize("bad", ["fixed", "Clean", "", None, 1])
def test_the_one_constructor_rejects_an_unknown_name_and_lists_the_modes(bad) -> None:
    with pytest.raises(ValueError, match="unknown compat") as error:
        EHRMode.of(bad)
    assert all(name in str(error.value) for name in COMPAT_MODES)
    with pytest.raises(ValueError, match="unknown compat"):
        EHRMode(bad, CleanSwitches())  # the dataclass itself checks too: there is no unchecked way in


@pytest.mark.parametrize("make", [lambda mode: Discretizer(mode=mode), lambda mode: clean_events(pd.DataFrame(), mode),
                                  lambda mode: events_to_wide(pd.DataFrame(), mode=mode),
                                  lambda mode: Normalizer.fit([], [], mode)])
def test_every_ehr_entry_point_checks_the_name_through_it(make) -> None:
    with pytest.raises(ValueError, match="unknown compat 'fixed'"):
        make("fixed")


def test_clean_has_every_switch_on_and_60_features() -> None:
    mode = EHRMode.of("clean")
    assert mode.name == "clean" and all(getattr(mode.switches, s) for s in SWITCHES)
    assert mode.layout.n_features == 60 and mode.layout.possible_values is CLEAN_POSSIBLE_VALUES
    assert mode.itemid_map() != ITEMID_TO_VARIABLE  # capillary refill items added, urine labs removed


def test_medfuse_has_every_switch_off_and_76_features() -> None:
    mode = EHRMode.of("medfuse")
    assert mode.name == "medfuse" and not any(getattr(mode.switches, s) for s in SWITCHES)
    assert mode.layout.n_features == 76 and mode.layout.possible_values is POSSIBLE_VALUES
    assert mode.itemid_map() == ITEMID_TO_VARIABLE


def test_a_mode_passes_through_and_equal_modes_compare_equal() -> None:
    mode = EHRMode.of("medfuse")
    assert EHRMode.of(mode) is mode and EHRMode.of("medfuse") == mode != EHRMode.of("clean")
    assert Discretizer(mode=mode).mode is mode and Discretizer(mode="medfuse").mode == mode
    assert {mode, EHRMode.of("medfuse")} == {mode}  # hashable (frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mode.name = "clean"  # type: ignore[misc]


def default_of(func) -> str:
    return EHRMode.of(inspect.signature(func).parameters["mode"].default).name


def test_the_library_default_is_the_prepare_default() -> None:
    """One default: what a notebook gets without naming a mode is what ``medcam-lab prepare`` writes."""
    default = PrepareConfig().compat
    assert DEFAULT_MODE == default == "clean" and EHRMode.of().name == default
    assert Discretizer().mode.name == default and len(Discretizer().feature_names) == 60
    for func in (clean_events, events_to_wide, Discretizer, Normalizer.fit):
        assert default_of(func) == default, func.__qualname__


def test_the_defaults_behave_as_clean() -> None:
    # FiO2 0.5 charted as a fraction: clean keeps it (divided only above 1), the reference divides it again
    fio2 = pd.DataFrame({"itemid": [223835], "value": ["0.5"], "valuenum": [0.5], "label": ["FiO2"],
                         "charttime": pd.to_datetime(["2020-01-01"])})
    assert clean_events(fio2)[0]["clean_value"].tolist() == clean_events(fio2, "clean")[0]["clean_value"].tolist()
    assert clean_events(fio2)[0]["clean_value"].tolist() == ["0.5"]
    assert clean_events(fio2, "medfuse")[0]["clean_value"].tolist() == ["0.005"]
    # two heart rates at one time: clean keeps the numeric maximum, the reference the string maximum
    ev = pd.DataFrame({"stay_id": [1, 1], "charttime": pd.to_datetime(["2020-01-01"] * 2),
                       "variable": ["Heart Rate"] * 2, "clean_value": ["100", "86"]})
    assert events_to_wide(ev)["Heart Rate"].tolist() == ["100"]
    assert events_to_wide(ev, mode="medfuse")["Heart Rate"].tolist() == ["86"]


@pytest.mark.parametrize("switch", SWITCHES)
def test_with_switches_flips_one_switch_and_keeps_name_and_layout(switch) -> None:
    for base in (EHRMode.of("medfuse"), EHRMode.of("clean")):
        flipped = base.with_switches(**{switch: not getattr(base.switches, switch)})
        assert flipped.name == base.name and flipped.layout is base.layout and flipped != base
        changed = {s for s in SWITCHES if getattr(flipped.switches, s) != getattr(base.switches, s)}
        assert changed == {switch}
    with pytest.raises(TypeError):
        EHRMode.of("clean").with_switches(no_such_switch=True)


def test_a_flipped_switch_behaves_as_before() -> None:
    """The reference with ``fio2_fraction_above_one`` alone on: only that fix applies (no valid ranges, so
    the out-of-range 0.1 stays, which full clean mode drops)."""
    frame = pd.DataFrame({"itemid": [223835] * 3, "value": ["50", "0.5", "0.1"], "valuenum": [50, 0.5, 0.1],
                          "label": ["FiO2"] * 3, "charttime": pd.to_datetime(["2020-01-01"] * 3)})

    def values(mode) -> list[str]:
        return clean_events(frame, mode)[0]["clean_value"].tolist()

    assert values("medfuse") == ["0.5", "0.005", "0.001"]
    assert values(EHRMode.of("medfuse").with_switches(fio2_fraction_above_one=True)) == ["0.5", "0.5", "0.1"]
    assert values("clean") == ["0.5", "0.5"]
    assert values(EHRMode.of("clean").with_switches(valid_ranges=False)) == ["0.5", "0.5", "0.1"]


def test_the_channels_without_a_mimic_iv_item_are_those_the_item_table_names():
    """``UNMAPPED_CHANNELS`` (always imputed in ``medfuse`` mode): no item id of the mode's map reaches them;
    ``clean`` maps the capillary refill items and derives GCS total from its components instead."""
    from medcam_lab.ehr.channels import CHANNELS
    from medcam_lab.ehr.itemids import UNMAPPED_CHANNELS

    medfuse = set(EHRMode.of("medfuse").itemid_map().values())
    assert set(CHANNELS) - medfuse == set(UNMAPPED_CHANNELS)
    assert set(CHANNELS) - set(EHRMode.of("clean").itemid_map().values()) == {"Glascow coma scale total"}
