"""Synthetic MIMIC-shaped demo cohort (no credentials needed).

:func:`generate_cohort` writes MIMIC-IV (v2.2+ layout), MIMIC-CXR-JPG (v2.0.0 layout) and an
out-of-distribution image set in the NIH ChestX-ray14 layout, with the official file names and columns,
so the real loaders run on it unchanged. Latent clinical conditions shape both the images (weakly) and
the EHR trajectories before each image (clearly) and drive the 14 CheXpert-style labels; nuisance
variation and a handful of documented defects are planted too. What is planted, exactly:
``data_cards/synthetic.md``. The cohort demonstrates the mechanism, not the paper's numbers.
"""

from medcam_lab.synth.config import SynthConfig
from medcam_lab.synth.generate import generate_cohort

__all__ = ["SynthConfig", "generate_cohort"]
