"""MedCAM models (method.md §2, §4).

- Image encoders behind a registry (:func:`build_image_encoder`, :func:`list_image_encoders`,
  :class:`ImageEncoderSpec`): ``resnet50`` (default, stand-in for BarlowTwins-CXR), ``resnet18``,
  ``resnet_small`` (CPU demo). Never downloads: weights are local files.
- :class:`EHREncoder`: MedFuse-style stacked LSTM returning per-step outputs and the last valid step.
- :class:`ProjectionHead`: ``g_cxr`` / ``g_ehr``.
- :class:`MedCAMAligner` + :func:`backbone_param_groups`: the alignment model and its training modes.
- Checkpoints: :func:`load_backbone_weights` (strict, ``weights_only``), :func:`backbone_state_dict`,
  :func:`save_state_dict_atomic`.
"""

from medcam_lab.models.aligner import (
    BACKBONE_MODES,
    DEFAULT_BACKBONE_MODE,
    MedCAMAligner,
    backbone_param_groups,
    step_attention,
)
from medcam_lab.models.checkpoints import (
    CheckpointKeyError,
    LoadReport,
    backbone_state_dict,
    load_backbone_weights,
    save_state_dict_atomic,
)
from medcam_lab.models.ehr_encoder import EHREncoder
from medcam_lab.models.heads import ProjectionHead
from medcam_lab.models.image_encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageEncoderSpec,
    SmallResNet,
    build_image_encoder,
    encoder_spec,
    encoder_width,
    get_image_encoder_spec,
    list_image_encoders,
    register_image_encoder,
)

__all__ = [
    "BACKBONE_MODES",
    "DEFAULT_BACKBONE_MODE",
    "MedCAMAligner",
    "backbone_param_groups",
    "step_attention",
    "CheckpointKeyError",
    "LoadReport",
    "backbone_state_dict",
    "load_backbone_weights",
    "save_state_dict_atomic",
    "EHREncoder",
    "ProjectionHead",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageEncoderSpec",
    "SmallResNet",
    "build_image_encoder",
    "encoder_spec",
    "encoder_width",
    "get_image_encoder_spec",
    "list_image_encoders",
    "register_image_encoder",
]
