"""Latent clinical conditions of the synthetic cohort, their course over an ICU stay, and report labels.

Every ICU stay has seven latent conditions, each with a severity in [0, 1] (0 = absent) that evolves
slowly over the stay (:class:`StayLatent`). At each chest X-ray the current severities give

* finding intensities (one per CheXpert finding, :data:`FINDING_WEIGHTS`) that the renderer draws with a
  deliberately weak amplitude (:mod:`medcam_lab.synth.render`) and the noisy report labeller reads
  (:func:`report_labels`);
* the EHR trajectories of the hours before the image (:data:`EHR_EFFECTS`, used by
  :mod:`medcam_lab.synth.mimic_iv`), with clearer effects than the images.

The NIH-layout out-of-distribution set has its own conditions and prevalences (:func:`draw_nih_patient`).
Everything documented in ``data_cards/synthetic.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medcam_lab.config import LABELS_CHEXPERT14
from medcam_lab.datasets.nih import NIH_PATHOLOGIES as NIH_LABEL_NAMES

CONDITIONS: tuple[str, ...] = (
    "fluid_overload",  # heart failure / volume overload
    "infection",  # pneumonia / sepsis
    "resp_failure",  # respiratory failure on mechanical ventilation (intubated)
    "pneumothorax",
    "trauma",  # chest trauma (rib fractures)
    "lesion",  # chronic focal lung lesion (patient-level)
    "pleural",  # chronic pleural disease (patient-level)
)
C = {name: i for i, name in enumerate(CONDITIONS)}

CHEXPERT_LABELS: tuple[str, ...] = LABELS_CHEXPERT14
"""The 14 labels of ``mimic-cxr-2.0.0-chexpert.csv.gz``, in the official column order."""

FINDINGS: tuple[str, ...] = tuple(name for name in CHEXPERT_LABELS if name not in ("No Finding", "Support Devices"))
"""The 12 findings with an intensity driven by the conditions (Support Devices comes from devices)."""

FINDING_WEIGHTS: dict[str, dict[str, float]] = {
    "Atelectasis": {"resp_failure": 0.75, "infection": 0.25, "fluid_overload": 0.15, "trauma": 0.2},
    "Cardiomegaly": {"fluid_overload": 0.85},  # + the patient's chronic cardiomegaly
    "Consolidation": {"infection": 0.8, "resp_failure": 0.1},
    "Edema": {"fluid_overload": 1.1},  # minus 0.15 (edema needs more overload than cardiomegaly)
    "Enlarged Cardiomediastinum": {"fluid_overload": 0.35, "trauma": 0.45},
    "Fracture": {"trauma": 0.95},
    "Lung Lesion": {"lesion": 0.95},
    "Lung Opacity": {"infection": 0.7, "fluid_overload": 0.45, "resp_failure": 0.4, "lesion": 0.3},
    "Pleural Effusion": {"fluid_overload": 0.75, "infection": 0.3, "trauma": 0.25},
    "Pleural Other": {"pleural": 0.9, "trauma": 0.2},
    "Pneumonia": {"infection": 0.95},
    "Pneumothorax": {"pneumothorax": 1.0},
}
"""Finding intensity = clip(sum of weight x condition severity, 0, 1) (Edema: minus 0.15)."""

_W = np.array([[FINDING_WEIGHTS[f].get(c, 0.0) for c in CONDITIONS] for f in FINDINGS])
_OFFSET = np.array([-0.15 if f == "Edema" else 0.0 for f in FINDINGS])

POSITIVE_THRESHOLD = 0.35
"""A finding read above this intensity is reported present (1.0)."""
UNCERTAIN_THRESHOLD = 0.2
"""Between this and :data:`POSITIVE_THRESHOLD` the report is mostly uncertain (-1.0)."""

EXPLICIT_NEGATIVE: dict[str, float] = {
    "Pneumothorax": 0.35,
    "Pleural Effusion": 0.3,
    "Consolidation": 0.25,
    "Edema": 0.2,
    "Pneumonia": 0.15,
    "Cardiomegaly": 0.1,
    "Support Devices": 0.02,
}
"""Probability that an absent finding is written as an explicit 0.0 (else blank); others 0.05."""

EHR_EFFECTS: dict[str, dict[str, float]] = {
    "hr": {"fluid_overload": 8, "infection": 22, "resp_failure": 8, "pneumothorax": 28, "trauma": 18},
    "sbp": {"fluid_overload": 24, "infection": -14, "resp_failure": -4, "pneumothorax": -10, "trauma": -16},
    "dbp": {"fluid_overload": 11, "infection": -8, "pneumothorax": -5, "trauma": -9},
    "rr": {"fluid_overload": 6, "infection": 5, "resp_failure": 9, "pneumothorax": 10, "trauma": 2},
    "spo2": {"fluid_overload": -5, "infection": -2.5, "resp_failure": -5, "pneumothorax": -9},
    "temp": {"infection": 1.9, "trauma": -0.3, "fluid_overload": -0.1},
    "glucose": {"infection": 45, "trauma": 25, "fluid_overload": 5},
    "ph": {"resp_failure": -0.13, "infection": -0.04, "fluid_overload": -0.02, "trauma": -0.05},
    "weight": {"fluid_overload": 9, "lesion": -4},
    "fio2": {"resp_failure": 0.5, "fluid_overload": 0.15, "infection": 0.1, "pneumothorax": 0.2},
    "gcs_eye": {"resp_failure": -2.6, "trauma": -1.6, "infection": -0.3},
    "gcs_verbal": {"trauma": -2.2, "infection": -0.5},
    "gcs_motor": {"resp_failure": -2.2, "trauma": -2.0},
    "cap_refill": {"infection": 0.5, "fluid_overload": 0.3, "trauma": 0.3},  # probability "Abnormal"
    "lactate": {"infection": 2.5, "trauma": 1.5, "pneumothorax": 0.8},
    "wbc": {"infection": 9, "trauma": 4},
    "creatinine": {"fluid_overload": 0.8, "infection": 0.5},
    "hgb": {"trauma": -2.5},
    "sodium": {"fluid_overload": -4},
    "cvp": {"fluid_overload": 7},
}
"""Shift of each EHR variable per unit of condition severity (at ``ehr_gain=1``).

Trauma effects are acute (x exp(-h/72) with h the hours since the injury), pneumothorax effects peak at
onset (x (0.4 + 0.6 exp(-h/24))). Units: bpm, mmHg, breaths/min, %, degrees C, mg/dL, pH units, kg,
FiO2 fraction, GCS points, K/uL, mg/dL, g/dL, mEq/L, mmHg.
"""
EHR_VARIABLES: tuple[str, ...] = tuple(EHR_EFFECTS)
_E = np.array([[EHR_EFFECTS[v].get(c, 0.0) for c in CONDITIONS] for v in EHR_VARIABLES])


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


def _clip(x: np.ndarray, lo: float, hi: float | None) -> np.ndarray:
    """``np.clip`` without its Python-level overhead."""
    x = np.maximum(x, lo)
    return x if hi is None else np.minimum(x, hi)


@dataclass
class Chronic:
    """Patient-level traits (constant across stays)."""

    age: int
    male: bool
    weight_kg: float
    height_cm: float
    body_width: float  # image: thorax width factor (correlates with weight)
    heart_size: float  # image: normal heart width variation
    chronic_cardiomegaly: float  # 0 or 0.3-0.6, added to the Cardiomegaly finding
    lesion: float  # severity of the chronic lesion (0 = none)
    pleural: float  # severity of chronic pleural disease (0 = none)
    diabetic: bool  # EHR nuisance: glucose baseline +40
    copd: bool  # EHR nuisance: SpO2 -3, pH -0.03
    beta_blocker: bool  # EHR nuisance: HR -10
    baseline: dict[str, float] = field(default_factory=dict)


def draw_chronic(rng: np.random.Generator, age: int, male: bool) -> Chronic:
    """Patient-level traits; the baseline holds each EHR variable's value in the absence of disease."""
    height = rng.normal(176 if male else 163, 7)
    bmi = float(np.clip(rng.lognormal(np.log(27), 0.2), 16, 50))
    weight = bmi * (height / 100) ** 2
    body_width = float(np.clip(0.8 + 0.0075 * (bmi - 16) + rng.normal(0, 0.03), 0.86, 1.18))
    chronic_card = float(rng.uniform(0.3, 0.6)) if rng.random() < 0.04 + 0.003 * max(age - 50, 0) else 0.0
    lesion = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.06 + 0.001 * max(age - 50, 0) else 0.0
    pleural = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.05 else 0.0
    diabetic = bool(rng.random() < 0.25)
    copd = bool(rng.random() < 0.15)
    beta = bool(rng.random() < 0.3)
    base = {
        "hr": rng.normal(82, 10) - (10 if beta else 0),
        "sbp": rng.normal(118 + 0.25 * (age - 60), 12),
        "dbp": rng.normal(64, 8),
        "rr": rng.normal(17, 2),
        "spo2": rng.normal(97.2, 1.0) - (3 if copd else 0),
        "temp": rng.normal(36.8, 0.25),
        "glucose": rng.normal(115, 15) + (45 if diabetic else 0),
        "ph": rng.normal(7.40, 0.02) - (0.03 if copd else 0),
        "weight": weight,
        "fio2": 0.21,
        "gcs_eye": 4.0,
        "gcs_verbal": 5.0,
        "gcs_motor": 6.0,
        "cap_refill": 0.05,
        "lactate": rng.lognormal(np.log(1.2), 0.2),
        "wbc": rng.normal(8, 1.5),
        "creatinine": rng.lognormal(np.log(0.9), 0.25),
        "hgb": rng.normal(12.5, 1.2),
        "sodium": rng.normal(139, 2),
        "cvp": rng.normal(8, 2),
    }
    return Chronic(
        age=age,
        male=male,
        weight_kg=float(weight),
        height_cm=float(height),
        body_width=body_width,
        heart_size=float(rng.normal(1.0, 0.06)),
        chronic_cardiomegaly=chronic_card,
        lesion=lesion,
        pleural=pleural,
        diabetic=diabetic,
        copd=copd,
        beta_blocker=beta,
        baseline={k: float(v) for k, v in base.items()},
    )


@dataclass
class StayLatent:
    """The course of the seven conditions over one ICU stay (hours relative to ICU admission).

    For each condition: ``level`` (0 = absent), ``slope`` (change per 96 h), ``t_on`` (onset hour; negative
    = present at ICU admission), ``t_off`` (resolution hour, ``inf`` if none). ``los_h`` is the stay length;
    after it, acute conditions fade with a 48 h time constant. Devices: endotracheal tube while
    ventilated, nasogastric tube, central line, chest tube after a pneumothorax.
    """

    los_h: float
    level: np.ndarray
    slope: np.ndarray
    t_on: np.ndarray
    t_off: np.ndarray
    chronic: Chronic
    ng_with_ett: bool = True
    central_line_on: float = np.inf
    ward: bool = False  # a non-ICU episode: severities constant in time, no devices

    def severity(self, t: np.ndarray | float) -> np.ndarray:
        """Severities at hours ``t``. Shape: (len(t), 7)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))[:, None]
        level, slope, t_on, t_off = self.level, self.slope, self.t_on, self.t_off
        if self.ward:
            return np.broadcast_to(level, (t.shape[0], len(CONDITIONS))).copy()
        dt = t - t_on
        ramp_h = np.array([12.0, 12.0, 2.0, 0.5, 0.5, 1.0, 1.0])
        on = _clip(dt / ramp_h, 0.0, 1.0)
        value = _clip(level + slope * dt / 96.0, 0.05, 1.0)
        # chronic / constant conditions
        for name in ("trauma", "lesion", "pleural"):
            value[:, C[name]] = level[C[name]]
        ptx = C["pneumothorax"]
        value[:, ptx] = level[ptx] * (1.0 - 0.6 * _clip((dt[:, ptx] - 6.0) / 72.0, 0.0, 1.0))
        off = _clip((t_off - t) / 3.0, 0.0, 1.0)
        value = value * on * off
        after = _clip(t - self.los_h, 0.0, None)
        fade = np.exp(-after / 48.0)
        for name in ("fluid_overload", "infection", "pneumothorax", "resp_failure"):
            value[:, C[name]] *= fade[:, 0]
        value[:, level == 0] = 0.0
        return value

    def ehr_severity(self, t: np.ndarray) -> np.ndarray:
        """Severities as they act on the EHR: trauma's physiology fades, pneumothorax's peaks at onset."""
        sev = self.severity(t)
        t = np.asarray(t, dtype=float)
        if self.ward:
            return sev
        tr, ptx = C["trauma"], C["pneumothorax"]
        sev[:, tr] *= np.exp(-_clip(t - self.t_on[tr], 0, None) / 72.0)
        sev[:, ptx] *= 0.4 + 0.6 * np.exp(-_clip(t - self.t_on[ptx], 0, None) / 24.0)
        return sev

    def ventilated(self, t: np.ndarray | float) -> np.ndarray:
        """True while intubated (respiratory failure episode in progress). Shape: (len(t),)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        r = C["resp_failure"]
        if self.ward or self.level[r] == 0:
            return np.zeros(t.shape, bool)
        return (t >= self.t_on[r]) & (t < self.t_off[r]) & (t <= self.los_h)

    def devices(self, t: float) -> dict[str, bool]:
        """Which support devices are in place at hour ``t``."""
        if self.ward or t < 0 or t > self.los_h:
            return {"ett": False, "ng": False, "central_line": False, "chest_tube": False}
        ett = bool(self.ventilated(t)[0])
        ptx = C["pneumothorax"]
        return {
            "ett": ett,
            "ng": ett and self.ng_with_ett,
            "central_line": t >= self.central_line_on,
            "chest_tube": bool(self.level[ptx] > 0 and t >= self.t_on[ptx] + 3.0),
        }


def draw_stay(
    rng: np.random.Generator, chronic: Chronic, los_h: float, acuity: float | None = None
) -> StayLatent:
    """Draw the conditions of one ICU stay (correlated through a shared acuity and age)."""
    a = rng.normal() if acuity is None else acuity
    age = chronic.age
    n = len(CONDITIONS)
    level, slope = np.zeros(n), np.zeros(n)
    t_on, t_off = np.full(n, -24.0), np.full(n, np.inf)

    def sev() -> float:
        return float(0.22 + 0.78 * rng.beta(2.2, 2.0))

    trauma = rng.random() < _sigmoid(-2.3 + 0.6 * a - 0.03 * (age - 60))
    fluid = rng.random() < _sigmoid(-0.8 + 0.5 * a + 0.035 * (age - 60) - 1.5 * trauma)
    infection = rng.random() < _sigmoid(-0.7 + 0.6 * a)
    resp = rng.random() < _sigmoid(-1.25 + 0.9 * a + 0.8 * infection + 0.5 * fluid + 0.8 * trauma)
    ptx = rng.random() < _sigmoid(-2.5 + 1.8 * trauma + 0.8 * resp)

    if fluid:
        i = C["fluid_overload"]
        level[i], slope[i] = sev(), rng.normal(0.0, 0.2)
        t_on[i] = rng.uniform(-48, -2) if rng.random() < 0.85 else rng.uniform(2, 0.6 * los_h)
    if infection:
        i = C["infection"]
        level[i], slope[i] = sev(), rng.normal(-0.1, 0.15)
        t_on[i] = rng.uniform(-48, -2) if rng.random() < 0.7 else rng.uniform(12, max(13, 0.7 * los_h))
    if resp:
        i = C["resp_failure"]
        level[i], slope[i] = sev(), rng.normal(-0.05, 0.15)
        t_on[i] = rng.uniform(-24, -1) if rng.random() < 0.6 else rng.uniform(0, 0.6 * los_h)
        t_off[i] = min(t_on[i] + rng.uniform(24, 160), los_h - rng.uniform(1, 8))
    if trauma:
        i = C["trauma"]
        level[i] = sev()
        t_on[i] = rng.uniform(-36, -24.5)  # before any pre-ICU film (those are at most 24 h before intime)
    if ptx:
        i = C["pneumothorax"]
        level[i] = sev()
        t_on[i] = rng.uniform(-12, -1) if trauma or rng.random() < 0.3 else rng.uniform(0, 0.8 * los_h)
    level[C["lesion"]] = chronic.lesion
    level[C["pleural"]] = chronic.pleural
    t_on[C["lesion"]] = t_on[C["pleural"]] = -1e6
    cl_on = (
        rng.uniform(-12, 24)
        if rng.random() < _sigmoid(-0.4 + 0.8 * a + 1.0 * resp + 0.5 * infection)
        else np.inf
    )
    return StayLatent(
        los_h=los_h,
        level=level,
        slope=slope,
        t_on=t_on,
        t_off=t_off,
        chronic=chronic,
        ng_with_ett=bool(rng.random() < 0.8),
        central_line_on=float(cl_on),
    )


def draw_ward(rng: np.random.Generator, chronic: Chronic) -> StayLatent:
    """A non-ICU episode (patients without an ICU stay, or outpatient films): milder, constant conditions."""
    level = np.zeros(len(CONDITIONS))
    if rng.random() < 0.2:
        level[C["infection"]] = float(0.15 + 0.6 * rng.beta(2, 2.5))
    if rng.random() < 0.15 + 0.004 * max(chronic.age - 50, 0):
        level[C["fluid_overload"]] = float(0.15 + 0.6 * rng.beta(2, 2.5))
    if rng.random() < 0.04:
        level[C["trauma"]] = float(0.3 + 0.6 * rng.random())
    level[C["lesion"]] = chronic.lesion
    level[C["pleural"]] = chronic.pleural
    n = len(CONDITIONS)
    return StayLatent(
        los_h=0.0,
        level=level,
        slope=np.zeros(n),
        t_on=np.full(n, -1e6),
        t_off=np.full(n, np.inf),
        chronic=chronic,
        ward=True,
    )


def findings(severity: np.ndarray, chronic: Chronic) -> np.ndarray:
    """Finding intensities from severities. Shape: (..., 7) -> (..., 12), in :data:`FINDINGS` order."""
    out = np.asarray(severity) @ _W.T + _OFFSET
    out[..., FINDINGS.index("Cardiomegaly")] += chronic.chronic_cardiomegaly
    return _clip(out, 0.0, 1.0)


def ehr_shift(severity: np.ndarray, gain: float) -> np.ndarray:
    """Shift of every EHR variable. Shape: (T, 7) -> (T, len(EHR_VARIABLES))."""
    return gain * (np.asarray(severity) @ _E.T)


def report_labels(
    rng: np.random.Generator, intensity: np.ndarray, has_device: bool, noise: float
) -> dict[str, float]:
    """Noisy study-level CheXpert labels (1.0 / 0.0 / -1.0 / NaN = blank) from finding intensities.

    A finding read (intensity + N(0, 0.06)) above 0.35 is positive; 0.2-0.35 is mostly uncertain
    (60 % -1.0, 20 % 1.0, 20 % blank); below, blank or an explicit 0.0 (:data:`EXPLICIT_NEGATIVE`).
    With probability ``noise`` a positive is missed (blank), with ``noise / 4`` a negative is reported (1.0). Support
    Devices is positive when a device is in place (95 %). No Finding is 1.0 only when no other label is
    1.0 or -1.0, else blank.
    """
    labels: dict[str, float] = {}
    read = intensity + rng.normal(0.0, 0.06, size=len(FINDINGS))
    u = rng.random((len(FINDINGS), 3))
    for k, name in enumerate(FINDINGS):
        r = read[k]
        if r > POSITIVE_THRESHOLD:
            value = 1.0
        elif r > UNCERTAIN_THRESHOLD:
            value = -1.0 if u[k, 0] < 0.6 else (1.0 if u[k, 0] < 0.8 else np.nan)
        else:
            value = 0.0 if u[k, 0] < EXPLICIT_NEGATIVE.get(name, 0.05) else np.nan
        if value == 1.0 and u[k, 1] < noise:
            value = np.nan
        elif value != 1.0 and u[k, 1] < noise / 4:
            value = 1.0
        labels[name] = value
    v = rng.random(2)
    if has_device:
        labels["Support Devices"] = 1.0 if v[0] < 0.95 else np.nan
    else:
        labels["Support Devices"] = 1.0 if v[0] < noise else (0.0 if v[1] < 0.02 else np.nan)
    flagged = any(labels[n] in (1.0, -1.0) for n in labels)
    labels["No Finding"] = np.nan if flagged else 1.0
    return {name: labels[name] for name in CHEXPERT_LABELS}


# ----------------------------------------------------------------------------------------------------
# NIH (out-of-distribution) conditions

NIH_LABELS: tuple[str, ...] = NIH_LABEL_NAMES

NIH_CONDITIONS: dict[str, float] = {
    "fluid_overload": 0.10,
    "infection": 0.16,
    "collapse": 0.12,
    "pneumothorax": 0.06,
    "nodule": 0.08,
    "mass": 0.06,
    "pleural": 0.06,
    "emphysema": 0.06,
    "fibrosis": 0.05,
    "hernia": 0.04,
}
"""Patient-level prevalence of each NIH condition (different from the MIMIC ICU cohort)."""


def draw_nih_patient(rng: np.random.Generator) -> dict[str, float]:
    """Severities of the NIH conditions for one patient (0 = absent)."""
    return {
        name: float(0.25 + 0.75 * rng.beta(2.2, 2.0)) if rng.random() < p else 0.0
        for name, p in NIH_CONDITIONS.items()
    }


def nih_render_findings(sev: dict[str, float]) -> dict[str, float]:
    """Renderer finding intensities of an NIH image from its condition severities."""
    fo, inf = sev["fluid_overload"], sev["infection"]
    return {
        "cardiomegaly": min(1.0, 0.9 * fo),
        "mediastinum": 0.3 * fo,
        "edema": max(0.0, 1.1 * fo - 0.2),
        "effusion": min(1.0, 0.75 * fo + 0.25 * inf + 0.2 * sev["pleural"]),
        "consolidation": 0.8 * inf,
        "infiltration": min(1.0, 0.6 * inf + 0.3 * fo),
        "atelectasis": min(1.0, 0.9 * sev["collapse"] + 0.2 * inf),
        "pneumothorax": sev["pneumothorax"],
        "nodule": sev["nodule"],
        "mass": sev["mass"],
        "pleural": sev["pleural"],
        "emphysema": sev["emphysema"],
        "fibrosis": sev["fibrosis"],
        "hernia": sev["hernia"],
        "fracture": 0.0,
    }


_NIH_FROM_RENDER = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Effusion": "effusion",
    "Emphysema": "emphysema",
    "Fibrosis": "fibrosis",
    "Hernia": "hernia",
    "Infiltration": "infiltration",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pleural_Thickening": "pleural",
    "Pneumothorax": "pneumothorax",
}


def nih_labels(
    rng: np.random.Generator, render: dict[str, float], infection: float, noise: float
) -> list[str]:
    """NIH finding tokens (no uncertain labels): intensity + N(0, 0.06) above 0.35, then flips (as MIMIC)."""
    tokens = []
    for name in NIH_LABELS:
        value = 0.95 * infection if name == "Pneumonia" else render[_NIH_FROM_RENDER[name]]
        positive = value + rng.normal(0, 0.06) > POSITIVE_THRESHOLD
        if rng.random() < (noise if positive else noise / 4):
            positive = not positive
        if positive:
            tokens.append(name)
    return tokens
