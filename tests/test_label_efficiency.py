"""Label fractions, repeats over seeds, the pooled paired bootstrap and the cached-feature linear probe."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from medcam_lab.config import FinetuneConfig
from medcam_lab.data.label_fraction import benchx_subset, patient_order, training_subset
from medcam_lab.data.loading import make_loader
from medcam_lab.data.transforms import eval_transform
from medcam_lab.datasets.base import read_split_ids
from medcam_lab.metrics import (
    bootstrap_ci,
    bootstrap_indices,
    paired_bootstrap_diff,
    pooled_seed_bootstrap,
    seed_bootstrap_indices,
)
from medcam_lab.training.finetune import _build, finetune_seeds, load_splits, masked_bce
from medcam_lab.training.runtime import epoch_seed, seed_everything


def _table(n_patients=400, n_labels=6, seed=0):
    """Training rows of a made-up split: 1–3 images per patient, rare labels, NaN (unknown) entries."""
    rng = np.random.default_rng(seed)
    per_patient = rng.integers(1, 4, size=n_patients)
    patients = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    prevalence = np.array([0.3, 0.1, 0.05, 0.01, 0.004, 0.0])[:n_labels]
    labels = (rng.random((len(patients), n_labels)) < prevalence).astype(np.float32)
    labels[rng.random(labels.shape) < 0.05] = np.nan
    rows = np.sort(rng.choice(10 * len(patients), size=len(patients), replace=False))  # rows of a bigger table
    return rows, patients, labels, tuple(f"L{j}" for j in range(n_labels))


def test_subsets_are_nested_patient_level_seeded_and_keep_a_positive_per_label():
    rows, patients, labels, names = _table()
    n_patients = len(set(patients))
    by_row = dict(zip(rows.tolist(), patients.tolist()))
    for seed in (0, 1, 2):
        previous: set[int] = set()
        for fraction in (0.01, 0.05, 0.1, 0.5, 1.0):
            sub = training_subset(rows, patients, labels, fraction, seed, names)
            kept = set(sub.rows.tolist())
            assert previous <= kept  # nested
            previous = kept
            chosen = {by_row[r] for r in kept}
            # patient-level: every image of a chosen patient, none of the others
            assert kept == {r for r, p in by_row.items() if p in chosen}
            assert len(chosen) == max(1, round(fraction * n_patients))
            assert kept <= set(rows.tolist())
            if len(chosen) >= len(names):  # enough patients to cover every label with a positive
                in_subset = np.isin(rows, sub.rows)
                had = (np.nan_to_num(labels) == 1).any(axis=0)
                has = (np.nan_to_num(labels[in_subset]) == 1).any(axis=0)
                assert (has == had).all(), (seed, fraction)
                assert sub.labels_without_positive == []
    a = training_subset(rows, patients, labels, 0.1, 5, names).rows
    assert np.array_equal(a, training_subset(rows, patients, labels, 0.1, 5, names).rows)  # deterministic
    assert not np.array_equal(a, training_subset(rows, patients, labels, 0.1, 6, names).rows)
    assert np.array_equal(training_subset(rows, patients, labels, 1.0, 5, names).rows, rows)
    with pytest.raises(ValueError, match="label_fraction"):
        training_subset(rows, patients, labels, 0.0, 0, names)


def test_too_small_a_budget_covers_the_rarest_labels_first():
    rows, patients, labels, names = _table()
    order = patient_order(patients, labels, seed=3)
    positive_patients = [set(patients[np.nan_to_num(labels[:, j]) == 1]) for j in range(len(names))]
    # the first patient of the order has a positive for the rarest label that has one (L4 at 0.4 %)
    counts = [len(p) for p in positive_patients]
    rarest = min((c, j) for j, c in enumerate(counts) if c > 0)[1]
    assert order[0] in positive_patients[rarest]
    sub = training_subset(rows, patients, labels, 1 / len(set(patients)), 3, names)  # one patient
    assert rarest not in [names.index(n) for n in sub.labels_without_positive]
    assert "L5" not in sub.labels_without_positive  # no positive anywhere: nothing to keep


def test_finetune_subset_leaves_validation_and_test_whole(tiny_cohort):
    full = load_splits(FinetuneConfig(data=str(tiny_cohort)))
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    for seed in (0, 1):
        part = load_splits(FinetuneConfig(data=str(tiny_cohort), label_fraction=0.3, seed=seed))
        assert np.array_equal(part.val.indices, full.val.indices)
        assert np.array_equal(part.test.indices, full.test.indices)
        assert set(part.train.indices) < set(full.train.indices)
        kept_subjects = set(pairs.loc[part.train.indices, "subject_id"])
        train = pairs[pairs["split"] == "train"]
        assert set(train.index[train["subject_id"].isin(kept_subjects)]) == set(part.train.indices)
        n_subjects = train["subject_id"].nunique()
        assert len(kept_subjects) == round(0.3 * n_subjects)
    assert np.array_equal(load_splits(FinetuneConfig(data=str(tiny_cohort), label_fraction=1.0, seed=4)).train.indices,
                          full.train.indices)


def test_benchx_vindr_lists_are_nested_and_replace_the_draw():
    one, ten, train = (set(read_split_ids(n)) for n in ("benchx_vindr_train_1", "benchx_vindr_train_10",
                                                         "benchx_vindr_train"))
    assert (len(one), len(ten)) == (120, 1200) and one < ten < train
    ids = np.array(sorted(train))
    labels = np.zeros((len(ids), 2), dtype=np.float32)
    sub = benchx_subset(np.arange(len(ids)) + 7, ids, labels, "benchx_vindr_train_10", 0.1, 0, ("a", "b"))
    assert set(ids[sub.rows - 7]) == ten and sub.listed_absent == 0
    with pytest.raises(ValueError, match="BenchX"):
        benchx_subset(np.arange(10), ids[:10], labels[:10], "benchx_vindr_train_10", 0.1, 0, ("a", "b"))


def _scores(rng, y, skill):
    return np.where(np.isnan(y), 0.0, np.nan_to_num(y)) * skill + rng.normal(size=y.shape)


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_pooled_paired_bootstrap_equals_a_literal_loop_over_seeds_and_resamples(metric):
    rng = np.random.default_rng(0)
    n, n_labels, n_seeds, n_resamples = 60, 3, 3, 40
    y = (rng.random((n, n_labels)) < [0.5, 0.2, 0.08]).astype(float)
    y[rng.random(y.shape) < 0.1] = np.nan
    a = [_scores(rng, y, 1.0) for _ in range(n_seeds)]
    b = [_scores(rng, y, 0.6) for _ in range(n_seeds)]
    result = pooled_seed_bootstrap(y, a, b, metric=metric, n_resamples=n_resamples, seed=11, seeds=[4, 5, 6])
    fn = roc_auc_score if metric == "auroc" else average_precision_score

    def macro(y_part, s_part):
        values = []
        for j in range(n_labels):
            known = ~np.isnan(y_part[:, j])
            if len(set(y_part[known, j])) == 2:
                values.append(fn(y_part[known, j], s_part[known, j]))
        return np.mean(values) if values else np.nan

    rows, seeds = bootstrap_indices(n, n_resamples, 11), seed_bootstrap_indices(n_seeds, n_resamples, 11)
    loop_a, loop_d = [], []
    for r in range(n_resamples):
        ma = np.mean([macro(y[rows[r]], a[s][rows[r]]) for s in seeds[r]])
        mb = np.mean([macro(y[rows[r]], b[s][rows[r]]) for s in seeds[r]])
        loop_a.append(ma)
        loop_d.append(ma - mb)
    lo, hi = np.nanpercentile(loop_d, [2.5, 97.5])
    assert result["difference"]["low"] == pytest.approx(lo, abs=1e-12)
    assert result["difference"]["high"] == pytest.approx(hi, abs=1e-12)
    assert np.nanpercentile(loop_a, 2.5) == pytest.approx(result["a"]["low"], abs=1e-12)
    per_seed = [macro(y, s) for s in a]
    assert result["a"]["point"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert result["a"]["sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    assert list(result["a"]["per_seed"]) == ["4", "5", "6"]
    assert result["difference"]["point"] == pytest.approx(np.mean(per_seed) - np.mean([macro(y, s) for s in b]))
    assert (seeds != seeds[:, :1]).any()  # the seeds really are resampled


def test_pooled_bootstrap_with_one_seed_is_the_plain_bootstrap():
    rng = np.random.default_rng(1)
    y = (rng.random((80, 4)) < 0.3).astype(float)
    a, b = _scores(rng, y, 1.0), _scores(rng, y, 0.5)
    pooled = pooled_seed_bootstrap(y, [a], [b], n_resamples=200, seed=3)
    single, diff = bootstrap_ci(y, a, n_resamples=200, seed=3), paired_bootstrap_diff(y, a, b, n_resamples=200, seed=3)
    for key in ("point", "low", "high"):
        assert pooled["a"][key] == single[key]
        assert pooled["difference"][key] == diff[key]
    assert pooled["difference"]["p_value"] == diff["p_value"]


def test_linear_probe_on_cached_features_equals_the_probe_run_on_the_fly(tiny_cohort, tmp_path):
    """The reference: the frozen encoder run on the centre-cropped images of every batch, literally."""
    cfg = FinetuneConfig(data=str(tiny_cohort), out=str(tmp_path / "probe"), encoder="resnet_small", image_size=32,
                         lr_grid=(1e-2,), linear_probe=True, epochs=3, batch_size=8, eval_start=1, eval_every=1,
                         patience=5, seed=2, label_fraction=0.5)
    finetune_seeds(cfg)
    cached = torch.load(tmp_path / "probe" / "seed_2" / "lr_0" / "checkpoint.pt", weights_only=False)["model"]

    splits = load_splits(cfg)
    model, optimizer = _build(cfg, len(splits.pathologies), 1e-2, torch.device("cpu"))
    spec = model.encoder.spec
    for epoch in range(cfg.epochs):
        seed_everything(epoch_seed(cfg.seed, epoch))
        model.train()
        model.encoder.eval()
        loader = make_loader(splits.train, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                             drop_last=len(splits.train) > cfg.batch_size)
        for batch in loader:
            logits = model(eval_transform(batch["image"], cfg.image_size, spec.mean, spec.std))
            loss = masked_bce(logits, batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for key in ("head.weight", "head.bias"):
        torch.testing.assert_close(cached[key], model.state_dict()[key], atol=1e-5, rtol=1e-5)
    assert not torch.equal(cached["head.weight"], _build(cfg, 14, 1e-2, torch.device("cpu"))[0].head.weight)
    for key, value in model.encoder.state_dict().items():  # the encoder stayed frozen in both
        assert torch.equal(cached["encoder." + key], value), key
    subset = json.loads((tmp_path / "probe" / "seed_2" / "training_subset.json").read_text())
    assert subset["n_images"] == len(splits.train) and subset["fraction"] == 0.5


def test_finetune_command_with_seeds_writes_one_run_per_seed_and_the_pooled_summary(tiny_cohort, tmp_path):
    from medcam_lab.cli import main

    out = tmp_path / "ft"
    argv = ["finetune", "--data", str(tiny_cohort), "--out", str(out), "--encoder", "resnet_small", "--image-size",
            "32", "--epochs", "1", "--eval-start", "1", "--eval-every", "1", "--lr-grid", "0.001", "--linear-probe",
            "--label-fraction", "0.5", "--seeds", "0", "1", "--device", "cpu"]
    assert main(argv) == 0
    summary = json.loads((out / "seeds_metrics.json").read_text())
    for seed in (0, 1):
        assert (out / f"seed_{seed}" / "predictions_test.parquet").exists()
        subset = json.loads((out / f"seed_{seed}" / "training_subset.json").read_text())
        assert subset
    per_seed = summary["auroc"]["a"]["per_seed"]
    assert set(per_seed) == {"0", "1"} and np.isfinite(list(per_seed.values())).all()
    assert summary["auroc"]["a"]["mean"] == pytest.approx(np.mean(list(per_seed.values())))


@pytest.mark.slow
def test_notebook_03_with_seeds_shows_the_pooled_summary(tiny_cohort, tmp_path):
    import papermill as pm

    root = Path(__file__).resolve().parents[1] / "notebooks"
    out = tmp_path / "ft"
    params = {"data": str(tiny_cohort), "out": str(out), "encoder": "resnet_small", "image_size": 32,
              "lr_grid": [0.001], "epochs": 1, "eval_start": 1, "eval_every": 1, "linear_probe": True,
              "label_fraction": 0.5, "seeds": [0, 1], "device": "cpu", "n_resamples": 50}
    executed = pm.execute_notebook(str(root / "03_finetune_evaluate.ipynb"), str(tmp_path / "03.ipynb"),
                                   parameters=params, kernel_name="python3", cwd=str(root), progress_bar=False)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    summary = json.loads((out / "seeds_metrics.json").read_text())
    assert summary["auroc"]["n_resamples"] == 50 and set(summary["auroc"]["a"]["per_seed"]) == {"0", "1"}
    assert "over seeds [0, 1]: macro AUROC mean" in text and "below: the run of seed 0" in text
    assert (out / "seed_0" / "evaluation" / "metrics.json").exists()
    assert (out / "label_efficiency.html").exists() and (out / "label_efficiency.png").exists()


def _prediction_files(tmp_path, n=120, n_labels=4, seeds=(0, 1), skill=None, seed=0):
    """Predictions files {row: {seed: path}} on one shared test table, row skill set by ``skill``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.3).astype(float)
    y[rng.random(y.shape) < 0.05] = np.nan
    files = {}
    for k, (row, s) in enumerate((skill or {"a": 1.5, "b": 0.5}).items()):
        for sd in seeds:
            frame = pd.DataFrame({"id": [str(i) for i in range(n)]})
            score = _scores(np.random.default_rng([seed, k, sd]), np.nan_to_num(y), s)
            for j in range(n_labels):
                frame[f"true:L{j}"] = y[:, j]
                frame[f"score:L{j}"] = score[:, j]
            path = tmp_path / f"{row}_{sd}.parquet"
            frame.to_parquet(path, index=False)
            files.setdefault(row, {})[sd] = path
    return files


def test_label_efficiency_curve_is_the_pooled_bootstrap_per_fraction(tmp_path):
    from medcam_lab.evaluation import label_efficiency_curve, pool_seed_predictions

    small = _prediction_files(tmp_path / "f01", skill={"a": 1.0, "b": 0.4, "c": 0.8}, seed=1)
    full = _prediction_files(tmp_path / "f1", skill={"a": 2.0, "b": 1.5}, seed=2)
    curve = label_efficiency_curve({0.1: small, 1.0: full}, compare=("a", "b"), n_resamples=200, seed=3)
    assert curve["fractions"] == [0.1, 1.0] and curve["compare"] == ["a", "b"]
    for key, files in (("0.1", small), ("1.0", full)):
        paired = pool_seed_predictions(files["a"], files["b"], n_resamples=200, seed=3)
        for metric in ("auroc", "auprc"):
            assert curve["difference"][key][metric]["point"] == pytest.approx(paired[metric]["difference"]["point"])
            assert curve["difference"][key][metric]["low"] == pytest.approx(paired[metric]["difference"]["low"])
            assert curve["rows"]["a"][key][metric]["high"] == pytest.approx(paired[metric]["a"]["high"])
            assert curve["rows"]["b"][key][metric]["mean"] == pytest.approx(paired[metric]["b"]["mean"])
    alone = pool_seed_predictions(small["c"], n_resamples=200, seed=3)
    assert curve["rows"]["c"]["0.1"]["auroc"]["low"] == pytest.approx(alone["auroc"]["a"]["low"])
    assert "1.0" not in curve["rows"]["c"]  # a row that did not run at a fraction has no point there
    # literal check of the point: mean over seeds of scikit-learn's macro AUROC over labels with both classes
    per_seed = []
    for path in full["a"].values():
        frame = pd.read_parquet(path)
        values = []
        for j in range(4):
            known = frame[f"true:L{j}"].notna()
            values.append(roc_auc_score(frame.loc[known, f"true:L{j}"], frame.loc[known, f"score:L{j}"]))
        per_seed.append(np.mean(values))
    assert curve["rows"]["a"]["1.0"]["auroc"]["point"] == pytest.approx(np.mean(per_seed))


def test_label_efficiency_sentence_states_the_result_whichever_way_it_falls():
    from medcam_lab.evaluation import describe_label_efficiency

    def curve(low, high):
        d = {"point": (low + high) / 2, "low": low, "high": high, "seeds": [0, 1]}
        return {"compare": ["medcam", "image_only"], "difference": {"0.1": {"auroc": d}}}

    labels = {"medcam": "MedCAM", "image_only": "image-only"}
    assert "MedCAM is better" in describe_label_efficiency(curve(0.01, 0.05), labels)
    assert "image-only is better" in describe_label_efficiency(curve(-0.05, -0.01), labels)
    text = describe_label_efficiency(curve(-0.02, 0.04), labels)
    assert "includes 0" in text and text.startswith("At 10% of the training labels, MedCAM − image-only")
    assert "+0.010 [-0.020, +0.040]" in text


def test_label_efficiency_figure_draws_every_row_with_its_interval(tmp_path):
    from medcam_lab.evaluation import label_efficiency_curve
    from medcam_lab.viz.label_efficiency import label_efficiency_figure, save_label_efficiency_figure

    files = _prediction_files(tmp_path, skill={"a": 1.0, "b": 0.4})
    curve = label_efficiency_curve({0.1: files, 1.0: files}, compare=("a", "b"), n_resamples=50)
    fig = label_efficiency_figure({"test": curve}, {"a": "model A", "b": "model B"})
    names = [t.name for t in fig.data]
    assert names == ["model A", "model B", "model A − model B (paired)"]
    a = fig.data[0]
    r = curve["rows"]["a"]["0.1"]["auroc"]
    assert a.y[0] == pytest.approx(r["point"])
    assert a.error_y.array[0] == pytest.approx(r["high"] - r["point"])
    assert a.error_y.arrayminus[0] == pytest.approx(r["point"] - r["low"])
    d = curve["difference"]["1.0"]["auroc"]
    assert list(fig.data[2].x) == [0.1, 1.0] and fig.data[2].y[1] == pytest.approx(d["point"])
    paths = save_label_efficiency_figure({"test": curve}, {"a": "model A", "b": "model B"}, tmp_path / "fig")
    assert Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = Path(paths["html"]).read_text()
    assert "plotly.min.js" in html and (tmp_path / "fig" / "plotly.min.js").exists() and len(html) < 200_000


def test_select_lr_once_trains_later_seeds_at_the_first_seeds_choice_and_reuses_given_runs(tiny_cohort, tmp_path):
    cfg = FinetuneConfig(data=str(tiny_cohort), out=str(tmp_path / "first"), encoder="resnet_small", image_size=32,
                         lr_grid=(0.01, 0.001), epochs=1, eval_start=1, eval_every=1, linear_probe=True,
                         seeds=(3, 4), select_lr_once=True, device="cpu")
    paths = finetune_seeds(cfg)
    first = json.loads((tmp_path / "first" / "seed_3" / "finetune_summary.json").read_text())
    second = json.loads((tmp_path / "first" / "seed_4" / "finetune_summary.json").read_text())
    assert [g["lr"] for g in first["grid"]] == [0.01, 0.001]
    assert [g["lr"] for g in second["grid"]] == [first["selected"]["lr"]]
    stored = json.loads((tmp_path / "first" / "seed_4" / "config.json").read_text())
    assert stored["lr_grid"] == [first["selected"]["lr"]]
    # a run made elsewhere for the first seed is used as it is (its lr choice too); only seed 4 trains
    again = finetune_seeds(replace(cfg, out=str(tmp_path / "again")), existing={3: paths[3]})
    assert again[3] == paths[3] and not (tmp_path / "again" / "seed_3").exists()
    assert (tmp_path / "again" / "seed_4" / "predictions_test.parquet").exists()
    with pytest.raises(ValueError, match="not in seeds"):
        finetune_seeds(cfg, existing={9: paths[3]})
