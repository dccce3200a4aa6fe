"""Label construction and splits on the real label tables torchxrayvision ships (NIH, CheXpert, VinBigData),
against references computed independently here (plain csv/str-split loops) and the counts in spec/cxr.md
Part C."""

from __future__ import annotations

import csv
import gzip
from collections import Counter, defaultdict
from importlib import resources

import numpy as np
import pytest

from medcam_lab.datasets import PATHOLOGIES, load_labels, read_split_ids

xrv = pytest.importorskip("torchxrayvision")
DATA = resources.files("torchxrayvision") / "data"


def _rows(name: str) -> list[dict]:
    with gzip.open(DATA / name, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def nih_rows():
    return _rows("Data_Entry_2017_v2020.csv.gz")


@pytest.fixture(scope="module")
def nih():
    return load_labels("nih", DATA / "Data_Entry_2017_v2020.csv.gz")


def test_nih_counts_per_label_and_split(nih, nih_rows):
    split_of = {}
    for split in ("train", "val", "test"):
        split_of.update(dict.fromkeys(read_split_ids(f"benchx_nih_{split}"), split))
    reference: dict[tuple[str, str], int] = Counter()
    for row in nih_rows:
        for token in row["Finding Labels"].split("|"):
            reference[(split_of[row["Image Index"]], token)] += 1
    assert len(nih) == 112_120
    assert nih["split"].value_counts().to_dict() == {"train": 78_468, "val": 11_219, "test": 22_433}
    for split in ("train", "val", "test"):
        part = nih[nih["split"] == split]
        for label in PATHOLOGIES["nih"]:
            assert part[label].sum() == reference[(split, label)], (split, label)
        assert int(part[list(PATHOLOGIES["nih"])].to_numpy().sum()) == sum(
            n for (s, t), n in reference.items() if s == split and t != "No Finding")
    # spec/cxr.md Part C: sum of the 14 one-hot columns on the test split; two published per-split counts
    assert int(nih.loc[nih["split"] == "test", list(PATHOLOGIES["nih"])].to_numpy().sum()) == 16_547
    assert nih.loc[nih["split"] == "train", "Infiltration"].sum() == 13_930
    assert nih.loc[nih["split"] == "test", "Hernia"].sum() == 42
    normal = nih[list(PATHOLOGIES["nih"])].sum(axis=1) == 0
    assert normal.sum() == 60_361


def test_nih_no_patient_overlap(nih):
    patients = {s: set(nih.loc[nih["split"] == s, "patient_id"]) for s in ("train", "val", "test")}
    assert [len(p) for p in patients.values()] == [21_528, 3_090, 6_187]
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]


def test_nih_exact_tokens_and_unknown_token(tmp_path):
    path = tmp_path / "Data_Entry_2017.csv"
    path.write_text("Image Index,Finding Labels,Patient ID,View Position\n"
                    "00000001_000.png,Mass|Nodule,1,PA\n00000002_000.png,Pleural_Thickening,2,AP\n")
    table = load_labels("nih", path)
    assert table.loc["00000001_000.png", ["Mass", "Nodule", "Pneumonia"]].tolist() == [1.0, 1.0, 0.0]
    assert table.loc["00000002_000.png", "Pleural_Thickening"] == 1.0
    path.write_text("Image Index,Finding Labels,Patient ID,View Position\n00000001_000.png,Infiltrate,1,PA\n")
    with pytest.raises(ValueError, match="Infiltrate"):
        load_labels("nih", path)
    path.write_text("Image,Labels\nx,y\n")
    with pytest.raises(ValueError, match="missing column"):
        load_labels("nih", path)


@pytest.fixture(scope="module")
def chexpert_rows():
    return _rows("chexpert_train.csv.gz")


def _ref_chexpert(rows, policy):
    """Positives per label under a U-policy, frontal AP/PA only, blank → 0 (a literal loop)."""
    counts = Counter()
    n = 0
    for row in rows:
        if row["Frontal/Lateral"] != "Frontal" or row["AP/PA"] not in ("AP", "PA"):
            continue
        n += 1
        for label in PATHOLOGIES["chexpert"]:
            value = row[label]
            p = policy.get(label, "zeros") if isinstance(policy, dict) else policy
            if value == "1.0" or (value == "-1.0" and p == "ones"):
                counts[(label, "pos")] += 1
            elif value == "-1.0" and p == "ignore":
                counts[(label, "nan")] += 1
    return n, counts


@pytest.mark.parametrize("policy", ["zeros", "ones", "ignore", {"Atelectasis": "ones", "Edema": "ones"}])
def test_chexpert_u_policies(chexpert_rows, policy):
    table = load_labels("chexpert", DATA / "chexpert_train.csv.gz", uncertain=policy)
    n, ref = _ref_chexpert(chexpert_rows, policy)
    assert len(table) == n == 191_010
    for label in PATHOLOGIES["chexpert"]:
        col = table[label]
        assert (col == 1).sum() == ref[(label, "pos")], label
        assert col.isna().sum() == ref[(label, "nan")], label
        assert set(np.unique(col.dropna())) <= {0.0, 1.0}


def test_chexpert_all_rows_prevalence_and_patients(chexpert_rows):
    table = load_labels("chexpert", DATA / "chexpert_train.csv.gz", frontal_only=False)
    assert len(table) == 223_414
    assert table["patient_id"].nunique() == 64_540
    assert round(100 * table["Atelectasis"].mean(), 2) == 14.94  # spec/cxr.md Part C, U-zeros
    ones = load_labels("chexpert", DATA / "chexpert_train.csv.gz", frontal_only=False, uncertain="ones")
    assert round(100 * ones["Atelectasis"].mean(), 1) == 30.0
    assert set(table["split"]) == {"train"}


def test_chexpert_blank_ignore_and_no_finding(tmp_path):
    cols = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *PATHOLOGIES["chexpert"]]
    values = {c: "" for c in PATHOLOGIES["chexpert"]} | {"No Finding": "1.0"}
    row = ["CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", "Male", "55", "Frontal", "AP"]
    path = tmp_path / "valid.csv"
    path.write_text(",".join(cols) + "\n" + ",".join(row + [values[c] for c in PATHOLOGIES["chexpert"]]) + "\n")
    table = load_labels("chexpert", path, blank="ignore")
    assert table["Edema"].iloc[0] == 0.0 and np.isnan(table["Support Devices"].iloc[0])
    assert table["split"].iloc[0] == "test" and table["official_split"].iloc[0] == "valid"
    with pytest.raises(ValueError, match="uncertain policy"):
        load_labels("chexpert", path, uncertain="maybe")
    path.write_text(",".join(cols + ["Extra"]) + "\n" + ",".join(row + ["0.0"] * 15) + "\n")
    with pytest.raises(ValueError, match="unknown column"):
        load_labels("chexpert", path)


@pytest.fixture(scope="module")
def vindr_rows():
    return _rows("vinbigdata-train.csv.gz")


@pytest.mark.parametrize("merge,need", [("union", lambda n: 1), ("majority", lambda n: n // 2 + 1),
                                        ("all", lambda n: n)])
def test_vindr_merge_rules(vindr_rows, merge, need):
    table = load_labels("vindr", DATA / "vinbigdata-train.csv.gz", merge=merge)
    rads: dict[str, set] = defaultdict(set)
    marks: dict[tuple[str, str], set] = defaultdict(set)
    for row in vindr_rows:
        rads[row["image_id"]].add(row["rad_id"])
        marks[(row["image_id"], row["class_name"])].add(row["rad_id"])
    assert len(table) == 15_000 and set(table["n_radiologists"]) == {3}
    from medcam_lab.datasets.vindr import VINDR_CLASS_NAMES

    for label, class_name in VINDR_CLASS_NAMES.items():
        expected = sum(1 for img, r in rads.items() if len(marks.get((img, class_name), ())) >= need(len(r)))
        assert table[label].sum() == expected, label
    if merge == "union":
        assert table["Aortic enlargement"].sum() == 3_067 and table["Pneumothorax"].sum() == 96
        assert (table[list(PATHOLOGIES["vindr"])].sum(axis=1) == 0).sum() == 10_606
    if merge == "majority":
        assert table["Cardiomegaly"].sum() == 1_817


def test_vindr_benchx_split(vindr_rows):
    table = load_labels("vindr", DATA / "vinbigdata-train.csv.gz")
    counts = table["split"].value_counts().to_dict()
    assert counts == {"train": 12_000, "val": 3_000}  # the BenchX test ids are the PhysioNet test set
    abnormal = (table[list(PATHOLOGIES["vindr"])].sum(axis=1) > 0).groupby(table["split"]).mean()
    assert abnormal.round(3).tolist() == [0.293, 0.293]


def test_load_labels_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_labels("padchest", tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="nih label table"):
        load_labels("nih", tmp_path / "missing.csv")
    bad = tmp_path / "train.csv"
    bad.write_text("image_id,rad_id,class_name\na,R1,Aortic enlargement\na,R2,Martian\n")
    with pytest.raises(ValueError, match="Martian"):
        load_labels("vindr", bad)
