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
# # 02 · MedCAM alignment
#
# The image encoder (from an image-only checkpoint, `weights`) is aligned with the ICU time series by the
# global and the top-k local contrastive losses (`spec/method.md` §3–4). Runs on the GPU when one is
# present (`device="auto"`), on the CPU otherwise. Parameters are the fields of `AlignConfig` (the flags
# of `medcam-lab align`); outputs go to `out`: `adapted_backbone.pt`, `checkpoint.pt`, `history.json`,
# and the learning curves `history.html` / `history.csv`.

# %%
from pathlib import Path

import pandas as pd

from medcam_lab.config import AlignConfig
from medcam_lab.notebook_params import configs_from_parameters, names_before_parameters, parameters_since
from medcam_lab.training.runtime import resolve_device

_names_before = names_before_parameters(globals())

# %% tags=["parameters"]
cohort: str = ""  # prepared cohort directory (notebook 01)
out: str = ""  # output directory of this alignment run
encoder: str = "resnet50"  # image encoder (registry name)
weights: str = ""  # image-only checkpoint of the encoder (empty: random init)
image_size: int = 224  # model input size
proj_dim: int = 256  # shared-space width d
ehr_hidden: int = 256  # LSTM width
ehr_layers: int = 2  # LSTM layers
ehr_dropout: float = 0.3  # dropout on the sequence feature
k: int = 10  # EHR timesteps per image in the local loss
temperature: float = 0.1  # τ
learnable_temperature: bool = False  # learn τ (CLIP-style)
lambda_global: float = 1.0  # weight of the global loss
lambda_local: float = 1.0  # weight of the local loss
backbone_mode: str = "adapt"  # adapt / frozen / last_block / full
backbone_lr_mult: float = 0.1  # backbone lr multiplier (adapt, last_block)
epochs: int = 20  # epochs
batch_size: int = 64  # batch size
lr: float = 1e-4  # learning rate
weight_decay: float = 1e-4  # AdamW weight decay
seed: int = 0  # seed
num_workers: int = 0  # data-loader workers
device: str = "auto"  # auto: CUDA when available, else CPU
checkpoint_every: int = 1  # epochs between training checkpoints
keep_best: bool = True  # keep the backbone of the best validation epoch
precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or bf16 / fp32
channels_last: str = "auto"  # auto: on for CUDA, off on CPU; or on / off
compile: str = "auto"  # torch.compile of the image encoder; auto: on for CUDA, off on CPU
sync_batchnorm: bool = True  # under torchrun on CUDA, BatchNorm over the global batch

# %%
(cfg,) = configs_from_parameters(parameters_since(globals(), _names_before), AlignConfig, notebook="02_align")
if not (cfg.cohort and cfg.out):
    raise ValueError("set the parameters cohort and out")
print("device:", resolve_device(cfg.device))
cfg

# %%
from medcam_lab.training.align import align  # noqa: E402
from medcam_lab.training.progress import show_progress  # noqa: E402

show_progress()  # one line per epoch: losses, time per epoch, time left
adapted = align(cfg)
print("adapted backbone:", adapted)

# %% [markdown]
# Learning curves: training and validation losses, and image → EHR retrieval on the validation split; the
# dashed green line is the epoch whose backbone was kept (lowest validation loss).

# %%
from medcam_lab.viz import history_figure, write_html  # noqa: E402

history = pd.read_json(Path(cfg.out) / "history.json")
history.to_csv(Path(cfg.out) / "history.csv", index=False)
fig = history_figure(history)
write_html(fig, Path(cfg.out) / "history.html")
fig
