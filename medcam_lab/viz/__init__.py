"""Views for inspecting alignment: the top-k EHR attention heatmap, UMAP before/after alignment with
image–EHR retrieval, image overlays, and the ipywidgets alignment inspector.

- :mod:`medcam_lab.viz.attention`: :func:`attention_view`, :func:`attention_heatmap`.
- :mod:`medcam_lab.viz.embeddings`: :func:`umap_2d`, :func:`umap_figure`, :func:`retrieval_accuracy`.
- :mod:`medcam_lab.viz.images`: :func:`overlay_png`.
- :mod:`medcam_lab.viz.history`: :func:`history_figure` (learning curves, best epoch marked).
- :mod:`medcam_lab.viz.style`: the common layout and colours; :func:`write_html` (one shared plotly.js).
- :mod:`medcam_lab.viz.inspector`: :func:`build_inspector` (imports ipywidgets; import it explicitly).
"""

from medcam_lab.viz.attention import AttentionView, attention_heatmap, attention_view, ehr_attribution_heatmap
from medcam_lab.viz.embeddings import (
    ehr_variable_summary,
    retrieval_accuracy,
    retrieval_figure,
    umap_2d,
    umap_figure,
    write_figures_html,
)
from medcam_lab.viz.history import history_figure
from medcam_lab.viz.images import heat_overlay, overlay_png
from medcam_lab.viz.style import write_html

__all__ = [
    "AttentionView",
    "attention_heatmap",
    "attention_view",
    "ehr_attribution_heatmap",
    "ehr_variable_summary",
    "heat_overlay",
    "history_figure",
    "overlay_png",
    "retrieval_accuracy",
    "retrieval_figure",
    "umap_2d",
    "umap_figure",
    "write_figures_html",
    "write_html",
]
