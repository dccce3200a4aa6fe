"""MIMIC-IV item ids of the 17 channels, as the reference (medfuse) extraction maps them (spec §5).

The reference uses mimic3-benchmarks' ``itemid_to_variable_map.csv`` (rows with ``STATUS=ready``,
``COUNT>0`` and a LEVEL2 name among the 17 channels). That file was written for MIMIC-III; only the
item ids below can occur in MIMIC-IV (MetaVision ``22xxxx`` chart items in ``icu/chartevents``,
``50xxx``/``51xxx`` lab items in ``hosp/labevents``). The CareVue ids of the file never match MIMIC-IV
rows and are left out here.

Two channels have **no** MIMIC-IV item in medfuse mode, so on MIMIC-IV they are always imputed with
mask 0:

* ``Capillary refill rate``: only CareVue 3348, 115, 8377 are mapped; MIMIC-IV's 223951 / 224308 are
  not.
* ``Glascow coma scale total``: only CareVue 198 is mapped; MIMIC-IV charts the three components only.

Urine and other-body-fluid lab items are mapped onto the blood ``Glucose`` and ``pH`` channels (a
reference quirk, kept in medfuse mode; non-numeric results such as ``NEG`` are dropped by cleaning).

The ``note`` column is a short description for readers (and the unit where cleaning cares); cleaning
itself reads the item's label from ``d_items`` / ``d_labitems``, not this note.
"""

from __future__ import annotations

from typing import NamedTuple


class ItemId(NamedTuple):
    """One mapped MIMIC-IV item."""

    itemid: int
    variable: str
    table: str  # "chartevents" (icu/) or "labevents" (hosp/)
    note: str


ITEMID_TABLE: tuple[ItemId, ...] = (
    ItemId(220051, "Diastolic blood pressure", "chartevents", "arterial"),
    ItemId(225310, "Diastolic blood pressure", "chartevents", "arterial (ART line)"),
    ItemId(220180, "Diastolic blood pressure", "chartevents", "non-invasive"),
    ItemId(224643, "Diastolic blood pressure", "chartevents", "manual"),
    ItemId(223835, "Fraction inspired oxygen", "chartevents", "percent (divided by 100)"),
    ItemId(220739, "Glascow coma scale eye opening", "chartevents", "text values"),
    ItemId(223901, "Glascow coma scale motor response", "chartevents", "text values"),
    ItemId(223900, "Glascow coma scale verbal response", "chartevents", "text values"),
    ItemId(50931, "Glucose", "labevents", "blood, chemistry"),
    ItemId(50809, "Glucose", "labevents", "blood gas"),
    ItemId(51478, "Glucose", "labevents", "urine"),
    ItemId(225664, "Glucose", "chartevents", "finger stick"),
    ItemId(220621, "Glucose", "chartevents", "serum"),
    ItemId(226537, "Glucose", "chartevents", "whole blood"),
    ItemId(220045, "Heart Rate", "chartevents", "bpm"),
    ItemId(226707, "Height", "chartevents", "inches; label 'Height', so NOT converted"),
    ItemId(226730, "Height", "chartevents", "cm"),
    ItemId(220052, "Mean blood pressure", "chartevents", "arterial"),
    ItemId(225312, "Mean blood pressure", "chartevents", "arterial (ART line)"),
    ItemId(224322, "Mean blood pressure", "chartevents", "intra-aortic balloon pump"),
    ItemId(220181, "Mean blood pressure", "chartevents", "non-invasive"),
    ItemId(220277, "Oxygen saturation", "chartevents", "pulse oximetry"),
    ItemId(220227, "Oxygen saturation", "chartevents", "arterial"),
    ItemId(50817, "Oxygen saturation", "labevents", "blood gas"),
    ItemId(220210, "Respiratory rate", "chartevents", "breaths/min"),
    ItemId(224689, "Respiratory rate", "chartevents", "spontaneous"),
    ItemId(224422, "Respiratory rate", "chartevents", "spontaneous"),
    ItemId(224690, "Respiratory rate", "chartevents", "total"),
    ItemId(220050, "Systolic blood pressure", "chartevents", "arterial"),
    ItemId(225309, "Systolic blood pressure", "chartevents", "arterial (ART line)"),
    ItemId(220179, "Systolic blood pressure", "chartevents", "non-invasive"),
    ItemId(224167, "Systolic blood pressure", "chartevents", "manual, left"),
    ItemId(227243, "Systolic blood pressure", "chartevents", "manual, right"),
    ItemId(223762, "Temperature", "chartevents", "°C"),
    ItemId(223761, "Temperature", "chartevents", "°F (converted when >= 79)"),
    ItemId(224639, "Weight", "chartevents", "kg, daily"),
    ItemId(226512, "Weight", "chartevents", "kg, admission"),
    ItemId(226531, "Weight", "chartevents", "lbs; label 'Admission Weight (lbs.)', converted"),
    ItemId(50820, "pH", "labevents", "blood gas"),
    ItemId(51491, "pH", "labevents", "urine"),
    ItemId(51094, "pH", "labevents", "urine"),
    ItemId(50831, "pH", "labevents", "other body fluid"),
    ItemId(223830, "pH", "chartevents", "arterial"),
    ItemId(220274, "pH", "chartevents", "venous"),
)
"""Every mapped MIMIC-IV item (medfuse mode), grouped by channel."""

ITEMID_TO_VARIABLE: dict[int, str] = {row.itemid: row.variable for row in ITEMID_TABLE}
"""Item id -> channel name."""

CHART_ITEMIDS: frozenset[int] = frozenset(r.itemid for r in ITEMID_TABLE if r.table == "chartevents")
"""Item ids read from ``icu/chartevents``."""

LAB_ITEMIDS: frozenset[int] = frozenset(r.itemid for r in ITEMID_TABLE if r.table == "labevents")
"""Item ids read from ``hosp/labevents``."""

UNMAPPED_CHANNELS: tuple[str, ...] = ("Capillary refill rate", "Glascow coma scale total")
"""Channels without any MIMIC-IV item in medfuse mode (always imputed, mask 0)."""


CLEAN_EXTRA_ITEMS: tuple[ItemId, ...] = (
    ItemId(223951, "Capillary refill rate", "chartevents", "right side (switch capillary_refill_items)"),
    ItemId(224308, "Capillary refill rate", "chartevents", "left side (switch capillary_refill_items)"),
)
"""MIMIC-IV capillary refill items the reference does not map (added in ``clean`` mode)."""

NON_BLOOD_LAB_ITEMS: frozenset[int] = frozenset({51478, 51491, 51094, 50831})
"""Urine / other-fluid lab items that the reference maps onto blood Glucose and pH (removed in ``clean``)."""


def itemid_map(capillary_refill_items: bool = False, blood_only_labs: bool = False) -> dict[int, str]:
    """Item id -> channel for a combination of the item switches (both False = the reference map).

    Examples:
        >>> 51478 in itemid_map(), 51478 in itemid_map(blood_only_labs=True)
        (True, False)
    """
    rows = list(ITEMID_TABLE) + (list(CLEAN_EXTRA_ITEMS) if capillary_refill_items else [])
    return {r.itemid: r.variable for r in rows if not (blood_only_labs and r.itemid in NON_BLOOD_LAB_ITEMS)}


def itemids_of_table(mapping: dict[int, str], table: str) -> frozenset[int]:
    """The item ids of ``mapping`` that live in ``table`` (``"chartevents"`` or ``"labevents"``)."""
    where = {r.itemid: r.table for r in (*ITEMID_TABLE, *CLEAN_EXTRA_ITEMS)}
    return frozenset(i for i in mapping if where[i] == table)
