"""Embedding inspection: UMAP of image embeddings before vs after alignment, and image–EHR retrieval.

UMAP is seeded (``random_state``, which also makes it single-threaded and reproducible). The frame behind
the figures is saved with them (parquet), so every point can be traced back to its image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medcam_lab.explain.ehr import variable_groups
from medcam_lab.viz.style import BINARY_COLORS, COLORS, style
from medcam_lab.viz.style import write_html as _write_html

__all__ = ["retrieval_accuracy", "umap_2d", "ehr_variable_summary", "umap_figure", "retrieval_figure",
           "write_figures_html"]


def retrieval_accuracy(z_image: np.ndarray, z_ehr: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Image → EHR retrieval over a whole split: the fraction of images whose own EHR embedding is among
    the ``k`` most cosine-similar EHR embeddings (ties count against the image, as in ``align``'s
    validation metric).

    Returns:
        ``{"top1": ..., "top5": ..., "n": N, "chance_top1": 1/N, ...}``.

    Shape:
        - z_image, z_ehr: (N, d), row i of both from the same pair.
    """
    a = np.asarray(z_image, dtype=np.float64)
    b = np.asarray(z_ehr, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"z_image and z_ehr must be the same (N, d) shape, got {a.shape} and {b.shape}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    sims = a @ b.T
    own = np.diag(sims)
    rank = (sims > own[:, None]).sum(axis=1)
    n = len(a)
    out: dict[str, float] = {"n": n}
    for k in ks:
        out[f"top{k}"] = float((rank < k).mean())
        out[f"chance_top{k}"] = min(k, n) / n
    return out


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """Seeded 2-D UMAP (cosine metric) of ``features``; ``n_neighbors`` is capped at N − 1.

    Shape:
        - features: (N, D) with N ≥ 3.
        - output: (N, 2).
    """
    import umap

    n = len(features)
    if n < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {n}")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed, n_jobs=1, init="random" if n < 10 else "spectral")
    return reducer.fit_transform(np.asarray(features, dtype=np.float32))


def ehr_variable_summary(raw: np.ndarray, lengths: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Mean observed value of each continuous variable over each stay's window (NaN if never observed).

    Shape:
        - raw: (N, T, F) discretized, not normalized.
        - lengths: (N,).
        - output: N rows × the continuous variables.
    """
    valid = np.arange(raw.shape[1])[None, :] < np.asarray(lengths)[:, None]
    out = {}
    for g in variable_groups(columns):
        if g.categories:
            continue
        observed = valid & (raw[..., g.mask_column] > 0.5) if g.mask_column is not None else valid
        values = np.where(observed, raw[..., g.value_columns[0]], np.nan)
        with np.errstate(invalid="ignore"):
            counts = observed.sum(axis=1)
            out[g.name] = np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(out)


def _is_binary(values: pd.Series) -> bool:
    return bool(values.dropna().isin([0, 1]).all())


def umap_figure(frame: pd.DataFrame, color: str, title: str = "", units: dict[str, str] | None = None) -> go.Figure:
    """Before | after scatter of ``frame`` (columns ``before_x/_y``, ``after_x/_y``), coloured by ``color``:
    a binary label in two discrete colours (and unknown in grey), a continuous variable on a colour bar with
    its unit.
    """
    if color not in frame.columns:
        raise KeyError(f"colour column {color!r} not in the UMAP frame; have {list(frame.columns)}")
    unit = (units or {}).get(color, "")
    label = f"{color} ({unit})" if unit else color
    fig = make_subplots(rows=1, cols=2, subplot_titles=("before alignment", "after alignment"),
                        horizontal_spacing=0.06)
    values = frame[color]
    hover = frame.get("subject_id", pd.Series(range(len(frame)))).astype(str)
    for col, prefix in ((1, "before"), (2, "after")):
        x, y = frame[f"{prefix}_x"], frame[f"{prefix}_y"]
        if _is_binary(values):
            groups = (("1", values == 1, "positive"), ("0", values == 0, "negative"),
                      ("unknown", values.isna(), "unknown"))
            for key, mask, name in groups:
                if not mask.any():
                    continue
                fig.add_trace(go.Scattergl(
                    x=x[mask], y=y[mask], mode="markers", text=hover[mask], name=f"{color}: {name}",
                    legendgroup=key, showlegend=col == 1, marker=dict(color=BINARY_COLORS[key], size=6),
                    hovertemplate="subject %{text}<br>" + f"{color}: {name}<extra></extra>"), row=1, col=col)
        else:
            fig.add_trace(go.Scattergl(
                x=x, y=y, mode="markers", text=hover, name=prefix, showlegend=False,
                marker=dict(color=values, colorscale="Viridis", size=6, showscale=col == 2,
                            colorbar=dict(title=dict(text=label.replace(" (", "<br>("), side="top"))),
                hovertemplate="subject %{text}<br>" + label + ": %{marker.color:.4g}<extra></extra>",
            ), row=1, col=col)
    what = "window mean of measured values" if not _is_binary(values) else "label"
    style(fig, title or f"UMAP of image embeddings, coloured by {label} ({what})", height=460, width=1000)
    fig.update_xaxes(title_text="UMAP 1", showticklabels=False)
    fig.update_yaxes(title_text="UMAP 2", showticklabels=False)
    return fig


def retrieval_figure(retrieval: dict) -> go.Figure:
    """Image → EHR retrieval top-1/top-5 before and after alignment (``retrieval.json``), with chance level."""
    fig = go.Figure()
    ks = [k for k in (1, 5) if f"top{k}" in retrieval["after"]]
    for name, color in (("before", COLORS["other"]), ("after", COLORS["selected"])):
        fig.add_trace(go.Bar(x=[f"top-{k}" for k in ks], y=[retrieval[name][f"top{k}"] for k in ks],
                             name=f"{name} alignment", marker_color=color,
                             hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>"))
    fig.add_trace(go.Scatter(x=[f"top-{k}" for k in ks], y=[retrieval["after"][f"chance_top{k}"] for k in ks],
                             mode="markers+text", name="chance (k / n)", text=["chance"] * len(ks),
                             textposition="top center", marker=dict(symbol="line-ew-open", size=40,
                                                                   color=COLORS["reference"], line=dict(width=2))))
    n = retrieval["after"].get("n", "?")
    style(fig, f"image → EHR retrieval on split {retrieval.get('split', '?')!r} ({n} images)", height=380, width=560)
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="fraction of images whose own EHR is among the k nearest", range=[0, 1])
    fig.update_xaxes(title_text="k nearest EHR embeddings")
    return fig


def write_figures_html(figures: list[go.Figure], path: str | Path) -> Path:
    """Write several figures into one HTML page that reads ``plotly.min.js`` from its folder (written there
    once; opens offline). See :func:`medcam_lab.viz.style.write_html`.
    """
    return _write_html(figures, path)
