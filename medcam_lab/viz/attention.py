"""The top-k EHR attention view of one image: attention over its timesteps, the k steps the local loss
selects, and the 17 variables' values at every step (a plotly heatmap over time × variable).

The selection is :func:`medcam_lab.losses.select_topk_steps`, the very function the local loss uses, so
the view shows what training aligned. Attention weights are not attributions: the figure says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from medcam_lab.explain.ehr import VariableTable, variable_table
from medcam_lab.losses import select_topk_steps
from medcam_lab.viz.style import COLORS, style

__all__ = ["AttentionView", "attention_view", "attention_heatmap", "ehr_attribution_heatmap"]


@dataclass(frozen=True)
class AttentionView:
    """What one image attends to in its patient's EHR window.

    Attributes:
        attention: attention over the valid steps (sums to 1).
        selected: the top-k steps in decreasing attention (``min(k, length)`` of them).
        hours: start of each step's bin, in hours from the window start.
        scaled, texts, variables: the variable × time table (:func:`~medcam_lab.explain.variable_table`),
            variables in clinical groups; ``texts`` are "value unit (measured / carried forward /
            normal-filled)".
        title: figure title.
        table: the full :class:`~medcam_lab.explain.ehr.VariableTable` (units, groups, per-cell status).
        hours_before: hours before the image at each bin's start (``None`` when the window is not known).
        clock: clock time of each bin's start (``"08:00"``; empty when the image time is not known).
        timestep_hours: bin width Δt; padded_steps: steps of the stored sequence past the stay's length.

    Shape:
        - attention, hours, hours_before: (length,).
        - scaled: (V, length).
    """

    attention: np.ndarray
    selected: tuple[int, ...]
    hours: np.ndarray
    scaled: np.ndarray
    texts: list[list[str]]
    variables: list[str]
    title: str = ""
    table: VariableTable | None = None
    hours_before: np.ndarray | None = None
    clock: tuple[str, ...] = ()
    timestep_hours: float = 2.0
    padded_steps: int = 0


def attention_view(attention: np.ndarray, raw_ehr: np.ndarray, columns: list[str], length: int, k: int,
                   timestep_hours: float = 2.0, title: str = "", window_hours: float | None = None,
                   image_time: pd.Timestamp | None = None, units: dict[str, str] | None = None) -> AttentionView:
    """Build the view for one image.

    Args:
        attention: the image's attention over its patient's (padded) timesteps.
        raw_ehr: the stay's discretized EHR (not normalized).
        columns: the discretizer's column names.
        length: valid steps.
        k: steps to select (as the local loss's ``k``).
        timestep_hours: bin width Δt.
        title: figure title.
        window_hours: length of the EHR window, ending at the image (``pairs.parquet``): gives hours before
            the image.
        image_time: the image's time (``study_datetime``): gives the clock time of each bin.
        units: unit per variable.

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
    table = variable_table(np.asarray(raw_ehr), columns, length, units)
    texts = [[f"{v} ({st})" for v, st in zip(vals, stats)] for vals, stats in zip(table.values, table.status)]
    hours = np.arange(length) * timestep_hours
    before = None if window_hours is None else float(window_hours) - hours
    clock: tuple[str, ...] = ()
    if before is not None and image_time is not None and not pd.isna(image_time):
        clock = tuple((pd.Timestamp(image_time) - pd.Timedelta(hours=float(h))).strftime("%H:%M") for h in before)
    return AttentionView(att, chosen, hours, table.scaled, texts, table.names, title, table, before, clock,
                         timestep_hours, int(np.asarray(attention).shape[0]) - length)


def _time_axis(view: AttentionView) -> tuple[np.ndarray, str, list[str]]:
    """x positions (bin centres), the axis title, and a hover text per step."""
    width = view.timestep_hours
    if view.hours_before is None:
        x = view.hours + width / 2
        hover = [f"{h:g}–{h + width:g} h from the window start" for h in view.hours]
        return x, "hours from the start of the EHR window", hover
    x = -(view.hours_before - width / 2)
    hover = []
    for t, h in enumerate(view.hours_before):
        clock = f" (from {view.clock[t]})" if view.clock else ""
        hover.append(f"{h:g}–{max(h - width, 0):g} h before the image{clock}")
    return x, "hours before the image (0 = the image)", hover


def attention_heatmap(view: AttentionView) -> go.Figure:
    """Two panels sharing the time axis: attention per step (the top-k in red, the uniform level 1/n dashed)
    and the variables × time table (colour: the value within this stay; marks on cells not measured in
    their bin; the top-k steps outlined). Hover shows value, unit, how the cell was filled, hours before the
    image and clock time. Titles and size do not depend on k.
    """
    n = len(view.attention)
    x, axis_title, when = _time_axis(view)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.05,
                        subplot_titles=("attention of the image over its EHR steps (a weight, not an attribution)",
                                        "variables per step · colour: value within this stay · "
                                        "red outline: the top-k steps"))
    colors = [COLORS["selected"] if t in view.selected else COLORS["other"] for t in range(n)]
    fig.add_trace(go.Bar(x=x, y=view.attention, marker_color=colors, name="attention", width=view.timestep_hours * 0.9,
                         customdata=when, hovertemplate="%{customdata}<br>attention %{y:.3f}<extra></extra>"),
                  row=1, col=1)
    fig.add_hline(y=1.0 / n, line=dict(color=COLORS["reference"], dash="dash", width=1), row=1, col=1,
                  annotation_text="uniform 1/n", annotation_position="top right")
    table = view.table
    labels = [f"{name} ({unit})" if unit else name for name, unit in zip(view.variables, table.units)] \
        if table is not None else list(view.variables)
    hover = [[f"{labels[v]}: {view.texts[v][t]}<br>{when[t]}" for t in range(n)] for v in range(len(labels))]
    fig.add_trace(go.Heatmap(x=x, y=labels, z=view.scaled, customdata=hover, colorscale="Viridis", zmin=0, zmax=1,
                             showscale=True, hovertemplate="%{customdata}<extra></extra>", name="values",
                             colorbar=dict(title=dict(text="value within<br>this stay", side="top"), len=0.55, y=0.35,
                                           tickvals=[0, 1], ticktext=["lowest", "highest"])),
                  row=2, col=1)
    if table is not None:
        for status, symbol in (("carried forward", "circle-open"), ("normal-filled", "x-thin-open")):
            cells = [(x[t], labels[v]) for v in range(len(labels)) for t in range(n) if table.status[v][t] == status]
            fig.add_trace(go.Scatter(x=[c[0] for c in cells], y=[c[1] for c in cells], mode="markers",
                                     marker=dict(symbol=symbol, size=7, color="white", line=dict(width=1.5)),
                                     name=status, hoverinfo="skip", showlegend=True), row=2, col=1)
        bounds = [i for i in range(1, len(table.groups)) if table.groups[i] != table.groups[i - 1]]
        for i in bounds:
            fig.add_shape(type="line", x0=0, x1=1, xref="x domain", y0=i - 0.5, y1=i - 0.5, row=2, col=1,
                          line=dict(color="white", width=3))
    width = view.timestep_hours
    for t in view.selected:
        fig.add_shape(type="rect", x0=x[t] - width / 2, x1=x[t] + width / 2, y0=-0.5, y1=len(labels) - 0.5,
                      line=dict(color=COLORS["selected"], width=2), row=2, col=1)
    padding = f"; {view.padded_steps} padded steps after the stay's end are not shown" if view.padded_steps else ""
    fig.add_annotation(text=f"{n} steps of {width:g} h; top-k = {len(view.selected)} (red){padding}",
                       xref="paper", yref="paper", x=0, y=-0.08, showarrow=False, xanchor="left",
                       font=dict(size=11, color=COLORS["reference"]))
    style(fig, view.title, height=680, width=900)
    fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.06, yanchor="bottom"), bargap=0.1)
    fig.update_yaxes(title_text="attention weight", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=2, col=1)
    fig.update_xaxes(title_text=axis_title, row=2, col=1)
    return fig


def ehr_attribution_heatmap(by_variable: np.ndarray, hours: np.ndarray, variables: list[str],
                            delta: float | None = None, title: str = "",
                            view: AttentionView | None = None) -> go.Figure:
    """EHR attributions per variable × timestep (e.g. Integrated Gradients of the image–EHR similarity,
    :func:`medcam_lab.explain.attributions_by_variable`), diverging colours centred at 0. With the image's
    :class:`AttentionView`, rows follow its clinical order and units, time is in hours before the image, and
    hover shows each cell's value and how it was filled.

    Shape:
        - by_variable: (T, V).
        - hours: (T,).
    """
    values = np.asarray(by_variable, dtype=float)
    if values.shape != (len(hours), len(variables)):
        raise ValueError(f"by_variable must be ({len(hours)}, {len(variables)}), got {values.shape}")
    gap = "" if delta is None else f" (completeness gap {delta:.2g})"
    if view is not None and view.table is not None and sorted(view.variables) == sorted(variables):
        order = [list(variables).index(name) for name in view.variables]
        values = values[:, order]
        x, axis_title, when = _time_axis(view)
        labels = [f"{n} ({u})" if u else n for n, u in zip(view.variables, view.table.units)]
        hover = [[f"{labels[v]}: {view.texts[v][t]}<br>{when[t]}<br>attribution {values[t, v]:.3g}"
                  for t in range(len(x))] for v in range(len(labels))]
    else:
        x, axis_title, labels = np.asarray(hours), "hours from the start of the EHR window", list(variables)
        hover = [[f"{labels[v]} at {x[t]:g} h: {values[t, v]:.3g}" for t in range(len(x))] for v in range(len(labels))]
    fig = go.Figure(go.Heatmap(z=values.T, x=x, y=labels, colorscale="RdBu", zmid=0, customdata=hover,
                               colorbar=dict(title=dict(text="attribution<br>(red: raises the<br>similarity)",
                                                        side="top")),
                               hovertemplate="%{customdata}<extra></extra>"))
    style(fig, (title or "EHR attribution of the image–EHR similarity") + gap, height=560, width=900)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text=axis_title)
    return fig
