"""Synthetic MIMIC-CXR-JPG (v2.0.0 layout): studies, images, metadata, CheXpert labels, split.

Most studies are portable AP films taken during an ICU stay; some are PA, some are taken before or
after the stay (outside it), some studies add a lateral view (LATERAL / LL) or a second frontal image,
and some subjects have films but no ICU stay at all. Labels are study-level and come from the noisy
report labeller of :mod:`medcam_lab.synth.latent`; images from :mod:`medcam_lab.synth.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.synth import latent as L
from medcam_lab.synth import render as R
from medcam_lab.synth.config import SynthConfig
from medcam_lab.synth.image_jobs import ImageJob, write_image_jobs
from medcam_lab.synth.mimic_iv.patients import HOUR, Patient, Stay, patient_rng

METADATA_COLUMNS = [
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
CHEXPERT_COLUMNS = ["subject_id", "study_id", *L.CHEXPERT_LABELS]
SPLIT_COLUMNS = ["dicom_id", "study_id", "subject_id", "split"]
VIEW_MEANING = {
    "AP": "antero-posterior",
    "PA": "postero-anterior",
    "LATERAL": "lateral",
    "LL": "left lateral",
}
FRONTAL = ("AP", "PA")

RENDER_FROM_FINDING = {
    "cardiomegaly": "Cardiomegaly",
    "mediastinum": "Enlarged Cardiomediastinum",
    "edema": "Edema",
    "effusion": "Pleural Effusion",
    "consolidation": "Consolidation",
    "atelectasis": "Atelectasis",
    "pneumothorax": "Pneumothorax",
    "fracture": "Fracture",
    "nodule": "Lung Lesion",
    "pleural": "Pleural Other",
}
"""Renderer pattern <- CheXpert finding whose intensity drives it (Lung Opacity and Pneumonia have no own
pattern: they are read from the consolidation / edema / collapse patterns)."""


@dataclass
class CxrImage:
    """One image of a study (its nuisance is drawn when the study is planned)."""

    dicom_id: str
    view: str
    rows: int
    cols: int
    nuisance: R.Nuisance

    def relpath(self, subject_id: int, study_id: int) -> str:
        """The image's path under the MIMIC-CXR-JPG root (``files/pNN/p<subject>/s<study>/<dicom>.jpg``)."""
        return f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}/{self.dicom_id}.jpg"


@dataclass
class Study:
    """One chest X-ray study: when, where (relative to the ICU stay), latent state, labels, images."""

    study_id: int
    subject_id: int
    time: int  # seconds (shifted dates)
    millis: int
    location: str  # icu, pre_icu, post_icu, ward, outpatient
    stay: Stay | None
    hadm_id: int | None
    t_rel: float | None  # hours since the stay's intime (pre/post: negative / beyond LOS)
    severity: np.ndarray
    intensity: np.ndarray  # finding intensities (latent.FINDINGS order)
    devices: dict[str, bool]
    labels: dict[str, float]
    description: str | None
    images: list[CxrImage] = field(default_factory=list)


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(f"{int(v):08x}" for v in rng.integers(0, 2**32, 5, dtype=np.uint64))


def draw_studies(config: SynthConfig, patient: Patient, used_study_ids: set[int]) -> list[Study]:
    """All chest X-ray studies of one patient (times, views, latent state, labels, image nuisance)."""
    rng = patient_rng(config.seed, patient.index, 3)
    plans: list[tuple[int, str, Stay | None, int | None]] = []  # (time, location, stay, hadm)
    for adm in patient.admissions:
        for k, stay in enumerate(adm.stays):
            los = stay.los_h
            n_in = 1 + int(rng.poisson(config.studies_per_icu_day * los / 24))
            for j in range(n_in):
                if j == 0 and rng.random() < 0.7:
                    t = rng.uniform(0.3, min(10.0, los - 0.5))
                else:
                    t = rng.uniform(0.5, los - 0.3)
                plans.append((stay.intime + int(t * HOUR), "icu", stay, adm.hadm_id))
            earliest = (adm.edregtime or adm.admittime) if k == 0 else adm.stays[k - 1].outtime
            if rng.random() < 0.3 and stay.intime - earliest > 0.75 * HOUR:
                t0 = max(earliest + 0.25 * HOUR, stay.intime - 24 * HOUR)
                plans.append((int(rng.uniform(t0, stay.intime - 0.25 * HOUR)), "pre_icu", stay, adm.hadm_id))
            latest = adm.stays[k + 1].intime if k + 1 < len(adm.stays) else adm.dischtime
            if rng.random() < 0.3 and latest - stay.outtime > 8 * HOUR:
                plans.append(
                    (
                        int(rng.uniform(stay.outtime + 4 * HOUR, latest - 2 * HOUR)),
                        "post_icu",
                        stay,
                        adm.hadm_id,
                    )
                )
        if not adm.stays:
            for _ in range(int(rng.integers(1, 3))):
                plans.append(
                    (int(rng.uniform(adm.admittime + HOUR, adm.dischtime - HOUR)), "ward", None, adm.hadm_id)
                )
    if not patient.admissions:
        start = int(np.datetime64(f"{patient.anchor_year:04d}-01-01T00:00:00", "s").astype(np.int64))
        for _ in range(int(rng.integers(1, 4))):
            plans.append((start + int(rng.uniform(0, 3 * 365 * 24) * HOUR), "outpatient", None, None))
    plans.sort(key=lambda p: p[0])

    studies = []
    for time, location, plan_stay, hadm_id in plans:
        study_id = int(rng.integers(50_000_000, 60_000_000))
        while study_id in used_study_ids:
            study_id = 50_000_000 + (study_id - 50_000_000 + 7919) % 10_000_000
        used_study_ids.add(study_id)
        if plan_stay is not None:
            t_rel = (time - plan_stay.intime) / HOUR
            lat = plan_stay.latent
        else:
            t_rel, lat = None, patient.ward
        sev = lat.severity(0.0 if t_rel is None else t_rel)[0]
        devices = lat.devices(0.0 if t_rel is None else t_rel)
        intensity = L.findings(sev, patient.chronic)
        labels = L.report_labels(rng, intensity, any(devices.values()), config.label_noise)
        icu = location == "icu"
        if icu:
            frontal = "AP" if rng.random() < 0.9 else "PA"
        else:
            frontal = "PA" if rng.random() < 0.55 else "AP"
        views = [frontal]
        if frontal == "AP" and rng.random() < 0.06:
            views.append("AP")  # a repeated frontal film in the same study
        if rng.random() < (
            0.6 if frontal == "PA" and icu else (0.85 if frontal == "PA" else (0.05 if icu else 0.1))
        ):
            views.append("LL" if rng.random() < 0.3 else "LATERAL")
        description: str | None
        if frontal == "AP":
            description = "CHEST (PORTABLE AP)" if icu or rng.random() < 0.6 else "CHEST (SINGLE VIEW)"
        else:
            description = "CHEST (PA AND LAT)" if rng.random() < 0.9 else "CHEST (PRE-OP PA AND LAT)"
        if rng.random() < 0.03:
            description = None
        style = int(rng.choice(4, p=[0.35, 0.3, 0.25, 0.1] if frontal == "AP" else [0.35, 0.1, 0.15, 0.4]))
        millis = 0 if rng.random() < 0.15 else int(rng.integers(1, 1000))
        study = Study(
            study_id=study_id,
            subject_id=patient.subject_id,
            time=time,
            millis=millis,
            location=location,
            stay=plan_stay,
            hadm_id=hadm_id,
            t_rel=t_rel,
            severity=sev,
            intensity=intensity,
            devices=devices,
            labels=labels,
            description=description,
        )
        for view in views:
            rows, cols = config.image_size
            if rng.random() < config.odd_size_fraction:
                rows, cols = (cols, rows) if rng.random() < 0.5 else (rows, rows)
            nz = R.draw_nuisance(rng, style, portable=view == "AP" and description == "CHEST (PORTABLE AP)")
            study.images.append(
                CxrImage(dicom_id=_dicom_id(rng), view=view, rows=rows, cols=cols, nuisance=nz)
            )
        studies.append(study)
    return studies


def image_job(path: Path, patient: Patient, study: Study, image: CxrImage, config: SynthConfig,
              truncate: bool = False) -> ImageJob:
    """What :mod:`medcam_lab.synth.image_jobs` needs to render and write one image of a study as JPEG."""
    f = {key: float(study.intensity[L.FINDINGS.index(name)]) for key, name in RENDER_FROM_FINDING.items()}
    frontal = image.view in FRONTAL
    return ImageJob(path=str(path), view="frontal" if frontal else "lateral", size=(image.rows, image.cols),
                    anatomy=patient.anatomy,
                    layout=(study.stay.layout if study.stay is not None else patient.ward_layout) if frontal else None,
                    findings=f, devices=study.devices, nuisance=image.nuisance, gain=config.visual_gain,
                    ap=image.view == "AP", image_format="JPEG", quality=config.jpeg_quality, truncate=truncate)


def study_time_fields(time: int, millis: int) -> tuple[int, float]:
    """StudyDate (int YYYYMMDD) and StudyTime (float HHMMSS.fff; leading zeros lost, as in the CSV)."""
    stamp = str(np.datetime64(int(time), "s"))  # YYYY-MM-DDTHH:MM:SS
    date = int(stamp[:10].replace("-", ""))
    hhmmss = int(stamp[11:13]) * 10000 + int(stamp[14:16]) * 100 + int(stamp[17:19])
    return date, round(hhmmss + millis / 1000.0, 3)


def metadata_frame(patients: list[Patient], studies: dict[int, list[Study]]) -> pd.DataFrame:
    """``mimic-cxr-2.0.0-metadata`` (official column order), one row per image."""
    rows = []
    for p in patients:
        for s in studies[p.index]:
            date, tm = study_time_fields(s.time, s.millis)
            for im in s.images:
                if im.view == "AP":
                    orient = ("Recumbent", "Erect", None)[
                        int(np.searchsorted([0.7, 0.9], (s.millis % 100) / 100))
                    ]
                else:
                    orient = "Erect" if s.millis % 20 else None
                rows.append(
                    {
                        "dicom_id": im.dicom_id,
                        "subject_id": s.subject_id,
                        "study_id": s.study_id,
                        "PerformedProcedureStepDescription": s.description,
                        "ViewPosition": im.view,
                        "Rows": im.rows,
                        "Columns": im.cols,
                        "StudyDate": date,
                        "StudyTime": tm,
                        "ProcedureCodeSequence_CodeMeaning": s.description,
                        "ViewCodeSequence_CodeMeaning": VIEW_MEANING[im.view],
                        "PatientOrientationCodeSequence_CodeMeaning": orient,
                    }
                )
    frame = pd.DataFrame(rows, columns=METADATA_COLUMNS)
    return frame.sort_values(["subject_id", "study_id", "dicom_id"], kind="stable").reset_index(drop=True)


def chexpert_frame(studies: dict[int, list[Study]]) -> pd.DataFrame:
    """``mimic-cxr-2.0.0-chexpert``: one row per study, the 14 labels in official order."""
    rows = [
        {"subject_id": s.subject_id, "study_id": s.study_id, **s.labels}
        for ss in studies.values()
        for s in ss
    ]
    frame = pd.DataFrame(rows, columns=CHEXPERT_COLUMNS)
    return frame.sort_values(["subject_id", "study_id"], kind="stable").reset_index(drop=True)


def split_frame(patients: list[Patient], metadata: pd.DataFrame) -> pd.DataFrame:
    """``mimic-cxr-2.0.0-split``: one row per image, the patient's split."""
    split = {p.subject_id: p.split for p in patients}
    frame = metadata[["dicom_id", "study_id", "subject_id"]].copy()
    frame["split"] = frame["subject_id"].map(split)
    return frame[SPLIT_COLUMNS]


def truth_frame(studies: dict[int, list[Study]]) -> pd.DataFrame:
    """Per-study latent state (not part of MIMIC): severities, finding intensities, devices."""
    rows = []
    for ss in studies.values():
        for s in ss:
            row = {
                "subject_id": s.subject_id,
                "study_id": s.study_id,
                "location": s.location,
                "stay_id": s.stay.stay_id if s.stay is not None else None,
                "hadm_id": s.hadm_id,
                "hours_since_intime": None if s.t_rel is None else round(s.t_rel, 3),
            }
            row.update({f"sev_{c}": round(float(v), 4) for c, v in zip(L.CONDITIONS, s.severity)})
            row.update({f"find_{f}": round(float(v), 4) for f, v in zip(L.FINDINGS, s.intensity)})
            row.update({f"device_{k}": int(v) for k, v in s.devices.items()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame["stay_id"] = pd.array(frame["stay_id"], dtype="Int64")
    frame["hadm_id"] = pd.array(frame["hadm_id"], dtype="Int64")
    return frame.sort_values(["subject_id", "study_id"], kind="stable").reset_index(drop=True)


def write_images(
    root: Path,
    patients: list[Patient],
    studies: dict[int, list[Study]],
    config: SynthConfig,
    missing: set[str],
    corrupt: set[str],
    workers: int | None = None,
) -> int:
    """Render and write every JPG (except ``missing``; ``corrupt`` ones are truncated) on ``workers`` processes
    (see :func:`medcam_lab.synth.image_jobs.write_image_jobs`). Returns files written."""
    jobs = []
    made: set[Path] = set()
    for p in patients:
        for s in studies[p.index]:
            for im in s.images:
                if im.dicom_id in missing:
                    continue
                path = root / im.relpath(s.subject_id, s.study_id)
                if path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                jobs.append(image_job(path, p, s, im, config, truncate=im.dicom_id in corrupt))
    return write_image_jobs(jobs, workers)
