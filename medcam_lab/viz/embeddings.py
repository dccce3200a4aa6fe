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

__all__ = ["retrieval_accuracy", "umap_2d", "ehr_variable_summary", "umap_figure", "write_figures_html"]


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


def umap_figure(frame: pd.DataFrame, color: str, title: str = "") -> go.Figure:
    """Before | after scatter of ``frame`` (columns ``before_x/_y``, ``after_x/_y``), coloured by ``color``.

    Shape:
        - no tensor arguments.
    """
    if color not in frame.columns:
        raise KeyError(f"colour column {color!r} not in the UMAP frame; have {list(frame.columns)}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("before alignment", "after alignment"))
    values = frame[color]
    hover = frame.get("subject_id", pd.Series(range(len(frame)))).astype(str)
    for col, prefix in ((1, "before"), (2, "after")):
        fig.add_trace(go.Scattergl(
            x=frame[f"{prefix}_x"], y=frame[f"{prefix}_y"], mode="markers", text=hover,
            marker=dict(color=values, colorscale="Viridis", size=6, showscale=col == 2,
                        colorbar=dict(title=color[:18])),
            hovertemplate="subject %{text}<br>" + color + ": %{marker.color}<extra></extra>", name=prefix,
        ), row=1, col=col)
    fig.update_layout(title=title or f"UMAP of image embeddings, coloured by {color}", height=430, showlegend=False)
    return fig


def write_figures_html(figures: list[go.Figure], path: str | Path) -> Path:
    """Write several figures into one self-contained HTML file (plotly.js embedded once, no network).

    Shape:
        - no tensor arguments.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    path.write_text("<html><head><meta charset='utf-8'></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    return path
