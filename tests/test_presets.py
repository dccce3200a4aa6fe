"""The named presets: every stage config builds from them, the params files and the Makefile agree with them,
and ``reproduce`` takes its stage settings from them (or from its flags), with the paper's values spelled out
here from ``spec/method.md`` and ``docs/decisions.md``."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from medcam_lab.batch import NOTEBOOK_CONFIGS, declared_parameters, resolve_parameters
from medcam_lab.config import (
    PATH_FIELDS,
    AlignConfig,
    BatchConfig,
    DemoConfig,
    FinetuneConfig,
    MedModConfig,
    PrepareConfig,
    PretrainConfig,
    ReproduceConfig,
)
from medcam_lab.notebook_params import configs_from_parameters
from medcam_lab.presets import DEMO, PAPER, PRESETS, get_preset, image_cache_size_for
from medcam_lab.reproduce import StageSettings

ROOT = Path(__file__).resolve().parents[1]
STAGE_CLASSES = (PrepareConfig, PretrainConfig, AlignConfig, FinetuneConfig, MedModConfig)
#: Fields a params file sets per run, not per preset.
RUN_FIELDS = PATH_FIELDS | {"dataset", "seed", "device"}


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=list(PRESETS))
def test_every_stage_of_every_preset_builds_its_config(preset):
    for cls in STAGE_CLASSES:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(preset.stage(cls)) - names
        assert not unknown, f"{preset.name}: {cls.__name__} has no field {unknown}"
        config = preset.config(cls, out="/tmp/x")
        assert config.out == "/tmp/x"
        for name, value in preset.stage(cls).items():
            assert getattr(config, name) == value


def test_preset_values_cannot_be_changed_and_unknown_names_are_errors():
    with pytest.raises(TypeError):
        DEMO.align["lr"] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown preset 'papr'.*demo.*paper"):
        get_preset("papr")
    with pytest.raises(ValueError, match="no preset stage"):
        DEMO.stage(BatchConfig)


def test_paper_preset_is_the_papers_settings():
    """Literal values of the method: d = 256, τ = 0.1, k = 10, lr 1e-4; BenchX fine-tuning; MedFuse's EHR."""
    align = PAPER.config(AlignConfig)
    assert (align.encoder, align.image_size, align.proj_dim, align.ehr_hidden) == ("resnet50", 224, 256, 256)
    assert (align.k, align.temperature, align.lr, align.epochs, align.batch_size) == (10, 0.1, 1e-4, 20, 64)
    finetune = PAPER.config(FinetuneConfig)
    assert finetune.lr_grid == (1e-2, 1e-3, 1e-5)
    assert (finetune.eval_start, finetune.eval_every, finetune.patience, finetune.epochs) == (10, 5, 10, 200)
    assert PAPER.config(PrepareConfig).compat == "medfuse"
    assert PAPER.config(PrepareConfig).image_cache_size == 256 == image_cache_size_for(224)


def test_demo_config_defaults_are_the_demo_preset():
    demo = DemoConfig()
    assert (demo.encoder, demo.image_size, demo.align_lr, demo.align_epochs) == ("resnet_small", 64, 1e-3, 20)
    assert (demo.pretrain_epochs, demo.finetune_epochs, demo.lr_grid) == (30, 40, (1e-2, 1e-3))
    assert DEMO.config(PrepareConfig).image_cache_size == 73 == round(64 * 256 / 224)
    assert DEMO.config(FinetuneConfig).eval_start == 16  # two fifths of 40 epochs


def _batch_configs(dataset: str):
    """The stage configs a batch of ``dataset`` builds: the notebooks' declared defaults, then the params files."""
    stages, resolved = resolve_parameters(BatchConfig(dataset=dataset, params_dir=str(ROOT / "params"),
                                                      notebooks_dir=str(ROOT / "notebooks")), Path("/run"), "r")
    for nb in stages:
        declared = declared_parameters(ROOT / "notebooks" / f"{nb}.ipynb")
        params = {k: ast.literal_eval(v["default"]) for k, v in declared.items()} | resolved[nb]
        yield from configs_from_parameters(params, *NOTEBOOK_CONFIGS[nb], notebook=nb)


@pytest.mark.parametrize("dataset, preset", [("demo", DEMO), ("mimic", PAPER), ("nih", PAPER), ("vindr", PAPER),
                                             ("chexpert", PAPER)])
def test_params_files_equal_their_preset(dataset, preset):
    checked = 0
    for config in _batch_configs(dataset):
        if type(config) not in STAGE_CLASSES:
            continue
        expected = preset.config(type(config))
        for field in dataclasses.fields(config):
            if field.name not in RUN_FIELDS:
                assert getattr(config, field.name) == getattr(expected, field.name), \
                    f"params/{dataset}.yaml → {type(config).__name__}.{field.name} differs from preset {preset.name}"
                checked += 1
    assert checked > 10


def test_the_comparison_of_params_and_presets_can_fail():
    other = dataclasses.replace(DEMO, align=dict(DEMO.align) | {"proj_dim": 64})
    with pytest.raises(AssertionError, match="AlignConfig.proj_dim"):
        test_params_files_equal_their_preset("demo", other)


def test_makefile_reproduce_reads_the_demo_preset():
    recipe = re.search(r"^reproduce:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert "--preset demo" in recipe
    for flag in ("--encoder", "--image-size", "--align-epochs", "--pretrain-epochs", "--finetune-epochs",
                 "--lr-grid", "--batch-size"):
        assert flag not in recipe


def test_reproduce_takes_stage_settings_from_the_preset_then_the_flags():
    paper = StageSettings.resolve(ReproduceConfig())
    align = paper.align
    assert (align.proj_dim, align.ehr_hidden, align.lr, align.batch_size) == (256, 256, 1e-4, 64)
    assert paper.finetune.lr_grid == (1e-2, 1e-3, 1e-5) and paper.medmod.lr == 1e-4
    demo = StageSettings.resolve(ReproduceConfig(preset="demo"))
    align = demo.align
    assert (align.encoder, align.proj_dim, align.lr, align.batch_size) == ("resnet_small", 128, 1e-3, 32)
    assert (demo.finetune.eval_start, demo.finetune.eval_every, demo.finetune.patience) == (16, 2, 5)
    assert (demo.pretrain.batch_size, demo.pretrain.lr, demo.pretrain.epochs) == (64, 2e-3, 30)
    flagged = StageSettings.resolve(ReproduceConfig(preset="demo", image_size=32, batch_size=16, align_epochs=1,
                                                    finetune_epochs=3, lr_grid=(0.1,), seed=4, device="cpu"))
    assert (flagged.align.image_size, flagged.align.batch_size, flagged.align.epochs) == (32, 16, 1)
    assert (flagged.medmod.epochs, flagged.pretrain.batch_size, flagged.pretrain.epochs) == (1, 16, 30)
    assert (flagged.finetune.epochs, flagged.finetune.lr_grid, flagged.finetune.seed) == (3, (0.1,), 4)
    assert flagged.align.proj_dim == 128 and flagged.align.device == "cpu"
