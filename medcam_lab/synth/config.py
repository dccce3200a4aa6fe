"""Configuration of the synthetic MIMIC-shaped demo cohort (see ``data_cards/synthetic.md``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`medcam_lab.synth.generate_cohort` writes.

    The same config (same ``seed``) always gives byte-identical CSV contents and identical image pixels
    (for a fixed numpy / Pillow version). Every patient draws from its own random stream
    (``seed``, patient index), so a larger ``n_patients`` keeps the first patients' latent draws.

    Attributes:
        n_patients: MIMIC patients (subjects with chest X-rays). At 400 the cohort has roughly 450 ICU stays
            and 800-1000 frontal images taken during an ICU stay.
        seed: master seed.
        image_size: (rows, cols) of the MIMIC-CXR-JPG images; portrait like real chest films.
        n_ood_patients: patients of the out-of-distribution NIH-layout set (1-4 images each).
        defects: inject the documented bad inputs (missing / corrupt JPGs, unparseable event values,
            events outside their stay, duplicate rows, an unknown GCS spelling, non-finite numeric text,
            a stay with an empty 48 h window before a CXR). Listed with their ids in the manifest.
        no_icu_fraction: share of patients who have chest X-rays but never an ICU stay.
        masked_glucose_fraction: share of blood chemistry glucose rows (lab item 50931) whose ``value`` is the
            de-identification mask ``___`` with the number kept in ``valuenum``, as in MIMIC-IV v2.2 (where
            every 50931 row is written so); ``medfuse`` mode drops them, ``clean`` mode reads ``valuenum``.
        second_admission_fraction: share of ICU patients with a second ICU admission.
        second_stay_fraction: share of ICU admissions holding two ICU stays (excluded by MedFuse's cohort rule).
        studies_per_icu_day: Poisson rate of extra studies per ICU day (each stay has at least one study).
        vitals_per_hour: charting rate of the bedside vitals (heart rate, blood pressures, respiratory rate,
            SpO2). 1 (default) charts them about hourly, about 600 chart rows per ICU stay; about 13 gives
            MIMIC-IV's density of about 6,000 chart rows per stay (for scale benchmarks).
        odd_size_fraction: share of MIMIC images written with another shape (square or landscape)
            instead of ``image_size`` (real MIMIC-CXR-JPG sizes vary).
        visual_gain: multiplies the amplitude of every drawn finding (1.0 = the documented weak signal;
            0.0 = images carry no disease information).
        ehr_gain: multiplies every condition effect on the EHR trajectories (0.0 = EHR carries none).
        label_noise: probability that a report label is flipped (missed finding or false positive).
        ood_image_size: (rows, cols) of the NIH-layout PNGs (square, unlike the MIMIC images).
        jpeg_quality: JPEG quality of the MIMIC images.
        write_truth: also write ``synth_truth/`` (per-study latent severities and finding intensities),
            which no loader reads; it is there to check and explain the planted signal.
        write_images: render and write the JPG / PNG files. ``False`` writes every table (including the
            image metadata) but no pixels: a quick way to get labels and EHR only (tests, EHR work).
    """

    n_patients: int = 400
    seed: int = 0
    image_size: tuple[int, int] = (160, 128)
    n_ood_patients: int = 300
    defects: bool = True
    no_icu_fraction: float = 0.08
    second_admission_fraction: float = 0.18
    masked_glucose_fraction: float = 0.3
    second_stay_fraction: float = 0.04
    studies_per_icu_day: float = 0.25
    vitals_per_hour: float = 1.0
    odd_size_fraction: float = 0.08
    visual_gain: float = 1.0
    ehr_gain: float = 1.0
    label_noise: float = 0.015
    ood_image_size: tuple[int, int] = (128, 128)
    jpeg_quality: int = 95
    write_truth: bool = True
    write_images: bool = True

    def __post_init__(self) -> None:
        if self.n_patients < 10:
            raise ValueError(f"n_patients must be >= 10 (defects need a few stays), got {self.n_patients}")
        if self.n_ood_patients < 0:
            raise ValueError(f"n_ood_patients must be >= 0, got {self.n_ood_patients}")
        for name in ("image_size", "ood_image_size"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 48:
                raise ValueError(f"{name} must be (rows, cols) with both >= 48, got {size!r}")
        for name in (
            "no_icu_fraction",
            "second_admission_fraction",
            "masked_glucose_fraction",
            "second_stay_fraction",
            "odd_size_fraction",
            "label_noise",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.5:
                raise ValueError(f"{name} must be in [0, 0.5], got {value}")
        if self.visual_gain < 0 or self.ehr_gain < 0 or self.studies_per_icu_day < 0:
            raise ValueError("visual_gain, ehr_gain and studies_per_icu_day must be >= 0")
        if not 0 < self.vitals_per_hour <= 60:
            raise ValueError(f"vitals_per_hour must be in (0, 60], got {self.vitals_per_hour}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
