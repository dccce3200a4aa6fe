"""Synthetic MIMIC-IV (v2.2+ layout): patients, admissions, ICU stays, chart and lab events.

The skeleton (:func:`draw_patients`) holds every patient's admissions and ICU stays with their latent
conditions; :func:`chart_events` and :func:`lab_events` turn each stay's latent course into charted
values; the ``*_frame`` functions assemble the official tables (column names and order of MIMIC-IV v2.2,
times ``YYYY-MM-DD HH:MM:SS`` shifted into 2110-2200, ids in the real ranges). Item ids are the real
MIMIC-IV ones (``ehr.md`` §5), including the quirky items a pipeline must handle: urine / other-fluid
glucose and pH labs, Fahrenheit temperatures, height in inches, weight in pounds, FiO2 in percent (and
now and then a fraction by mistake), GCS as MetaVision text. A few unrelated items must be filtered out.

Modules: :mod:`.items` (the item catalogue), :mod:`.patients` (patients, admissions, stays),
:mod:`.physiology` (chart and lab events), :mod:`.tables` (formatting and the official tables),
:mod:`.defects` (planted bad rows and the released value mask). The names below are re-exported here.
"""

from medcam_lab.synth.mimic_iv.defects import inject_event_defects, mask_values_as_released
from medcam_lab.synth.mimic_iv.items import (
    CAP_REFILL,
    CAPILLARY_REFILL_ITEMIDS,
    CHART_ITEMIDS_17,
    CHART_ITEMS,
    D_ITEMS_ONLY,
    GCS_EYE,
    GCS_MOTOR,
    GCS_VERBAL,
    GCS_VERBAL_ETT,
    LAB_ITEMIDS_17,
    LAB_ITEMS,
    UNRELATED_CHART_ITEMIDS,
    UNRELATED_LAB_ITEMIDS,
    ChartItem,
    LabItem,
)
from medcam_lab.synth.mimic_iv.patients import (
    CAREUNITS,
    HOUR,
    YEAR_GROUPS,
    Admission,
    Patient,
    Stay,
    draw_patients,
    patient_rng,
)
from medcam_lab.synth.mimic_iv.physiology import chart_events, lab_events, outpatient_labs
from medcam_lab.synth.mimic_iv.tables import (
    ADMISSIONS_COLUMNS,
    CHARTEVENTS_COLUMNS,
    D_ITEMS_COLUMNS,
    D_LABITEMS_COLUMNS,
    ICUSTAYS_COLUMNS,
    LABEVENTS_COLUMNS,
    PATIENTS_COLUMNS,
    admissions_frame,
    chartevents_frame,
    d_items_frame,
    d_labitems_frame,
    finalize_events,
    fmt_numbers,
    fmt_optional_time,
    fmt_times,
    icustays_frame,
    labevents_frame,
    patients_frame,
)

__all__ = [
    "ADMISSIONS_COLUMNS",
    "CAPILLARY_REFILL_ITEMIDS",
    "CAP_REFILL",
    "CAREUNITS",
    "CHARTEVENTS_COLUMNS",
    "CHART_ITEMIDS_17",
    "CHART_ITEMS",
    "D_ITEMS_COLUMNS",
    "D_ITEMS_ONLY",
    "D_LABITEMS_COLUMNS",
    "GCS_EYE",
    "GCS_MOTOR",
    "GCS_VERBAL",
    "GCS_VERBAL_ETT",
    "HOUR",
    "ICUSTAYS_COLUMNS",
    "LABEVENTS_COLUMNS",
    "LAB_ITEMIDS_17",
    "LAB_ITEMS",
    "PATIENTS_COLUMNS",
    "UNRELATED_CHART_ITEMIDS",
    "UNRELATED_LAB_ITEMIDS",
    "YEAR_GROUPS",
    "Admission",
    "ChartItem",
    "LabItem",
    "Patient",
    "Stay",
    "admissions_frame",
    "chart_events",
    "chartevents_frame",
    "d_items_frame",
    "d_labitems_frame",
    "draw_patients",
    "finalize_events",
    "fmt_numbers",
    "fmt_optional_time",
    "fmt_times",
    "icustays_frame",
    "inject_event_defects",
    "lab_events",
    "labevents_frame",
    "mask_values_as_released",
    "outpatient_labs",
    "patient_rng",
    "patients_frame",
]
