"""Out-of-distribution, image-only set in the NIH ChestX-ray14 layout.

Same renderer and the same kind of latent conditions as the MIMIC cohort, but a different population
(outpatients and wards: fewer devices and ICU findings, more nodules, masses, emphysema, fibrosis,
hernia) and a different acquisition (square 128 x 128 PNGs, wider field of view with arms in view, a
steeper tone curve with higher gamma and contrast, less noise, more blur, no MIMIC site styles, mostly
PA). Files: ``Data_Entry_2017.csv`` (the official 11 columns), ``images/<8-digit patient>_<3-digit
follow-up>.png``, ``train_val_list.txt`` / ``test_list.txt`` (patient-level, about 80/20).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.synth import latent as L
from medcam_lab.synth import render as R
from medcam_lab.synth.config import SynthConfig
from medcam_lab.synth.image_jobs import ImageJob, write_image_jobs
from medcam_lab.synth.mimic_iv.patients import patient_rng

DATA_ENTRY_COLUMNS = [
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
]


def generate_nih(root: Path, config: SynthConfig, workers: int | None = None) -> dict:
    """Write the NIH-layout set under ``root``, its images on ``workers`` processes (see
    :func:`medcam_lab.synth.image_jobs.write_image_jobs`); returns counts for the manifest."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    train_val: list[str] = []
    test: list[str] = []
    jobs: list[ImageJob] = []
    for i in range(config.n_ood_patients):
        rng = patient_rng(config.seed, i, 4)
        pid = i + 1
        male = rng.random() < 0.56
        age = int(np.clip(round(rng.normal(47, 16)), 1, 95))
        sev = L.draw_nih_patient(rng)
        body = float(np.clip(rng.normal(1.0, 0.07), 0.86, 1.18))
        anatomy = R.draw_anatomy(rng, body, float(rng.normal(1.0, 0.06)))
        layout = R.draw_layout(rng)
        in_test = rng.random() < 0.2
        n_images = 1 + min(3, int(rng.poisson(0.7)))
        width, height = (
            (2048, 2500)
            if rng.random() < 0.3
            else (int(rng.integers(2400, 3056)), int(rng.integers(2000, 3056)))
        )
        spacing = float(rng.choice([0.143, 0.139, 0.168]))
        for fu in range(n_images):
            drift = {
                k: float(np.clip(v * rng.uniform(0.85, 1.15), 0, 1)) if v > 0 else 0.0 for k, v in sev.items()
            }
            render = L.nih_render_findings(drift)
            tokens = L.nih_labels(rng, render, drift["infection"], config.label_noise)
            view = "PA" if rng.random() < 0.75 else "AP"
            devices = {
                "ett": False,
                "ng": False,
                "central_line": view == "AP" and rng.random() < 0.1,
                "chest_tube": render["pneumothorax"] > 0 and rng.random() < 0.3,
            }
            nz = R.draw_nuisance(rng, 4, portable=False, domain="nih")
            name = f"{pid:08d}_{fu:03d}.png"
            if config.write_images:
                jobs.append(ImageJob(path=str(images_dir / name), view="frontal", size=config.ood_image_size,
                                     anatomy=anatomy, layout=layout, findings=render, devices=devices, nuisance=nz,
                                     gain=config.visual_gain, ap=view == "AP", image_format="PNG"))
            rows.append(
                {
                    "Image Index": name,
                    "Finding Labels": "|".join(tokens) if tokens else "No Finding",
                    "Follow-up #": fu,
                    "Patient ID": pid,
                    "Patient Age": age,
                    "Patient Gender": "M" if male else "F",
                    "View Position": view,
                    "OriginalImage[Width": width,
                    "Height]": height,
                    "OriginalImagePixelSpacing[x": spacing,
                    "y]": spacing,
                }
            )
            (test if in_test else train_val).append(name)
    write_image_jobs(jobs, workers)
    frame = pd.DataFrame(rows, columns=DATA_ENTRY_COLUMNS)
    frame.to_csv(root / "Data_Entry_2017.csv", index=False, lineterminator="\n")
    (root / "train_val_list.txt").write_text("".join(f"{n}\n" for n in train_val))
    (root / "test_list.txt").write_text("".join(f"{n}\n" for n in test))
    prevalence = {}
    tokens = frame["Finding Labels"].str.split("|")
    for label in L.NIH_LABELS:
        prevalence[label] = int(tokens.map(lambda t, label=label: label in t).sum())
    prevalence["No Finding"] = int((frame["Finding Labels"] == "No Finding").sum())
    return {
        "images": len(frame),
        "patients": int(frame["Patient ID"].nunique()),
        "train_val_images": len(train_val),
        "test_images": len(test),
        "label_positives": prevalence,
    }
