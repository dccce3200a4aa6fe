"""One plotting style for every figure: colours, title and margins, and HTML files that share one plotly.js.

Snapshots written into one folder reference a single ``plotly.min.js`` next to them (written once, works
offline) instead of embedding its 4.8 MB in every file.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

__all__ = ["COLORS", "BINARY_COLORS", "style", "write_html", "PLOTLYJS_FILE"]

COLORS = {
    "selected": "#d62728",  # the top-k steps
    "other": "#9aa5b1",
    "reference": "#555555",  # chance level, uniform attention
    "best": "#2ca02c",  # the best epoch
    "imputed": "#ffffff",
}
#: Discrete colours of a binary label (0, 1) and of an unknown one (NaN).
BINARY_COLORS = {"0": "#4c78a8", "1": "#e45756", "unknown": "#bab0ac"}
PLOTLYJS_FILE = "plotly.min.js"


def style(fig: go.Figure, title: str = "", height: int = 480, width: int | None = None) -> go.Figure:
    """The common layout: a left-aligned title below the toolbar, white template, fixed size and margins (so
    a changed control does not reflow the figure), and state kept across updates (``uirevision``)."""
    fig.update_layout(template="plotly_white", height=height, width=width, uirevision="keep",
                      title=dict(text=title, x=0.01, xanchor="left", y=0.985, yanchor="top", font=dict(size=14)),
                      margin=dict(l=10, r=10, t=80, b=50), font=dict(size=12))
    return fig


def write_html(figures: go.Figure | list[go.Figure], path: str | Path) -> Path:
    """Write one figure, or several into one page, referencing ``plotly.min.js`` in the same folder (written
    there once; no network needed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = [figures] if isinstance(figures, go.Figure) else list(figures)
    js = path.parent / PLOTLYJS_FILE
    if not js.exists():
        from plotly.offline import get_plotlyjs

        js.write_text(get_plotlyjs(), encoding="utf-8")
    parts = [fig.to_html(full_html=False, include_plotlyjs=False) for fig in figures]
    path.write_text("<html><head><meta charset='utf-8'>"
                    f"<script src='{PLOTLYJS_FILE}'></script></head><body>\n" + "\n".join(parts)
                    + "\n</body></html>\n", encoding="utf-8")
    return path
