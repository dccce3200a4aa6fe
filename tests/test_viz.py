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
    assert "carried forward" in view.texts[v][1] and "measured" in view.texts[v][0]
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
    assert len(fig.data) == 4  # a binary label: positive and negative traces on each side
    path = write_figures_html([fig, umap_figure(frame, "before_x")], tmp_path / "u.html")
    html = path.read_text()
    assert "cdn.plot.ly" not in html and "<script src='plotly.min.js'>" in html
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000  # one shared copy, opens offline
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


def _cell_status_oracle(mask: list[int]) -> list[str]:
    """Literal reading of the discretizer's 'previous' imputation: a bin with a measurement is measured; a bin
    without one repeats the last earlier measurement of the window, or the normal value when there is none."""
    out, seen = [], False
    for m in mask:
        seen = seen or bool(m)
        out.append("measured" if m else ("carried forward" if seen else "normal-filled"))
    return out


def test_the_attention_view_reads_as_a_clinician_would():
    raw = _raw(6)
    hr, mask = COLUMNS.index("Heart Rate"), COLUMNS.index("mask->Heart Rate")
    raw[:, mask] = [0, 1, 0, 0, 1, 0]
    raw[:, COLUMNS.index("mask->Glascow coma scale total")] = [1, 0, 0, 0, 0, 0]
    image_time = pd.Timestamp("2150-01-03 10:30")
    view = attention_view(np.r_[np.full(6, 1 / 6), 0.0], np.vstack([raw, raw[:1]]), COLUMNS, length=6, k=2,
                          window_hours=11.0, image_time=image_time,
                          units={"Heart Rate": "/min", "Oxygen saturation": "%"})
    table = view.table
    v = table.names.index("Heart Rate")
    assert table.status[v] == _cell_status_oracle([0, 1, 0, 0, 1, 0])
    assert table.values[v][1] == f"{raw[1, hr]:.4g} /min" and table.units[v] == "/min"
    g = table.names.index("Glascow coma scale total")
    assert table.values[g] == ["15"] * 6 and table.status[g][0] == "measured"  # a category as its text
    # clinical order: vital signs first (heart rate leading), GCS together, body size last
    assert table.names[0] == "Heart Rate" and table.groups[0] == "vital signs" and table.groups[-1] == "body size"
    gcs = [i for i, n in enumerate(table.names) if n.startswith("Glascow")]
    assert gcs == list(range(gcs[0], gcs[0] + 4))
    # time: each bin's start in hours before the image and its clock time
    assert list(view.hours_before) == [11, 9, 7, 5, 3, 1]
    assert view.clock[0] == "23:30" and view.clock[-1] == "09:30" and view.padded_steps == 1
    fig = attention_heatmap(view)
    bars, heat = fig.data[0], fig.data[1]
    assert fig.layout.xaxis2.title.text == "hours before the image (0 = the image)"
    assert fig.layout.yaxis.title.text == "attention weight"
    assert list(bars.x) == [-10, -8, -6, -4, -2, 0]  # bin centres
    assert heat.showscale and list(heat.colorbar.ticktext) == ["lowest", "highest"]
    assert "Heart Rate (/min)" in heat.y
    hover = heat.customdata[v][2]
    assert "carried forward" in hover and "7–5 h before the image (from 03:30)" in hover
    marks = {t.name: t for t in fig.data if t.type == "scatter"}
    assert sum(1 for y in marks["carried forward"].y if y == "Heart Rate (/min)") == 3
    assert sum(1 for y in marks["normal-filled"].y if y == "Heart Rate (/min)") == 1
    uniform = [s for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1 and s.yref == "y"]
    assert uniform and uniform[0].y0 == pytest.approx(1 / 6)
    assert "1 padded steps" in fig.layout.annotations[-1].text
    # titles and size do not depend on k (no reflow when the slider moves)
    other = attention_heatmap(attention_view(np.full(6, 1 / 6), raw, COLUMNS, length=6, k=5, window_hours=11.0))
    assert [a.text for a in other.layout.annotations[:2]] == [a.text for a in fig.layout.annotations[:2]]
    assert (other.layout.height, other.layout.width, other.layout.title.text) == (fig.layout.height,
                                                                                  fig.layout.width, "")


def test_umap_uses_discrete_colours_for_a_binary_label_and_units_for_a_variable():
    x = np.random.default_rng(0).normal(size=(20, 4))
    edema = np.where(x[:, 0] > 0, 1.0, 0.0)
    edema[:3] = np.nan
    frame = pd.DataFrame({"before_x": x[:, 0], "before_y": x[:, 1], "after_x": x[:, 2], "after_y": x[:, 3],
                          "Edema": edema, "Heart Rate": 80 + x[:, 0]})
    fig = umap_figure(frame, "Edema")
    names = {t.name for t in fig.data}
    assert names == {"Edema: positive", "Edema: negative", "Edema: unknown"}
    assert all(isinstance(t.marker.color, str) for t in fig.data)
    fig = umap_figure(frame, "Heart Rate", units={"Heart Rate": "/min"})
    assert "(/min)" in fig.data[1].marker.colorbar.title.text and "Heart Rate (/min)" in fig.layout.title.text


def test_retrieval_and_history_figures_mark_chance_and_the_best_epoch():
    from medcam_lab.viz import history_figure, retrieval_figure

    a = np.eye(10)
    retrieval = {"before": retrieval_accuracy(a, np.roll(a, 1, axis=0)), "after": retrieval_accuracy(a, a),
                 "split": "test"}
    fig = retrieval_figure(retrieval)
    chance = [t for t in fig.data if t.name == "chance (k / n)"][0]
    assert list(chance.y) == [0.1, 0.5] and fig.layout.yaxis.title.text.startswith("fraction of images")
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "val_loss": [2.5, 2.0, 2.2],
                            "val_retrieval_top1": [0.1, 0.2, 0.3], "val_retrieval_top5": [0.3, 0.4, 0.5]})
    fig = history_figure(history)
    best = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
    assert {s.x0 for s in best} == {2.0} and len(best) == 2
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.title.text == "loss (InfoNCE)"
    fig = history_figure(history.assign(val_pairs=10))
    chance = sorted(s.y0 for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1)
    assert chance == [0.1, 0.5]
