"""The generated images do not depend on the number of processes that render them."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medcam_lab.synth import SynthConfig, generate_cohort
from medcam_lab.synth import latent as L
from medcam_lab.synth import mimic_cxr as CXR
from medcam_lab.synth import mimic_iv as IV
from medcam_lab.synth import render as R
from medcam_lab.synth.image_jobs import write_image_jobs

CONFIG = SynthConfig(n_patients=14, n_ood_patients=8, seed=5)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "synth_manifest.json"}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, dict]]:
    out = {}
    for workers in (1, 2):
        root = tmp_path_factory.mktemp(f"workers{workers}")
        out[workers] = root, generate_cohort(root, CONFIG, workers=workers)
    return out


def test_every_file_identical_with_one_and_two_workers(cohorts):
    (root1, manifest1), (root2, manifest2) = cohorts[1], cohorts[2]
    one, two = _digests(root1), _digests(root2)
    assert one == two
    assert sum(k.endswith(".jpg") for k in one) == manifest1["counts"]["jpg_files_written"] > 20
    assert sum(k.endswith(".png") for k in one) == manifest1["counts"]["nih"]["images"] > 8
    # the worker count is in no output: the manifests differ only by where they were written
    written = [json.loads((r / "synth_manifest.json").read_text()) for r in (root1, root2)]
    for m in (manifest1, manifest2, *written):
        m.pop("root")
    assert manifest1 == manifest2 == written[0] == written[1]
    assert "workers" not in json.dumps(written[0])


def _jpeg(pixels, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_images_equal_a_serial_render_and_encode(cohorts):
    """Oracle: the renderer and PIL called directly, in this process, for a frontal and a lateral image of
    the MIMIC layout and one NIH PNG."""
    root, manifest = cohorts[2]
    patients = IV.draw_patients(CONFIG)
    used: set[int] = set()
    studies = {p.index: CXR.draw_studies(CONFIG, p, used) for p in patients}
    skip = {d["dicom_id"] for key in ("missing_jpg", "corrupt_jpg") for d in manifest["defects"][key]}
    checked = set()
    for p in patients:
        for s in studies[p.index]:
            for im in s.images:
                kind = "frontal" if im.view in CXR.FRONTAL else "lateral"
                if kind in checked or im.dicom_id in skip:
                    continue
                f = {k: float(s.intensity[L.FINDINGS.index(n)]) for k, n in CXR.RENDER_FROM_FINDING.items()}
                size = (im.rows, im.cols)
                if kind == "frontal":
                    layout = s.stay.layout if s.stay is not None else p.ward_layout
                    pixels = R.render_frontal(size, p.anatomy, layout, f, s.devices, im.nuisance,
                                              CONFIG.visual_gain, ap=im.view == "AP")
                else:
                    pixels = R.render_lateral(size, p.anatomy, f, s.devices, im.nuisance, CONFIG.visual_gain)
                path = root / "mimic-cxr-jpg" / im.relpath(s.subject_id, s.study_id)
                assert path.read_bytes() == _jpeg(pixels, CONFIG.jpeg_quality), path
                checked.add(kind)
    assert checked == {"frontal", "lateral"}
    # the planted corrupt JPGs are still the first 2/5 of a whole file
    for d in manifest["defects"]["corrupt_jpg"]:
        data = (root / d["path"]).read_bytes()
        assert data[:2] == b"\xff\xd8" and not data.endswith(b"\xff\xd9")
    entry = pd.read_csv(root / "nih" / "Data_Entry_2017.csv")
    assert len(entry) == manifest["counts"]["nih"]["images"]
    with Image.open(root / "nih" / "images" / entry["Image Index"].iloc[0]) as im:
        assert im.mode == "L" and im.size == CONFIG.ood_image_size[::-1]


def test_worker_count_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        write_image_jobs([], workers=0)
