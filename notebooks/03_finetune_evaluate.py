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
# # 03 · Fine-tune and evaluate
#
# Image-only multi-label fine-tuning of an encoder (`weights`: the adapted backbone of notebook 02, or any
# image-only checkpoint) with a linear head, a learning-rate grid chosen on validation macro-AUROC, one
# prediction of the test split, then macro/per-label AUROC and AUPRC with bootstrap 95% intervals.
# `dataset` is `cohort` (a prepared paired cohort) or `images` (a `medcam-lab prepare-images` directory: NIH,
# VinDr-CXR or CheXpert).
# Parameters are the fields of `FinetuneConfig` plus `n_resamples` and `confidence` of `EvaluateConfig`.
# Outputs go to `out`; the evaluation to `out/evaluation` (`metrics.json`, `per_label.csv`).

# %%
import dataclasses
import json
from pathlib import Path

import pandas as pd

from medcam_lab.config import EvaluateConfig, FinetuneConfig
from medcam_lab.notebook_params import configs_from_parameters, names_before_parameters, parameters_since
from medcam_lab.training.runtime import resolve_device

_names_before = names_before_parameters(globals())

# %% tags=["parameters"]
data: str = ""  # prepared cohort (dataset cohort) or prepared image-label directory (dataset images)
dataset: str = "cohort"  # cohort / images
out: str = ""  # output directory
encoder: str = "resnet50"  # image encoder (registry name)
weights: str = ""  # encoder checkpoint to fine-tune
image_size: int = 224  # model input size
lr_grid: tuple = (1e-2, 1e-3, 1e-5)  # learning rates tried
backbone_lr_mult: float = 1.0  # backbone lr multiplier
linear_probe: bool = False  # freeze the encoder, train the head only
epochs: int = 200  # maximum epochs
batch_size: int = 64  # batch size
eval_start: int = 10  # first validation epoch
eval_every: int = 5  # epochs between validations
patience: int = 10  # validations without improvement before stopping
seed: int = 0  # seed (training and bootstrap)
label_fraction: float = 1.0  # share of the training patients kept (nested, seeded); validation and test whole
seeds: tuple = ()  # repeat the fine-tuning once per seed (empty: one run with seed)
select_lr_once: bool = False  # with seeds: search the lr grid on the first seed only, reuse its choice
num_workers: int = 0  # data-loader workers
device: str = "auto"  # auto: CUDA when available, else CPU
precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or bf16 / fp32
channels_last: str = "auto"  # auto: on for CUDA, off on CPU; or on / off
compile: str = "auto"  # torch.compile of the image encoder; auto: on for CUDA, off on CPU
n_resamples: int = 1000  # bootstrap resamples
confidence: float = 0.95  # interval level

# %%
ft, ev = configs_from_parameters(parameters_since(globals(), _names_before), FinetuneConfig, EvaluateConfig,
                                 notebook="03_finetune_evaluate")
if not (ft.data and ft.out):
    raise ValueError("set the parameters data and out")
print("device:", resolve_device(ft.device))
ft

# %%
from medcam_lab.evaluation import evaluate_predictions, write_seed_summary  # noqa: E402
from medcam_lab.training.finetune import finetune, finetune_seeds  # noqa: E402
from medcam_lab.training.progress import show_progress  # noqa: E402

show_progress()  # one line per validation: losses, validation AUROC, time left
if ft.seeds:  # one run per seed; the pooled summary, then the first seed's run in detail below
    seed_predictions = finetune_seeds(ft)
    seed_summary = json.loads(write_seed_summary(seed_predictions, ft.out, ev.n_resamples, ev.confidence).read_text())
    for metric in ("auroc", "auprc"):
        a = seed_summary[metric]["a"]
        print(f"over seeds {list(seed_predictions)}: macro {metric.upper()} mean {a['mean']:.4f} (sd {a['sd']:.4f}; "
              f"{ev.confidence:.0%} CI over seeds and images {a['low']:.4f}–{a['high']:.4f}); per seed {a['per_seed']}")
    predictions = seed_predictions[ft.seeds[0]]
    print(f"below: the run of seed {ft.seeds[0]}")
else:
    predictions = finetune(ft)
ev = dataclasses.replace(ev, predictions=str(predictions), out=str(Path(predictions).parent / "evaluation"))
result = evaluate_predictions(ev)
for metric in ("auroc", "auprc"):
    r = result[metric]
    print(f"macro {metric.upper()}: {r['point']:.4f} ({ev.confidence:.0%} CI {r['low']:.4f}–{r['high']:.4f}); "
          f"skipped labels: {r['skipped_labels']}")

# %% [markdown]
# Per-label results (labels with one class in the test split are skipped and listed above).

# %%
per_label = pd.DataFrame({m: {k: v["point"] for k, v in result[m].get("per_label", {}).items()}
                          for m in ("auroc", "auprc")})
per_label.to_csv(Path(ev.out) / "per_label.csv")
per_label.round(4)

# %% [markdown]
# Label efficiency at this run's share of training labels: macro AUROC, the mean over seeds with its 95 %
# interval over seeds and test rows (one seed: over test rows). Run the notebook at other `label_fraction`
# values, or `medcam-lab reproduce --label-fractions 0.01 0.1 1.0 --seeds 0 1 2`, for the whole curve with
# MedCAM − image-only (the demo writes it as `demo_out/label_efficiency.html`). Written to
# `out/label_efficiency.{html,png}`.

# %%
from medcam_lab.evaluation import label_efficiency_curve  # noqa: E402
from medcam_lab.viz.label_efficiency import label_efficiency_figure, save_label_efficiency_figure  # noqa: E402

seed_runs = seed_predictions if ft.seeds else {ft.seed: predictions}
row_label = {"this_run": f"{ft.encoder} from {Path(ft.weights).name if ft.weights else 'random initialisation'}"}
curve = label_efficiency_curve({ft.label_fraction: {"this_run": seed_runs}}, n_resamples=ev.n_resamples,
                               confidence=ev.confidence, seed=ev.seed)
figure_title = f"label efficiency, {'linear probe' if ft.linear_probe else 'fine-tuned'}, seeds {list(seed_runs)}"
save_label_efficiency_figure({ft.dataset: curve}, row_label, ft.out, title=figure_title)
label_efficiency_figure({ft.dataset: curve}, row_label, title=figure_title)
