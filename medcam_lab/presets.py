"""Named settings of every stage: :data:`DEMO` (the generated cohort on a CPU, minutes) and :data:`PAPER` (the
paper's settings, for MIMIC-CXR-JPG + MIMIC-IV on a GPU).

A preset holds, per stage config (``prepare``, ``pretrain``, ``align``, ``finetune``, ``medmod``), the fields
that differ from that dataclass's defaults; :meth:`Preset.config` builds the stage config with the run's own
fields (paths, seed, device) on top. The defaults of :class:`~medcam_lab.config.AlignConfig`,
:class:`~medcam_lab.config.FinetuneConfig` and the other stage configs are the paper's, so :data:`PAPER`
changes only what the paper sets otherwise. ``medcam-lab demo`` (:class:`~medcam_lab.config.DemoConfig`'s
defaults), ``medcam-lab reproduce --preset``, the Makefile and ``params/*.yaml`` read their settings from here
(``tests/test_presets.py`` checks the params files against them).

This module imports nothing of the package, so :mod:`medcam_lab.config` can take defaults from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")

STAGES: tuple[str, ...] = ("prepare", "pretrain", "align", "finetune", "medmod")


def image_cache_size_for(image_size: int) -> int:
    """Side of the cached images for model input ``image_size``: the paper's resize 256 → crop 224 ratio.

    >>> image_cache_size_for(224), image_cache_size_for(64)
    (256, 73)
    """
    return int(round(image_size * 256 / 224))


def validation_start(epochs: int) -> int:
    """The demo's first validation epoch for a fine-tuning of ``epochs``: after two fifths of the run."""
    return max(1, epochs * 2 // 5)


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class Preset:
    """Field values per stage config, over the dataclass defaults.

    Attributes:
        name: the name ``--preset`` takes.
        description: one line for ``--help`` and reports.
        prepare, pretrain, align, finetune, medmod: {field: value} of :class:`PrepareConfig`,
            :class:`PretrainConfig`, :class:`AlignConfig`, :class:`FinetuneConfig`, :class:`MedModConfig`
            (of :mod:`medcam_lab.config`).
    """

    name: str
    description: str
    prepare: Mapping[str, Any] = field(default_factory=dict)
    pretrain: Mapping[str, Any] = field(default_factory=dict)
    align: Mapping[str, Any] = field(default_factory=dict)
    finetune: Mapping[str, Any] = field(default_factory=dict)
    medmod: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage in STAGES:
            object.__setattr__(self, stage, _frozen(getattr(self, stage)))

    def stage(self, cls: type) -> Mapping[str, Any]:
        """The preset's values for stage config class ``cls`` (``AlignConfig`` → :attr:`align`, …)."""
        name = cls.__name__.removesuffix("Config").lower()
        if name not in STAGES:
            raise ValueError(f"no preset stage for {cls.__name__}; stages: {list(STAGES)}")
        return getattr(self, name)

    def config(self, cls: type[T], **fields: Any) -> T:
        """``cls`` with this preset's values, then ``fields`` (the run's paths, seed, flags) on top."""
        return cls(**{**self.stage(cls), **fields})


#: MedMod's ALIGN objective: 512-wide projections and an initial τ of 0.07 (``spec/baselines.md`` §4); the
#: InfoNCE and VICReg objectives keep :class:`~medcam_lab.config.MedModConfig`'s 128 and 0.1.
MEDMOD_ALIGN_OBJECTIVE: Mapping[str, Any] = _frozen({"proj_dim": 512, "temperature": 0.07})

_DEMO_ENCODER: dict[str, Any] = {"encoder": "resnet_small", "image_size": 64}
_DEMO_FINETUNE_EPOCHS = 40

#: The generated demo cohort on a CPU: a small ResNet at 64 px, CPU-sized epochs (``medcam-lab demo``,
#: ``params/demo.yaml``, ``make reproduce``). Alignment at lr 1e-3 with 128-wide projections: the ablation in
#: ``docs/decisions.md`` (backbone mode and learning rate on the demo cohort).
DEMO = Preset(
    name="demo",
    description="the generated demo cohort on a CPU: resnet_small at 64 px, CPU-sized epochs",
    prepare={"image_cache_size": image_cache_size_for(_DEMO_ENCODER["image_size"])},
    pretrain={**_DEMO_ENCODER, "epochs": 30, "batch_size": 64, "lr": 2e-3, "projector_dim": 256},
    align={**_DEMO_ENCODER, "proj_dim": 128, "ehr_hidden": 128, "epochs": 20, "batch_size": 32, "lr": 1e-3,
           "backbone_mode": "adapt"},
    finetune={**_DEMO_ENCODER, "lr_grid": (1e-2, 1e-3), "epochs": _DEMO_FINETUNE_EPOCHS, "batch_size": 32,
              "eval_start": validation_start(_DEMO_FINETUNE_EPOCHS), "eval_every": 2, "patience": 5},
    medmod={**_DEMO_ENCODER, "epochs": 20, "batch_size": 32, "lr": 1e-3},
)

#: The paper's settings (``docs/decisions.md``, first table): ResNet-50 at 224 px, k = 10, τ = 0.1, projections
#: 256, lr 1e-4, BenchX fine-tuning (lr grid 1e-2/1e-3/1e-5, validation from epoch 10 every 5, patience 10) —
#: the stage configs' defaults — and MedFuse's EHR preprocessing (``compat="medfuse"``, 76 features).
PAPER = Preset(
    name="paper",
    description="the paper's settings: ResNet-50 at 224 px, MedFuse's 76 EHR features (a GPU and real data)",
    prepare={"compat": "medfuse"},
)

PRESETS: Mapping[str, Preset] = _frozen({preset.name: preset for preset in (DEMO, PAPER)})


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is an error listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
