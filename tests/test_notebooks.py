"""The numbered notebooks: committed clean and paired, parameters that are config fields, and every notebook
executed under papermill (through ``medcam-lab batch``) on the tiny cohort, on CPU."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import papermill as pm
import pytest

from medcam_lab.batch import NOTEBOOKS, resolve_parameters, run_batch
from medcam_lab.config import (
    AlignConfig,
    BatchConfig,
    EmbeddingsConfig,
    EvaluateConfig,
    FinetuneConfig,
    InspectConfig,
    PrepareConfig,
)
from medcam_lab.notebook_params import configs_from_parameters

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
CONFIGS = {
    "01_prepare_cohort": (PrepareConfig,),
    "02_align": (AlignConfig,),
    "03_finetune_evaluate": (FinetuneConfig, EvaluateConfig),
    "04_embeddings_umap": (EmbeddingsConfig,),
    "05_inspect_alignment": (InspectConfig,),
}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean_paired_and_on_python3(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
    paired = jupytext.read(NB_DIR / f"{name}.py")
    strip = [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert strip == [(c.cell_type, c.source.strip()) for c in paired.cells], f"{name}.py and .ipynb differ: " \
        "run `jupytext --sync notebooks/*.ipynb`"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    # papermill must parse every line of the parameters cell (it skips lines it cannot parse, with a warning)
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb"))) == len(lines)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_are_fields_of_the_notebook_configs(name):
    declared = pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb"))
    fields = {f.name: f for cls in CONFIGS[name] for f in dataclasses.fields(cls)}
    assert set(declared) <= set(fields), set(declared) - set(fields)
    primary = {f.name for f in dataclasses.fields(CONFIGS[name][0])}
    assert primary - {"predictions"} <= set(declared) | {"predictions"}
    for key, info in declared.items():  # the notebook defaults are the config defaults
        default = fields[key].default
        value = ast.literal_eval(info["default"])
        assert (tuple(value) if isinstance(value, (list, tuple)) else value) == default, key
        assert info["help"], f"{name}: parameter {key} has no help comment"


@pytest.mark.parametrize("dataset", ["demo", "mimic", "nih", "vindr", "chexpert"])
def test_every_params_file_resolves_against_the_notebooks(dataset, tmp_path):
    cfg = BatchConfig(dataset=dataset, params_dir=str(ROOT / "params"), notebooks_dir=str(NB_DIR))
    stages, resolved = resolve_parameters(cfg, tmp_path / "run", "r1")
    for nb in stages:
        configs = CONFIGS[nb]
        configs_from_parameters(resolved[nb], *configs)  # types and names accepted
        assert resolved[nb]["out"] == str(tmp_path / "run" / nb)


@pytest.fixture(scope="module")
def tiny_batch(tiny_raw, tmp_path_factory):
    """All five notebooks through `medcam-lab batch` with tiny parameters (CPU)."""
    work = tmp_path_factory.mktemp("batch")
    params = work / "params"
    params.mkdir()
    shutil.copy(ROOT / "params" / "common.yaml", params / "common.yaml")
    (params / "tiny.yaml").write_text(f"""
stages: ["01", "02", "03", "04", "05"]
all:
  device: cpu
  batch_size: 16
01_prepare_cohort:
  mimic_cxr: {tiny_raw / "mimic-cxr-jpg"}
  mimic_iv: {tiny_raw / "mimic-iv"}
  image_cache_size: 36
02_align:
  cohort: "{{run_dir}}/01_prepare_cohort"
  encoder: resnet_small
  image_size: 32
  proj_dim: 16
  ehr_hidden: 16
  k: 3
  epochs: 1
  batch_size: 8
  lr: 0.001
03_finetune_evaluate:
  data: "{{run_dir}}/01_prepare_cohort"
  encoder: resnet_small
  weights: "{{run_dir}}/02_align/adapted_backbone.pt"
  image_size: 32
  lr_grid: [0.001]
  epochs: 2
  eval_start: 1
  eval_every: 1
  patience: 1
  n_resamples: 50
04_embeddings_umap:
  align_dir: "{{run_dir}}/02_align"
  n_neighbors: 5
05_inspect_alignment:
  align_dir: "{{run_dir}}/02_align"
  splits: [test]
  n_snapshots: 1
  ig_steps: 4
""")
    cfg = BatchConfig(dataset="tiny", run_id="t1", params_dir=str(params), notebooks_dir=str(NB_DIR),
                      runs_dir=str(work / "runs"), log_output=False, execution_timeout=300)
    return run_batch(cfg)


def test_every_notebook_runs_and_writes_its_artifacts(tiny_batch):
    run = tiny_batch
    status = json.loads((run / "status.json").read_text())
    assert status["stages"] == {nb: "done" for nb in NOTEBOOKS}
    info = json.loads((run / "run_info.json").read_text())
    assert info["git_revision"] and info["notebook_versions"]["papermill"] and info["kernel"] == "python3"
    assert json.loads((run / "config.json").read_text())["dataset"] == "tiny"
    params = json.loads((run / "parameters.json").read_text())
    assert params["02_align"]["cohort"] == str(run / "01_prepare_cohort")
    for nb in NOTEBOOKS:
        executed = nbformat.read(run / f"{nb}.ipynb", as_version=4)
        assert executed.metadata["papermill"]["parameters"] == params[nb]
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert pd.read_csv(run / "01_prepare_cohort" / "label_prevalence.csv").shape[0] == 14
    assert (run / "02_align" / "history.html").stat().st_size > 100_000  # plotly.js embedded: opens offline
    metrics = json.loads((run / "03_finetune_evaluate" / "evaluation" / "metrics.json").read_text())
    assert 0 <= metrics["auroc"]["point"] <= 1
    retrieval = json.loads((run / "04_embeddings_umap" / "retrieval.json").read_text())
    assert set(retrieval) == {"before", "after", "split"} and retrieval["after"]["n"] > 0
    points = pd.read_parquet(run / "04_embeddings_umap" / "umap_points.parquet")
    assert {"before_x", "after_y", "Edema", "Heart Rate"} <= set(points.columns)
    assert (run / "04_embeddings_umap" / "umap.html").exists()
    snaps = sorted(p.name for p in (run / "05_inspect_alignment").iterdir())
    assert any(s.endswith("_attention.html") for s in snaps) and any(s.endswith("_gradcam.png") for s in snaps)
    assert any(s.endswith("_ehr_attribution.html") for s in snaps)
