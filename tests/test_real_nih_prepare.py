"""The real NIH ChestX-ray14 radiographs and their rows of the official ``Data_Entry_2017_v2020.csv`` through
``medcam-lab prepare-images --dataset nih`` with one's own split lists, then the viewers' overlay; labels and
pixels checked against pandas and PIL computations written here."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcam_lab.cli import main
from medcam_lab.datasets.base import read_split_lists

CXR = Path(__file__).parent / "data" / "real" / "cxr"
ROWS = CXR / "Data_Entry_2017_v2020_rows.csv"
#: file in tests/data/real/cxr → its Image Index (the 512 px copy keeps its original name in the table)
IMAGES = {"00000001_000.png": "00000001_000.png", "00000002_000.png": "00000002_000.png",
          "00000013_003.png": "00000013_003.png", "00027426_000_512px.png": "00027426_000.png"}
SPLITS = {"train": ["00000001_000.png", "00000002_000.png"], "val": ["00000013_003.png"],
          "test": ["00027426_000.png"]}


@pytest.fixture()
def nih_root(tmp_path) -> Path:
    """The official layout: ``Data_Entry_2017_v2020.csv`` and ``images_001/images/<Image Index>``."""
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    shutil.copy(ROWS, root / "Data_Entry_2017_v2020.csv")
    for name, image_id in IMAGES.items():
        (root / "images_001" / "images" / image_id).symlink_to(CXR / name)
    return root


def _split_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my_split"
    folder.mkdir()
    for split, ids in SPLITS.items():
        (folder / f"{split}.txt").write_text("# my split\n" + "\n".join(ids) + "\n\n")
    return folder


def _oracle_labels() -> pd.DataFrame:
    """Labels from the real table by hand: ``Finding Labels`` split at ``|``; "No Finding" = all zeros."""
    table = pd.read_csv(ROWS).set_index("Image Index")
    assert list(table.columns[6:8]) == ["OriginalImage[Width", "Height]"]  # the v2020 header, two columns
    return table


def _pil_square(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L" and img.size[0] == img.size[1]
        return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0))


def test_prepare_images_nih_on_real_files_with_own_split_lists(nih_root, tmp_path) -> None:
    out = tmp_path / "prepared"
    argv = ["prepare-images", "--dataset", "nih", "--root", str(nih_root), "--out", str(out), "--image-size", "64",
            "--split-lists", str(_split_dir(tmp_path))]
    assert main(argv) == 0
    labels = pd.read_parquet(out / "labels.parquet")
    info = json.loads((out / "dataset.json").read_text())
    assert info["dataset"] == "nih" and len(info["pathologies"]) == 14
    assert {s: sorted(labels.loc[labels["split"] == s, "image_id"]) for s in SPLITS} == SPLITS
    oracle = _oracle_labels()
    for _, row in labels.iterrows():
        findings = set(oracle.loc[row["image_id"], "Finding Labels"].split("|")) - {"No Finding"}
        assert {p for p in info["pathologies"] if row[p] == 1.0} == findings, row["image_id"]
        assert row[info["pathologies"]].isin([0.0, 1.0]).all()
        assert str(row["patient_id"]) == str(oracle.loc[row["image_id"], "Patient ID"])
    cache = np.load(out / "images_uint8.npy")
    by_id = {image_id: CXR / name for name, image_id in IMAGES.items()}
    for i, image_id in enumerate(labels["image_id"]):
        np.testing.assert_array_equal(cache[i], _pil_square(by_id[image_id], 64), err_msg=image_id)
    config = json.loads((out / "config.json").read_text())
    assert config["split_lists"] and Path(out, config["split_lists"]).resolve() == (tmp_path / "my_split").resolve()

    # the viewers: the overlay of the notebooks on a real cached image keeps the image where the map is 0
    from medcam_lab.viz.images import overlay_png

    heat = np.zeros((8, 8), dtype=np.float32)
    heat[2, 3] = 1.0
    png = Image.open(io.BytesIO(overlay_png(cache[0], heat, scale=1)))
    rgb = np.asarray(png.convert("RGB"))
    assert rgb.shape == (64, 64, 3)
    quiet = np.ones((64, 64), dtype=bool)
    quiet[8:40, 16:48] = False  # the bilinear footprint of the hot cell, with a margin
    np.testing.assert_array_equal(rgb[..., 1][quiet], cache[0][quiet])
    assert (rgb[20, 28, 0] > rgb[20, 28, 1])


def test_real_images_outside_the_benchx_validation_split_say_so(nih_root, tmp_path) -> None:
    """All four real images are in BenchX's training list: without one's own lists validation is empty, an error
    naming the split, not an empty directory."""
    with pytest.raises(ValueError, match="val"):
        from medcam_lab.prepare.images import prepare_image_dataset

        prepare_image_dataset("nih", nih_root, tmp_path / "benchx", 64)
    assert not (tmp_path / "benchx" / "dataset.json").exists()


def test_split_lists_refuse_a_missing_list_and_an_image_in_two_splits(tmp_path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "train.txt").write_text("a.png\nb.png\n")
    (folder / "val.txt").write_text("c.png\n")
    with pytest.raises(FileNotFoundError, match="test.txt"):
        read_split_lists(folder)
    (folder / "test.txt").write_text("b.png\n")
    with pytest.raises(ValueError, match="b.png is listed in train"):
        read_split_lists(folder)
    (folder / "test.txt").write_text("d.png  # a comment\n")
    assert read_split_lists(folder) == {"a.png": "train", "b.png": "train", "c.png": "val", "d.png": "test"}
