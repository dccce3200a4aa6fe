"""Every writer of a prepared directory: what turns the official raw layouts into what training reads.

- :mod:`medcam_lab.prepare.cohort`: ``medcam-lab prepare`` — MIMIC-CXR-JPG images paired with MIMIC-IV ICU stays,
  their EHR discretized, the image cache and a report (the directory's format: :mod:`medcam_lab.data.cohort`).
- :mod:`medcam_lab.prepare.images`: ``medcam-lab prepare-images`` — a dataset class's splits (NIH, CheXpert,
  VinDr-CXR) as an image cache and a label table (format: :mod:`medcam_lab.data.prepared_images`).
- :mod:`medcam_lab.prepare.event_spill`: the events spilled to disk by stay, cleaned a partition at a time.
- :mod:`medcam_lab.prepare.image_cache` (and its resumable state, :mod:`~medcam_lab.prepare.image_cache_state`):
  every image decoded once into ``images_uint8.npy``.
- :mod:`medcam_lab.prepare.report`: the counts of what every step kept and dropped.

The raw layouts are read by :mod:`medcam_lab.datasets`; prepared directories are opened by :mod:`medcam_lab.data`.
"""

from medcam_lab.prepare.cohort import prepare_cohort
from medcam_lab.prepare.images import prepare_image_dataset, prepare_images

__all__ = ["prepare_cohort", "prepare_image_dataset", "prepare_images"]
