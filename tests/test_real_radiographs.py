"""The real radiographs of ``tests/data/real/cxr/`` through the DICOM recipe, checked against pydicom
computations written here (spec ``cxr.md``: VOI LUT, MONOCHROME1 inverted as max − x, scaled by the maximum)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from medcam_lab.datasets.base import read_gray_image
from medcam_lab.datasets.dicom import convert_dicoms
from medcam_lab.prepare.image_cache import build_image_cache

CXR = Path(__file__).parent / "data" / "real" / "cxr"
MONO2 = CXR / "siim_acr_chest_pa_monochrome2.dcm"
MONO1 = CXR / "siim_acr_chest_pa_monochrome1_inverted.dcm"


def by_hand(path: Path) -> np.ndarray:
    """The recipe with pydicom and numpy: the file has no VOI LUT or window, so pixels are used as stored."""
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds and "VOILUTSequence" not in ds
    x = ds.pixel_array.astype(np.float64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        x = x.max() - x
    return np.round(x / x.max() * 255).astype(np.uint8)


def test_real_dicom_and_its_monochrome1_copy(tmp_path) -> None:
    result = convert_dicoms([MONO2, MONO1], tmp_path)
    assert result["skipped"] == {} and len(result["converted"]) == 2
    out2 = np.asarray(Image.open(tmp_path / f"{MONO2.stem}.png"))
    out1 = np.asarray(Image.open(tmp_path / f"{MONO1.stem}.png"))
    assert out2.shape == out1.shape == (1024, 1024) and out2.dtype == np.uint8
    np.testing.assert_array_equal(out2, by_hand(MONO2))
    np.testing.assert_array_equal(out1, by_hand(MONO1))
    # identical stored pixels (0..254): the MONOCHROME1 copy comes out as the inverse, 255 - x, except at
    # the stored value 127 where both land on 127.5 and round to 128
    stored = pydicom.dcmread(MONO2).pixel_array
    np.testing.assert_array_equal(stored, pydicom.dcmread(MONO1).pixel_array)
    assert (stored.min(), stored.max()) == (0, 254)
    total = out1.astype(int) + out2.astype(int)
    assert (total[stored != 127] == 255).all() and (total[stored == 127] == 256).all()
    assert np.corrcoef(out1.ravel(), out2.ravel())[0, 1] < -0.99


NIH = sorted(CXR.glob("000*.png"))


def test_real_nih_pngs_through_the_image_cache(tmp_path) -> None:
    """The 1024² and 512² NIH PNGs (8-bit L) through the cache: PIL's bilinear resize computed here."""
    ok, failures = build_image_cache(NIH, tmp_path, 64)
    assert failures == [] and ok.all()
    cache = np.load(tmp_path / "images_uint8.npy")
    for i, path in enumerate(NIH):
        with Image.open(path) as img:
            assert img.mode == "L"
            want = np.asarray(img.resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=2.0))
        np.testing.assert_array_equal(cache[i], want, err_msg=path.name)


def test_colour_and_16_bit_pngs_read_as_grayscale_by_one_rule(tmp_path) -> None:
    """A real radiograph saved as RGB, RGBA, palette and 16-bit PNG and as an RGB JPEG: every reader (image cache and
    dataset reader) gives the luma (colour) or max-scaled (16-bit) grayscale, computed here with numpy."""
    with Image.open(CXR / "00027426_000_512px.png") as img:
        gray = np.asarray(img)
    rng = np.random.default_rng(0)
    tint = np.stack([gray, np.clip(gray.astype(int) + rng.integers(0, 3, gray.shape), 0, 255), gray], -1)
    tint = tint.astype(np.uint8)
    wide = tint.astype(np.int64)
    luma = (wide[..., 0] * 299 + wide[..., 1] * 587 + wide[..., 2] * 114 + 500) // 1000  # ITU-R 601-2, rounded
    variants = {
        "rgb.png": (Image.fromarray(tint), luma),
        "rgba.png": (Image.fromarray(np.dstack([tint, np.full(gray.shape, 255, np.uint8)])), luma),
        "palette.png": (Image.fromarray(gray).convert("P"), gray),  # 256 grays fit the palette exactly
        "sixteen.png": (Image.fromarray(gray.astype(np.uint16) * 64),
                        np.floor(gray * 64.0 / (gray.max() * 64.0) * 255)),
    }
    Image.fromarray(tint).save(tmp_path / "rgb.jpg", quality=95)
    with Image.open(tmp_path / "rgb.jpg") as jpeg:  # lossy: the oracle is the luma of the decoded colours
        decoded = np.asarray(jpeg.convert("RGB")).astype(np.int64)
    jpeg_luma = (decoded[..., 0] * 299 + decoded[..., 1] * 587 + decoded[..., 2] * 114 + 500) // 1000
    modes = {"rgb.png": {"RGB"}, "rgba.png": {"RGBA"}, "palette.png": {"P"}, "sixteen.png": {"I;16", "I"},
             "rgb.jpg": {"RGB"}}
    for name, (img, want) in {**variants, "rgb.jpg": (None, jpeg_luma)}.items():
        if img is not None:
            img.save(tmp_path / name)
        got = read_gray_image(tmp_path / name)
        tolerance = {"rgb.png": 1, "rgba.png": 1, "rgb.jpg": 2}.get(name, 0)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= tolerance, name
        with Image.open(tmp_path / name) as again:
            assert again.mode in modes[name], name
    # the cache applies the same rule before resizing: the 16-bit file caches as its max-scaled 8-bit image
    ok, failures = build_image_cache([tmp_path / "sixteen.png"], tmp_path / "c", 64)
    cache = np.load(tmp_path / "c" / "images_uint8.npy")
    scaled = Image.fromarray(variants["sixteen.png"][1].astype(np.uint8))
    want = np.asarray(scaled.resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=2.0))
    assert failures == [] and ok.all()
    np.testing.assert_array_equal(cache[0], want)
