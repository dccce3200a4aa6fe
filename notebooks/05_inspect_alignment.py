# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (medcam-lab)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Inspect the alignment: which EHR timesteps align with each image
#
# The inspector (last cell) lets you pick a split, search a subject id, pick an image and move the top-k
# slider. It shows the image with its attribution map (Grad-CAM on the backbone's last block, or
# Integrated Gradients, of the image–EHR similarity), the attention of the image over its patient's EHR
# timesteps with the k steps the local loss selects, the values of the 17 variables at every step, and the
# nearest images in the aligned space. **Attention weights are not attributions**: the EHR attribution
# snapshots below (Integrated Gradients per variable × timestep) are the attribution.
#
# Static snapshots of the first `n_snapshots` images go to `out` (HTML/PNG, they survive without a
# kernel). Parameters are the fields of `InspectConfig`.

# %%
from pathlib import Path

import torch

from medcam_lab.config import InspectConfig
from medcam_lab.notebook_params import configs_from_parameters, names_before_parameters, parameters_since
from medcam_lab.training.runtime import resolve_device

_names_before = names_before_parameters(globals())

# %% tags=["parameters"]
align_dir: str = ""  # output directory of an alignment run (notebook 02)
cohort: str = ""  # prepared cohort (empty: the alignment run's cohort)
out: str = ""  # output directory for the static snapshots
splits: tuple = ("test", "val")  # splits offered by the inspector
k: int = 0  # top-k of the attention view (0: the run's k)
n_neighbours: int = 5  # nearest neighbours listed
n_snapshots: int = 3  # images written as static views
ig_steps: int = 32  # Integrated Gradients steps
batch_size: int = 64  # inference batch size
device: str = "auto"  # auto: CUDA when available, else CPU

# %%
(cfg,) = configs_from_parameters(parameters_since(globals(), _names_before), InspectConfig,
                                 notebook="05_inspect_alignment")
if not (cfg.align_dir and cfg.out):
    raise ValueError("set the parameters align_dir and out")
device = str(resolve_device(cfg.device))
out_dir = Path(cfg.out)
out_dir.mkdir(parents=True, exist_ok=True)
cfg

# %%
from medcam_lab.explain import attributions_by_variable, ehr_attributions  # noqa: E402
from medcam_lab.viz import attention_heatmap, ehr_attribution_heatmap, write_html  # noqa: E402
from medcam_lab.viz.inspector import build_inspector  # noqa: E402

inspector = build_inspector(cfg.align_dir, cfg.cohort, splits=cfg.splits, k=cfg.k or None,
                            n_neighbours=cfg.n_neighbours, ig_steps=cfg.ig_steps, batch_size=cfg.batch_size,
                            device=device)
data = inspector.split
aligner = inspector.aligner

# %% [markdown]
# Static snapshots: attention view, Grad-CAM overlay, and EHR Integrated Gradients per variable × step (the
# HTML files share one `plotly.min.js` in `out`). In both EHR views a row is a variable (grouped: vital
# signs, respiratory, GCS, perfusion, laboratory, body size; unit in brackets), a column a 2-hour step
# placed at its hours before the image; hovering a cell gives its value as charted, whether it was measured
# in that step, carried forward from an earlier one or filled with the normal value, and the clock time.

# %%
cohort_data = inspector.cohort
written = []
for position in range(min(cfg.n_snapshots, len(data))):
    inspector.item_selector.value = position
    stem = out_dir / f"{data.name}_{position:03d}_subject_{data.embeddings.meta['subject_id'].iloc[position]}"
    write_html(attention_heatmap(inspector.view), f"{stem}_attention.html")
    Path(f"{stem}_gradcam.png").write_bytes(bytes(inspector.image_view.value))
    row = int(data.embeddings.rows[position])
    length = int(data.embeddings.lengths[position])
    z_cxr = torch.from_numpy(data.embeddings.z_cxr[position : position + 1])
    ehr = torch.from_numpy(cohort_data.ehr[row : row + 1, :length])
    attr, delta = ehr_attributions(aligner, ehr, torch.tensor([length]), z_cxr, n_steps=cfg.ig_steps)
    by_var, names = attributions_by_variable(attr, cohort_data.ehr_columns)
    fig = ehr_attribution_heatmap(by_var[0].numpy(), inspector.view.hours, names, float(delta[0]),
                                  title=f"EHR Integrated Gradients, {data.label(position)}", view=inspector.view)
    write_html(fig, f"{stem}_ehr_attribution.html")
    written.append(stem.name)
inspector.item_selector.value = 0 if len(data) else None
print(f"{len(written)} snapshots in {out_dir}")

# %% [markdown]
# The inspector (needs a live kernel; an executed notebook keeps only its text form).

# %%
inspector
