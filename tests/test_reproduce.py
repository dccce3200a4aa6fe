"""``medcam-lab reproduce --suite paper`` on the tiny generated cohort: every table with the expected rows and
columns, as markdown + CSV + JSON, published numbers beside ours, paired differences, honest skips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_xray import make_chexpert_root, make_vindr_root
from sklearn.metrics import roc_auc_score

from medcam_lab.cli import main
from medcam_lab.prepare.images import prepare_image_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reproduced(tiny_raw, tiny_cohort, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data_root")
    (root / "cohort").symlink_to(tiny_cohort, target_is_directory=True)
    prepare_image_dataset("nih", tiny_raw / "nih", root / "nih", 36, split_source="official", seed=0)
    (root / "vindr").mkdir()  # present but without label files: must be reported, not silently dropped
    out = root / "out"
    argv = ["reproduce", "--suite", "paper", "--data-root", str(root), "--out", str(out), "--encoder", "resnet_small",
            "--image-size", "32", "--align-epochs", "1", "--pretrain-epochs", "1", "--finetune-epochs", "1",
            "--lr-grid", "0.001", "--batch-size", "16", "--k-sweep", "1", "--n-resamples", "30", "--device", "cpu"]
    assert main(argv) == 0
    return out


def _csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _macro_auroc(path) -> float:
    """Literal macro AUROC of one predictions file (scikit-learn per label with both classes)."""
    frame = pd.read_parquet(path)
    aucs = []
    for col in (c for c in frame.columns if c.startswith("true:")):
        y, s = frame[col].to_numpy(), frame["score:" + col[5:]].to_numpy()
        known = ~np.isnan(y)
        if len(np.unique(y[known])) == 2:
            aucs.append(roc_auc_score(y[known], s[known]))
    return float(np.mean(aucs))


def test_every_table_in_three_formats(reproduced):
    tables = reproduced / "tables"
    expected = {
        "table2_in_distribution": (["model", "AUROC [95% CI]", "paper AUROC", "AUPRC [95% CI]", "paper AUPRC"], 9),
        "table3_out_of_distribution": (["model", "nih AUROC [95% CI]", "paper nih", "vindr AUROC [95% CI]",
                                        "paper vindr", "chexpert AUROC [95% CI]", "paper chexpert"], 9),
        "table4_image_text": (["model", "mimic AUROC [95% CI]", "nih AUROC [95% CI]", "vindr AUROC [95% CI]",
                               "chexpert AUROC [95% CI]"], 5),
        "ablations": (["model", "mimic AUROC [95% CI]", "nih AUROC [95% CI]", "vindr AUROC [95% CI]",
                       "chexpert AUROC [95% CI]"], 5),
    }
    for name, (header, n_rows) in expected.items():
        rows = _csv(tables / f"{name}.csv")
        assert rows[0] == header, name
        assert len(rows) == 1 + n_rows, name
        data = json.loads((tables / f"{name}.json").read_text())
        assert data["header"] == header and data["rows"] == rows[1:]
        md = (tables / f"{name}.md").read_text()
        assert md.count("\n|") == n_rows + 2  # header, separator and one line per row
    table2 = {row[0]: row for row in _csv(tables / "table2_in_distribution.csv")[1:]}
    assert table2["MedCAM"][2] == "0.906 ± 0.003" and table2["MedCAM"][4] == "0.244 ± 0.013"
    barlow = table2["BarlowTwins-CXR (image-only)"][1]
    assert barlow == "skipped: no weights file given (--weights barlowtwins_cxr=PATH)"
    assert table2["EVA-X-S (image-only)"][1].startswith("skipped: no weights file given")
    table3 = {row[0]: row for row in _csv(tables / "table3_out_of_distribution.csv")[1:]}
    assert table3["MedCAM"][3] == "not run (dataset: see report)"
    assert table3["MedCAM"][2] == "0.847 ± 0.004"
    report = (reproduced / "report.md").read_text()
    assert "`vindr`: " in report and "`chexpert`: " in report and "absent" in report
    assert "cannot be prepared" in report and "annotations_train.csv" in report


@pytest.fixture(scope="module")
def reproduced_ood(tmp_path_factory) -> Path:
    pytest.importorskip("pydicom")
    root = tmp_path_factory.mktemp("ood_root")
    make_vindr_root(root / "vindr")
    make_chexpert_root(root / "chexpert")
    out = root / "out"
    argv = ["reproduce", "--data-root", str(root), "--out", str(out), "--models", "supervised_resnet",
            "--encoder", "resnet_small", "--image-size", "16", "--finetune-epochs", "2", "--lr-grid", "0.001",
            "--batch-size", "8", "--n-resamples", "30", "--device", "cpu"]
    assert main(argv) == 0
    return out


def test_vindr_and_chexpert_fill_table3(reproduced_ood):
    results = json.loads((reproduced_ood / "results.json").read_text())
    assert set(results["skipped_datasets"]) == {"mimic", "nih"}
    rows = _csv(reproduced_ood / "tables" / "table3_out_of_distribution.csv")
    row = {r[0]: r for r in rows[1:]}["Supervised ResNet (random init)"]
    header = rows[0]
    for ds, n_test in (("vindr", 4), ("chexpert", 4)):
        run = results["runs"]["supervised_resnet"][ds]
        frame = pd.read_parquet(run["predictions"])
        assert len(frame) == n_test
        point = run["metrics"]["auroc"]["point"]
        assert point == pytest.approx(_macro_auroc(run["predictions"]), abs=1e-9)
        assert row[header.index(f"{ds} AUROC [95% CI]")].startswith(f"{point:.3f} [")
        prepared = reproduced_ood / "data" / ds
        assert json.loads((prepared / "report.json").read_text())["per_split"]["test"] == n_test
    assert row[header.index("nih AUROC [95% CI]")] == "not run (dataset: see report)"


def test_numbers_match_scikit_learn_and_differences(reproduced):
    results = json.loads((reproduced / "results.json").read_text())
    for model in ("supervised_resnet", "image_only", "medmod_infonce", "medmod_vicreg", "medmod_align", "medcam",
                  "medcam_global_only", "medcam_local_only", "medcam_k1", "medcam_frozen"):
        for ds in ("mimic", "nih"):
            run = results["runs"][model][ds]
            expected = _macro_auroc(run["predictions"])
            assert run["metrics"]["auroc"]["point"] == pytest.approx(expected, abs=1e-9), (model, ds)
            low, high = run["metrics"]["auroc"]["low"], run["metrics"]["auroc"]["high"]
            assert low <= high
    diffs = results["differences"]
    assert set(diffs) >= {"supervised_resnet", "image_only", "medmod_infonce", "medcam_frozen", "barlowtwins_cxr"}
    d = diffs["image_only"]["mimic"]["auroc"]
    medcam = results["runs"]["medcam"]["mimic"]["metrics"]["auroc"]["point"]
    image_only = results["runs"]["image_only"]["mimic"]["metrics"]["auroc"]["point"]
    assert d["point"] == pytest.approx(medcam - image_only, abs=1e-9)
    assert "skipped" in diffs["barlowtwins_cxr"]["nih"]
    md = (reproduced / "tables" / "medcam_minus_baselines.md").read_text()
    assert "ΔAUROC [95% CI]" in md


def test_label_fractions_and_seeds_give_tables_per_fraction_and_the_figure(tiny_cohort, tmp_path):
    root = tmp_path / "data_root"
    root.mkdir()
    (root / "cohort").symlink_to(tiny_cohort, target_is_directory=True)
    out = tmp_path / "out"
    argv = ["reproduce", "--data-root", str(root), "--out", str(out), "--models", "supervised_resnet", "image_only",
            "medcam", "--datasets", "mimic", "--encoder", "resnet_small", "--image-size", "32", "--align-epochs", "1",
            "--pretrain-epochs", "1", "--finetune-epochs", "1", "--lr-grid", "0.01", "0.001", "--batch-size", "16",
            "--label-fractions", "0.5", "1.0", "--seeds", "0", "1", "--select-lr-once", "--n-resamples", "40",
            "--device", "cpu"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    le = results["label_efficiency"]
    assert le["fractions"] == [0.5, 1.0] and le["seeds"] == [0, 1]
    for key, folder in (("0.5", "fraction_0.5"), ("1.0", "fraction_1")):
        part = le["by_fraction"][key]
        rows = {row[0]: row for row in _csv(out / "tables" / folder / "table2_in_distribution.csv")[1:]}
        for model in ("supervised_resnet", "image_only", "medcam"):
            run = part["runs"][model]["mimic"]
            assert run["label_fraction"] == float(key) and set(run["predictions_by_seed"]) == {"0", "1"}
            per_seed = [_macro_auroc(p) for p in run["predictions_by_seed"].values()]
            assert run["metrics"]["auroc"]["point"] == pytest.approx(np.mean(per_seed), abs=1e-9), (model, key)
            assert rows[results["models"][model]][1].startswith(f"{np.mean(per_seed):.3f} [")
        d = part["differences"]["image_only"]["mimic"]["auroc"]
        assert d["point"] == pytest.approx(part["runs"]["medcam"]["mimic"]["metrics"]["auroc"]["point"]
                                           - part["runs"]["image_only"]["mimic"]["metrics"]["auroc"]["point"])
        title = json.loads((out / "tables" / folder / "table2_in_distribution.json").read_text())["title"]
        assert f"{float(key) * 100:g} % of the training labels" in title
    # the training subsets are nested across fractions and the later seed reused the first seed's lr
    half = json.loads((out / "models" / "medcam" / "mimic" / "fraction_0.5" / "seed_1" / "training_subset.json")
                      .read_text())
    assert half["fraction"] == 0.5 and half["n_images"] < half["n_images_total"]
    first = json.loads((out / "models" / "medcam" / "mimic" / "fraction_0.5" / "seed_0" / "finetune_summary.json")
                       .read_text())
    second = json.loads((out / "models" / "medcam" / "mimic" / "fraction_0.5" / "seed_1" / "finetune_summary.json")
                        .read_text())
    assert [g["lr"] for g in second["grid"]] == [first["selected"]["lr"]]
    assert (out / "label_efficiency.png").stat().st_size > 0 and (out / "label_efficiency.html").exists()
    report = (out / "report.md").read_text()
    assert "## Label efficiency" in report and "## 50 % of the training labels" in report
    # a second call reuses every run: no new training, the same numbers
    def medcam_half(r):
        return r["label_efficiency"]["by_fraction"]["0.5"]["runs"]["medcam"]["mimic"]["metrics"]["auroc"]["point"]

    assert main(argv) == 0
    rerun = json.loads((out / "results.json").read_text())
    assert not [k for k in rerun["timings_s"] if k.startswith(("finetune", "align"))]
    assert medcam_half(rerun) == pytest.approx(medcam_half(results))


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["reproduce", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--weights", "eva_x_small=/no/such.pt"]) == 2
    assert "/no/such.pt" in capsys.readouterr().err
    assert main(["reproduce", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--models", "clip"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["reproduce", "--out", str(tmp_path / "o")]) == 2
    assert "--data-root is required" in capsys.readouterr().err
