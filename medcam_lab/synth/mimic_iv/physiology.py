"""Charted values of the synthetic MIMIC-IV: each stay's latent course turned into chart events and lab
events (baseline + condition shift + AR(1) noise, on jittered charting grids), and outpatient labs.
"""

from __future__ import annotations

import numpy as np

from medcam_lab.synth import latent as L
from medcam_lab.synth.mimic_iv.items import CAP_REFILL, GCS_EYE, GCS_MOTOR, GCS_VERBAL, GCS_VERBAL_ETT
from medcam_lab.synth.mimic_iv.patients import HOUR, Admission, Patient, Stay

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
        add(t_adm, 226730, np.array([cm]))
    if u < 0.6:
        add(t_adm, 226707, np.array([np.round(cm / 2.54)]))
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
    itemids = np.concatenate(out["itemid"])
    num = np.concatenate(out["num"])
    text = np.concatenate(out["text"])
    warning = np.zeros(n, np.int64)
    warning[(itemids == 220045) & ((num > 120) | (num < 50))] = 1
    warning[(itemids == 220277) & (num < 90)] = 1
    carers = rng.integers(10_000, 99_999, 4)
    return {
        "subject_id": np.full(n, stay.subject_id),
        "hadm_id": np.full(n, stay.hadm_id),
        "stay_id": np.full(n, stay.stay_id),
        "caregiver_id": carers[rng.integers(0, 4, n)],
        "charttime": charttime,
        "storetime": store,
        "itemid": itemids,
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
