"""The top-k EHR attention view of one image: attention over its timesteps, the k steps the local loss
selects, and the 17 variables' values at every step (a plotly heatmap over time × variable).

The selection is :func:`medcam_lab.losses.select_topk_steps`, the very function the local loss uses, so
the view shows what training aligned. Attention weights are not attributions: the figure says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from medcam_lab.explain.ehr import variable_matrix
from medcam_lab.losses import select_topk_steps

__all__ = ["AttentionView", "attention_view", "attention_heatmap", "ehr_attribution_heatmap"]


@dataclass(frozen=True)
class AttentionView:
    """What one image attends to in its patient's EHR window.

    Attributes:
        attention: attention over the valid steps (sums to 1).
        selected: the top-k steps in decreasing attention (``min(k, length)`` of them).
        hours: start of each step's bin, in hours from the window start.
        scaled, texts, variables: the variable × time table of :func:`~medcam_lab.explain.variable_matrix`.
        title: figure title.

    Shape:
        - attention, hours: (length,).
        - scaled: (V, length).
    """

    attention: np.ndarray
    selected: tuple[int, ...]
    hours: np.ndarray
    scaled: np.ndarray
    texts: list[list[str]]
    variables: list[str]
    title: str = ""


def attention_view(attention: np.ndarray, raw_ehr: np.ndarray, columns: list[str], length: int, k: int,
                   timestep_hours: float = 2.0, title: str = "") -> AttentionView:
    """Build the view for one image.

    Args:
        attention: the image's attention over its patient's (padded) timesteps.
        raw_ehr: the stay's discretized EHR (not normalized).
        columns: the discretizer's column names.
        length: valid steps.
        k: steps to select (as the local loss's ``k``).
        timestep_hours: bin width Δt.
        title: figure title.

    Raises:
        ValueError: ``length < 1`` or ``k < 1``.

    Shape:
        - attention: (T,), T ≥ length.
        - raw_ehr: (T, F).
    """
    if length < 1:
        raise ValueError("this stay has no valid EHR step: nothing to show")
    att = np.asarray(attention, dtype=np.float64)[:length]
    index, selected = select_topk_steps(torch.as_tensor(att)[None], k)
    chosen = tuple(int(i) for i, s in zip(index[0].tolist(), selected[0].tolist()) if s)
    scaled, texts, names = variable_matrix(np.asarray(raw_ehr), columns, length)
    return AttentionView(att, chosen, np.arange(length) * timestep_hours, scaled, texts, names, title)


def attention_heatmap(view: AttentionView) -> go.Figure:
    """Two panels sharing the time axis: attention per step (selected steps highlighted) and the
    variable × time heatmap with the selected steps outlined.

    Shape:
        - no tensor arguments.
    """
    n = len(view.attention)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.04,
                        subplot_titles=("attention over EHR steps (not an attribution)",
                                        f"variables per step; top-{len(view.selected)} selected steps outlined"))
    colors = ["#d62728" if t in view.selected else "#9aa5b1" for t in range(n)]
    fig.add_trace(go.Bar(x=view.hours, y=view.attention, marker_color=colors, name="attention",
                         hovertemplate="t=%{x} h<br>attention %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(x=view.hours, y=view.variables, z=view.scaled, text=view.texts, colorscale="Viridis",
                             zmin=0, zmax=1, showscale=False, hovertemplate="%{y} at %{x} h: %{text}<extra></extra>"),
                  row=2, col=1)
    width = float(view.hours[1] - view.hours[0]) if n > 1 else 1.0
    for t in view.selected:
        x = float(view.hours[t])
        fig.add_shape(type="rect", x0=x - width / 2, x1=x + width / 2, y0=-0.5, y1=len(view.variables) - 0.5,
                      line=dict(color="#d62728", width=2), row=2, col=1)
    fig.update_layout(title=view.title, height=620, showlegend=False, margin=dict(l=10, r=10, t=60, b=30))
    fig.update_xaxes(title_text="hours from window start", row=2, col=1)
    return fig


def ehr_attribution_heatmap(by_variable: np.ndarray, hours: np.ndarray, variables: list[str],
                            delta: float | None = None, title: str = "") -> go.Figure:
    """EHR attributions per variable × timestep (e.g. Integrated Gradients of the image–EHR similarity,
    :func:`medcam_lab.explain.attributions_by_variable`), diverging colours centred at 0.

    Shape:
        - by_variable: (T, V).
        - hours: (T,).
    """
    values = np.asarray(by_variable, dtype=float)
    if values.shape != (len(hours), len(variables)):
        raise ValueError(f"by_variable must be ({len(hours)}, {len(variables)}), got {values.shape}")
    gap = "" if delta is None else f" (completeness gap {delta:.2g})"
    fig = go.Figure(go.Heatmap(z=values.T, x=hours, y=variables, colorscale="RdBu", zmid=0,
                               colorbar=dict(title="attribution"),
                               hovertemplate="%{y} at %{x} h: %{z:.3g}<extra></extra>"))
    fig.update_layout(title=(title or "EHR attribution of the image–EHR similarity") + gap, height=520,
                      margin=dict(l=10, r=10, t=60, b=30))
    fig.update_xaxes(title_text="hours from window start")
    return fig
