"""MIMIC-IV item catalogue of the synthetic cohort: the chart and lab items written (real MIMIC-IV ids,
labels, units), the item-id sets of the 17 variables and of the unrelated items, and the GCS and
capillary-refill text values.
"""

from __future__ import annotations

from typing import NamedTuple


class ChartItem(NamedTuple):
    """A ``d_items`` row: how a chart item is labelled, filed and formatted (``decimals`` -1: a text item)."""

    label: str
    abbreviation: str
    category: str
    unitname: str
    param_type: str
    decimals: int  # -1: text item


CHART_ITEMS: dict[int, ChartItem] = {
    220045: ChartItem("Heart Rate", "HR", "Routine Vital Signs", "bpm", "Numeric", 0),
    220050: ChartItem(
        "Arterial Blood Pressure systolic", "ABPs", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    220051: ChartItem(
        "Arterial Blood Pressure diastolic", "ABPd", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    220052: ChartItem("Arterial Blood Pressure mean", "ABPm", "Routine Vital Signs", "mmHg", "Numeric", 0),
    220179: ChartItem(
        "Non Invasive Blood Pressure systolic", "NBPs", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    220180: ChartItem(
        "Non Invasive Blood Pressure diastolic", "NBPd", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    220181: ChartItem(
        "Non Invasive Blood Pressure mean", "NBPm", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    225309: ChartItem("ART BP Systolic", "ART BP Systolic", "Routine Vital Signs", "mmHg", "Numeric", 0),
    225310: ChartItem("ART BP Diastolic", "ART BP Diastolic", "Routine Vital Signs", "mmHg", "Numeric", 0),
    225312: ChartItem("ART BP Mean", "ART BP Mean", "Routine Vital Signs", "mmHg", "Numeric", 0),
    220210: ChartItem("Respiratory Rate", "RR", "Respiratory", "insp/min", "Numeric", 0),
    224690: ChartItem(
        "Respiratory Rate (Total)", "Respiratory Rate (Total)", "Respiratory", "insp/min", "Numeric", 0
    ),
    220277: ChartItem("O2 saturation pulseoxymetry", "SpO2", "Respiratory", "%", "Numeric", 0),
    223762: ChartItem("Temperature Celsius", "Temperature C", "Routine Vital Signs", "°C", "Numeric", 1),
    223761: ChartItem("Temperature Fahrenheit", "Temperature F", "Routine Vital Signs", "°F", "Numeric", 1),
    223835: ChartItem("Inspired O2 Fraction", "FiO2", "Respiratory", "%", "Numeric", 0),
    220739: ChartItem("GCS - Eye Opening", "GCS - Eye Opening", "Neurological", "", "Text", -1),
    223900: ChartItem("GCS - Verbal Response", "GCS - Verbal Response", "Neurological", "", "Text", -1),
    223901: ChartItem("GCS - Motor Response", "GCS - Motor Response", "Neurological", "", "Text", -1),
    226707: ChartItem("Height", "Height", "General", "Inch", "Numeric", 0),
    226730: ChartItem("Height (cm)", "Height (cm)", "General", "cm", "Numeric", 0),
    224639: ChartItem("Daily Weight", "Daily Weight", "General", "kg", "Numeric", 1),
    226512: ChartItem("Admission Weight (Kg)", "Admission Weight (Kg)", "General", "kg", "Numeric", 1),
    226531: ChartItem("Admission Weight (lbs.)", "Admission Weight (lbs.)", "General", "lbs", "Numeric", 1),
    225664: ChartItem(
        "Glucose finger stick (range 70-100)",
        "Glucose FS (range 70 -100)",
        "Routine Vital Signs",
        "mg/dL",
        "Numeric",
        0,
    ),
    220621: ChartItem("Glucose (serum)", "Glucose (serum)", "Labs", "mg/dL", "Numeric", 0),
    226537: ChartItem("Glucose (whole blood)", "Glucose (whole blood)", "Labs", "mg/dL", "Numeric", 0),
    223951: ChartItem("Capillary Refill R", "Capillary Refill R", "Skin - Assessment", "", "Text", -1),
    224308: ChartItem("Capillary Refill L", "Capillary Refill L", "Skin - Assessment", "", "Text", -1),
    # unrelated items (a pipeline must filter them out)
    220048: ChartItem("Heart Rhythm", "Heart Rhythm", "Routine Vital Signs", "", "Text", -1),
    220074: ChartItem("Central Venous Pressure", "CVP", "Routine Vital Signs", "mmHg", "Numeric", 0),
    220339: ChartItem("PEEP set", "PEEP set", "Respiratory", "cmH2O", "Numeric", 0),
}
"""Chart items written to ``icu/chartevents`` (and described in ``icu/d_items``)."""

D_ITEMS_ONLY: dict[int, ChartItem] = {
    224643: ChartItem(
        "Manual Blood Pressure Diastolic Left", "Manual BPd L", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    224167: ChartItem(
        "Manual Blood Pressure Systolic Left", "Manual BPs L", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    227243: ChartItem(
        "Manual Blood Pressure Systolic Right", "Manual BPs R", "Routine Vital Signs", "mmHg", "Numeric", 0
    ),
    224322: ChartItem("IABP Mean", "IABP Mean", "Routine Vital Signs", "mmHg", "Numeric", 0),
    224689: ChartItem(
        "Respiratory Rate (spontaneous)",
        "Respiratory Rate (spontaneous)",
        "Respiratory",
        "insp/min",
        "Numeric",
        0,
    ),
    224422: ChartItem("Spont RR", "Spont RR", "Respiratory", "insp/min", "Numeric", 0),
    220227: ChartItem("Arterial O2 Saturation", "Arterial O2 Saturation", "Labs", "%", "Numeric", 0),
    223830: ChartItem("PH (Arterial)", "PH (Arterial)", "Labs", "units", "Numeric", 2),
    220274: ChartItem("PH (Venous)", "PH (Venous)", "Labs", "units", "Numeric", 2),
}
"""Mapped items that exist in ``d_items`` but are never charted here (as in many real stays)."""


class LabItem(NamedTuple):
    """A ``d_labitems`` row and how its values are written: fluid, unit, decimals, reference range."""

    label: str
    fluid: str
    category: str
    uom: str
    decimals: int
    ref_lower: float | None
    ref_upper: float | None


LAB_ITEMS: dict[int, LabItem] = {
    50931: LabItem("Glucose", "Blood", "Chemistry", "mg/dL", 0, 70, 100),
    50809: LabItem("Glucose", "Blood", "Blood Gas", "mg/dL", 0, 70, 105),
    51478: LabItem("Glucose", "Urine", "Hematology", "mg/dL", 0, None, None),
    50820: LabItem("pH", "Blood", "Blood Gas", "units", 2, 7.35, 7.45),
    51491: LabItem("pH", "Urine", "Hematology", "units", 1, 5, 8),
    51094: LabItem("pH", "Urine", "Chemistry", "units", 1, 5, 8),
    50831: LabItem("pH", "Other Body Fluid", "Blood Gas", "units", 2, None, None),
    50817: LabItem("Oxygen Saturation", "Blood", "Blood Gas", "%", 0, None, None),
    # unrelated labs
    50813: LabItem("Lactate", "Blood", "Blood Gas", "mmol/L", 1, 0.5, 2),
    50912: LabItem("Creatinine", "Blood", "Chemistry", "mg/dL", 1, 0.5, 1.2),
    50983: LabItem("Sodium", "Blood", "Chemistry", "mEq/L", 0, 133, 145),
    51301: LabItem("White Blood Cells", "Blood", "Hematology", "K/uL", 1, 4, 11),
    51222: LabItem("Hemoglobin", "Blood", "Hematology", "g/dL", 1, 12, 16),
}
"""Lab items written to ``hosp/labevents`` (and described in ``hosp/d_labitems``)."""

CHART_ITEMIDS_17: frozenset[int] = frozenset(
    {
        220045,
        220050,
        220051,
        220052,
        220179,
        220180,
        220181,
        225309,
        225310,
        225312,
        220210,
        224690,
        220277,
        223762,
        223761,
        223835,
        220739,
        223900,
        223901,
        226707,
        226730,
        224639,
        226512,
        226531,
        225664,
        220621,
        226537,
    }
)
"""Chart items of the 17 channels that this cohort charts."""
CAPILLARY_REFILL_ITEMIDS: frozenset[int] = frozenset({223951, 224308})
UNRELATED_CHART_ITEMIDS: frozenset[int] = frozenset({220048, 220074, 220339})
LAB_ITEMIDS_17: frozenset[int] = frozenset({50931, 50809, 51478, 50820, 51491, 51094, 50831, 50817})
UNRELATED_LAB_ITEMIDS: frozenset[int] = frozenset({50813, 50912, 50983, 51301, 51222})

GCS_EYE = {4: "Spontaneously", 3: "To Speech", 2: "To Pain", 1: "None"}
GCS_VERBAL = {
    5: "Oriented",
    4: "Confused",
    3: "Inappropriate Words",
    2: "Incomprehensible sounds",
    1: "No Response",
}
GCS_VERBAL_ETT = "No Response-ETT"  # charted while intubated; valuenum 1
GCS_MOTOR = {
    6: "Obeys Commands",
    5: "Localizes Pain",
    4: "Flex-withdraws",
    3: "Abnormal Flexion",
    2: "Abnormal extension",
    1: "No response",
}
CAP_REFILL = ("Normal <3 Seconds", "Abnormal >3 Seconds")
