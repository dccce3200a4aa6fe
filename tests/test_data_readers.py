"""Readers of the official layouts: CXR time parsing, label policies, NIH labels, the image cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcam_lab.data.image_cache import build_image_cache, load_and_resize, open_image_cache
from medcam_lab.data.mimic_cxr import apply_label_policy, image_relpath, study_datetime
from medcam_lab.data.nih import NIH_LABELS, nih_labels


def test_study_time_is_zero_padded_and_fraction_dropped():
    got = study_datetime(pd.Series([21500101, 21500101, 21500101]), pd.Series([213014.531, 5012.0, 7.9]))
    assert got.tolist() == [pd.Timestamp("2150-01-01 21:30:14"), pd.Timestamp("2150-01-01 00:50:12"),
                            pd.Timestamp("2150-01-01 00:00:07")]


def test_image_relpath_official_layout():
    path = image_relpath(pd.Series([10000032]), pd.Series([50414267]), pd.Series(["02aa804e-bde0afdd"]))
    assert path.iloc[0] == "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg"


@pytest.mark.parametrize("uncertain,blank,expected", [
    ("zeros", "zeros", [1.0, 0.0, 0.0, 0.0]),
    ("ones", "zeros", [1.0, 0.0, 1.0, 0.0]),
    ("ignore", "zeros", [1.0, 0.0, np.nan, 0.0]),
    ("zeros", "ignore", [1.0, 0.0, 0.0, np.nan]),
])
def test_label_policies(uncertain, blank, expected):
    raw = pd.DataFrame({"Edema": [1.0, 0.0, -1.0, np.nan]})
    got = apply_label_policy(raw, uncertain, blank)["Edema"].to_numpy()
    np.testing.assert_array_equal(got, np.array(expected))


def test_label_policy_rejects_unknown_names():
    with pytest.raises(ValueError, match="uncertain"):
        apply_label_policy(pd.DataFrame({"Edema": [1.0]}), "maybe", "zeros")


def test_nih_labels_exact_tokens():
    table = nih_labels(pd.Series(["No Finding", "Effusion|Pleural_Thickening", "Mass"]))
    assert list(table.columns) == list(NIH_LABELS)
    assert table.sum(axis=1).tolist() == [0.0, 2.0, 1.0]
    assert table.loc[1, "Pleural_Thickening"] == 1.0 and table.loc[2, "Mass"] == 1.0
    with pytest.raises(ValueError, match="Infiltrate"):
        nih_labels(pd.Series(["Infiltrate"]))


def test_image_cache_reports_missing_and_corrupt_files(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray((np.arange(60 * 40) % 255).astype(np.uint8).reshape(60, 40)).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(good.read_bytes()[:50])
    missing = tmp_path / "missing.jpg"
    ok, failures = build_image_cache([good, corrupt, missing, good], tmp_path / "cache", size=16)
    assert ok.tolist() == [True, False, False, True]
    reasons = {f["path"]: f["reason"] for f in failures}
    assert reasons[str(missing)] == "file missing"
    assert reasons[str(corrupt)].startswith("unreadable image")
    cache = open_image_cache(tmp_path / "cache")
    assert cache.shape == (2, 16, 16) and cache.dtype == np.uint8
    np.testing.assert_array_equal(cache[0], load_and_resize(good, 16))


def test_resize_keeps_aspect_and_center_crops(tmp_path):
    img = np.zeros((80, 40), dtype=np.uint8)
    img[:, 10:30] = 255  # a bright vertical band in the middle
    path = tmp_path / "x.png"
    Image.fromarray(img).save(path)
    out = load_and_resize(path, 20)
    assert out.shape == (20, 20)
    assert out[:, 8:12].mean() > 200 and out[:, :2].mean() < 60
