"""The alignment inspector: an ipywidgets panel to look at which EHR timesteps align with each image.

Pick a split, search a subject id, pick an image, move the ``k`` slider; the panel shows the image with its
attribution map (Grad-CAM on the last block or Integrated Gradients, of the image–EHR similarity), the
top-k attention view (:mod:`medcam_lab.viz.attention`) and the image's nearest neighbours in the aligned
space. The logic lives in plain methods and module functions so it is tested without a browser; the
figure goes into an ``Output`` widget as plotly's MIME bundle (rendered by JupyterLab's plotly extension).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from medcam_lab.explain.aligned import SplitEmbeddings, embed_split, last_block, open_alignment_run
from medcam_lab.explain.images import grad_cam, image_ehr_similarity, integrated_gradients
from medcam_lab.models import MedCAMAligner, encoder_spec
from medcam_lab.viz.attention import AttentionView, attention_heatmap, attention_view
from medcam_lab.viz.images import overlay_png

__all__ = ["InspectorSplit", "AlignmentInspector", "nearest_neighbours", "filter_items", "build_inspector",
           "ATTRIBUTION_METHODS"]

ATTRIBUTION_METHODS = ("Grad-CAM", "Integrated Gradients", "none")

AttributeFn = Callable[["InspectorSplit", int, str], "np.ndarray | None"]


@dataclass
class InspectorSplit:
    """One split's data, row-aligned with ``embeddings``.

    Shape:
        - images: (N, S, S) uint8 cached images.
        - raw_ehr: (N, T, F) discretized EHR (not normalized).
    """

    name: str
    embeddings: SplitEmbeddings
    images: np.ndarray
    raw_ehr: np.ndarray
    columns: list[str]
    units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.embeddings.rows)

    def label(self, position: int) -> str:
        """Dropdown text of one item: subject, study and its positive labels."""
        meta = self.embeddings.meta.iloc[position]
        positives = [p for p, v in zip(self.embeddings.pathologies, self.embeddings.labels[position]) if v == 1]
        return f"subject {meta['subject_id']} · study {meta.get('study_id', '?')} · {', '.join(positives) or '—'}"


def nearest_neighbours(z: np.ndarray, position: int, n: int) -> list[tuple[int, float]]:
    """The ``n`` rows most cosine-similar to row ``position`` (itself excluded), most similar first.

    Shape:
        - z: (N, d) L2-normalised embeddings.
    """
    sims = z @ z[position]
    sims[position] = -np.inf
    order = np.argsort(-sims, kind="stable")[: max(0, min(n, len(z) - 1))]
    return [(int(i), float(sims[i])) for i in order]


def filter_items(subject_ids: list[str], query: str) -> list[int]:
    """Positions whose subject id contains ``query`` (all positions for an empty query)."""
    q = query.strip()
    return [i for i, s in enumerate(subject_ids) if q in s] if q else list(range(len(subject_ids)))


class AlignmentInspector(widgets.VBox):
    """The inspector widget (a ``VBox``); its controls and current state are attributes.

    Args:
        load_split: returns the :class:`InspectorSplit` of a split name (called once per split, cached).
        splits: split names for the selector; the first is shown first.
        k: initial top-k (the run's ``k``).
        attribute: ``(split, position, method) → map`` (H, W) or ``None``; see :func:`make_attribute_fn`.
        n_neighbours: neighbours listed.
        timestep_hours: bin width Δt, for the time axis.

    Attributes:
        split_selector, subject_search, item_selector, k_slider, method_selector: the controls.
        image_view (``Image``), attribution_info, status, neighbours_view (``HTML``), attention_output
        (``Output``).
        view: the current :class:`AttentionView`; ``highlighted_steps``: its selected steps.
        neighbours: ``[(position, cosine)]``; attribution: the current map or ``None``.
    """

    def __init__(self, load_split: Callable[[str], InspectorSplit], splits: tuple[str, ...] = ("test",), k: int = 10,
                 attribute: AttributeFn | None = None, n_neighbours: int = 5, timestep_hours: float = 2.0) -> None:
        self._load_split = load_split
        self._cache: dict[str, InspectorSplit] = {}
        self._attribute = attribute
        self._n_neighbours = n_neighbours
        self._timestep_hours = timestep_hours
        self.view: AttentionView | None = None
        self.neighbours: list[tuple[int, float]] = []
        self.attribution: np.ndarray | None = None
        self.split_selector = widgets.ToggleButtons(options=list(splits), value=splits[0], description="split")
        self.subject_search = widgets.Text(value="", placeholder="subject id", description="search",
                                           continuous_update=False)
        self.item_selector = widgets.Dropdown(options=[], description="image", layout=widgets.Layout(width="480px"))
        self.k_slider = widgets.IntSlider(value=k, min=1, max=max(k, 24), step=1, description="top-k")
        self.method_selector = widgets.ToggleButtons(
            options=list(ATTRIBUTION_METHODS) if attribute is not None else ["none"], description="attribution")
        self.image_view = widgets.Image(format="png", layout=widgets.Layout(width="260px"))
        self.attention_output = widgets.Output(layout=widgets.Layout(width="760px"))
        self.neighbours_view = widgets.HTML()
        self.status = widgets.HTML()
        self.attribution_info = widgets.HTML()
        controls = widgets.VBox([self.split_selector, widgets.HBox([self.subject_search, self.item_selector]),
                                 widgets.HBox([self.k_slider, self.method_selector])])
        left = widgets.VBox([self.image_view, self.attribution_info, self.status, self.neighbours_view])
        super().__init__([controls, widgets.HBox([left, self.attention_output])])
        self.add_class("medcam-inspector")
        self._quiet = False  # True while the panel changes its own controls: it renders once, afterwards
        for control, callback in ((self.split_selector, self.on_split), (self.subject_search, self.on_search),
                                  (self.item_selector, self.on_item), (self.k_slider, self.on_k),
                                  (self.method_selector, self.on_method)):
            control.observe(self._unless_quiet(callback), names="value")
        self.on_split(self.split_selector.value)

    def _unless_quiet(self, callback: Callable[[Any], None]) -> Callable[[dict], None]:
        def observer(change: dict) -> None:
            if not self._quiet:
                callback(change["new"])

        return observer

    # --- state -------------------------------------------------------------------------------------
    @property
    def split(self) -> InspectorSplit:
        """The split on show."""
        name = self.split_selector.value
        if name not in self._cache:
            self._cache[name] = self._load_split(name)
        return self._cache[name]

    @property
    def position(self) -> int | None:
        """Row of the image on show within its split (``None`` when the search matches nothing)."""
        return self.item_selector.value

    @property
    def highlighted_steps(self) -> tuple[int, ...]:
        """The top-k steps marked in the attention view."""
        return self.view.selected if self.view is not None else ()

    # --- callbacks ---------------------------------------------------------------------------------
    def on_split(self, name: str) -> None:
        """Show split ``name``: reset the search, refill the image list, show its first image."""
        data = self.split
        t_max = int(data.embeddings.lengths.max()) if len(data) else 1
        self._quiet = True
        try:
            self.k_slider.max = max(t_max, 1)
            self.subject_search.value = ""
        finally:
            self._quiet = False
        self._fill_items(list(range(len(data))))

    def on_search(self, query: str) -> None:
        """Keep the images whose subject id contains ``query``."""
        ids = self.split.embeddings.meta["subject_id"].astype(str).tolist()
        self._fill_items(filter_items(ids, query))

    def on_item(self, position: int | None) -> None:
        """Show image ``position``: picture, attribution, attention view, neighbours."""
        self._render_attribution()
        self._render_attention()
        self._render_neighbours()

    def on_k(self, k: int) -> None:
        """Re-select the top-``k`` steps."""
        self._render_attention()

    def on_method(self, method: str) -> None:
        """Switch the attribution method."""
        self._render_attribution()

    # --- rendering ---------------------------------------------------------------------------------
    def _fill_items(self, positions: list[int]) -> None:
        data = self.split
        options = [(data.label(p), p) for p in positions]
        self._quiet = True
        try:
            self.item_selector.options = options
            self.item_selector.value = options[0][1] if options else None
        finally:
            self._quiet = False
        self.status.value = f"{len(options)} of {len(data)} images in split <b>{escape(data.name)}</b>"
        self.on_item(self.position)

    def _render_attribution(self) -> None:
        pos = self.position
        if pos is None:
            self.attribution = None
            self.image_view.value = b""
            self.attribution_info.value = ""
            return
        data = self.split
        method = self.method_selector.value
        self.attribution = None if self._attribute is None or method == "none" else self._attribute(data, pos, method)
        image = data.images[pos]
        if self.attribution is None:
            self.attribution_info.value = "no attribution shown"
        else:
            peak = float(np.abs(self.attribution).max())
            self.attribution_info.value = (f"{escape(method)} of the image–EHR similarity, red ∝ |attribution| "
                                           f"(peak {peak:.3g}{'; zero everywhere' if peak == 0 else ''})")
        if self.attribution is not None and self.attribution.shape != image.shape:
            h, w = self.attribution.shape
            top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
            image = image[top : top + h, left : left + w]  # the model's center crop
        self.image_view.value = overlay_png(image, self.attribution)

    def _render_attention(self) -> None:
        pos = self.position
        if pos is None:
            self.view = None
            self.attention_output.outputs = ()
            return
        data = self.split
        emb = data.embeddings
        meta = emb.meta.iloc[pos]
        self.view = attention_view(emb.attention[pos], data.raw_ehr[pos], data.columns, int(emb.lengths[pos]),
                                   self.k_slider.value, self._timestep_hours, title=data.label(pos),
                                   window_hours=meta.get("window_hours"), image_time=meta.get("study_datetime"),
                                   units=data.units)
        fig = attention_heatmap(self.view)
        bundle = {"application/vnd.plotly.v1+json": json.loads(fig.to_json()),
                  "text/plain": f"attention view: top-{len(self.view.selected)} steps {list(self.view.selected)}"}
        self.attention_output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    def _render_neighbours(self) -> None:
        pos = self.position
        if pos is None:
            self.neighbours = []
            self.neighbours_view.value = ""
            return
        data = self.split
        self.neighbours = nearest_neighbours(data.embeddings.z_cxr, pos, self._n_neighbours)
        rows = "".join(f"<tr><td>{escape(data.label(i))}</td><td>{s:.3f}</td></tr>" for i, s in self.neighbours)
        self.neighbours_view.value = ("<b>nearest neighbours (aligned image space)</b><table>"
                                      f"<tr><th>image</th><th>cosine</th></tr>{rows}</table>")


def make_attribute_fn(aligner: MedCAMAligner, image_size: int, ig_steps: int = 16) -> AttributeFn:
    """Attribution of the image–EHR similarity for one image of a split, on the model's center crop.

    Shape:
        - output: (image_size, image_size) map.
    """
    from medcam_lab.data.transforms import eval_transform

    similarity = image_ehr_similarity(aligner)
    spec = encoder_spec(aligner.image_encoder)
    cache: dict[tuple[str, int, str], np.ndarray] = {}

    def attribute(data: InspectorSplit, position: int, method: str) -> np.ndarray | None:
        key = (data.name, position, method)
        if key not in cache:
            device = next(aligner.parameters()).device
            image = eval_transform(torch.from_numpy(np.asarray(data.images[position : position + 1])), image_size,
                                   spec.mean, spec.std).to(device)
            z_ehr = torch.from_numpy(data.embeddings.z_ehr[position : position + 1]).to(device)
            if method == "Grad-CAM":
                heat = grad_cam(similarity, last_block(aligner.image_encoder), image, (z_ehr,))[0]
            elif method == "Integrated Gradients":
                heat = integrated_gradients(similarity, image, additional_forward_args=(z_ehr,), n_steps=ig_steps)[0]
                heat = heat[0].sum(0)
            else:
                return None
            cache[key] = heat.cpu().numpy()
        return cache[key]

    return attribute


def build_inspector(align_dir: str | Path, cohort: str | Path = "", splits: tuple[str, ...] = ("test", "val"),
                    k: int | None = None, n_neighbours: int = 5, ig_steps: int = 16, batch_size: int = 64,
                    device: str = "cpu") -> AlignmentInspector:
    """The inspector for an alignment run (its final aligner) on a cohort (default: the run's cohort)."""
    run = open_alignment_run(align_dir, cohort, device)  # a cohort given by the caller wins
    data, cfg = run.cohort, run.config
    raw_ehr = data.raw_ehr
    if raw_ehr is None:
        raise ValueError(f"cohort {data.path} has no raw EHR values (the inspector shows them)")
    aligner = run.aligner("final")

    def load_split(name: str) -> InspectorSplit:
        emb = embed_split(aligner, data, name, cfg.image_size, batch_size, device)
        return InspectorSplit(name, emb, np.asarray(data.images[emb.rows]), np.asarray(raw_ehr[emb.rows]),
                              list(data.ehr_columns), data.units)

    inspector = AlignmentInspector(load_split, splits, k or cfg.k, make_attribute_fn(aligner, cfg.image_size, ig_steps),
                                   n_neighbours, data.timestep)
    inspector.aligner, inspector.cohort, inspector.align_config = aligner, data, cfg  # for further analysis
    return inspector
