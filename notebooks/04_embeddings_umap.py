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
# # 04 · Image embeddings before vs after alignment
#
# *Before* is the aligner as alignment started (the image-only backbone, EHR encoder and heads initialised
# under the run's seed); *after* is the aligner of the run's last epoch (`checkpoint.pt`). For the chosen
# split (default `test`, never used by alignment):
#
# - UMAP (seeded) of the pooled backbone features, coloured by labels and by EHR variables
#   (`umap.html`, the points in `umap_points.parquet`);
# - image → EHR retrieval top-1/top-5 in the shared space (`retrieval.json`), with chance level.
#
# Parameters are the fields of `EmbeddingsConfig`; outputs go to `out`.

# %%
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import display

from medcam_lab.config import EmbeddingsConfig
from medcam_lab.notebook_params import configs_from_parameters, names_before_parameters, parameters_since
from medcam_lab.training.runtime import resolve_device

_names_before = names_before_parameters(globals())

# %% tags=["parameters"]
align_dir: str = ""  # output directory of an alignment run (notebook 02)
cohort: str = ""  # prepared cohort (empty: the alignment run's cohort)
out: str = ""  # output directory
split: str = "test"  # split to embed
n_neighbors: int = 15  # UMAP neighbours
min_dist: float = 0.1  # UMAP minimum distance
color_labels: tuple = ("Edema", "Pleural Effusion", "Atelectasis")  # labels to colour by
color_variables: tuple = ("Heart Rate", "Oxygen saturation", "Respiratory rate")  # EHR variables to colour by
batch_size: int = 64  # inference batch size
seed: int = 0  # UMAP seed
device: str = "auto"  # auto: CUDA when available, else CPU
weights: str = ""  # image-only checkpoint the alignment started from (empty: the run's)

# %%
(cfg,) = configs_from_parameters(parameters_since(globals(), _names_before), EmbeddingsConfig,
                                 notebook="04_embeddings_umap")
if not (cfg.align_dir and cfg.out):
    raise ValueError("set the parameters align_dir and out")
device = resolve_device(cfg.device)
out_dir = Path(cfg.out)
out_dir.mkdir(parents=True, exist_ok=True)
cfg

# %%
from medcam_lab.explain import embed_split, open_alignment_run  # noqa: E402
from medcam_lab.runinfo import write_json_atomic  # noqa: E402
from medcam_lab.viz import (  # noqa: E402
    ehr_variable_summary,
    retrieval_accuracy,
    retrieval_figure,
    umap_2d,
    umap_figure,
    write_figures_html,
)

run = open_alignment_run(cfg.align_dir, cfg.cohort, device)  # the cohort parameter wins over the run's
data = run.cohort
embedded = {}
for state in ("initial", "final"):
    model = run.aligner(state, weights=cfg.weights or None)
    embedded[state] = embed_split(model, data, cfg.split, run.config.image_size, cfg.batch_size, device)
before, after = embedded["initial"], embedded["final"]
print(f"{len(after.rows)} images of split {cfg.split!r}")

# %% [markdown]
# Image → EHR retrieval in the shared space: is the image's own EHR among its k nearest?

# %%
retrieval = {"before": retrieval_accuracy(before.z_cxr, before.z_ehr),
             "after": retrieval_accuracy(after.z_cxr, after.z_ehr), "split": cfg.split}
write_json_atomic(out_dir / "retrieval.json", retrieval)
display(pd.DataFrame({k: retrieval[k] for k in ("before", "after")}).T)
retrieval_figure(retrieval)

# %%
frame = after.meta[["subject_id"]].copy()
for name, emb in (("before", before), ("after", after)):
    xy = umap_2d(emb.features, seed=cfg.seed, n_neighbors=cfg.n_neighbors, min_dist=cfg.min_dist)
    frame[f"{name}_x"], frame[f"{name}_y"] = xy[:, 0], xy[:, 1]
labels = pd.DataFrame(after.labels, columns=list(after.pathologies))
variables = ehr_variable_summary(np.asarray(data.raw_ehr[after.rows]), after.lengths, data.ehr_columns)
missing = sorted(set(cfg.color_labels) - set(labels)) + sorted(set(cfg.color_variables) - set(variables))
if missing:
    raise KeyError(f"colour column(s) {missing} are neither labels nor continuous EHR variables")
frame = pd.concat([frame, labels[list(cfg.color_labels)], variables[list(cfg.color_variables)]], axis=1)
frame.to_parquet(out_dir / "umap_points.parquet", index=False)
figures = [umap_figure(frame, c, units=data.units) for c in (*cfg.color_labels, *cfg.color_variables)]
write_figures_html(figures, out_dir / "umap.html")
for figure in figures:
    display(figure)
