"""Learning curves of an alignment run (``history.json``): losses and validation retrieval per epoch, with
the epoch whose backbone was kept marked."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medcam_lab.viz.style import COLORS, style

__all__ = ["history_figure"]


def history_figure(history: pd.DataFrame, title: str = "alignment learning curves") -> go.Figure:
    """Losses (left) and validation image → EHR retrieval (right) per epoch with its chance levels k / n (from
    ``val_pairs``, the number of validation pairs); the best epoch (lowest validation loss, the backbone
    ``keep_best`` keeps) is marked on both.

    Args:
        history: one row per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_retrieval_top1``...).
        title: the figure's title.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("contrastive losses", "validation retrieval: image → EHR"))
    for col in [c for c in history.columns if c.endswith(("_loss", "_global", "_local"))]:
        fig.add_trace(go.Scatter(x=history["epoch"], y=history[col], name=col.replace("_", " "), mode="lines+markers"),
                      row=1, col=1)
    for col in [c for c in ("val_retrieval_top1", "val_retrieval_top5") if c in history]:
        fig.add_trace(go.Scatter(x=history["epoch"], y=history[col], mode="lines+markers",
                                 name=col.replace("val_retrieval_", "retrieval ")), row=1, col=2)
    if "val_pairs" in history and len(history) and history["val_pairs"].notna().any():
        n = int(history["val_pairs"].dropna().iloc[-1])
        for k, dash in ((1, "dot"), (5, "dash")):
            fig.add_hline(y=min(k, n) / n, line=dict(color=COLORS["reference"], dash=dash, width=1), row=1, col=2,
                          annotation_text=f"chance top-{k} ({min(k, n)}/{n})", annotation_position="top left")
    if "val_loss" in history and len(history):
        best = history.loc[history["val_loss"].idxmin()]
        for col in (1, 2):
            fig.add_vline(x=float(best["epoch"]), line=dict(color=COLORS["best"], dash="dash"), row=1, col=col,
                          annotation_text=f"best epoch {int(best['epoch'])}" if col == 1 else None)
    style(fig, title, height=420, width=1000)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss (InfoNCE)", row=1, col=1)
    fig.update_yaxes(title_text="fraction of images whose own EHR is retrieved", range=[0, 1], row=1, col=2)
    return fig
