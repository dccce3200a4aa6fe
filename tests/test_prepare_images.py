"""``medcam-lab prepare-images`` on tiny generated CheXpert and VinDr-CXR folders: counts and labels against
the dataset classes and an independent computation from the raw tables, every left-out item reported,
the cache against the DICOM recipe, and ``finetune --dataset images`` on the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_xray import make_chexpert_root, make_vindr_root
from PIL import Image

from medcam_lab.cli import main
from medcam_lab.config import FinetuneConfig
from medcam_lab.data.prepared_images import load_prepared_images
from medcam_lab.datasets import CheXpertDataset, VinDrDataset, read_dicom_uint8
from medcam_lab.prepare.image_cache import resize_array
from medcam_lab.prepare.images import prepare_image_dataset

pytest.importorskip("pydicom")


@pytest.fixture(scope="module")
def vindr(tmp_path_factory):
    root = tmp_path_factory.mktemp("vindr_raw")
    info = make_vindr_root(root)
    out = root.parent / (root.name + "_prepared")
    assert main(["prepare-images", "--dataset", "vindr", "--root", str(root), "--out", str(out),
                 "--image-size", "24"]) == 0
    return root, out, info


def test_vindr_labels_and_report(vindr):
    root, out, info = vindr
    images, table, names = load_prepared_images(out)
    report = json.loads((out / "report.json").read_text())
    assert report["skipped"]["not in any split list"]["ids"] == [info["unassigned"]]
    assert report["skipped"]["unreadable image"]["ids"] == [info["unreadable"]]
    assert report["per_split"] == {"train": 5, "val": 4, "test": 4}
    assert images.shape == (13, 24, 24) and len(table) == 13
    assert "patient_id" not in table.columns  # VinDr-CXR is anonymized per image
    # independent: union over radiologists, literal loop over the raw annotation rows
    boxes = pd.concat([pd.read_csv(root / "annotations" / f"annotations_{t}.csv") for t in ("train", "test")])
    marked: dict[str, set[str]] = {}
    for image_id, class_name in zip(boxes["image_id"], boxes["class_name"]):
        marked.setdefault(image_id, set()).add(class_name)
    for row in table.itertuples(index=False):
        row = row._asdict()
        assert row["Cardiomegaly"] == float("Cardiomegaly" in marked[row["image_id"]])
        assert row["Effusion"] == float("Pleural effusion" in marked[row["image_id"]])
        assert row["ILD"] == 0.0
    for split, ids in info["ids"].items():
        expected = [i for i in ids if i != info["unreadable"]]
        assert sorted(table.loc[table["split"] == split, "image_id"]) == sorted(expected)
        ds = VinDrDataset(root, split=split)
        keep = ds.csv["image_id"].isin(expected).to_numpy()
        np.testing.assert_array_equal(table.loc[table["split"] == split, list(names)].to_numpy(), ds.labels[keep])
    # the cache holds the DICOM recipe's image, resized: MONOCHROME1 inverted (blob dark, background bright)
    row = int(np.flatnonzero(table["image_id"] == info["monochrome1"])[0])
    direct = read_dicom_uint8(root / "train" / f"{info['monochrome1']}.dicom")
    np.testing.assert_array_equal(images[row], resize_array(direct, 24))
    assert images[row][12, 12] < images[row][1, 1]


def test_chexpert_policies_counts_and_splits(tmp_path):
    root = tmp_path / "chexpert"
    info = make_chexpert_root(root)
    report = prepare_image_dataset("chexpert", root, tmp_path / "prepared", 16, uncertain="ones")
    images, table, names = load_prepared_images(tmp_path / "prepared")
    assert report["skipped"]["missing file"]["ids"] == [info["missing"]]
    assert report["skipped"]["not frontal AP/PA"]["ids"] == [info["lateral"]]
    # official train → train, official test → val, official valid → test
    assert report["per_split"] == {"train": 7, "val": 4, "test": 4}
    assert set(table.loc[table["split"] == "val", "image_id"].str[:5]) == {"test/"}
    assert set(table.loc[table["split"] == "test", "image_id"].str[:6]) == {"valid/"}
    assert table["patient_id"].str.match(r"patient\d{5}$").all()
    raw = pd.read_csv(root / "train.csv")
    raw["image_id"] = raw["Path"].str.removeprefix("CheXpert-v1.0-small/")
    merged = table.merge(raw, on="image_id", suffixes=("", "_raw"))
    assert len(merged) == 7  # the train images present; val/test come from the other files
    for prepared, source in zip(merged["Cardiomegaly"], merged["Cardiomegaly_raw"]):
        expected = 0.0 if np.isnan(source) else (1.0 if source == -1 else source)  # U-ones, blank → 0
        assert prepared == expected
    ds = CheXpertDataset(root, split="train", uncertain="ones")
    np.testing.assert_array_equal(table.loc[table["split"] == "train", list(names)].to_numpy(), ds.labels)
    assert images.shape == (15, 16, 16)
    ignore = prepare_image_dataset("chexpert", root, tmp_path / "ignore", 16, uncertain="ignore", blank="ignore")
    raw_all = pd.concat([pd.read_csv(root / f"{t}.csv") for t in ("train", "valid", "test")])
    present = raw_all["Path"].str.removeprefix("CheXpert-v1.0-small/").isin(table["image_id"])
    uncertain = int((raw_all.loc[present, "Cardiomegaly"] == -1).sum())
    assert uncertain == 3 and ignore["label_counts"]["Cardiomegaly"]["unknown"] == uncertain
    with pytest.raises(ValueError, match="takes no option"):
        prepare_image_dataset("chexpert", root, tmp_path / "x", 16, merge="union")


def test_missing_label_file_is_a_clear_error(tmp_path, capsys):
    assert main(["prepare-images", "--dataset", "vindr", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "annotations_train.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_finetune_reads_prepared_images(vindr, tmp_path):
    from medcam_lab.training.finetune import finetune, load_splits

    _, out, _ = vindr
    cfg = FinetuneConfig(data=str(out), dataset="images", out=str(tmp_path / "ft"), encoder="resnet_small",
                         image_size=16, lr_grid=(1e-3,), epochs=2, batch_size=4, eval_start=1, eval_every=1,
                         patience=2, device="cpu")
    splits = load_splits(cfg)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (5, 4, 4)
    assert splits.id_column == "image_id" and len(splits.pathologies) == 14
    predictions = pd.read_parquet(finetune(cfg))
    assert len(predictions) == 4 and "score:Cardiomegaly" in predictions.columns


def _nih_root(root: Path, ids: list[str], findings: list[str], patients: list[int]) -> Path:
    (root / "images_001" / "images").mkdir(parents=True)
    rows = ["Image Index,Finding Labels,Patient ID,View Position"]
    for i, (image_id, finding, patient) in enumerate(zip(ids, findings, patients)):
        rows.append(f"{image_id},{finding},{patient},PA")
        Image.fromarray(np.full((20, 24), 30 * i % 250, dtype=np.uint8)).save(root / "images_001" / "images" / image_id)
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(rows) + "\n")
    return root


def test_nih_benchx_ids_splits_patients_and_labels(tmp_path):
    """The BenchX split of the shipped lists, labels by exact token, an image in no list reported."""
    from medcam_lab.datasets import read_split_ids

    findings = ["Mass|Nodule", "No Finding", "Hernia", "Effusion|Mass", "Atelectasis", "No Finding", "No Finding"]
    ids = [*read_split_ids("benchx_nih_train")[:2], *read_split_ids("benchx_nih_val")[:2],
           *read_split_ids("benchx_nih_test")[:2], "00000000_000.png"]  # the last in no BenchX list
    root = _nih_root(tmp_path / "nih", ids, findings, [int(i[:8]) for i in ids])
    report = prepare_image_dataset("nih", root, tmp_path / "generic", 16)
    assert report["skipped"] == {"not in any split list": {"count": 1, "ids": ["00000000_000.png"]}}
    images, table, names = load_prepared_images(tmp_path / "generic")
    assert list(table["image_id"]) == ids[:6] and images.shape == (6, 16, 16)
    assert list(table["split"]) == ["train", "train", "val", "val", "test", "test"]
    assert list(table["patient_id"]) == [str(int(i[:8])) for i in ids[:6]]
    for row, finding in zip(table.itertuples(), findings):
        positives = {name for name in names if getattr(row, name) == 1.0}
        assert positives == set(finding.split("|")) - {"No Finding"}


def test_nih_official_split_carves_val_from_train_val_patients(tmp_path):
    """The official lists next to the table: test as listed; 1/8 of the train/val patients to val, in the
    documented procedure (sorted patient ids, shuffled by the seed's generator, the first 7/8 train)."""
    n = 40
    ids = [f"{p:08d}_{k:03d}.png" for p in range(1, n + 1) for k in range(2)]
    patients = [int(i[:8]) for i in ids]
    root = _nih_root(tmp_path / "nih", ids, ["No Finding"] * len(ids), patients)
    test = ids[:16]
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(ids[16:-2]) + "\n")  # the last patient in neither
    report = prepare_image_dataset("nih", root, tmp_path / "out", 16, split_source="official", seed=3)
    assert report["skipped"]["not in any split list"]["ids"] == ids[-2:]
    _, table, _ = load_prepared_images(tmp_path / "out")
    split = dict(zip(table["image_id"], table["split"]))
    assert {i for i, s in split.items() if s == "test"} == set(test)
    trainval_patients = sorted({p for i, p in zip(ids, patients) if i in set(ids[16:-2])})
    order = np.random.default_rng(3).permutation(len(trainval_patients))
    n_train = round(7 / 8 * len(trainval_patients))
    expected_val = {trainval_patients[k] for k in order[n_train:]}
    assert {int(i[:8]) for i, s in split.items() if s == "val"} == expected_val
    assert {int(i[:8]) for i, s in split.items() if s == "train"} == set(trainval_patients) - expected_val


def test_reproduce_uses_a_prepared_folder_and_checks_its_dataset(vindr, tmp_path):
    from medcam_lab.config import ReproduceConfig
    from medcam_lab.reproduce import locate_data

    _, prepared, _ = vindr
    (tmp_path / "vindr").symlink_to(prepared, target_is_directory=True)
    (tmp_path / "chexpert").symlink_to(prepared, target_is_directory=True)  # a VinDr folder under the wrong name
    found, skipped = locate_data(ReproduceConfig(data_root=str(tmp_path)), tmp_path / "out", 224)
    assert found["vindr"] == (str(tmp_path / "vindr"), "images")
    assert "says dataset 'vindr', not 'chexpert'" in skipped["chexpert"]
    assert "absent" in skipped["nih"] and "mimic" in skipped


def test_a_prepare_that_leaves_a_split_empty_leaves_no_openable_set(vindr, tmp_path):
    """``dataset.json`` is written last: a rerun that fails removes the finished set it replaces."""
    from medcam_lab.data.prepared_images import is_prepared_images

    root, out, _ = vindr
    again = tmp_path / "again"
    shutil.copytree(out, again)
    assert is_prepared_images(again)
    (tmp_path / "raw").mkdir()
    shutil.copytree(root / "annotations", tmp_path / "raw" / "annotations")
    shutil.copytree(root / "train", tmp_path / "raw" / "train")
    ann = tmp_path / "raw" / "annotations" / "annotations_test.csv"
    ann.write_text(ann.read_text().splitlines()[0] + "\n")  # no test image left
    with pytest.raises(ValueError, match=r"left split\(s\) \['test'\] empty"):
        prepare_image_dataset("vindr", tmp_path / "raw", again, 24)
    assert not is_prepared_images(again) and (again / "report.json").is_file()
    with pytest.raises(FileNotFoundError, match="not a `medcam-lab prepare-images` directory"):
        load_prepared_images(again)
