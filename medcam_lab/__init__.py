"""medcam_lab: MedCAM — adapt an image-pretrained chest X-ray encoder by contrastive alignment with
ICU time series (MIMIC-IV), then fine-tune and evaluate it image-only.

Package layout (data → models → losses → training → evaluation):

- ``medcam_lab.synth``     generated MIMIC-shaped demo cohort (no credentials needed)
- ``medcam_lab.ehr``       MIMIC-IV item ids, event cleaning, the 76-feature discretizer and normalizer
- ``medcam_lab.data``      reading the official MIMIC-IV / MIMIC-CXR-JPG layouts, pairing, image cache, datasets
- ``medcam_lab.prepare``   the ``prepare`` pipeline that writes a cohort directory
- ``medcam_lab.models``    image encoders (registry), LSTM EHR encoder, projection heads, MedCAM aligner
- ``medcam_lab.losses``    global and local (top-k) alignment losses
- ``medcam_lab.training``  image-only pretraining, alignment, fine-tuning loops, checkpoints
- ``medcam_lab.metrics``   macro AUROC/AUPRC with bootstrap confidence intervals
"""

__version__ = "0.1.0"
