"""Rendering and encoding the generated images, one job per file, on several processes.

Every image is a pure function of its job (the renderer draws its texture and noise from the image's own
``Nuisance.seed``), so the files do not depend on the number of worker processes or on the order in which
the jobs finish. The jobs carry only the small frozen records the renderer reads, not the patients.
"""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from PIL import Image as PILImage

from medcam_lab.prepare.image_cache import default_workers
from medcam_lab.synth import render as R

JOBS_PER_TASK = 16
"""Images a worker renders per task it is sent (fewer round trips; about 0.1 s of work at the defaults)."""


@dataclass(frozen=True)
class ImageJob:
    """One image file to render, encode and write.

    Attributes:
        path: file to write (its folder must exist).
        view: ``frontal`` or ``lateral``.
        size: (rows, cols).
        anatomy, layout: the patient's anatomy and the stay's finding layout (``layout`` unused for laterals).
        findings: renderer pattern -> intensity; devices: support devices in view.
        nuisance: acquisition variation, with the seed of the image's texture and noise.
        gain: visual gain of the findings.
        ap: frontal film taken antero-posterior.
        image_format: ``JPEG`` or ``PNG``; quality: JPEG quality (``None`` for PNG).
        truncate: keep only the first 2/5 of the encoded bytes (a planted corrupt file).
    """

    path: str
    view: str
    size: tuple[int, int]
    anatomy: R.Anatomy
    layout: R.Layout | None
    findings: dict[str, float]
    devices: dict[str, bool]
    nuisance: R.Nuisance
    gain: float
    ap: bool
    image_format: str
    quality: int | None = None
    truncate: bool = False


def render_job(job: ImageJob):
    """Pixels (uint8, rows x cols) of one job."""
    if job.view == "frontal":
        if job.layout is None:
            raise ValueError(f"{job.path}: a frontal view needs the stay's finding layout")
        return R.render_frontal(job.size, job.anatomy, job.layout, job.findings, job.devices, job.nuisance, job.gain,
                                ap=job.ap)
    if job.view == "lateral":
        return R.render_lateral(job.size, job.anatomy, job.findings, job.devices, job.nuisance, job.gain)
    raise ValueError(f"view must be 'frontal' or 'lateral', got {job.view!r}")


def encode(pixels, image_format: str, quality: int | None = None) -> bytes:
    """8-bit grayscale pixels encoded as ``JPEG`` (at ``quality``) or ``PNG``."""
    buf = io.BytesIO()
    options = {"quality": quality} if image_format == "JPEG" else {}
    PILImage.fromarray(pixels).save(buf, format=image_format, **options)
    return buf.getvalue()


def write_job(job: ImageJob) -> None:
    """Render, encode and write one job's file."""
    data = encode(render_job(job), job.image_format, job.quality)
    if job.truncate:
        data = data[: len(data) * 2 // 5]
    with open(job.path, "wb") as fh:
        fh.write(data)


def _write_jobs(jobs: Sequence[ImageJob]) -> int:
    for job in jobs:
        write_job(job)
    return len(jobs)


def write_image_jobs(jobs: Sequence[ImageJob], workers: int | None = None) -> int:
    """Write every job's file on ``workers`` processes (``None``: one per available core; 1: in this process).

    Workers are started with ``spawn``: they share nothing with this process (no threads or locks of torch or
    of the caller inherited through ``fork``). Returns the number of files written.

    Raises:
        ValueError: if ``workers`` < 1.
    """
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = list(jobs)
    workers = min(workers, -(-len(jobs) // JOBS_PER_TASK))
    if workers <= 1:
        return _write_jobs(jobs)
    tasks = [jobs[i:i + JOBS_PER_TASK] for i in range(0, len(jobs), JOBS_PER_TASK)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sum(pool.map(_write_jobs, tasks))
