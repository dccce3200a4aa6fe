"""Training loops on the tiny prepared cohort: resume after an interruption, saved backbones, predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from medcam_lab.config import AlignConfig, FinetuneConfig
from medcam_lab.models import build_image_encoder
from medcam_lab.training.align import align
from medcam_lab.training.finetune import finetune, read_predictions


def _align_cfg(cohort, out, epochs):
    return AlignConfig(cohort=str(cohort), out=str(out), encoder="resnet_small", image_size=32, proj_dim=16,
                       ehr_hidden=16, k=3, epochs=epochs, batch_size=8, lr=1e-3, seed=3)


def test_interrupted_alignment_resumes_to_the_same_weights(tiny_cohort, tmp_path):
    straight = torch.load(align(_align_cfg(tiny_cohort, tmp_path / "a", epochs=2)), weights_only=True)
    # A run stopped after its first epoch checkpoint, then restarted with the same output directory.
    align(_align_cfg(tiny_cohort, tmp_path / "b", epochs=1))
    resumed = torch.load(align(_align_cfg(tiny_cohort, tmp_path / "b", epochs=2)), weights_only=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    history = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert not (tmp_path / "b" / "checkpoint.pt.tmp").exists()


def test_adapted_backbone_differs_from_start_and_loads_into_a_fresh_encoder(tiny_cohort, tmp_path):
    path = align(_align_cfg(tiny_cohort, tmp_path / "a", epochs=1))
    fresh = build_image_encoder("resnet_small", weights=str(path))
    state = torch.load(path, weights_only=True)
    assert not any(k.startswith("fc.") for k in state)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())
    # the ResNet-50 variant of the same file format loads into torchvision's own model
    r50 = build_image_encoder("resnet50")
    missing, unexpected = torchvision.models.resnet50(weights=None).load_state_dict(r50.state_dict(), strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected


def test_finetune_writes_predictions_for_the_test_split_once(tiny_cohort, tmp_path):
    cfg = FinetuneConfig(data=str(tiny_cohort), out=str(tmp_path / "ft"), encoder="resnet_small", image_size=32,
                         lr_grid=(1e-3, 1e-2), epochs=3, batch_size=16, eval_start=1, eval_every=1, patience=2)
    path = finetune(cfg)
    y_true, y_score, names, ids = read_predictions(path)
    pairs = pd.read_parquet(tiny_cohort / "pairs.parquet")
    assert sorted(ids) == sorted(pairs.loc[pairs["split"] == "test", "dicom_id"])
    assert y_true.shape == y_score.shape == (len(ids), 14)
    assert np.isfinite(y_score).all() and ((y_score >= 0) & (y_score <= 1)).all()
    summary = json.loads((tmp_path / "ft" / "finetune_summary.json").read_text())
    assert len(summary["grid"]) == 2
    assert summary["selected"]["best_val_auroc"] == max(g["best_val_auroc"] for g in summary["grid"])


def test_frozen_mode_leaves_the_backbone_exactly_as_loaded(tiny_cohort, tmp_path):
    from medcam_lab.models import backbone_state_dict, save_state_dict_atomic

    start = tmp_path / "start.pt"
    save_state_dict_atomic(backbone_state_dict(build_image_encoder("resnet_small")), start)
    cfg = _align_cfg(tiny_cohort, tmp_path / "frozen", epochs=2)
    cfg = type(cfg)(**{**cfg.__dict__, "weights": str(start), "backbone_mode": "frozen"})
    adapted = torch.load(align(cfg), weights_only=True)
    original = torch.load(start, weights_only=True)
    assert all(torch.equal(adapted[k], original[k]) for k in original)  # BatchNorm statistics included
    adapt_cfg = type(cfg)(**{**cfg.__dict__, "out": str(tmp_path / "adapt"), "backbone_mode": "adapt"})
    changed = torch.load(align(adapt_cfg), weights_only=True)
    assert any(not torch.equal(changed[k], original[k]) for k in original)


def test_evaluate_cli_matches_sklearn_point_estimates(tiny_cohort, tmp_path):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from medcam_lab.cli import main

    cfg = FinetuneConfig(data=str(tiny_cohort), out=str(tmp_path / "ft"), encoder="resnet_small", image_size=32,
                         lr_grid=(1e-3,), epochs=2, batch_size=16, eval_start=1, eval_every=1, patience=2)
    path = finetune(cfg)
    assert main(["evaluate", "--predictions", str(path), "--out", str(tmp_path / "ev"), "--n-resamples", "100"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    y_true, y_score, names, _ = read_predictions(path)
    for metric, fn in (("auroc", roc_auc_score), ("auprc", average_precision_score)):
        kept = [j for j in range(len(names)) if len(np.unique(y_true[:, j])) == 2]
        expected = np.mean([fn(y_true[:, j], y_score[:, j]) for j in kept])
        assert metrics[metric]["point"] == pytest.approx(expected, abs=1e-12)
        assert sorted(metrics[metric]["skipped_labels"]) == sorted(
            names[j] for j in range(len(names)) if j not in kept)
        assert metrics[metric]["low"] <= metrics[metric]["high"]


def test_device_crop_equals_the_per_image_loop():
    from medcam_lab.data.transforms import _normalize, _to_unit, train_transform

    images = torch.randint(0, 256, (9, 36, 36), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    gen = torch.Generator().manual_seed(4)
    offsets = torch.randint(0, 36 - 32 + 1, (9, 2), generator=gen).tolist()
    flips = (torch.rand(9, generator=gen) < 0.5).tolist()
    crops = [img[t : t + 32, left : left + 32] for img, (t, left) in zip(images, offsets)]
    expected = _normalize(_to_unit(torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flips)])), mean, std)
    assert torch.equal(train_transform(images, 32, mean, std, torch.Generator().manual_seed(4)), expected)


def test_rank_slices_concatenate_to_the_single_process_batches():
    from medcam_lab.data.loading import make_loader

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 37

        def __getitems__(self, positions):
            return {"index": torch.tensor(positions)}

    one = [b["index"] for b in make_loader(Items(), 9, shuffle=True, seed=5, drop_last=True)]
    ranks = [[b["index"] for b in make_loader(Items(), 3, shuffle=True, seed=5, rank=r, world_size=3)]
             for r in range(3)]
    assert len(one) == 4 and all(len(r) == 4 for r in ranks)
    for batch, *parts in zip(one, *ranks):
        assert torch.equal(batch, torch.cat(parts))
