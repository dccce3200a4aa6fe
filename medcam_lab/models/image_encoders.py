"""Image-encoder registry: name → builder + preprocessing + checkpoint layout (timm-style, offline only).

Every registered encoder maps ``(B, 3, H, W)`` images to a pooled ``(B, F)`` feature (no classifier), and its
entry carries the input size, the normalisation mean/std and the checkpoint layout its files use, so none of
these is left to a user's memory:

- ``resnet50`` / ``resnet18`` / ``resnet_small``: torchvision-style ResNets (``fc`` = Identity; plain
  torchvision keys), random init or a local state_dict.
- ``barlowtwins_cxr``: ResNet-50 reading BarlowTwins-CXR's plain, DDP and detector files.
- ``eva_x_tiny`` / ``eva_x_small``: EVA-X ViTs through timm's ``Eva`` (mean-pooled ``fc_norm`` feature).
- ``convirt_resnet50``, ``gloria_resnet50``, ``medclip_resnet50``, ``mgca_resnet50``: image encoders
  exported from image-text models (only the image-encoder keys are read).

Weights are never downloaded: ``weights`` is a local file (``torch.load(weights_only=True)`` or
``.safetensors``) loaded strictly by :func:`medcam_lab.models.checkpoints.load_backbone_weights`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from medcam_lab.models.checkpoints import (
    CheckpointKeyError,
    CheckpointReadError,
    checkpoint_matches,
    load_backbone_weights,
    read_checkpoint,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BENCHX_MEAN",
    "BENCHX_STD",
    "EVA_X_MEAN",
    "EVA_X_STD",
    "ImageEncoderSpec",
    "SmallResNet",
    "register_image_encoder",
    "list_image_encoders",
    "get_image_encoder_spec",
    "build_image_encoder",
    "encoder_spec",
    "encoder_width",
    "encoders_matching",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageEncoderSpec:
    """How to build one image encoder and how to preprocess its input.

    Attributes:
        name: registry name.
        builder: zero-argument callable returning the module (randomly initialised, ``fc`` = Identity).
        num_features: width ``F`` of the pooled feature.
        input_size: square input side in pixels the encoder expects (after resize/crop).
        mean: per-channel normalisation mean (3 values).
        std: per-channel normalisation std (3 values).
        weights: default local weights file, or ``None`` (random init).
        notes: provenance / intended use.
        checkpoint_layout: the :data:`~medcam_lab.models.checkpoints.CHECKPOINT_LAYOUTS` entry used to read
            its checkpoint files (prefixes, documented dropped keys, key renames).

    Shape:
        - the built module maps (B, 3, input_size, input_size) to (B, num_features).
    """

    name: str
    builder: Callable[[], nn.Module]
    num_features: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str | None = None
    notes: str = ""
    checkpoint_layout: str = "torchvision"


_REGISTRY: dict[str, ImageEncoderSpec] = {}


def register_image_encoder(spec: ImageEncoderSpec, overwrite: bool = False) -> ImageEncoderSpec:
    """Add ``spec`` to the registry.

    Args:
        spec: the encoder spec.
        overwrite: replace an existing entry of the same name instead of raising.

    Returns:
        ``spec`` (so the call can be used as an expression).

    Raises:
        ValueError: if the name is taken and ``overwrite`` is False.
    """
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"image encoder {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_image_encoders() -> list[str]:
    """Sorted names of the registered image encoders."""
    return sorted(_REGISTRY)


def get_image_encoder_spec(name: str) -> ImageEncoderSpec:
    """The :class:`ImageEncoderSpec` registered under ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown image encoder {name!r}; known: {list_image_encoders()}") from None


def build_image_encoder(name: str, weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """Build a registered encoder and optionally load local weights into it.

    The returned module maps images to pooled features and carries ``.num_features`` (``F``) and
    ``.spec`` (its :class:`ImageEncoderSpec`).

    Args:
        name: registry name (see :func:`list_image_encoders`).
        weights: local checkpoint path; ``None`` uses ``spec.weights`` (random init if that is ``None``
            too). Loaded strictly by :func:`load_backbone_weights`. Nothing is ever downloaded.

    Returns:
        The encoder module (train mode, on CPU).

    Shape:
        - input: (B, 3, H, W), normally H = W = ``spec.input_size``.
        - output: (B, F) with F = ``spec.num_features``.

    Examples:
        >>> enc = build_image_encoder("resnet_small")
        >>> enc(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 128])
    """
    spec = get_image_encoder_spec(name)
    model = spec.builder()
    # plain attributes: torch types Module.__setattr__ for tensors and modules only
    model.num_features = spec.num_features  # type: ignore[assignment]
    model.spec = spec  # type: ignore[assignment]
    path = weights if weights is not None else spec.weights
    if path is not None:
        try:
            load_backbone_weights(model, path, layout=spec.checkpoint_layout)
        except (CheckpointKeyError, ValueError) as err:
            if isinstance(err, CheckpointReadError):
                raise
            others = encoders_matching(path, exclude=(name,))
            if not others:
                raise
            raise CheckpointKeyError(f"{err}. The file's keys and shapes match the image encoder(s) {others}: "
                                     f"pass --encoder {others[0]} (the encoder parameter)") from None
    return model


def encoder_spec(encoder: nn.Module) -> ImageEncoderSpec:
    """The :class:`ImageEncoderSpec` that :func:`build_image_encoder` attached to ``encoder`` (``.spec``).

    Raises:
        ValueError: if ``encoder`` carries no spec (it was not built by :func:`build_image_encoder`).
    """
    spec = getattr(encoder, "spec", None)
    if not isinstance(spec, ImageEncoderSpec):
        raise ValueError(f"{type(encoder).__name__} has no `spec`: build image encoders with build_image_encoder")
    return spec


def encoder_width(encoder: nn.Module) -> int:
    """Width ``F`` of an image encoder's pooled feature (its ``num_features``, set by :func:`build_image_encoder`).

    Raises:
        ValueError: if ``encoder`` has no ``num_features`` attribute.
    """
    width = getattr(encoder, "num_features", None)
    if width is None:
        raise ValueError("image_encoder needs a `num_features` attribute (use build_image_encoder)")
    return int(width)


def encoders_matching(path: str | os.PathLike[str], exclude: tuple[str, ...] = ()) -> list[str]:
    """The registered encoders (``exclude`` left out) whose keys and shapes a weights file matches: the
    suggestion when ``--encoder`` names the wrong one. Encoders are built on the ``meta`` device (no memory,
    no initialisation); one that cannot be built there is left out of the suggestion.
    """
    obj = read_checkpoint(path)
    found = []
    for name in list_image_encoders():
        if name in exclude:
            continue
        spec = _REGISTRY[name]
        try:
            with torch.device("meta"):
                candidate = spec.builder()
        except Exception:  # noqa: BLE001 - a suggestion only: an encoder not buildable on meta is not offered
            continue
        if checkpoint_matches(candidate, obj, os.fspath(path), spec.checkpoint_layout):
            found.append(name)
    return found


class SmallResNet(ResNet):
    """A narrow torchvision ``ResNet`` of ``BasicBlock`` s for CPU demos and tests.

    Same module names as torchvision (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``) and the
    same forward; only the stage widths and block counts differ. ``fc`` is ``nn.Identity``.

    Args:
        widths: channels of the four stages (the stem has ``widths[0]`` channels).
        blocks: BasicBlocks per stage.

    Shape:
        - input: (B, 3, H, W).
        - output: (B, widths[3]).
    """

    def __init__(
        self, widths: Sequence[int] = (16, 32, 64, 128), blocks: Sequence[int] = (1, 1, 1, 1)
    ) -> None:
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError("widths and blocks need 4 entries (one per stage)")
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes the widths 64..512; rebuild with its helpers
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], blocks[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], blocks[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], blocks[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        for module in self.modules():  # torchvision's init
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)


def _headless(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


def _resnet50() -> nn.Module:
    return _headless(torchvision.models.resnet50(weights=None))


def _resnet18() -> nn.Module:
    return _headless(torchvision.models.resnet18(weights=None))


register_image_encoder(
    ImageEncoderSpec(
        name="resnet50",
        builder=_resnet50,
        num_features=2048,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        notes="torchvision ResNet-50, fc=Identity. Default real-data encoder: load the BarlowTwins-CXR "
        "resnet50.pth (plain torchvision keys, ImageNet mean/std) through `weights`.",
    )
)
register_image_encoder(
    ImageEncoderSpec(
        name="resnet18",
        builder=_resnet18,
        num_features=512,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        notes="torchvision ResNet-18, fc=Identity. A lighter GPU encoder.",
    )
)
register_image_encoder(
    ImageEncoderSpec(
        name="resnet_small",
        builder=SmallResNet,
        num_features=128,
        input_size=64,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        notes="SmallResNet: BasicBlock ResNet, widths (16, 32, 64, 128), one block per stage, for the CPU "
        "demo on 64×64 grayscale images replicated to 3 channels (mean 0.5, std 0.25).",
    )
)

#: BenchX's classification normalisation (NIHTransforms), used for the image-text encoders it evaluates.
BENCHX_MEAN, BENCHX_STD = (0.4978, 0.4978, 0.4978), (0.2449, 0.2449, 0.2449)
#: EVA-X's normalisation (grayscale replicated to 3 channels).
EVA_X_MEAN, EVA_X_STD = (0.49185, 0.49185, 0.49185), (0.28509, 0.28509, 0.28509)


def _eva_x(embed_dim: int, num_heads: int) -> Callable[[], nn.Module]:
    """An EVA-X ViT (patch 16, 224 px, learned pos-embed + 2-D RoPE, SwiGLU, mean-pooled ``fc_norm``
    feature) built with timm's ``Eva`` and no classifier (``num_classes=0``); never downloads."""

    def build() -> nn.Module:
        try:
            from timm.models.eva import Eva
        except ImportError as err:  # pragma: no cover - timm is a declared dependency
            raise ImportError("EVA-X encoders need timm >= 0.9 (`pip install timm`)") from err
        return Eva(img_size=224, patch_size=16, embed_dim=embed_dim, depth=12, num_heads=num_heads,
                   mlp_ratio=4 * 2 / 3, swiglu_mlp=True, use_rot_pos_emb=True, ref_feat_shape=(14, 14),
                   global_pool="avg", num_classes=0)

    return build


register_image_encoder(
    ImageEncoderSpec(
        name="barlowtwins_cxr",
        builder=_resnet50,
        num_features=2048,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        checkpoint_layout="barlowtwins_cxr",
        notes="BarlowTwins-CXR (Sheng et al. 2024; HF haooyuee/Barlowtwins-CXR): torchvision ResNet-50 "
        "self-supervised on the official NIH train_val list; ImageNet mean/std. Reads resnet50.pth / "
        "best_model.pth (plain keys), checkpoint.pth (DDP: module.backbone.*, projector and bn dropped) and "
        "the mmdet detector (backbone.*; neck/rpn_head/roi_head dropped).",
    )
)
for _name, _dim, _heads in (("eva_x_tiny", 192, 3), ("eva_x_small", 384, 6)):
    register_image_encoder(
        ImageEncoderSpec(
            name=_name,
            builder=_eva_x(_dim, _heads),
            num_features=_dim,
            input_size=224,
            mean=EVA_X_MEAN,
            std=EVA_X_STD,
            checkpoint_layout="eva_x",
            notes=f"EVA-X-{'Ti' if _dim == 192 else 'S'} (Yao et al. 2025; HF MapleF/eva_x "
            f"eva_x_{'tiny' if _dim == 192 else 'small'}_patch16_merged520k_mim.pt) via timm Eva; pooled "
            "fc_norm feature; EVA-02 key renames, MIM norm → fc_norm, mask_token/lm_head/rope dropped.",
        )
    )
for _name, _layout, _source in (
    ("convirt_resnet50", "convirt", "ConVIRT (BenchX re-train, ConVIRT.pth; prefix visual.model.)"),
    ("gloria_resnet50", "gloria", "GLoRIA chexpert_resnet50.ckpt (Lightning state_dict; prefix "
                                  "gloria.img_encoder.model.)"),
    ("medclip_resnet50", "medclip", "MedCLIP-ResNet pytorch_model.bin (prefix vision_model.model.)"),
    ("mgca_resnet50", "mgca", "MGCA-ResNet-50 (prefix img_encoder_q.model.)"),
):
    register_image_encoder(
        ImageEncoderSpec(
            name=_name,
            builder=_resnet50,
            num_features=2048,
            input_size=224,
            mean=BENCHX_MEAN,
            std=BENCHX_STD,
            checkpoint_layout=_layout,
            notes=f"Image encoder exported from an image-text model: {_source}. Only the image-encoder keys "
            "are read (the text model is dropped, as BenchX does); BenchX's NIHTransforms mean/std.",
        )
    )
