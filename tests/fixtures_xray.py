"""Tiny raw CheXpert- and VinDr-CXR-layout folders written by the tests (generated pixels, real split ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medcam_lab.datasets import CHEXPERT_PATHOLOGIES, read_split_ids


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                window: tuple[float, float] | None = None, pixel_data: bool = True) -> None:
    """A minimal uncompressed 16-bit DICOM (12 bits stored) holding ``pixels``.

    ``window`` = (center, width) adds a VOI window; ``pixel_data=False`` writes a file without pixels.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixel_data:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _image(rng: np.random.Generator, positive: bool, shape=(40, 48)) -> np.ndarray:
    img = rng.integers(0, 90, size=shape)
    if positive:
        img[10:30, 12:36] += 120  # a bright blob the classifier can learn
    return img


def make_vindr_root(root: Path, seed: int = 0) -> dict:
    """VinDr-CXR PhysioNet layout: 6 train + 4 val (train/), 4 test (test/), one id in no BenchX list.

    Every image has three radiologists; ``Cardiomegaly`` is marked by all three on half of the images and
    ``Pleural effusion`` by one radiologist on some. ``MONOCHROME1`` for one image; one file is not DICOM.

    Returns: {"ids": {split: [ids]}, "unassigned": id, "monochrome1": id, "unreadable": id}.
    """
    rng = np.random.default_rng(seed)
    ids = {"train": read_split_ids("benchx_vindr_train")[:6], "val": read_split_ids("benchx_vindr_val")[:4],
           "test": read_split_ids("benchx_vindr_test")[:4]}
    unassigned = "0" * 32
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "test").mkdir()
    header = "image_id,rad_id,class_name,x_min,y_min,x_max,y_max"
    lines = {"train": [header], "test": [header]}
    for split, split_ids in ids.items():
        table, folder = ("test", "test") if split == "test" else ("train", "train")
        for i, image_id in enumerate(split_ids):
            cardio = i % 2 == 0
            for rad in ("R1", "R2", "R3"):
                lines[table].append(f"{image_id},{rad},Cardiomegaly,1,1,5,5" if cardio
                                    else f"{image_id},{rad},No finding,,,,")
            if i % 3 == 1:
                lines[table].append(f"{image_id},R1,Pleural effusion,2,2,6,6")
            write_dicom(root / folder / f"{image_id}.dicom", _image(rng, cardio) * 10)
    lines["train"].append(f"{unassigned},R1,No finding,,,,")
    write_dicom(root / "train" / f"{unassigned}.dicom", _image(rng, False))
    monochrome1 = ids["train"][0]
    write_dicom(root / "train" / f"{monochrome1}.dicom", _image(rng, True) * 10, photometric="MONOCHROME1")
    unreadable = ids["train"][5]
    (root / "train" / f"{unreadable}.dicom").write_bytes(b"not a DICOM file")
    for table, rows in lines.items():
        (root / "annotations" / f"annotations_{table}.csv").write_text("\n".join(rows) + "\n")
    return {"ids": ids, "unassigned": unassigned, "monochrome1": monochrome1, "unreadable": unreadable}


def make_chexpert_root(root: Path, seed: int = 0) -> dict:
    """CheXpert-v1.0-small layout: train.csv (8 patients, frontal + one lateral), valid.csv and test.csv
    (4 frontal each), small JPGs; one train image file is missing. Labels: Cardiomegaly 1 on even patients,
    −1 on one, Edema 1 on one, the rest blank or 0.

    Returns: {"missing": image id of the absent file, "lateral": image id of the lateral view}.
    """
    rng = np.random.default_rng(seed)
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_PATHOLOGIES]
    tables = {"train": (8, 0), "valid": (4, 100), "test": (4, 200)}
    result = {}
    for official, (n, offset) in tables.items():
        rows = [",".join(header)]
        for i in range(n):
            patient = f"patient{offset + i + 1:05d}"
            rel = f"{official}/{patient}/study1/view1_frontal.jpg"
            labels = dict.fromkeys(CHEXPERT_PATHOLOGIES, "")
            labels["Cardiomegaly"] = "1.0" if i % 2 == 0 else ("-1.0" if i == 1 else "0.0")
            labels["Edema"] = "1.0" if i == 3 else ""
            labels["No Finding"] = "1.0" if i in (5, 7) else ""
            view = "AP" if i % 2 else "PA"
            rows.append(",".join([f"CheXpert-v1.0-small/{rel}", "Female", str(50 + i), "Frontal", view,
                                  *labels.values()]))
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not (official == "train" and i == 6):
                Image.fromarray(_image(rng, i % 2 == 0).clip(0, 255).astype(np.uint8)).save(path, quality=95)
            else:
                result["missing"] = rel
        if official == "train":
            lateral = f"train/patient{offset + 1:05d}/study1/view2_lateral.jpg"
            rows.append(",".join([f"CheXpert-v1.0-small/{lateral}", "Female", "50", "Lateral", "",
                                  *([""] * len(CHEXPERT_PATHOLOGIES))]))
            Image.fromarray(_image(rng, False).astype(np.uint8)).save(root / lateral)
            result["lateral"] = lateral
        (root / f"{official}.csv").write_text("\n".join(rows) + "\n")
    return result
