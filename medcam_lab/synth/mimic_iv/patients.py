"""Cohort skeleton of the synthetic MIMIC-IV: patients, admissions and ICU stays (:func:`draw_patients`)
with their latent conditions, care units, anchor year groups and the per-patient random streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medcam_lab.synth import latent as L
from medcam_lab.synth.config import SynthConfig
from medcam_lab.synth.render import Anatomy, Layout, draw_anatomy, draw_layout

HOUR = 3600

YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022")
CAREUNITS = {
    "medical": ("Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)"),
    "cardiac": ("Coronary Care Unit (CCU)", "Cardiac Vascular Intensive Care Unit (CVICU)"),
    "trauma": ("Trauma SICU (TSICU)",),
    "surgical": ("Surgical Intensive Care Unit (SICU)", "Neuro Surgical Intensive Care Unit (Neuro SICU)"),
}


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
        """Length of the stay in hours."""
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
        """Every ICU stay of the patient, admission by admission."""
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
