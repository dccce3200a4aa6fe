"""Label efficiency: macro AUROC against the share of training labels, per row with its 95 % interval over
seeds and test rows, and the paired difference of two rows (MedCAM − image-only) with its interval.

Input is :func:`medcam_lab.evaluation.label_efficiency_curve` per dataset. The same figure is written as an
interactive plotly HTML page and as a PNG (matplotlib, for reports and papers).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medcam_lab.viz.style import COLORS, style, write_html

__all__ = ["label_efficiency_figure", "save_label_efficiency_figure", "fraction_label"]

_PALETTE = ("#4c78a8", "#e45756", "#54a24b", "#f58518", "#b279a2", "#72b7b2", "#9d755d", "#bab0ac", "#eeca3b",
            "#ff9da6", "#79706e", "#d67195", "#17becf", "#8c564b", "#1f77b4", "#2ca02c")


def fraction_label(fraction: float) -> str:
    """0.01 → "1 %", 0.1 → "10 %", 1.0 → "100 %"."""
    return f"{fraction * 100:g} %"


def _series(curve: dict, row: str, metric: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """(fractions, points, lower error, upper error) of one row, over the fractions where it ran."""
    xs, ys, lo, hi = [], [], [], []
    for fraction in curve["fractions"]:
        entry = curve["rows"].get(row, {}).get(str(float(fraction)))
        if entry is None:
            continue
        m = entry[metric]
        xs.append(fraction)
        ys.append(m["point"])
        lo.append(m["point"] - m["low"])
        hi.append(m["high"] - m["point"])
    return xs, ys, lo, hi


def _difference(curve: dict, metric: str) -> tuple[list[float], list[float], list[float], list[float]]:
    xs, ys, lo, hi = [], [], [], []
    for fraction in curve["fractions"]:
        d = curve["difference"].get(str(float(fraction)))
        if d is None:
            continue
        xs.append(fraction)
        ys.append(d[metric]["point"])
        lo.append(d[metric]["point"] - d[metric]["low"])
        hi.append(d[metric]["high"] - d[metric]["point"])
    return xs, ys, lo, hi


def _offset(fraction: float, i: int, n: int) -> float:
    """Spread the rows sideways on the log axis so their intervals do not hide each other."""
    return fraction * 10 ** (0.03 * (i - (n - 1) / 2))


def label_efficiency_figure(curves: dict[str, dict], labels: dict[str, str], metric: str = "auroc",
                            title: str = "label efficiency") -> go.Figure:
    """Top: macro ``metric`` vs label fraction (log axis) per row, 95 % interval over seeds and test rows;
    bottom: the paired difference of the curve's ``compare`` rows with its interval and the zero line.

    Args:
        curves: ``{dataset title: label_efficiency_curve(...)}``, one column each.
        labels: row name → legend text.
        metric: ``auroc`` or ``auprc``.
        title: the figure's title.
    """
    names = list(curves)
    fig = make_subplots(rows=2, cols=len(names), shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[*names, *[""] * len(names)], row_heights=[0.62, 0.38])
    rows = sorted({r for c in curves.values() for r in c["rows"]}, key=lambda r: list(labels).index(r)
                  if r in labels else len(labels))
    for col, name in enumerate(names, start=1):
        curve = curves[name]
        for i, row in enumerate(rows):
            xs, ys, lo, hi = _series(curve, row, metric)
            if not xs:
                continue
            fig.add_trace(go.Scatter(
                x=[_offset(x, i, len(rows)) for x in xs], y=ys, mode="lines+markers", name=labels.get(row, row),
                legendgroup=row, showlegend=col == 1, line=dict(color=_PALETTE[i % len(_PALETTE)]),
                error_y=dict(type="data", array=hi, arrayminus=lo, visible=True),
                customdata=[fraction_label(x) for x in xs],
                hovertemplate="%{customdata}: %{y:.3f}<extra>" + labels.get(row, row) + "</extra>"), row=1, col=col)
        xs, ys, lo, hi = _difference(curve, metric)
        if xs:
            a, b = (labels.get(r, r) for r in curve["compare"])
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines+markers", name=f"{a} − {b} (paired)", legendgroup="difference",
                showlegend=col == 1, line=dict(color=COLORS["selected"]),
                error_y=dict(type="data", array=hi, arrayminus=lo, visible=True)), row=2, col=col)
            fig.add_hline(y=0.0, line=dict(color=COLORS["reference"], dash="dot"), row=2, col=col)
    fractions = sorted({f for c in curves.values() for f in c["fractions"]})
    style(fig, title, height=620, width=max(560, 460 * len(names)))
    fig.update_xaxes(type="log", tickvals=fractions, ticktext=[fraction_label(f) for f in fractions])
    fig.update_xaxes(title_text="share of training labels (patients)", row=2)
    fig.update_yaxes(title_text=f"macro {metric.upper()} (95 % CI)", row=1, col=1)
    fig.update_yaxes(title_text=f"Δ macro {metric.upper()} (paired)", row=2, col=1)
    return fig


def _png(curves: dict[str, dict], labels: dict[str, str], metric: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(curves)
    fig, axes = plt.subplots(2, len(names), figsize=(4.8 * len(names), 6.2), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [1.6, 1.0]})
    rows = sorted({r for c in curves.values() for r in c["rows"]}, key=lambda r: list(labels).index(r)
                  if r in labels else len(labels))
    fractions = sorted({f for c in curves.values() for f in c["fractions"]})
    for col, name in enumerate(names):
        curve, top, bottom = curves[name], axes[0, col], axes[1, col]
        for i, row in enumerate(rows):
            xs, ys, lo, hi = _series(curve, row, metric)
            if xs:
                top.errorbar([_offset(x, i, len(rows)) for x in xs], ys, yerr=[lo, hi], marker="o", capsize=3,
                             label=labels.get(row, row), color=_PALETTE[i % len(_PALETTE)])
        top.set_title(name, fontsize=10)
        xs, ys, lo, hi = _difference(curve, metric)
        if xs:
            a, b = (labels.get(r, r) for r in curve["compare"])
            bottom.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=COLORS["selected"])
            bottom.set_title(textwrap.fill(f"{a} − {b}, paired by seed and test row", 56), fontsize=8)
        bottom.axhline(0.0, color=COLORS["reference"], linestyle=":")
        bottom.set_xscale("log")
        bottom.set_xticks(fractions, [fraction_label(f) for f in fractions])
        bottom.minorticks_off()
        bottom.set_xlabel("share of training labels (patients)")
    axes[0, 0].set_ylabel(f"macro {metric.upper()} (95 % CI)")
    axes[1, 0].set_ylabel(f"Δ macro {metric.upper()} (paired)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def save_label_efficiency_figure(curves: dict[str, dict], labels: dict[str, str], out: str | Path,
                                 metric: str = "auroc", title: str = "label efficiency",
                                 stem: str = "label_efficiency") -> dict[str, str]:
    """Write ``<stem>.html`` (plotly, sharing ``plotly.min.js``) and ``<stem>.png`` under ``out``.

    Returns:
        {"html": path, "png": path}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html = write_html(label_efficiency_figure(curves, labels, metric, title), out / f"{stem}.html")
    png = _png(curves, labels, metric, title, out / f"{stem}.png")
    return {"html": str(html), "png": str(png)}
