"""Opening prepared directories and serving batches from them.

- :mod:`medcam_lab.data.cohort`: the cohort directory (image–EHR pairs, discretized EHR), :func:`load_cohort`.
- :mod:`medcam_lab.data.prepared_images`: the prepared image-label directory of ``medcam-lab prepare-images``.
- :mod:`medcam_lab.data.image_cache`: the uint8 image cache of a prepared directory.
- :mod:`medcam_lab.data.loading`: torch datasets over prepared directories and the batch loader.
- :mod:`medcam_lab.data.transforms`: batch transforms from the image cache to normalized model inputs.
- :mod:`medcam_lab.data.label_fraction`: label-efficiency subsets of a training split.

The directories are written by :mod:`medcam_lab.prepare`.
"""
