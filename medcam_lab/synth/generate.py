"""``generate_cohort``: write the synthetic MIMIC-shaped demo cohort and its manifest."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.synth import latent as L
from medcam_lab.synth import mimic_cxr as CXR
from medcam_lab.synth import mimic_iv as IV
from medcam_lab.synth.config import SynthConfig
from medcam_lab.synth.nih import generate_nih

MANIFEST_NAME = "synth_manifest.json"
SUBDIRS = ("mimic-iv", "mimic-cxr-jpg", "nih", "synth_truth")


def write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    """gzip CSV with a fixed header (no name, mtime 0), so equal tables give equal files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    with (
        open(path, "wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(data)


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST_NAME).exists():
            raise FileExistsError(
                f"{out} is not empty and holds no {MANIFEST_NAME}; refusing to write into it"
            )
        for name in SUBDIRS:
            shutil.rmtree(out / name, ignore_errors=True)
        (out / MANIFEST_NAME).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _label_counts(chexpert: pd.DataFrame) -> dict[str, dict[str, int]]:
    out = {}
    for label in L.CHEXPERT_LABELS:
        col = chexpert[label]
        out[label] = {
            "positive": int((col == 1.0).sum()),
            "negative": int((col == 0.0).sum()),
            "uncertain": int((col == -1.0).sum()),
            "blank": int(col.isna().sum()),
        }
    return out


def _empty_window_defects(
    rng: np.random.Generator, patients: list[IV.Patient], studies: dict[int, list[CXR.Study]], k: int
) -> list[dict]:
    """Pick stays with exactly one in-stay frontal study, at least 6 h after intime and 12 h before outtime."""
    candidates = []
    for p in patients:
        by_stay: dict[int, list[CXR.Study]] = {}
        for s in studies[p.index]:
            if s.location == "icu" and s.stay is not None and any(im.view in CXR.FRONTAL for im in s.images):
                by_stay.setdefault(s.stay.stay_id, []).append(s)
        for ss in by_stay.values():
            s = ss[0]
            stay, t_rel = s.stay, s.t_rel  # an ICU study has both
            if len(ss) == 1 and stay is not None and t_rel is not None and t_rel >= 6 and stay.los_h - t_rel >= 12:
                candidates.append(s)
    chosen = [
        candidates[i]
        for i in sorted(rng.choice(len(candidates), size=min(k, len(candidates)), replace=False))
    ]
    return [
        {
            "subject_id": s.subject_id,
            "hadm_id": s.stay.hadm_id,
            "stay_id": s.stay.stay_id,
            "study_id": s.study_id,
            "dicom_ids": [im.dicom_id for im in s.images if im.view in CXR.FRONTAL],
            "study_time": str(IV.fmt_times(np.array([s.time]))[0]),
            "window_start": str(IV.fmt_times(np.array([s.time - 48 * IV.HOUR]))[0]),
            "_time": s.time,
        }
        for s in chosen
    ]


def _frontal_in_stay(metadata: pd.DataFrame, icustays: pd.DataFrame) -> tuple[int, int]:
    """(frontal images, studies) whose StudyDate+StudyTime falls inside an ICU stay of the subject."""
    meta = metadata.copy()
    t = np.floor(meta["StudyTime"].astype(float)).astype(np.int64).astype(str).str.zfill(6)
    meta["when"] = pd.to_datetime(meta["StudyDate"].astype(str) + t, format="%Y%m%d%H%M%S")
    stays = icustays[["subject_id", "stay_id", "intime", "outtime"]].copy()
    stays["intime"] = pd.to_datetime(stays["intime"])
    stays["outtime"] = pd.to_datetime(stays["outtime"])
    joined = meta.merge(stays, on="subject_id")
    inside = joined[(joined["when"] >= joined["intime"]) & (joined["when"] <= joined["outtime"])]
    frontal = inside[inside["ViewPosition"].isin(CXR.FRONTAL)]
    return int(frontal["dicom_id"].nunique()), int(inside["study_id"].nunique())


def generate_cohort(out_dir: str | Path, config: SynthConfig = SynthConfig(),  # noqa: B008 (frozen)
                    workers: int | None = None) -> dict:
    """Write the synthetic cohort under ``out_dir`` and return its manifest.

    Layout: ``mimic-iv/`` (v2.2+ hosp/ and icu/ gzip CSVs), ``mimic-cxr-jpg/`` (v2.0.0 metadata,
    chexpert and split tables plus ``files/pNN/p<subject>/s<study>/<dicom>.jpg``), ``nih/`` (the
    out-of-distribution set in the NIH ChestX-ray14 layout), ``synth_truth/`` (latent state per study;
    no loader reads it) and ``synth_manifest.json`` (this manifest). See ``data_cards/synthetic.md``.

    The manifest holds the config, the relative paths written, counts, label counts, the realistic
    quirks of the data and, under ``defects``, every planted bad input with its exact ids.

    Args:
        out_dir: target directory; must be empty, absent, or a previous synthetic cohort (replaced).
        config: what to generate.
        workers: processes that render and encode the images (``None``: one per available core; 1: this
            process alone). The files are identical for any number; it is not part of the manifest.
    """
    out = Path(out_dir)
    _prepare_out_dir(out)
    patients, studies = _draw_skeleton(config)
    chart, lab = _draw_events(config, patients)
    chart, lab, defects, missing, corrupt = _plant_defects(config, patients, studies, chart, lab)
    lab, quirks = _release_quirks(config, patients, studies, chart, lab)
    paths = _paths(config)
    tables = _tables(config, patients, studies, chart, lab)
    for key, frame in tables.items():
        write_csv_gz(frame, out / paths[key])
    n_written, nih_counts = _write_images(out, config, patients, studies, missing, corrupt, workers)
    counts = _counts(patients, studies, tables, n_written, nih_counts)
    manifest = _manifest(out, config, paths, counts, tables["cxr_chexpert"], quirks, defects)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    return manifest


def _draw_skeleton(config: SynthConfig) -> tuple[list[IV.Patient], dict[int, list[CXR.Study]]]:
    """Patients with their admissions and ICU stays, and each patient's studies with their labels."""
    patients = IV.draw_patients(config)
    used_study_ids: set[int] = set()
    studies = {p.index: CXR.draw_studies(config, p, used_study_ids) for p in patients}
    return patients, studies


def _draw_events(config: SynthConfig, patients: list[IV.Patient]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chartevents and labevents tables (times still integer seconds)."""
    chart_parts, lab_parts = [], []
    for p in patients:
        rng = IV.patient_rng(config.seed, p.index, 2)
        for stay in p.stays:
            chart_parts.append(IV.chart_events(rng, p, stay, config.ehr_gain, vitals_per_hour=config.vitals_per_hour))
        for adm in p.admissions:
            if adm.stays:
                lab_parts.append(IV.lab_events(rng, p, adm, config.ehr_gain))
        if p.admissions and p.stays and rng.random() < 0.1:
            lab_parts.append(IV.outpatient_labs(rng, p, p.admissions[0].admittime))
    chart = IV.chartevents_frame(chart_parts)
    lab = IV.labevents_frame(lab_parts, np.random.default_rng([config.seed, 0]))
    return chart, lab


def _plant_defects(
    config: SynthConfig,
    patients: list[IV.Patient],
    studies: dict[int, list[CXR.Study]],
    chart: pd.DataFrame,
    lab: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object], set[str], set[str]]:
    """Plant the documented bad inputs (when ``config.defects``): returns the event tables, the manifest's
    ``defects`` and the dicom ids of the images to leave missing and to write corrupt."""
    defects: dict[str, object] = {}
    missing: set[str] = set()
    corrupt: set[str] = set()
    stays_by_id = {s.stay_id: s for p in patients for s in p.stays}
    if config.defects:
        drng = np.random.default_rng([config.seed, 5])
        empty = _empty_window_defects(drng, patients, studies, 2)
        for e in empty:
            t1 = e.pop("_time")
            t0 = t1 - 48 * IV.HOUR
            chart = chart[~((chart["stay_id"] == e["stay_id"]) & chart["charttime"].between(t0, t1))]
            lab = lab[~((lab["hadm_id"] == e["hadm_id"]) & lab["charttime"].between(t0, t1)).fillna(False)]
        chart, lab = chart.reset_index(drop=True), lab.reset_index(drop=True)
        chart, lab, records = IV.inject_event_defects(
            chart, lab, stays_by_id, drng, {e["stay_id"] for e in empty}, {e["hadm_id"] for e in empty}
        )
        defects.update(records)
        defects["stay_without_events_48h_before_cxr"] = empty
        # image defects: frontal AP images taken in an ICU stay (so a pairing pipeline meets them)
        skip = {d for e in empty for d in e["dicom_ids"]}
        pool = [
            (p, s, im)
            for p in patients
            for s in studies[p.index]
            if s.location == "icu"
            for im in s.images
            if im.view == "AP" and im.dicom_id not in skip
        ]
        picks = drng.choice(len(pool), size=min(5, len(pool)), replace=False)
        for n, j in enumerate(sorted(picks)):
            im = pool[j][2]
            (missing if n < 3 else corrupt).add(im.dicom_id)
        img_rec = {
            d: {
                "dicom_id": im.dicom_id,
                "study_id": s.study_id,
                "subject_id": s.subject_id,
                "path": f"mimic-cxr-jpg/{im.relpath(s.subject_id, s.study_id)}",
            }
            for _p, s, im in pool
            for d in [im.dicom_id]
            if d in missing | corrupt
        }
        defects["missing_jpg"] = [img_rec[d] for d in sorted(missing)]
        defects["corrupt_jpg"] = [img_rec[d] for d in sorted(corrupt)]
    no_icu = sorted(p.subject_id for p in patients if not p.stays and studies[p.index])
    defects["subjects_without_icu_stay"] = no_icu
    return chart, lab, defects, missing, corrupt


def _release_quirks(
    config: SynthConfig,
    patients: list[IV.Patient],
    studies: dict[int, list[CXR.Study]],
    chart: pd.DataFrame,
    lab: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Mask blood glucose values as the release does and count the quirks (always present, as in the real
    data); returns the lab table and the manifest's ``quirks``."""
    lab, n_masked = IV.mask_values_as_released(lab, np.random.default_rng([config.seed, 50931]),
                                               config.masked_glucose_fraction)
    quirks = {
        "blood_glucose_value_masked_rows": n_masked,
        "urine_glucose_NEG_rows": int(((lab["itemid"] == 51478) & (lab["value"] == "NEG")).sum()),
        "fio2_charted_as_fraction_rows": int(
            ((chart["itemid"] == 223835) & (pd.to_numeric(chart["valuenum"], errors="coerce") <= 1)).sum()
        ),
        "temperature_fahrenheit_rows": int((chart["itemid"] == 223761).sum()),
        "height_inch_rows": int((chart["itemid"] == 226707).sum()),
        "weight_lbs_rows": int((chart["itemid"] == 226531).sum()),
        "other_fluid_ph_rows": int((lab["itemid"] == 50831).sum()),
        "urine_ph_rows": int(lab["itemid"].isin([51491, 51094]).sum()),
        "outpatient_lab_rows_without_hadm_id": int(lab["hadm_id"].isna().sum()),
        "unrelated_chart_item_rows": int(chart["itemid"].isin(IV.UNRELATED_CHART_ITEMIDS).sum()),
        "unrelated_lab_item_rows": int(lab["itemid"].isin(IV.UNRELATED_LAB_ITEMIDS).sum()),
        "capillary_refill_rows": int(chart["itemid"].isin(IV.CAPILLARY_REFILL_ITEMIDS).sum()),
        "gcs_verbal_no_response_ett_rows": int((chart["value"] == IV.GCS_VERBAL_ETT).sum()),
        "admissions_with_two_icu_stays": sorted(
            a.hadm_id for p in patients for a in p.admissions if len(a.stays) > 1
        ),
        "stays_changing_careunit": sorted(
            s.stay_id for p in patients for s in p.stays if s.first_careunit != s.last_careunit
        ),
        "studies_before_icu_stay": sum(s.location == "pre_icu" for ss in studies.values() for s in ss),
        "studies_after_icu_stay": sum(s.location == "post_icu" for ss in studies.values() for s in ss),
        "studies_with_several_frontal_images": sum(
            sum(im.view in CXR.FRONTAL for im in s.images) > 1 for ss in studies.values() for s in ss
        ),
    }
    return lab, quirks


def _paths(config: SynthConfig) -> dict[str, str]:
    """Relative path of every table and image folder this config writes (the manifest's ``paths``)."""
    paths = {
        "patients": "mimic-iv/hosp/patients.csv.gz",
        "admissions": "mimic-iv/hosp/admissions.csv.gz",
        "labevents": "mimic-iv/hosp/labevents.csv.gz",
        "d_labitems": "mimic-iv/hosp/d_labitems.csv.gz",
        "icustays": "mimic-iv/icu/icustays.csv.gz",
        "chartevents": "mimic-iv/icu/chartevents.csv.gz",
        "d_items": "mimic-iv/icu/d_items.csv.gz",
        "cxr_metadata": "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz",
        "cxr_chexpert": "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz",
        "cxr_split": "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz",
        "cxr_files": "mimic-cxr-jpg/files",
        "nih_data_entry": "nih/Data_Entry_2017.csv",
        "nih_images": "nih/images",
        "nih_train_val_list": "nih/train_val_list.txt",
        "nih_test_list": "nih/test_list.txt",
        "truth_studies": "synth_truth/studies.csv.gz",
    }
    if not config.write_truth:
        paths.pop("truth_studies")
    if config.n_ood_patients == 0:
        for key in ("nih_data_entry", "nih_images", "nih_train_val_list", "nih_test_list"):
            paths.pop(key)
    return paths


def _tables(
    config: SynthConfig,
    patients: list[IV.Patient],
    studies: dict[int, list[CXR.Study]],
    chart: pd.DataFrame,
    lab: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """The MIMIC-IV and MIMIC-CXR-JPG tables (and the truth table), keyed as in :func:`_paths`."""
    chart_out, lab_out = IV.finalize_events(chart, lab)
    icustays = IV.icustays_frame(patients)
    metadata = CXR.metadata_frame(patients, studies)
    chexpert = CXR.chexpert_frame(studies)
    tables = {
        "patients": IV.patients_frame(patients),
        "admissions": IV.admissions_frame(patients),
        "labevents": lab_out,
        "d_labitems": IV.d_labitems_frame(),
        "icustays": icustays,
        "chartevents": chart_out,
        "d_items": IV.d_items_frame(),
        "cxr_metadata": metadata,
        "cxr_chexpert": chexpert,
        "cxr_split": CXR.split_frame(patients, metadata),
    }
    if config.write_truth:
        tables["truth_studies"] = CXR.truth_frame(studies)
    return tables


def _write_images(
    out: Path,
    config: SynthConfig,
    patients: list[IV.Patient],
    studies: dict[int, list[CXR.Study]],
    missing: set[str],
    corrupt: set[str],
    workers: int | None,
) -> tuple[int, dict]:
    """Render and write the MIMIC-CXR-JPG images and the NIH-layout set; returns the JPGs written and the
    NIH counts."""
    n_written = (
        CXR.write_images(out / "mimic-cxr-jpg", patients, studies, config, missing, corrupt, workers)
        if config.write_images
        else 0
    )
    nih_counts = generate_nih(out / "nih", config, workers) if config.n_ood_patients > 0 else {"images": 0}
    return n_written, nih_counts


def _counts(
    patients: list[IV.Patient],
    studies: dict[int, list[CXR.Study]],
    tables: dict[str, pd.DataFrame],
    n_written: int,
    nih_counts: dict,
) -> dict[str, object]:
    """The manifest's ``counts``."""
    metadata = tables["cxr_metadata"]
    frontal_in_stay, studies_in_stay = _frontal_in_stay(metadata, tables["icustays"])
    all_studies = [s for ss in studies.values() for s in ss]
    return {
        "patients": len(patients),
        "subjects_with_icu_stay": sum(bool(p.stays) for p in patients),
        "admissions": sum(len(p.admissions) for p in patients),
        "icu_stays": len(tables["icustays"]),
        "studies": len(all_studies),
        "studies_in_icu_stay": studies_in_stay,
        "images": len(metadata),
        "jpg_files_written": n_written,
        "frontal_images": int(metadata["ViewPosition"].isin(CXR.FRONTAL).sum()),
        "lateral_images": int((~metadata["ViewPosition"].isin(CXR.FRONTAL)).sum()),
        "frontal_images_in_icu_stay": frontal_in_stay,
        "chartevents_rows": len(tables["chartevents"]),
        "labevents_rows": len(tables["labevents"]),
        "nih": nih_counts,
    }


def _manifest(
    out: Path,
    config: SynthConfig,
    paths: dict[str, str],
    counts: dict[str, object],
    chexpert: pd.DataFrame,
    quirks: dict[str, object],
    defects: dict[str, object],
) -> dict:
    """The manifest written to ``synth_manifest.json``."""
    return {
        "generator": "medcam_lab.synth",
        "format_version": 1,
        "root": str(out.resolve()),
        "config": config.to_dict(),
        "roots": {"mimic_iv": "mimic-iv", "mimic_cxr": "mimic-cxr-jpg", "nih": "nih"},
        "paths": paths,
        "counts": counts,
        "chexpert_label_counts": _label_counts(chexpert),
        "item_ids": {
            "chart_17_variables": sorted(IV.CHART_ITEMIDS_17),
            "chart_capillary_refill": sorted(IV.CAPILLARY_REFILL_ITEMIDS),
            "chart_unrelated": sorted(IV.UNRELATED_CHART_ITEMIDS),
            "lab_17_variables": sorted(IV.LAB_ITEMIDS_17),
            "lab_unrelated": sorted(IV.UNRELATED_LAB_ITEMIDS),
        },
        "quirks": quirks,
        "defects": defects,
    }


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
