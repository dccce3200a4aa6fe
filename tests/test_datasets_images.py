"""Dataset classes on tiny image folders built in the test: the contract (dict samples, NaN labels, relabel,
metadata alignment), missing files as counted skips, DICOM → 8-bit (VOI LUT, MONOCHROME1) and unreadable
DICOMs reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_xray import write_dicom
from PIL import Image

from medcam_lab.datasets import (
    PATHOLOGIES,
    DicomReadError,
    MIMICCXRDataset,
    NIHDataset,
    VinDrDataset,
    convert_dicoms,
    read_dicom_uint8,
    read_split_ids,
)


def test_dicom_monochrome_and_voi_lut(tmp_path):
    ramp = np.tile(np.arange(0, 4000, 500, dtype=np.uint16), (4, 1))  # 8 columns 0..3500
    write_dicom(tmp_path / "m2.dcm", ramp)
    write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1")
    m2 = read_dicom_uint8(tmp_path / "m2.dcm", voi_lut=False)
    m1 = read_dicom_uint8(tmp_path / "m1.dcm", voi_lut=False)
    assert m2.dtype == np.uint8 and m2.shape == (4, 8)
    np.testing.assert_array_equal(m2[0], np.round(ramp[0] / 3500 * 255).astype(np.uint8))
    np.testing.assert_array_equal(m1[0], np.round((3500 - ramp[0]) / 3500 * 255).astype(np.uint8))
    # a window of centre 1000, width 1000 saturates everything at or above 1500 (DICOM linear VOI)
    write_dicom(tmp_path / "w.dcm", ramp, window=(1000, 1000))
    windowed = read_dicom_uint8(tmp_path / "w.dcm")
    assert (windowed[0, :2] == 0).all() and (windowed[0, 3:] == 255).all() and 120 < windowed[0, 2] < 135


def test_unreadable_dicoms_are_reported(tmp_path):
    write_dicom(tmp_path / "ok.dicom", np.ones((4, 4), dtype=np.uint16) * 7)
    write_dicom(tmp_path / "nopix.dicom", np.ones((4, 4)), pixel_data=False)
    (tmp_path / "junk.dicom").write_bytes(b"not a dicom at all")
    with pytest.raises(DicomReadError, match="no pixel data"):
        read_dicom_uint8(tmp_path / "nopix.dicom")
    result = convert_dicoms(sorted(tmp_path.glob("*.dicom")), tmp_path / "png")
    assert [p.split("/")[-1] for p in result["converted"]] == ["ok.png"]
    assert sorted(p.split("/")[-1] for p in result["skipped"]) == ["junk.dicom", "nopix.dicom"]


def _nih_root(tmp_path, n_missing=1):
    ids = read_split_ids("benchx_nih_test")[:4]
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    rows = ["Image Index,Finding Labels,Patient ID,View Position"]
    labels = ["Mass|Nodule", "No Finding", "Hernia", "Effusion"]
    for i, (image_id, lab) in enumerate(zip(ids, labels)):
        rows.append(f"{image_id},{lab},{int(image_id[:8])},PA")
        if i < len(ids) - n_missing:
            Image.fromarray(np.full((8, 8), 10 * i, dtype=np.uint8)).save(root / "images_001" / "images" / image_id)
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(rows) + "\n")
    return root, ids


def test_nih_dataset_contract_and_missing_files(tmp_path):
    root, ids = _nih_root(tmp_path)
    ds = NIHDataset(root, split="test")
    assert ds.skipped == {"missing file": [ids[3]]}
    assert len(ds) == 3 and list(ds.csv["image_id"]) == ids[:3]
    assert ds.pathologies == list(PATHOLOGIES["nih"])
    item = ds[1]
    assert set(item) == {"image", "labels", "index"}
    assert item["image"].shape == (8, 8) and int(item["image"][0, 0]) == 10
    assert item["labels"].sum() == 0  # No Finding
    assert ds.counts()["Mass"] == {"positive": 1, "negative": 2, "unknown": 0}
    ds.relabel(["Hernia", "Fracture", "Mass"])
    assert ds.pathologies == ["Hernia", "Fracture", "Mass"]
    np.testing.assert_array_equal(ds.labels[:, 0], [0, 0, 1])
    assert np.isnan(ds.labels[:, 1]).all()
    np.testing.assert_array_equal(ds.labels[:, 2], [1, 0, 0])


def test_vindr_dataset_from_dicoms(tmp_path):
    ids = read_split_ids("benchx_vindr_val")[:3]
    root = tmp_path / "vindr"
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    lines = ["image_id,rad_id,class_name,x_min,y_min,x_max,y_max"]
    for rad in ("R1", "R2", "R3"):
        lines.append(f"{ids[0]},{rad},Aortic enlargement,1,1,2,2")
        lines += [f"{ids[1]},{rad},No finding,,,,", f"{ids[2]},{rad},No finding,,,,"]
    lines.append(f"{ids[0]},R1,Pleural effusion,1,1,3,3")
    (root / "annotations" / "annotations_train.csv").write_text("\n".join(lines) + "\n")
    write_dicom(root / "train" / f"{ids[0]}.dicom", np.arange(16, dtype=np.uint16).reshape(4, 4),
                 photometric="MONOCHROME1")
    write_dicom(root / "train" / f"{ids[1]}.dicom", np.ones((4, 4)), pixel_data=False)
    ds = VinDrDataset(root, split="val", verify_dicoms=True)
    assert ds.skipped == {"missing file": [ids[2]], "unreadable DICOM": [ids[1]]}
    assert len(ds) == 1
    lab = dict(zip(ds.pathologies, ds[0]["labels"]))
    assert lab["Aortic enlargement"] == 1 and lab["Effusion"] == 1 and lab["ILD"] == 0
    assert int(ds[0]["image"][0, 0]) == 255  # MONOCHROME1: the lowest value is the brightest
    majority = VinDrDataset(root, split="val", merge="majority", verify_dicoms=True)
    assert dict(zip(majority.pathologies, majority.labels[0]))["Effusion"] == 0


def test_mimic_dataset_on_prepared_cohort(tiny_cohort):
    train = MIMICCXRDataset(cohort=tiny_cohort, split="train")
    test = MIMICCXRDataset(cohort=tiny_cohort, split="test")
    assert len(train) > 0 and len(test) > 0
    assert not set(train.csv["subject_id"]) & set(test.csv["subject_id"])
    item = train[0]
    assert item["image"].dtype.is_floating_point is False and item["image"].ndim == 2
    assert train.labels.shape == (len(train), 14)


def test_mimic_all_frontal_from_raw_layout(tiny_raw):
    root = tiny_raw / "mimic-cxr-jpg"
    ds = MIMICCXRDataset(root, split="all")
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz")
    frontal = meta[meta["ViewPosition"].isin(["AP", "PA"])]
    assert len(ds) + len(ds.skipped.get("missing file", [])) == len(frontal)
    assert set(ds.csv["view"]) <= {"AP", "PA"} and set(ds.csv["split"]) <= {"train", "val", "test"}
    assert ds[0]["image"].ndim == 2 and ds.labels.shape[1] == 14
    train, test = MIMICCXRDataset(root, split="train"), MIMICCXRDataset(root, split="test")
    assert not set(train.csv["patient_id"]) & set(test.csv["patient_id"])
