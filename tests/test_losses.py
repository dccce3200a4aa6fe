"""Tests for medcam_lab.losses against literal per-(b, j) loop references of eq. 3–7 (method.md §3)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from medcam_lab.losses import MedCAMLoss, global_alignment_loss, local_alignment_loss, select_topk_steps

# --------------------------------------------------------------------------- references (explicit loops)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))


def ref_global(z_cxr: torch.Tensor, z_ehr: torch.Tensor, tau) -> torch.Tensor:
    """Eq. 3–5 written out: S[i][j] = cos/τ; mean −log softmax over rows at i, and over columns."""
    B = z_cxr.shape[0]
    S = [[_cos(z_cxr[i], z_ehr[j]) / tau for j in range(B)] for i in range(B)]
    c2e = 0.0
    e2c = 0.0
    for i in range(B):
        c2e = c2e - (S[i][i] - torch.log(sum(torch.exp(S[i][j]) for j in range(B))))
        e2c = e2c - (S[i][i] - torch.log(sum(torch.exp(S[j][i]) for j in range(B))))
    return 0.5 * (c2e / B + e2c / B)


def ref_topk(attention: torch.Tensor, mask: torch.Tensor, k: int) -> list[list[int]]:
    B, T = attention.shape
    out = []
    for b in range(B):
        valid = [t for t in range(T) if bool(mask[b, t])]
        ranked = sorted(valid, key=lambda t: -float(attention[b, t]))  # stable: ties → earlier step
        out.append(ranked[: min(k, len(valid))])
    return out


def ref_local(z_cxr, z_steps, attention, mask, k, tau) -> torch.Tensor:
    """Eq. 6a/6b/7 written out, one selected (b, j) pair at a time."""
    B, T, _ = z_steps.shape
    topk = ref_topk(attention, mask, k)
    terms_a, terms_b = [], []
    for b in range(B):
        valid = [t for t in range(T) if bool(mask[b, t])]
        for j in topk[b]:
            s_bj = _cos(z_cxr[b], z_steps[b, j]) / tau
            denom_a = sum(torch.exp(_cos(z_cxr[b], z_steps[b, jp]) / tau) for jp in valid)
            terms_a.append(-(s_bj - torch.log(denom_a)))
            denom_b = sum(torch.exp(_cos(z_steps[b, j], z_cxr[bp]) / tau) for bp in range(B))
            terms_b.append(-(s_bj - torch.log(denom_b)))
    return 0.5 * (sum(terms_a) / len(terms_a) + sum(terms_b) / len(terms_b))


def _random_mask(B: int, T: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Arbitrary (non-prefix) masks; some patients have fewer valid steps than k, some (B > 1) none."""
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        n_valid = int(torch.randint(0, T + 1, (1,), generator=gen))
        if b == 0:
            n_valid = max(n_valid, 1)  # at least one selected pair in the batch
        if b == 1 and B > 2:
            n_valid = 0  # a patient without EHR steps
        if b == 2 and B > 2:
            n_valid = min(T, max(1, k - 1))  # fewer valid steps than k (when k > 1)
        mask[b, torch.randperm(T, generator=gen)[:n_valid]] = True
    return mask


# --------------------------------------------------------------------------- reference parity

GRID = list(itertools.product([1, 2, 5], [1, 3, 7], [1, 3, 10], [0.05, 0.5]))


@pytest.mark.parametrize("B,T,k,tau", GRID)
def test_local_loss_matches_loop_reference(B: int, T: int, k: int, tau: float) -> None:
    gen = torch.Generator().manual_seed(hash((B, T, k, tau)) % 2**31)
    d = 6
    zc = torch.randn(B, d, generator=gen, dtype=torch.float64, requires_grad=True)
    zs = torch.randn(B, T, d, generator=gen, dtype=torch.float64, requires_grad=True)
    att = torch.rand(B, T, generator=gen)
    mask = _random_mask(B, T, k, gen)

    loss = local_alignment_loss(zc, zs, att, k, tau, mask)
    assert loss.dtype == torch.float32
    g_zc, g_zs = torch.autograd.grad(loss, (zc, zs))
    ref = ref_local(zc, zs, att, mask, k, tau)
    r_zc, r_zs = torch.autograd.grad(ref, (zc, zs))

    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_zc, r_zc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g_zs, r_zs, rtol=1e-4, atol=1e-5)
    # masked steps of z_ehr_steps never influence the loss
    assert torch.all(g_zs[~mask] == 0)


@pytest.mark.parametrize("B", [1, 2, 5])
@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_global_loss_matches_loop_reference(B: int, tau: float) -> None:
    gen = torch.Generator().manual_seed(10 * B + int(tau * 100))
    zc = torch.randn(B, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    ze = torch.randn(B, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    loss = global_alignment_loss(zc, ze, tau)
    ref = ref_global(zc, ze, tau)
    torch.testing.assert_close(loss.double(), ref.reshape(()), rtol=1e-5, atol=1e-6)
    for got, want in zip(torch.autograd.grad(loss, (zc, ze)), torch.autograd.grad(ref, (zc, ze))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_temperature_tensor_gets_reference_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    B, T, d, k = 3, 4, 5, 2
    zc, ze = torch.randn(B, d, generator=gen), torch.randn(B, d, generator=gen)
    zs = torch.randn(B, T, d, generator=gen)
    att = torch.rand(B, T, generator=gen)
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    for fn, args, ref_fn, ref_args in [
        (global_alignment_loss, (zc, ze), ref_global, (zc.double(), ze.double())),
        (lambda a, b, t: local_alignment_loss(a, b, att, k, t, mask), (zc, zs),
         lambda a, b, t: ref_local(a, b, att, mask, k, t), (zc.double(), zs.double())),
    ]:
        tau = torch.tensor(0.2, requires_grad=True)
        (g,) = torch.autograd.grad(fn(*args, tau), tau)
        tau_ref = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
        (g_ref,) = torch.autograd.grad(ref_fn(*ref_args, tau_ref), tau_ref)
        torch.testing.assert_close(g.double(), g_ref, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- selection


def test_topk_selection_matches_reference_and_skips_masked() -> None:
    gen = torch.Generator().manual_seed(1)
    att = torch.rand(6, 9, generator=gen)
    mask = torch.rand(6, 9, generator=gen) > 0.4
    att[~mask] = 1e9  # masked steps look the most attended
    index, selected = select_topk_steps(att, 4, mask)
    ref = ref_topk(att, mask, 4)
    for b in range(6):
        assert index[b][selected[b]].tolist() == ref[b]
        assert bool(mask[b, index[b][selected[b]]].all())


def test_masked_step_attention_does_not_change_loss() -> None:
    gen = torch.Generator().manual_seed(2)
    B, T, d = 4, 6, 8
    zc, zs = torch.randn(B, d, generator=gen), torch.randn(B, T, d, generator=gen)
    att = torch.rand(B, T, generator=gen)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 2] = mask[1, 5] = mask[3, 0] = False
    mask[2, 3:] = False
    hi, lo = att.clone(), att.clone()
    hi[~mask], lo[~mask] = 1e9, -1e9
    for k in (1, 3, 10):
        assert torch.equal(
            local_alignment_loss(zc, zs, hi, k, 0.1, mask), local_alignment_loss(zc, zs, lo, k, 0.1, mask)
        )
    # and it differs from the unmasked loss (the mask is really used)
    masked = local_alignment_loss(zc, zs, hi, 3, 0.1, mask)
    unmasked = local_alignment_loss(zc, zs, hi, 3, 0.1)
    assert not torch.allclose(masked, unmasked)


def test_no_selected_pair_raises_and_attention_gets_no_grad() -> None:
    zc, zs = torch.randn(2, 4), torch.randn(2, 3, 4)
    att = torch.rand(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="no"):
        local_alignment_loss(zc, zs, att, 2, 0.1, torch.zeros(2, 3, dtype=torch.bool))
    zs.requires_grad_(True)
    local_alignment_loss(zc, zs, att, 2, 0.1).backward()
    assert att.grad is None and zs.grad is not None


@pytest.mark.parametrize(
    "kwargs",
    [dict(k=0), dict(temperature=0.0), dict(temperature=-1.0)],
)
def test_local_loss_rejects_bad_args(kwargs: dict) -> None:
    args = dict(k=2, temperature=0.1) | kwargs
    with pytest.raises(ValueError):
        local_alignment_loss(torch.randn(2, 4), torch.randn(2, 3, 4), torch.rand(2, 3), **args)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        global_alignment_loss(torch.randn(3, 4), torch.randn(2, 4), 0.1)
    with pytest.raises(ValueError):
        local_alignment_loss(torch.randn(3, 4), torch.randn(2, 3, 4), torch.rand(2, 3), 1, 0.1)
    with pytest.raises(ValueError):
        float_mask = torch.ones(2, 3)
        local_alignment_loss(torch.randn(2, 4), torch.randn(2, 3, 4), torch.rand(2, 3), 1, 0.1, float_mask)


# --------------------------------------------------------------------------- closed-form properties


def test_global_loss_is_log_batch_for_random_embeddings() -> None:
    gen = torch.Generator().manual_seed(3)
    B, d = 64, 2048
    loss = global_alignment_loss(torch.randn(B, d, generator=gen), torch.randn(B, d, generator=gen), 0.1)
    assert abs(float(loss) - math.log(B)) < 0.1


def test_global_loss_near_zero_for_identical_orthogonal_pairs() -> None:
    z = torch.eye(8, 32) * 3.0  # orthogonal rows, not unit norm
    assert float(global_alignment_loss(z, z.clone(), 0.01)) < 1e-6


def test_global_loss_symmetric_under_modality_swap() -> None:
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(5, 16, generator=gen), torch.randn(5, 16, generator=gen)
    torch.testing.assert_close(global_alignment_loss(a, b, 0.1), global_alignment_loss(b, a, 0.1))


def test_single_pair_global_loss_is_zero() -> None:
    assert float(global_alignment_loss(torch.randn(1, 4), torch.randn(1, 4), 0.1)) == 0.0


def test_losses_are_float32_under_bf16_autocast() -> None:
    gen = torch.Generator().manual_seed(5)
    proj = torch.nn.Linear(8, 8)
    x, xs = torch.randn(4, 8, generator=gen), torch.randn(4, 3, 8, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zc, ze, zs = proj(x), proj(x + 1), proj(xs)
        assert zc.dtype == torch.bfloat16
        lg = global_alignment_loss(zc, ze, 0.1)
        ll = local_alignment_loss(zc, zs, torch.rand(4, 3), 2, 0.1)
        total = MedCAMLoss(k=2)(zc, ze, zs, torch.rand(4, 3))["loss"]
    assert lg.dtype == ll.dtype == total.dtype == torch.float32
    total.backward()
    assert proj.weight.grad is not None and torch.isfinite(proj.weight.grad).all()


# --------------------------------------------------------------------------- MedCAMLoss module


def _batch(B: int = 4, T: int = 5, d: int = 8, seed: int = 6):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.arange(T)[None, :] < torch.tensor([5, 2, 4, 1][:B])[:, None]
    return dict(
        z_cxr=torch.randn(B, d, generator=gen),
        z_ehr=torch.randn(B, d, generator=gen),
        z_ehr_steps=torch.randn(B, T, d, generator=gen),
        attention=torch.rand(B, T, generator=gen),
        step_mask=mask,
    )


def test_medcam_loss_total_is_weighted_sum() -> None:
    batch = _batch()
    out = MedCAMLoss(k=3, temperature=0.2, lambda_global=0.5, lambda_local=2.0)(**batch)
    g = global_alignment_loss(batch["z_cxr"], batch["z_ehr"], 0.2)
    loc = local_alignment_loss(
        batch["z_cxr"], batch["z_ehr_steps"], batch["attention"], 3, 0.2, batch["step_mask"]
    )
    torch.testing.assert_close(out["global"], g)
    torch.testing.assert_close(out["local"], loc)
    torch.testing.assert_close(out["loss"], 0.5 * g + 2.0 * loc)
    torch.testing.assert_close(out["temperature"], torch.tensor(0.2))


def test_medcam_loss_zero_weight_skips_term() -> None:
    batch = _batch()
    batch["step_mask"] = torch.zeros_like(batch["step_mask"])  # the local loss would raise
    out = MedCAMLoss(lambda_local=0.0)(**batch)
    assert out["local"] is None
    torch.testing.assert_close(out["loss"], out["global"])
    out = MedCAMLoss(lambda_global=0.0)(**_batch())
    assert out["global"] is None
    torch.testing.assert_close(out["loss"], out["local"])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(k=0),
        dict(temperature=0.0),
        dict(temperature=-0.1),
        dict(temperature=0.001, learnable_temperature=True),
        dict(lambda_global=-1.0),
        dict(lambda_global=0.0, lambda_local=0.0),
    ],
)
def test_medcam_loss_validates_args(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MedCAMLoss(**kwargs)


def test_learnable_temperature_gets_gradient_and_clamps() -> None:
    loss_fn = MedCAMLoss(k=2, temperature=0.1, learnable_temperature=True)
    params = list(loss_fn.parameters())
    assert len(params) == 1
    torch.testing.assert_close(loss_fn.temperature.detach(), torch.tensor(0.1))
    loss_fn(**_batch())["loss"].backward()
    assert loss_fn.logit_scale.grad is not None and float(loss_fn.logit_scale.grad) != 0.0
    with torch.no_grad():
        loss_fn.logit_scale.fill_(10.0)
    loss_fn.clamp_()
    torch.testing.assert_close(loss_fn.logit_scale.detach(), torch.tensor(math.log(100.0)))
    torch.testing.assert_close(loss_fn.temperature.detach(), torch.tensor(0.01))
    assert list(MedCAMLoss().parameters()) == []
    MedCAMLoss().clamp_()  # no-op for a fixed temperature
