"""Barlow Twins loss against a literal double loop over the cross-correlation matrix."""

import math

import pytest
import torch

from medcam_lab.losses.barlow_twins import barlow_twins_loss


def literal_barlow_twins(a, b, lam, eps=1e-5):
    n, d = len(a), len(a[0])

    def standardize(z):
        cols = []
        for j in range(d):
            col = [z[i][j] for i in range(n)]
            mu = sum(col) / n
            var = sum((x - mu) ** 2 for x in col) / n
            cols.append([(x - mu) / math.sqrt(var + eps) for x in col])
        return cols  # cols[j][i]

    ca, cb = standardize(a), standardize(b)
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(ca[i][r] * cb[j][r] for r in range(n)) / n
            total += (1 - c) ** 2 if i == j else lam * c**2
    return total


@pytest.mark.parametrize("n,d,lam", [(2, 3, 5e-3), (7, 4, 0.1), (16, 8, 1.0)])
def test_matches_literal_loop(n, d, lam):
    g = torch.Generator().manual_seed(n * d)
    a, b = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    expected = literal_barlow_twins(a.tolist(), b.tolist(), lam)
    assert barlow_twins_loss(a, b, lam).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: barlow_twins_loss(x, y, 0.05).double(), (a, b))


def test_identical_decorrelated_views_give_near_zero():
    # Orthogonal, centered columns: C = I after standardization.
    q, _ = torch.linalg.qr(torch.randn(32, 4, dtype=torch.float64))
    z = q - q.mean(0)
    assert barlow_twins_loss(z, z, 5e-3).item() < 0.05


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        barlow_twins_loss(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError):
        barlow_twins_loss(torch.randn(4, 3), torch.randn(4, 2))
