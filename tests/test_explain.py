"""Attributions: Integrated Gradients completeness, Grad-CAM shape, EHR attributions per variable × step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medcam_lab.data.cohort import load_cohort
from medcam_lab.data.transforms import eval_transform
from medcam_lab.ehr import feature_names
from medcam_lab.explain import (
    attributions_by_variable,
    count_hooks,
    ehr_attributions,
    embed_split,
    grad_cam,
    image_ehr_similarity,
    integrated_gradients,
    last_block,
    load_aligner,
    variable_groups,
)


@pytest.fixture(scope="module")
def aligned(tiny_align_run, tiny_cohort):
    model, cfg = load_aligner(tiny_align_run)
    cohort = load_cohort(tiny_cohort)
    return model, cfg, cohort


def _batch(cohort, cfg, model, n=4):
    idx = cohort.split_indices("test")[:n]
    images = eval_transform(torch.from_numpy(np.asarray(cohort.images[idx])), cfg.image_size,
                            model.image_encoder.spec.mean, model.image_encoder.spec.std)
    return idx, images


def test_final_aligner_reproduces_the_checkpoint_and_initial_differs(aligned, tiny_align_run):
    model, cfg, _ = aligned
    saved = torch.load(tiny_align_run / "checkpoint.pt", weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved["model." + key]), key
    initial, _ = load_aligner(tiny_align_run, "initial")
    again, _ = load_aligner(tiny_align_run, "initial")
    assert all(torch.equal(a, b) for a, b in zip(initial.state_dict().values(), again.state_dict().values()))
    assert any(not torch.equal(a, b) for a, b in zip(initial.state_dict().values(), model.state_dict().values()))


def test_integrated_gradients_completeness_on_images(aligned):
    model, cfg, cohort = aligned
    idx, images = _batch(cohort, cfg, model)
    emb = embed_split(model, cohort, "test", cfg.image_size)
    z_ehr = torch.from_numpy(emb.z_ehr[:4])
    f = image_ehr_similarity(model)
    # a ReLU/max-pool network is piecewise linear: the Gauss-Legendre sum converges slowly, hence 512 steps
    attr, delta = integrated_gradients(f, images, additional_forward_args=(z_ehr,), n_steps=512, batch_size=3,
                                       internal_batch_size=700)
    assert attr.shape == images.shape
    with torch.no_grad():
        gap = f(images, z_ehr) - f(torch.zeros_like(images), z_ehr)
    # completeness: Σ attributions = f(x) − f(baseline), up to the quadrature error reported as delta
    sums = attr.flatten(1).sum(1)
    assert torch.allclose(sums, gap, atol=3e-2 * gap.abs().max().item() + 1e-4), (sums, gap)
    assert torch.allclose(sums - gap, delta, atol=1e-4)  # delta is exactly the completeness gap


def test_integrated_gradients_matches_the_gradient_times_input_of_a_linear_function():
    w = torch.randn(5)
    x = torch.randn(3, 5)
    attr, delta = integrated_gradients(lambda t: t @ w, x, n_steps=8, batch_size=2)
    assert torch.allclose(attr, x * w, atol=1e-5)  # IG of a linear function is exactly x · w
    assert delta.abs().max() < 1e-5


def test_grad_cam_on_the_last_block_is_input_sized_and_nonnegative(aligned):
    model, cfg, cohort = aligned
    idx, images = _batch(cohort, cfg, model, n=5)
    emb = embed_split(model, cohort, "test", cfg.image_size)
    maps = grad_cam(image_ehr_similarity(model), last_block(model.image_encoder), images,
                    (torch.from_numpy(emb.z_ehr[:5]),), batch_size=2)
    assert maps.shape == (5, cfg.image_size, cfg.image_size)
    assert (maps >= 0).all() and torch.isfinite(maps).all()
    # batching does not change the result
    one = grad_cam(image_ehr_similarity(model), last_block(model.image_encoder), images[:1],
                   (torch.from_numpy(emb.z_ehr[:1]),))
    assert torch.allclose(one[0], maps[0], atol=1e-5)
    assert count_hooks(model) == 0


def test_ehr_attributions_complete_and_zero_on_padding(aligned):
    model, cfg, cohort = aligned
    emb = embed_split(model, cohort, "test", cfg.image_size)
    rows = emb.rows[:4]
    lengths = torch.from_numpy(cohort.lengths[rows])
    T = int(lengths.max())
    ehr = torch.from_numpy(cohort.ehr[rows, :T])
    z_cxr = torch.from_numpy(emb.z_cxr[:4])
    attr, delta = ehr_attributions(model, ehr, lengths, z_cxr, n_steps=64, batch_size=3)
    assert attr.shape == ehr.shape
    pad = torch.arange(T)[None, :] >= lengths[:, None]
    assert attr[pad].abs().max() == 0 if pad.any() else True
    with torch.no_grad():
        _, last = model.ehr_encoder(ehr, lengths)
        _, last0 = model.ehr_encoder(torch.zeros_like(ehr), lengths)
        zn = torch.nn.functional.normalize
        gap = (zn(model.ehr_proj(last), dim=-1) * zn(z_cxr, dim=-1)).sum(-1) - \
              (zn(model.ehr_proj(last0), dim=-1) * zn(z_cxr, dim=-1)).sum(-1)
    assert torch.allclose(attr.flatten(1).sum(1), gap, atol=2e-2 * gap.abs().max().item() + 1e-4)
    by_var, names = attributions_by_variable(attr, cohort.ehr_columns)
    assert by_var.shape == (4, T, 17) and len(names) == 17
    assert torch.allclose(by_var.sum(-1), attr.sum(-1), atol=1e-6)  # every column belongs to one variable


def test_ehr_attributions_refuse_train_mode(aligned):
    model, cfg, cohort = aligned
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            ehr_attributions(model, torch.zeros(1, 2, 76), torch.tensor([2]), torch.zeros(1, 16))
    finally:
        model.eval()


def test_variable_groups_cover_the_76_columns_once():
    groups = variable_groups(feature_names())
    assert len(groups) == 17
    cols = sorted(c for g in groups for c in g.columns)
    assert cols == list(range(76))
    gcs = next(g for g in groups if g.name == "Glascow coma scale total")
    assert len(gcs.categories) == len(gcs.value_columns) > 1
    with pytest.raises(ValueError, match="mask columns without value"):
        variable_groups(["a", "mask->b"])


def test_an_alignment_run_opens_with_its_cohort_raw_values_units_and_timestep(tiny_align_run, tiny_cohort):
    import json

    from medcam_lab.data.cohort import EHR_VALUES_FILE
    from medcam_lab.explain import open_alignment_run

    run = open_alignment_run(tiny_align_run)
    assert run.cohort.path == tiny_cohort and run.config.k == 3
    raw = np.load(tiny_cohort / EHR_VALUES_FILE)
    assert np.array_equal(np.asarray(run.cohort.raw_ehr), raw)
    prepared = json.loads((tiny_cohort / "config.json").read_text())
    assert run.cohort.timestep == prepared["timestep"] and run.cohort.mode.name == prepared["compat"]
    assert (run.cohort.units.get("Temperature") == "°C") == (prepared["compat"] == "clean")
    final, _ = load_aligner(tiny_align_run, "final")
    opened = run.aligner("final")
    for (name, a), (_, b) in zip(final.state_dict().items(), opened.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="parameter cohort"):
        open_alignment_run(tiny_align_run, cohort=tiny_align_run)
