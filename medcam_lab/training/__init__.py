"""The training stages and what they share.

- :mod:`medcam_lab.training.pretrain`: image-only self-supervised pretraining (Barlow Twins).
- :mod:`medcam_lab.training.align`: ``medcam-lab align``, MedCAM alignment with the ICU time series.
- :mod:`medcam_lab.training.medmod`: the MedMod baselines (concurrent image–EHR pretraining).
- :mod:`medcam_lab.training.finetune`: ``medcam-lab finetune``, image-only multi-label fine-tuning.
- :mod:`medcam_lab.training.checkpoint`, :mod:`~medcam_lab.training.runtime`,
  :mod:`~medcam_lab.training.progress`: checkpoints, device and precision, epoch progress lines.
"""
