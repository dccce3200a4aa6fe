"""MedMod baselines: the losses against literal loops of spec/baselines.md §4, the mismatched-pair sampler,
and one tiny concurrent pretraining run per objective."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medcam_lab.config import MedModConfig
from medcam_lab.losses.align_mismatch import AlignMismatchLoss, mismatch_permutation
from medcam_lab.losses.infonce import cross_modal_infonce
from medcam_lab.losses.vicreg import vicreg_loss
from medcam_lab.models import build_image_encoder
from medcam_lab.training.medmod import pretrain_medmod


def _loop_infonce(a, b, tau, exclude_positive):
    n = len(a)
    a = [x / np.linalg.norm(x) for x in a]
    b = [x / np.linalg.norm(x) for x in b]
    s = [[float(np.dot(a[i], b[j])) / tau for j in range(n)] for i in range(n)]
    rows = cols = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i or not exclude_positive]
        rows += -s[i][i] + math.log(sum(math.exp(s[i][j]) for j in others))
        cols += -s[i][i] + math.log(sum(math.exp(s[j][i]) for j in others))
    return rows / n + cols / n


@pytest.mark.parametrize("exclude_positive", [True, False])
def test_infonce_matches_loop(exclude_positive):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    got = cross_modal_infonce(a, b, 0.3, exclude_positive=exclude_positive)
    assert float(got) == pytest.approx(_loop_infonce(a.double().numpy(), b.double().numpy(), 0.3, exclude_positive),
                                       rel=1e-5)
    with pytest.raises(ValueError):
        cross_modal_infonce(a[:1], b[:1])


def test_vicreg_matches_loop():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g) * 0.3
    out = vicreg_loss(x, y)
    xn, yn = x.double().numpy(), y.double().numpy()
    n, d = xn.shape
    inv = sum((xn[i, k] - yn[i, k]) ** 2 for i in range(n) for k in range(d)) / (n * d)
    var = 0.0
    cov = 0.0
    for z in (xn, yn):
        mean = [sum(z[i, k] for i in range(n)) / n for k in range(d)]
        for k in range(d):
            v = sum((z[i, k] - mean[k]) ** 2 for i in range(n)) / (n - 1)
            var += max(0.0, 1 - math.sqrt(v + 1e-4)) / d / 2
        for k in range(d):
            for m in range(d):
                if k != m:
                    c = sum((z[i, k] - mean[k]) * (z[i, m] - mean[m]) for i in range(n)) / (n - 1)
                    cov += c * c / d
    assert float(out["invariance"]) == pytest.approx(inv, rel=1e-5)
    assert float(out["variance"]) == pytest.approx(var, rel=1e-5)
    assert float(out["covariance"]) == pytest.approx(cov, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-5)


def test_mismatch_permutation_swaps_a_fifth():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        perm = mismatch_permutation(100, generator=g)
        moved = int((perm != torch.arange(100)).sum())
        assert 16 <= moved <= 20 and moved % 2 == 0
        assert sorted(perm.tolist()) == list(range(100))
        assert torch.equal(perm[perm], torch.arange(100))  # swaps: applying twice restores the batch
    assert torch.equal(mismatch_permutation(3, generator=g), torch.arange(3))


def test_align_loss_has_learnable_temperature():
    loss = AlignMismatchLoss()
    assert float(loss.temperature.detach()) == pytest.approx(0.07)
    value = loss(torch.randn(4, 8, requires_grad=True), torch.randn(4, 8))
    value.backward()
    assert loss.temperature.grad is not None and torch.isfinite(loss.temperature.grad)


@pytest.mark.parametrize("objective", ["infonce", "vicreg", "align"])
def test_pretrain_medmod_tiny(tiny_cohort, tmp_path, objective):
    cfg = MedModConfig(cohort=str(tiny_cohort), out=str(tmp_path / objective), objective=objective,
                       encoder="resnet_small", image_size=32, proj_dim=16, ehr_hidden=16, epochs=1, batch_size=8,
                       lr=1e-3, device="cpu")
    path = pretrain_medmod(cfg)
    from medcam_lab.training.runtime import seed_everything

    seed_everything(cfg.seed)
    initial = build_image_encoder("resnet_small").state_dict()  # the same init the run started from
    after = build_image_encoder("resnet_small", weights=path).state_dict()  # strict load: a plain backbone
    assert set(after) == set(initial)
    assert not torch.equal(after["conv1.weight"], initial["conv1.weight"])  # the image encoder was trained
    assert (tmp_path / objective / "history.json").exists()
    with pytest.raises(ValueError, match="objective"):
        pretrain_medmod(MedModConfig(cohort=str(tiny_cohort), out=str(tmp_path / "x"), objective="simsiam",
                                     encoder="resnet_small", image_size=32, device="cpu"))
