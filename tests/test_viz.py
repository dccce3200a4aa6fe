"""Attention heatmap, retrieval accuracy (against a literal loop), UMAP seeding, variable summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medcam_lab.ehr import feature_names
from medcam_lab.viz import (
    attention_heatmap,
    attention_view,
    ehr_attribution_heatmap,
    ehr_variable_summary,
    heat_overlay,
    retrieval_accuracy,
    umap_2d,
    umap_figure,
    write_figures_html,
)

COLUMNS = feature_names()


def _raw(T=6, seed=0):
    rng = np.random.default_rng(seed)
    raw = np.zeros((T, 76), np.float32)
    hr = COLUMNS.index("Heart Rate")
    raw[:, hr] = rng.uniform(60, 120, T)
    raw[:, COLUMNS.index("mask->Heart Rate")] = ([1, 0, 1, 1, 0, 1] * 2)[:T]
    raw[:, COLUMNS.index("Glascow coma scale total->15")] = 1
    return raw


def test_attention_view_selects_the_loss_topk_among_valid_steps():
    att = np.array([0.1, 0.4, 0.05, 0.3, 0.15, 0.0, 0.9])  # the last step is padding (length 6)
    view = attention_view(att, _raw(7), COLUMNS, length=6, k=3)
    assert view.selected == (1, 3, 4)
    assert len(view.attention) == 6 and list(view.hours) == [0, 2, 4, 6, 8, 10]
    assert view.scaled.shape == (17, 6) and len(view.variables) == 17
    v = view.variables.index("Heart Rate")
    assert "imputed" in view.texts[v][1] and "observed" in view.texts[v][0]
    assert np.nanmin(view.scaled[v]) == 0 and np.nanmax(view.scaled[v]) == 1
    assert attention_view(att, _raw(7), COLUMNS, length=2, k=5).selected == (1, 0)  # k capped at the length
    fig = attention_heatmap(view)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 3
    assert list(fig.data[0].marker.color).count("#d62728") == 3
    with pytest.raises(ValueError):
        attention_view(att, _raw(7), COLUMNS, length=0, k=3)


def test_retrieval_accuracy_matches_a_literal_loop():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(23, 8)), rng.normal(size=(23, 8))
    b[:5] = a[:5] * 3  # a few perfect matches
    got = retrieval_accuracy(a, b)
    hits = {1: 0, 5: 0}
    for i in range(len(a)):
        sims = [np.dot(a[i], b[j]) / np.linalg.norm(a[i]) / np.linalg.norm(b[j]) for j in range(len(b))]
        better = sum(s > sims[i] for s in sims)
        hits[1] += better < 1
        hits[5] += better < 5
    assert got["top1"] == pytest.approx(hits[1] / 23) and got["top5"] == pytest.approx(hits[5] / 23)
    assert got["top1"] >= 5 / 23 and got["chance_top5"] == pytest.approx(5 / 23)


def test_umap_is_seeded_and_figures_write_offline_html(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 6))
    assert np.allclose(umap_2d(x, seed=3, n_neighbors=5), umap_2d(x, seed=3, n_neighbors=5))
    frame = pd.DataFrame({"before_x": x[:, 0], "before_y": x[:, 1], "after_x": x[:, 2], "after_y": x[:, 3],
                          "Edema": (x[:, 4] > 0).astype(float), "subject_id": range(30)})
    fig = umap_figure(frame, "Edema")
    assert len(fig.data) == 2
    path = write_figures_html([fig, umap_figure(frame, "before_x")], tmp_path / "u.html")
    html = path.read_text()
    assert html.count("<script type=\"text/javascript\">/**") <= 1 and "cdn.plot.ly" not in html.split("</script>")[0]
    with pytest.raises(KeyError, match="nope"):
        umap_figure(frame, "nope")


def test_ehr_variable_summary_averages_observed_values_only():
    raw = np.stack([_raw(6), _raw(6, seed=1)])
    out = ehr_variable_summary(raw, np.array([6, 3]), COLUMNS)
    hr, mask = COLUMNS.index("Heart Rate"), COLUMNS.index("mask->Heart Rate")
    for i, length in enumerate((6, 3)):
        obs = [raw[i, t, hr] for t in range(length) if raw[i, t, mask] > 0.5]
        assert out["Heart Rate"][i] == pytest.approx(np.mean(obs))
    assert out["Weight"].isna().all()  # never observed
    assert "Glascow coma scale total" not in out  # categorical


def test_heat_overlay_keeps_zero_heat_gray():
    img = np.full((4, 4), 100, np.uint8)
    heat = np.zeros((4, 4))
    heat[0, 0] = 2.0
    rgb = heat_overlay(img, heat, alpha=0.5)
    assert rgb.shape == (4, 4, 3) and (rgb[1:, 1:] == 100).all()
    assert rgb[0, 0, 0] > rgb[0, 0, 1]


def test_ehr_attribution_heatmap_is_variable_by_time():
    values = np.arange(12.0).reshape(3, 4)  # (T, V)
    fig = ehr_attribution_heatmap(values, np.array([0, 2, 4]), ["a", "b", "c", "d"], delta=1e-3)
    assert np.array_equal(np.asarray(fig.data[0].z), values.T) and list(fig.data[0].y) == ["a", "b", "c", "d"]
    assert "completeness gap 0.001" in fig.layout.title.text
    with pytest.raises(ValueError):
        ehr_attribution_heatmap(values.T, np.array([0, 2, 4]), ["a", "b", "c", "d"])
