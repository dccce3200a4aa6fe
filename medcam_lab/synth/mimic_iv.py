"""Synthetic MIMIC-IV (v2.2+ layout): patients, admissions, ICU stays, chart and lab events.

The skeleton (:func:`draw_patients`) holds every patient's admissions and ICU stays with their latent
conditions; :func:`chart_events` and :func:`lab_events` turn each stay's latent course into charted
values; :func:`build_tables` assembles the official tables (column names and order of MIMIC-IV v2.2,
times ``YYYY-MM-DD HH:MM:SS`` shifted into 2110-2200, ids in the real ranges). Item ids are the real
MIMIC-IV ones (``ehr.md`` §5), including the quirky items a pipeline must handle: urine / other-fluid
glucose and pH labs, Fahrenheit temperatures, height in inches, weight in pounds, FiO2 in percent (and
now and then a fraction by mistake), GCS as MetaVision text. A few unrelated items must be filtered out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from medcam_lab.synth import latent as L
from medcam_lab.synth.config import SynthConfig
from medcam_lab.synth.render import Anatomy, Layout, draw_anatomy, draw_layout

HOUR = 3600


class ChartItem(NamedTuple):
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

# AR(1) noise: stationary std per EHR variable (hourly, phi = 0.9) and white measurement noise
_AR_STD = {
    "hr": 7,
    "sbp": 9,
    "dbp": 6,
    "rr": 2.2,
    "spo2": 1.1,
    "temp": 0.28,
    "glucose": 18,
    "ph": 0.025,
    "weight": 0.6,
    "fio2": 0.04,
    "gcs_eye": 0.35,
    "gcs_verbal": 0.35,
    "gcs_motor": 0.3,
    "cap_refill": 0.05,
    "lactate": 0.3,
    "wbc": 1.2,
    "creatinine": 0.08,
    "hgb": 0.4,
    "sodium": 1.5,
    "cvp": 2.0,
}
_WHITE_STD = {
    "hr": 2,
    "sbp": 4,
    "dbp": 3,
    "rr": 1.2,
    "spo2": 0.7,
    "temp": 0.12,
    "glucose": 7,
    "ph": 0.01,
    "weight": 0.3,
    "fio2": 0.0,
    "gcs_eye": 0.2,
    "gcs_verbal": 0.2,
    "gcs_motor": 0.2,
    "cap_refill": 0.0,
    "lactate": 0.15,
    "wbc": 0.4,
    "creatinine": 0.04,
    "hgb": 0.2,
    "sodium": 1.0,
    "cvp": 1.0,
}
_V = {name: i for i, name in enumerate(L.EHR_VARIABLES)}

YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022")
CAREUNITS = {
    "medical": ("Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)"),
    "cardiac": ("Coronary Care Unit (CCU)", "Cardiac Vascular Intensive Care Unit (CVICU)"),
    "trauma": ("Trauma SICU (TSICU)",),
    "surgical": ("Surgical Intensive Care Unit (SICU)", "Neuro Surgical Intensive Care Unit (Neuro SICU)"),
}


# ----------------------------------------------------------------------------------------------------
# skeleton


@dataclass
class Stay:
    """One ICU stay: ids, times, care units, latent course, finding layout and charting habits."""

    stay_id: int
    hadm_id: int
    subject_id: int
    intime: int  # seconds since 1970 (shifted dates)
    outtime: int
    first_careunit: str
    last_careunit: str
    latent: L.StayLatent
    layout: Layout
    art_line: bool
    art_items_alt: bool  # charts ART BP 225309/225310/225312 instead of 220050/220051/220052
    temp_f_share: float
    fingerstick: bool
    cap_refill: bool

    @property
    def los_h(self) -> float:
        return (self.outtime - self.intime) / HOUR


@dataclass
class Admission:
    """One hospital admission (the columns of ``hosp/admissions``) and its ICU stays."""

    hadm_id: int
    subject_id: int
    admittime: int
    dischtime: int
    deathtime: int | None
    admission_type: str
    admission_location: str
    discharge_location: str | None
    insurance: str
    language: str
    marital_status: str | None
    race: str
    edregtime: int | None
    edouttime: int | None
    admit_provider_id: str | None
    stays: list[Stay] = field(default_factory=list)


@dataclass
class Patient:
    """One subject: demographics, chronic traits, anatomy, admissions, ward latent state and split."""

    index: int
    subject_id: int
    gender: str
    anchor_age: int
    anchor_year: int
    anchor_year_group: str
    chronic: L.Chronic
    anatomy: Anatomy
    lesion_seed: int
    admissions: list[Admission]
    dod: int | None
    ward: L.StayLatent
    ward_layout: Layout
    split: str

    @property
    def stays(self) -> list[Stay]:
        return [s for a in self.admissions for s in a.stays]


def patient_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream ``stream`` of patient ``index`` (1 skeleton, 2 EHR, 3 CXR, 4 NIH)."""
    return np.random.default_rng([seed, stream, index])


def _year_start(year: int) -> int:
    return int(np.datetime64(f"{year:04d}-01-01T00:00:00", "s").astype(np.int64))


def _provider(rng: np.random.Generator) -> str:
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "P" + "".join(chars[i] for i in rng.integers(0, len(chars), 5))


def _careunit(rng: np.random.Generator, latent: L.StayLatent) -> str:
    lv = latent.level
    if lv[L.C["trauma"]] > 0:
        group = "trauma"
    elif lv[L.C["fluid_overload"]] > max(lv[L.C["infection"]], lv[L.C["resp_failure"]]):
        group = "cardiac" if rng.random() < 0.7 else "medical"
    else:
        group = "medical" if rng.random() < 0.75 else "surgical"
    units = CAREUNITS[group]
    return units[int(rng.integers(len(units)))]


def _new_stay(
    rng: np.random.Generator,
    patient_chronic: L.Chronic,
    stay_id: int,
    hadm_id: int,
    subject_id: int,
    intime: int,
    los_h: float,
    lesion_rng_seed: int,
) -> Stay:
    lat = L.draw_stay(rng, patient_chronic, los_h)
    unit = _careunit(rng, lat)
    last = unit
    if rng.random() < 0.05:
        others = [u for units in CAREUNITS.values() for u in units if u != unit]
        last = others[int(rng.integers(len(others)))]
    art = bool(rng.random() < 0.3 + 0.5 * (lat.level[L.C["resp_failure"]] > 0))
    return Stay(
        stay_id=stay_id,
        hadm_id=hadm_id,
        subject_id=subject_id,
        intime=intime,
        outtime=intime + round(los_h * HOUR),
        first_careunit=unit,
        last_careunit=last,
        latent=lat,
        layout=draw_layout(rng, np.random.default_rng(lesion_rng_seed)),
        art_line=art,
        art_items_alt=bool(rng.random() < 0.12),
        temp_f_share=float(rng.choice([0.9, 0.6, 0.25])),
        fingerstick=bool(rng.random() < (0.85 if patient_chronic.diabetic else 0.3)),
        cap_refill=bool(rng.random() < 0.5),
    )


def draw_patients(config: SynthConfig) -> list[Patient]:
    """The cohort skeleton: patients, admissions, ICU stays and their latent conditions."""
    patients = []
    used: dict[str, set[int]] = {"subject": set(), "hadm": set(), "stay": set()}

    def unique(kind: str, value: int, lo: int, hi: int) -> int:
        while value in used[kind]:
            value = lo + (value - lo + 7919) % (hi - lo)
        used[kind].add(value)
        return value

    for i in range(config.n_patients):
        rng = patient_rng(config.seed, i, 1)
        subject_id = unique("subject", int(rng.integers(10_000_000, 20_000_000)), 10_000_000, 20_000_000)
        male = bool(rng.random() < 0.55)
        age = int(np.clip(round(rng.normal(64, 16)), 18, 91))
        anchor_year = int(rng.integers(2110, 2186))
        chronic = L.draw_chronic(rng, age, male)
        anatomy = draw_anatomy(rng, chronic.body_width, chronic.heart_size)
        lesion_seed = int(rng.integers(2**31))
        group = YEAR_GROUPS[int(rng.integers(len(YEAR_GROUPS)))]
        has_icu = rng.random() >= config.no_icu_fraction
        insurance = str(rng.choice(["Medicare", "Medicaid", "Other"], p=[0.45, 0.15, 0.4]))
        language = "ENGLISH" if rng.random() < 0.9 else "?"
        marital = [None, "MARRIED", "SINGLE", "WIDOWED", "DIVORCED"][
            int(rng.choice(5, p=[0.05, 0.45, 0.3, 0.12, 0.08]))
        ]
        race = str(
            rng.choice(
                [
                    "WHITE",
                    "BLACK/AFRICAN AMERICAN",
                    "HISPANIC/LATINO - PUERTO RICAN",
                    "ASIAN",
                    "OTHER",
                    "UNKNOWN",
                ],
                p=[0.62, 0.12, 0.05, 0.05, 0.08, 0.08],
            )
        )
        start = _year_start(anchor_year + int(rng.integers(0, 3))) + int(rng.integers(0, 360 * 86400))
        admissions: list[Admission] = []
        n_adm = (
            (1 + int(rng.random() < config.second_admission_fraction)) if has_icu else int(rng.random() < 0.6)
        )
        died = False
        for _ in range(n_adm):
            if died:
                break
            hadm_id = unique("hadm", int(rng.integers(20_000_000, 30_000_000)), 20_000_000, 30_000_000)
            if has_icu:
                adm_type = str(
                    rng.choice(
                        [
                            "EW EMER.",
                            "URGENT",
                            "SURGICAL SAME DAY ADMISSION",
                            "OBSERVATION ADMIT",
                            "DIRECT EMER.",
                            "ELECTIVE",
                        ],
                        p=[0.55, 0.15, 0.1, 0.05, 0.05, 0.1],
                    )
                )
            else:
                adm_type = str(rng.choice(["EW EMER.", "OBSERVATION ADMIT", "ELECTIVE"], p=[0.6, 0.25, 0.15]))
            ed = adm_type in ("EW EMER.", "OBSERVATION ADMIT")
            admittime = start
            edreg = admittime - int(rng.uniform(2, 10) * HOUR) if ed else None
            edout = admittime + int(rng.uniform(0.1, 1.0) * HOUR) if ed else None
            location = (
                "EMERGENCY ROOM"
                if ed
                else str(rng.choice(["PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL", "CLINIC REFERRAL"]))
            )
            adm = Admission(
                hadm_id=hadm_id,
                subject_id=subject_id,
                admittime=admittime,
                dischtime=0,
                deathtime=None,
                admission_type=adm_type,
                admission_location=location,
                discharge_location=None,
                insurance=insurance,
                language=language,
                marital_status=marital,
                race=race,
                edregtime=edreg,
                edouttime=edout,
                admit_provider_id=_provider(rng) if rng.random() < 0.95 else None,
            )
            if has_icu:
                intime = admittime + int((rng.uniform(0.5, 8) if ed else rng.uniform(0, 48)) * HOUR)
                los_h = float(np.clip(24 * (1 + rng.gamma(1.6, 1.5)), 24, 192))
                stay_id = unique("stay", int(rng.integers(30_000_000, 40_000_000)), 30_000_000, 40_000_000)
                adm.stays.append(
                    _new_stay(rng, chronic, stay_id, hadm_id, subject_id, intime, los_h, lesion_seed)
                )
                if rng.random() < config.second_stay_fraction:
                    t2 = adm.stays[-1].outtime + int(rng.uniform(12, 96) * HOUR)
                    stay_id = unique(
                        "stay", int(rng.integers(30_000_000, 40_000_000)), 30_000_000, 40_000_000
                    )
                    adm.stays.append(
                        _new_stay(
                            rng,
                            chronic,
                            stay_id,
                            hadm_id,
                            subject_id,
                            t2,
                            float(rng.uniform(24, 72)),
                            lesion_seed,
                        )
                    )
                lv = np.max([s.latent.level for s in adm.stays], axis=0)
                p_death = L._sigmoid(
                    -4.2
                    + 2.5 * lv[L.C["resp_failure"]]
                    + 1.5 * lv[L.C["infection"]]
                    + 1.5 * lv[L.C["trauma"]]
                    + 1.0 * lv[L.C["fluid_overload"]]
                    + 0.03 * (age - 60)
                )
                last_out = adm.stays[-1].outtime
                if rng.random() < p_death:
                    died = True
                    adm.deathtime = last_out + int(rng.uniform(0, 0.5) * HOUR)
                    adm.dischtime = adm.deathtime
                    adm.discharge_location = "DIED"
                else:
                    adm.dischtime = last_out + int(rng.uniform(12, 168) * HOUR)
                    adm.discharge_location = str(
                        rng.choice(
                            [
                                "HOME",
                                "HOME HEALTH CARE",
                                "SKILLED NURSING FACILITY",
                                "REHAB",
                                "CHRONIC/LONG TERM ACUTE CARE",
                            ],
                            p=[0.3, 0.3, 0.25, 0.1, 0.05],
                        )
                    )
            else:
                adm.dischtime = admittime + int(rng.uniform(24, 144) * HOUR)
                adm.discharge_location = str(rng.choice(["HOME", "HOME HEALTH CARE"]))
            admissions.append(adm)
            start = adm.dischtime + int(rng.uniform(20, 400) * 86400)
        if died:
            dod = admissions[-1].deathtime
        elif rng.random() < 0.08 and admissions:
            dod = admissions[-1].dischtime + int(rng.uniform(30, 365) * 86400)
        else:
            dod = None
        u = rng.random()
        split = "train" if u < 0.8 else ("validate" if u < 0.9 else "test")
        patients.append(
            Patient(
                index=i,
                subject_id=subject_id,
                gender="M" if male else "F",
                anchor_age=age,
                anchor_year=anchor_year,
                anchor_year_group=group,
                chronic=chronic,
                anatomy=anatomy,
                lesion_seed=lesion_seed,
                admissions=admissions,
                dod=dod,
                ward=L.draw_ward(rng, chronic),
                ward_layout=draw_layout(rng, np.random.default_rng(lesion_seed)),
                split=split,
            )
        )
    return patients


# ----------------------------------------------------------------------------------------------------
# events


def _ar1(rng: np.random.Generator, n_steps: int, std: np.ndarray, phi: float = 0.9) -> np.ndarray:
    """Stationary AR(1) noise on an hourly grid. Shape: (n_steps, len(std))."""
    w = rng.standard_normal((n_steps, len(std)))
    w[0] /= np.sqrt(1 - phi**2)
    k = np.arange(n_steps)[:, None]
    out = np.cumsum(w * phi ** (-k), axis=0) * phi**k
    return out * std * np.sqrt(1 - phi**2)


class _Physiology:
    """Values of the EHR variables of one stay at arbitrary hours (baseline + condition shift + noise)."""

    def __init__(self, rng: np.random.Generator, stay: Stay, t0: float, t1: float, gain: float):
        self.rng, self.stay, self.gain = rng, stay, gain
        self.t0 = np.floor(t0) - 1
        n = int(np.ceil(t1 - self.t0)) + 2
        std = np.array([_AR_STD[v] for v in L.EHR_VARIABLES])
        self.ar = _ar1(rng, n, std)
        self.white = np.array([_WHITE_STD[v] for v in L.EHR_VARIABLES])
        self.base = np.array([stay.latent.chronic.baseline[v] for v in L.EHR_VARIABLES])

    def __call__(self, t: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """Shape: (len(t), len(names))."""
        idx = [_V[n] for n in names]
        shift = L.ehr_shift(self.stay.latent.ehr_severity(t), self.gain)[:, idx]
        hour = np.clip((t - self.t0).astype(int), 0, len(self.ar) - 1)
        noise = self.ar[hour][:, idx] + self.rng.standard_normal((len(t), len(idx))) * self.white[idx]
        return self.base[idx] + shift + noise


def _grid(
    rng: np.random.Generator,
    t_start: float,
    t_end: float,
    step: float,
    jitter_min: float,
    drop: float,
    gaps: bool = False,
) -> np.ndarray:
    """Charting times in hours: a jittered grid with random drops (and optional multi-hour gaps)."""
    if t_end <= t_start:
        return np.zeros(0)
    t = np.arange(t_start + rng.uniform(0, step), t_end, step)
    t = t + rng.normal(0, jitter_min / 60, size=t.shape)
    keep = rng.random(t.shape) >= drop
    if gaps:
        for _ in range(int(rng.integers(0, 3))):
            g0 = rng.uniform(t_start, t_end)
            keep &= ~((t > g0) & (t < g0 + rng.uniform(2, 5)))
    t = np.sort(t[keep])
    return t[(t > t_start) & (t < t_end)]


def chart_events(
    rng: np.random.Generator, patient: Patient, stay: Stay, gain: float, fio2_fraction_rate: float = 0.01,
    vitals_per_hour: float = 1.0,
) -> dict[str, np.ndarray]:
    """Chart events of one ICU stay (columns of ``icu/chartevents``; times in seconds).

    ``vitals_per_hour`` is the charting rate of the bedside vitals (1: about hourly).
    """
    los = stay.los_h
    phys = _Physiology(rng, stay, -1.0, los + 1.0, gain)
    lat = stay.latent
    out: dict[str, list] = {"t": [], "itemid": [], "num": [], "text": []}

    def add(
        t: np.ndarray, itemid: int, num: np.ndarray | None = None, text: np.ndarray | None = None
    ) -> None:
        if len(t) == 0:
            return
        out["t"].append(t)
        out["itemid"].append(np.full(len(t), itemid))
        out["num"].append(np.asarray(num, float) if num is not None else np.full(len(t), np.nan))
        out["text"].append(np.asarray(text, object) if text is not None else np.full(len(t), None, object))

    # bedside vitals, hourly by default
    t = _grid(rng, 0.0, los, 1.0 / vitals_per_hour, 8, 0.07, gaps=True)
    v = phys(t, ("hr", "sbp", "dbp", "rr", "spo2"))
    hr = np.clip(np.round(v[:, 0]), 30, 200)
    sbp = np.clip(np.round(v[:, 1]), 60, 230)
    dbp = np.clip(np.round(np.minimum(v[:, 2], sbp - 15)), 25, 140)
    mbp = np.round((sbp + 2 * dbp) / 3 + rng.normal(0, 2, len(t)))
    rr = np.clip(np.round(v[:, 3]), 6, 50)
    spo2 = np.clip(np.round(v[:, 4]), 70, 100)
    for itemid, values in ((220045, hr), (220277, spo2), (220210, rr)):
        keep = rng.random(len(t)) > 0.03
        add(t[keep], itemid, values[keep])
    vent = lat.ventilated(t)
    add(t[vent], 224690, np.clip(rr[vent] + np.round(rng.normal(0, 1, vent.sum())), 6, 50))
    if stay.art_line:
        ids = (225309, 225310, 225312) if stay.art_items_alt else (220050, 220051, 220052)
    else:
        ids = (220179, 220180, 220181)
    keep = rng.random(len(t)) > 0.05
    for itemid, values in zip(ids, (sbp, dbp, mbp)):
        add(t[keep], itemid, values[keep])
    if stay.art_line:  # cuff pressures now and then
        nb = _grid(rng, 0.0, los, 6.0, 20, 0.2)
        w = phys(nb, ("sbp", "dbp"))
        s_, d_ = np.round(w[:, 0]), np.round(np.minimum(w[:, 1], w[:, 0] - 15))
        for itemid, values in zip((220179, 220180, 220181), (s_, d_, np.round((s_ + 2 * d_) / 3))):
            add(nb, itemid, values)

    # temperature (mixed units), every ~4 h
    t = _grid(rng, 0.0, los, 4.0, 30, 0.05)
    temp = phys(t, ("temp",))[:, 0]
    fahr = rng.random(len(t)) < stay.temp_f_share
    add(t[~fahr], 223762, np.round(temp[~fahr], 1))
    add(t[fahr], 223761, np.round(temp[fahr] * 9 / 5 + 32, 1))

    # FiO2 (percent) while ventilated or on high-flow oxygen
    t = _grid(rng, 0.0, los, 4.0, 30, 0.05)
    f = phys(t, ("fio2",))[:, 0]
    vent = lat.ventilated(t)
    need = f - 0.21
    on_o2 = vent | (need > 0.12)
    fio2 = np.where(vent, np.clip(0.4 + need * 0.9, 0.3, 1.0), np.clip(0.21 + need, 0.24, 0.8))
    pct = np.where(vent, np.round(fio2 * 20) * 5, np.round(fio2 * 100))
    pct = pct[on_o2]
    mistake = rng.random(len(pct)) < fio2_fraction_rate  # charted as a fraction by mistake
    add(t[on_o2], 223835, np.where(mistake, np.round(pct / 100, 2), pct))
    peep = np.round(5 + 8 * phys(t[vent], ("fio2",))[:, 0].clip(0.21, 1) - 1.7)
    add(t[vent], 220339, np.clip(peep, 5, 18))

    # GCS every ~4 h (three items at the same charttime, MetaVision text + score)
    t = _grid(rng, 0.0, los, 4.0, 30, 0.05)
    g = phys(t, ("gcs_eye", "gcs_verbal", "gcs_motor"))
    eye = np.clip(np.round(g[:, 0]), 1, 4).astype(int)
    verbal = np.clip(np.round(g[:, 1]), 1, 5).astype(int)
    motor = np.clip(np.round(g[:, 2]), 1, 6).astype(int)
    vent = lat.ventilated(t)
    add(t, 220739, eye, np.array([GCS_EYE[s] for s in eye], object))
    add(
        t,
        223900,
        np.where(vent, 1, verbal),
        np.array([GCS_VERBAL_ETT if iv else GCS_VERBAL[s] for s, iv in zip(verbal, vent)], object),
    )
    add(t, 223901, motor, np.array([GCS_MOTOR[s] for s in motor], object))

    # height and weight once at admission, daily weight
    t_adm = np.array([rng.uniform(0.2, 3.0)])
    u = rng.random()
    cm = np.round(patient.chronic.height_cm)
    if u < 0.9:
        add(t_adm, 226730, [cm])
    if u < 0.6:
        add(t_adm, 226707, [np.round(cm / 2.54)])
    w0 = phys(t_adm, ("weight",))[:, 0]
    add(t_adm, 226512, np.round(w0, 1))
    if rng.random() < 0.4:
        add(t_adm, 226531, np.round(w0 / 0.453592, 1))
    t = np.arange(rng.uniform(4, 28), los, 24.0)
    add(t, 224639, np.round(phys(t, ("weight",))[:, 0], 1))

    # glucose chart items
    if stay.fingerstick:
        t = _grid(rng, 0.0, los, 6.0, 40, 0.1)
        add(t, 225664, np.clip(np.round(phys(t, ("glucose",))[:, 0]), 40, 600))
    t = _grid(rng, 0.0, los, 24.0, 120, 0.3)
    add(t, 220621 if rng.random() < 0.7 else 226537, np.clip(np.round(phys(t, ("glucose",))[:, 0]), 40, 600))

    # capillary refill (MIMIC-IV items, unmapped in medfuse mode)
    if stay.cap_refill:
        t = _grid(rng, 0.0, los, 8.0, 40, 0.1)
        p = np.clip(phys(t, ("cap_refill",))[:, 0], 0, 1)
        abnormal = rng.random(len(t)) < p
        txt = np.where(abnormal, CAP_REFILL[1], CAP_REFILL[0]).astype(object)
        add(t, 223951, None, txt)
        add(t, 224308, None, txt)

    # unrelated items: heart rhythm, CVP while a central line is in
    t = _grid(rng, 0.0, los, 4.0, 30, 0.1)
    hr_t = phys(t, ("hr",))[:, 0]
    afib = rng.random() < 0.1
    rhythm = np.where(
        afib, "AF (Atrial Fibrillation)", np.where(hr_t > 100, "ST (Sinus Tachycardia)", "SR (Sinus Rhythm)")
    )
    add(t, 220048, None, rhythm.astype(object))
    if np.isfinite(lat.central_line_on):
        t = _grid(rng, max(0.0, lat.central_line_on), los, 2.0, 15, 0.2)
        add(t, 220074, np.clip(np.round(phys(t, ("cvp",))[:, 0]), 0, 30))

    t_all = np.concatenate(out["t"])
    n = len(t_all)
    charttime = stay.intime + np.round(t_all * HOUR).astype(np.int64)
    store = charttime + rng.integers(60, 3600, n)
    itemid = np.concatenate(out["itemid"])
    num = np.concatenate(out["num"])
    text = np.concatenate(out["text"])
    warning = np.zeros(n, np.int64)
    warning[(itemid == 220045) & ((num > 120) | (num < 50))] = 1
    warning[(itemid == 220277) & (num < 90)] = 1
    carers = rng.integers(10_000, 99_999, 4)
    return {
        "subject_id": np.full(n, stay.subject_id),
        "hadm_id": np.full(n, stay.hadm_id),
        "stay_id": np.full(n, stay.stay_id),
        "caregiver_id": carers[rng.integers(0, 4, n)],
        "charttime": charttime,
        "storetime": store,
        "itemid": itemid,
        "num": num,
        "text": text,
        "warning": warning,
    }


def lab_events(
    rng: np.random.Generator, patient: Patient, adm: Admission, gain: float
) -> dict[str, np.ndarray]:
    """Lab events of one admission (ICU stays: every 6-12 h; ward days: daily)."""
    rows: dict[str, list] = {"t": [], "itemid": [], "num": [], "text": [], "panel": [], "priority": []}
    panel = [0]

    def add_panel(t_abs: int, items: list[tuple[int, float | str]], priority: str) -> None:
        for itemid, value in items:
            rows["t"].append(t_abs)
            rows["itemid"].append(itemid)
            rows["num"].append(value if not isinstance(value, str) else np.nan)
            rows["text"].append(value if isinstance(value, str) else None)
            rows["panel"].append(panel[0])
            rows["priority"].append(priority)
        panel[0] += 1

    for k, stay in enumerate(adm.stays):
        seg_start = adm.admittime if k == 0 else adm.stays[k - 1].outtime
        seg_end = adm.stays[k + 1].intime if k + 1 < len(adm.stays) else adm.dischtime
        a = (seg_start - stay.intime) / HOUR
        b = (seg_end - stay.intime) / HOUR
        phys = _Physiology(rng, stay, a - 1, b + 1, gain)
        los = stay.los_h
        t_chem = np.concatenate(
            [
                _grid(rng, a, 0.0, 24.0, 60, 0.1),
                _grid(rng, 0.0, los, 12.0, 60, 0.05),
                _grid(rng, los, b, 24.0, 60, 0.15),
            ]
        )
        vent_any = stay.latent.level[L.C["resp_failure"]] > 0
        t_bg = _grid(rng, 0.0, los, 6.0 if vent_any else 24.0, 45, 0.1 if vent_any else 0.5)
        t_bg = t_bg[stay.latent.ventilated(t_bg) | (rng.random(len(t_bg)) < 0.5)]
        names = ("glucose", "creatinine", "sodium", "wbc", "hgb", "ph", "spo2", "lactate")
        t_urine = np.sort(rng.uniform(0, los, int(rng.integers(1, 3))))
        values = phys(np.concatenate([t_chem, t_bg, t_urine]), names)
        v_chem, v_bg, v_urine = np.split(values, [len(t_chem), len(t_chem) + len(t_bg)])
        for t, v in zip(t_chem, v_chem):
            ta = stay.intime + int(t * HOUR)
            add_panel(
                ta,
                [(50931, max(30.0, round(v[0]))), (50912, max(0.2, round(v[1], 1))), (50983, round(v[2]))],
                "ROUTINE",
            )
            add_panel(ta, [(51301, max(0.5, round(v[3], 1))), (51222, max(5.0, round(v[4], 1)))], "ROUTINE")
        u = rng.random((len(t_bg), 4))
        for t, v, uu in zip(t_bg, v_bg, u):
            items: list[tuple[int, float | str]] = [(50820, round(float(np.clip(v[5], 6.9, 7.7)), 2))]
            if uu[0] < 0.5:
                items.append((50809, max(30.0, round(v[0]))))
            if uu[1] < 0.7:
                items.append((50817, float(np.clip(round(v[6] + 2 * (uu[3] - 0.5)), 70, 100))))
            if uu[2] < 0.8:
                items.append((50813, max(0.3, round(v[7], 1))))
            add_panel(stay.intime + int(t * HOUR), items, "STAT")
        for t, v in zip(t_urine, v_urine):
            glu = v[0]
            if glu < 180 or rng.random() < 0.3:
                ug: float | str = "NEG"
            else:
                ug = float([100, 150, 300, 500, 1000][int(np.clip((glu - 180) // 50, 0, 4))])
            uph = float(np.clip(np.round(rng.normal(6.0, 0.7) * 2) / 2, 5.0, 8.0))
            add_panel(stay.intime + int(t * HOUR), [(51478, ug), (51491, uph)], "ROUTINE")
            if rng.random() < 0.2:
                add_panel(stay.intime + int(t * HOUR) + 60, [(51094, uph)], "ROUTINE")
        lv = stay.latent.level
        if max(lv[L.C["fluid_overload"]], lv[L.C["infection"]]) > 0.5 and rng.random() < 0.3:
            t = rng.uniform(0, los)
            ph = 7.42 - 0.2 * stay.latent.severity(t)[0, L.C["infection"]] + rng.normal(0, 0.03)
            add_panel(stay.intime + int(t * HOUR), [(50831, round(ph, 2))], "ROUTINE")
    n = len(rows["t"])
    if n == 0:
        return {}
    t = np.array(rows["t"], np.int64)
    return {
        "subject_id": np.full(n, patient.subject_id),
        "hadm_id": np.full(n, adm.hadm_id, dtype=object),
        "panel": np.array(rows["panel"]),
        "itemid": np.array(rows["itemid"]),
        "charttime": t,
        "storetime": t
        + np.repeat(rng.integers(20, 180, panel[0]) * 60, np.bincount(rows["panel"], minlength=panel[0])),
        "num": np.array(rows["num"], float),
        "text": np.array(rows["text"], object),
        "priority": np.array(rows["priority"], object),
    }


def outpatient_labs(rng: np.random.Generator, patient: Patient, before: int) -> dict[str, np.ndarray]:
    """A clinic chemistry panel without hadm_id (a pipeline must drop it)."""
    t = before - int(rng.uniform(5, 60) * 86400)
    b = patient.chronic.baseline
    items = [
        (50931, round(b["glucose"] + rng.normal(0, 10))),
        (50912, round(b["creatinine"], 1)),
        (50983, round(b["sodium"])),
    ]
    n = len(items)
    return {
        "subject_id": np.full(n, patient.subject_id),
        "hadm_id": np.full(n, None, object),
        "panel": np.zeros(n, int),
        "itemid": np.array([i for i, _ in items]),
        "charttime": np.full(n, t, np.int64),
        "storetime": np.full(n, t + 7200, np.int64),
        "num": np.array([v for _, v in items], float),
        "text": np.full(n, None, object),
        "priority": np.full(n, None, object),
    }


# ----------------------------------------------------------------------------------------------------
# formatting


def fmt_times(seconds: np.ndarray) -> np.ndarray:
    """int seconds -> 'YYYY-MM-DD HH:MM:SS' strings (vectorised)."""
    s = np.datetime_as_string(np.asarray(seconds, np.int64).astype("datetime64[s]"), unit="s").astype("S19")
    s.view("S1").reshape(-1, 19)[:, 10] = b" "
    return s.astype("U19")


def fmt_optional_time(value: int | None) -> str | None:
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
    flag = np.where((num < lo) | (num > hi), "abnormal", None).astype(object)
    n = len(itemid)
    providers = np.array([_provider(rng) for _ in range(40)], object)
    order_provider = np.where(rng.random(n) < 0.6, providers[rng.integers(0, 40, n)], None)
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
    dod = [None if p.dod is None else fmt_optional_time(p.dod)[:10] for p in patients]
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


# ----------------------------------------------------------------------------------------------------
# planted defects


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
