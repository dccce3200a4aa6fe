"""The alignment inspector's logic, driven through its controls without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medcam_lab.ehr import feature_names
from medcam_lab.explain import count_hooks
from medcam_lab.explain.aligned import SplitEmbeddings
from medcam_lab.viz.inspector import (
    AlignmentInspector,
    InspectorSplit,
    build_inspector,
    filter_items,
    nearest_neighbours,
)


def _split(name: str, n: int, seed: int) -> InspectorSplit:
    rng = np.random.default_rng(seed)
    T = 8
    lengths = rng.integers(2, T + 1, n)
    attention = rng.random((n, T)) * (np.arange(T)[None] < lengths[:, None])
    z = rng.normal(size=(n, 4))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    meta = pd.DataFrame({"subject_id": [1000 + 7 * i + seed for i in range(n)], "study_id": range(n)})
    emb = SplitEmbeddings(rows=np.arange(n), features=z, z_cxr=z, z_ehr=z, attention=attention, lengths=lengths,
                          labels=np.zeros((n, 2)), meta=meta, pathologies=("Edema", "No Finding"))
    return InspectorSplit(name, emb, rng.integers(0, 255, (n, 12, 12), dtype=np.uint8),
                          rng.random((n, T, 76)).astype(np.float32), feature_names())


@pytest.fixture
def inspector():
    calls = []

    def attribute(data, position, method):
        calls.append((data.name, position, method))
        return np.ones((10, 10)) * (position + 1)

    loaded = []

    def load(name):
        loaded.append(name)
        return _split(name, {"test": 6, "val": 4}[name], seed={"test": 0, "val": 1}[name])

    w = AlignmentInspector(load, ("test", "val"), k=3, attribute=attribute, n_neighbours=2)
    w._calls, w._loaded = calls, loaded
    return w


def test_slider_sets_the_number_of_highlighted_steps(inspector):
    length = int(inspector.split.embeddings.lengths[inspector.position])
    assert len(inspector.highlighted_steps) == min(3, length)
    inspector.k_slider.value = 1
    assert len(inspector.highlighted_steps) == 1
    inspector.k_slider.value = inspector.k_slider.max
    assert len(inspector.highlighted_steps) == length
    att = inspector.split.embeddings.attention[inspector.position][:length]
    assert inspector.highlighted_steps[0] == int(np.argmax(att))
    fig = inspector.attention_output.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert len([s for s in fig["layout"]["shapes"] if s["type"] == "rect"]) == length


def test_picking_an_image_updates_picture_attribution_and_neighbours(inspector):
    first = inspector.image_view.value
    inspector.item_selector.value = 4
    assert inspector.position == 4 and inspector.image_view.value != first
    assert bytes(inspector.image_view.value).startswith(b"\x89PNG")
    assert float(inspector.attribution.max()) == 5.0 and "peak 5" in inspector.attribution_info.value
    assert [p for p, _ in inspector.neighbours] == [p for p, _ in nearest_neighbours(
        inspector.split.embeddings.z_cxr, 4, 2)]
    assert 4 not in [p for p, _ in inspector.neighbours] and len(inspector.neighbours) == 2
    inspector.method_selector.value = "none"
    assert inspector.attribution is None and inspector.attribution_info.value == "no attribution shown"
    assert inspector._calls[-1][2] != "none"


def test_search_filters_by_subject_and_split_switch_reloads(inspector):
    inspector.subject_search.value = "1014"  # subject 1000 + 7*2
    assert [v for _, v in inspector.item_selector.options] == [2] and inspector.position == 2
    inspector.subject_search.value = "no-such-subject"
    assert inspector.item_selector.options == () and inspector.position is None
    assert inspector.highlighted_steps == () and inspector.neighbours == []
    inspector.subject_search.value = ""
    inspector.item_selector.value = 5  # beyond the end of the smaller val split
    inspector.k_slider.value = inspector.k_slider.max
    inspector.split_selector.value = "val"
    assert inspector._loaded == ["test", "val"] and len(inspector.item_selector.options) == 4
    assert inspector.position == 0 and inspector.view.title == inspector.split.label(0)
    assert len(inspector.highlighted_steps) == min(inspector.k_slider.value, int(inspector.split.embeddings.lengths[0]))
    assert inspector.subject_search.value == ""
    inspector.split_selector.value = "test"
    assert inspector._loaded == ["test", "val"]  # cached


def test_pure_helpers():
    assert filter_items(["12", "123", "9"], "12") == [0, 1]
    assert filter_items(["12", "9"], " ") == [0, 1]
    z = np.eye(3)
    z[2] = [0.9, 0.1, 0]
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    assert [p for p, _ in nearest_neighbours(z, 0, 5)] == [2, 1]


def test_built_from_a_real_alignment_run(tiny_align_run, tiny_cohort):
    w = build_inspector(tiny_align_run, tiny_cohort, splits=("test",), ig_steps=4)
    assert len(w.highlighted_steps) == min(3, int(w.split.embeddings.lengths[w.position]))
    assert w.attribution.shape == (32, 32)  # Grad-CAM on the model's 32-px crop
    w.method_selector.value = "Integrated Gradients"
    assert w.attribution.shape == (32, 32)
    assert count_hooks(_closure_aligner(w)) == 0


def _closure_aligner(w):
    """The aligner the attribution function closes over."""
    for cell in w._attribute.__closure__:
        obj = cell.cell_contents
        if hasattr(obj, "image_encoder"):
            return obj
    raise AssertionError("aligner not found in the attribution closure")
