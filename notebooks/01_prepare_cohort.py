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
# # 01 · Prepare the paired cohort
#
# MIMIC-CXR-JPG + MIMIC-IV (or the generated demo cohort, which uses the same file layouts) → a cohort
# directory: image–ICU-stay pairs, discretized EHR arrays (60 or 76 features every Δt hours, by EHR mode),
# the image cache and a report of every filtering step. The parameters are the fields of `PrepareConfig`
# (the same as the flags of `medcam-lab prepare`). Artifacts are written into `out`, the cohort directory.

# %%
from pathlib import Path

import pandas as pd

from medcam_lab.config import LABELS_CHEXPERT14, PrepareConfig
from medcam_lab.data.cohort import PAIRS_FILE
from medcam_lab.notebook_params import configs_from_parameters, names_before_parameters, parameters_since

_names_before = names_before_parameters(globals())

# %% tags=["parameters"]
mimic_cxr: str = ""  # root of MIMIC-CXR-JPG (mimic-cxr-2.0.0-*.csv.gz and files/)
mimic_iv: str = ""  # root of MIMIC-IV (hosp/ and icu/)
out: str = ""  # the cohort directory to write
compat: str = "clean"  # EHR mode: clean (fixes, 60 features) or medfuse (MedFuse/MedMod exactly, 76)
mimic_iv_version: str = "auto"  # MIMIC-IV release such as 2.2; auto reads it from the path, else the layout
timestep: float = 2.0  # discretizer bin width Δt in hours
window_hours: float = 48.0  # EHR window before each image
impute_strategy: str = "previous"  # discretizer imputation
views: tuple = ("AP", "PA")  # frontal views kept
split_fractions: tuple = (0.6, 0.2, 0.2)  # patient-level train/val/test
seed: int = 0  # split seed
uncertain_policy: str = "zeros"  # CheXpert -1 → zeros / ones / ignore
blank_policy: str = "zeros"  # blank label → zeros / ignore
image_cache_size: int = 256  # side of the cached square images
partition_events: int = 500_000  # most event rows cleaned at once (peak memory ~0.85 GB)
spill_dir: str = ""  # where the spilled events go while preparing (empty: inside out)

# %%
(cfg,) = configs_from_parameters(parameters_since(globals(), _names_before), PrepareConfig,
                                 notebook="01_prepare_cohort")
if not (cfg.mimic_cxr and cfg.mimic_iv and cfg.out):
    raise ValueError("set the parameters mimic_cxr, mimic_iv and out")
cfg

# %%
from medcam_lab.prepare import prepare_cohort  # noqa: E402

report = prepare_cohort(cfg)
steps = pd.DataFrame(report["steps"])
steps

# %% [markdown]
# Items dropped, by reason (nothing is dropped silently; `report.md` in the cohort directory lists them).

# %%
pd.Series(report["dropped"], name="items dropped", dtype="int64").sort_values(ascending=False)

# %% [markdown]
# Label prevalence by split (1 = positive; NaN labels are unknown and not counted).

# %%
pairs = pd.read_parquet(Path(cfg.out) / PAIRS_FILE)
prevalence = pairs.groupby("split")[list(LABELS_CHEXPERT14)].mean().T.round(3)
prevalence.to_csv(Path(cfg.out) / "label_prevalence.csv")
steps.to_csv(Path(cfg.out) / "prepare_steps.csv", index=False)
print(pairs.groupby("split").agg(images=("split", "size"), patients=("subject_id", "nunique")))
prevalence
