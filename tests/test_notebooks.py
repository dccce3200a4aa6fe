"""The numbered notebooks: committed clean and paired, parameters that are config fields, and every notebook
executed under papermill (through ``medcam-lab batch``) on the tiny cohort, on CPU."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import sys
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
    """All five notebooks through `medcam-lab batch` with tiny parameters (CPU), started as the README says: from
    a project folder (here a copy: params/, notebooks/, an image-only checkpoint) with relative paths, so that
    every path the run stores is relative to that folder. Returns the run directory (absolute)."""
    from medcam_lab.models import build_image_encoder
    from medcam_lab.models.checkpoints import backbone_state_dict, save_state_dict_atomic

    work = tmp_path_factory.mktemp("project")
    params = work / "params"
    params.mkdir()
    shutil.copytree(NB_DIR, work / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / "params" / "common.yaml", params / "common.yaml")
    save_state_dict_atomic(backbone_state_dict(build_image_encoder("resnet_small")), work / "weights" / "encoder.pt")
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
  weights: weights/encoder.pt
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
    cfg = BatchConfig(dataset="tiny", run_id="t1", log_output=False, execution_timeout=300)
    here = os.getcwd()
    os.chdir(work)
    try:
        run = run_batch(cfg)
    finally:
        os.chdir(here)
    assert not run.is_absolute()
    return work / run


def test_every_notebook_runs_and_writes_its_artifacts(tiny_batch):
    run = tiny_batch
    status = json.loads((run / "status.json").read_text())
    assert status["stages"] == {nb: "done" for nb in NOTEBOOKS}
    info = json.loads((run / "run_info.json").read_text())
    assert info["git_revision"] and info["notebook_versions"]["papermill"] and info["kernel"] == "python3"
    assert json.loads((run / "config.json").read_text())["dataset"] == "tiny"
    params = json.loads((run / "parameters.json").read_text())
    assert params["02_align"]["cohort"] == "runs/tiny/t1/01_prepare_cohort"  # as given: relative to the project
    for nb in NOTEBOOKS:
        executed = nbformat.read(run / f"{nb}.ipynb", as_version=4)
        assert executed.metadata["papermill"]["parameters"] == params[nb]
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert pd.read_csv(run / "01_prepare_cohort" / "label_prevalence.csv").shape[0] == 14
    assert (run / "02_align" / "plotly.min.js").stat().st_size > 1_000_000  # history.html reads it: opens offline
    assert "plotly.min.js" in (run / "02_align" / "history.html").read_text()
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
    summary = json.loads((run / "batch_summary.json").read_text())  # each stage's key result, read from its files
    results = {row["stage"]: row["result"] for row in summary["stages"]}
    assert summary["stages_done"] == 5 and list(results) == list(NOTEBOOKS)
    for nb, starts in (("01_prepare_cohort", "image–EHR pairs train "), ("02_align", "best epoch 1 of 1 kept"),
                       ("03_finetune_evaluate", f"{metrics['n_rows']} test images: macro AUROC "
                                                f"{metrics['auroc']['point']:.4f}"),
                       ("04_embeddings_umap", "image → EHR retrieval on test"), ("05_inspect_alignment", "1 snapshot")):
        assert results[nb].startswith(starts), (nb, results[nb])
    assert (run / "batch_summary.md").read_text().count("| done ") == 5


def _run_all_twice(notebook: Path, parameters: dict, cwd: Path) -> list[nbformat.NotebookNode]:
    """Run All twice in one kernel whose working directory is ``cwd`` (JupyterLab opened on that folder);
    returns the notebook after each run."""
    from nbclient import NotebookClient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(notebook)), parameters)
    client = NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(cwd)}})
    runs = []
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            runs.append(nbformat.from_dict(json.loads(json.dumps(nb))))
    return runs


def _text_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") == "stream"]


def test_a_batch_run_opens_from_the_notebooks_folder_and_runs_twice_in_one_kernel(tiny_batch):
    """The route of the README: JupyterLab started in notebooks/ (kernel cwd there), the run folder typed as a
    relative path, Run All, then Run All again in the same kernel: same results, no path beyond the run folder."""
    project = tiny_batch.parents[2]
    notebooks = project / "notebooks"
    run = "../runs/tiny/t1"
    first, second = _run_all_twice(notebooks / "04_embeddings_umap.ipynb",
                                   {"align_dir": f"{run}/02_align", "out": "../mine/04", "n_neighbors": 5,
                                    "device": "cpu"}, notebooks)
    retrieval = json.loads((project / "mine" / "04" / "retrieval.json").read_text())
    assert retrieval == json.loads((tiny_batch / "04_embeddings_umap" / "retrieval.json").read_text())
    assert _text_outputs(first) == _text_outputs(second)
    first, second = _run_all_twice(notebooks / "05_inspect_alignment.ipynb",
                                   {"align_dir": f"{run}/02_align", "out": "../mine/05", "splits": ["test"],
                                    "n_snapshots": 1, "ig_steps": 4, "device": "cpu"}, notebooks)
    assert _text_outputs(first) == _text_outputs(second) and "1 snapshots" in "".join(_text_outputs(second))
    assert sorted(p.name for p in (project / "mine" / "05").iterdir()) == \
        sorted(p.name for p in (tiny_batch / "05_inspect_alignment").iterdir())


def test_run_configs_store_paths_relative_to_the_run_and_resolve_after_a_move(tiny_batch, tmp_path):
    from medcam_lab.explain import aligner_config

    stored = json.loads((tiny_batch / "02_align" / "config.json").read_text())
    assert stored["cohort"] == os.path.join("..", "01_prepare_cohort") and stored["out"] == "."
    assert stored["weights"] == os.path.join("..", "..", "..", "..", "weights", "encoder.pt")
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_batch.parents[2], moved, ignore=shutil.ignore_patterns("*.npy", "*.ipynb"))
    cfg = aligner_config(moved / "runs" / "tiny" / "t1" / "02_align")
    assert Path(cfg.cohort) == moved / "runs" / "tiny" / "t1" / "01_prepare_cohort"
    assert Path(cfg.weights) == moved / "weights" / "encoder.pt" and Path(cfg.weights).is_file()


def test_opening_and_saving_an_unexecuted_notebook_changes_no_byte(tmp_path):
    """What JupyterLab does on open and save (jupytext's contents manager, both files of each pair), and the
    kernel it starts: the committed kernelspec must equal the installed one, or Lab marks the notebook
    modified."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupytext import TextFileContentsManager

    for path in NB_DIR.glob("0*"):
        shutil.copy(path, tmp_path / path.name)
    manager = TextFileContentsManager(root_dir=str(tmp_path))
    installed = KernelSpecManager().get_kernel_spec("python3")
    makefile = (ROOT / "Makefile").read_text()
    for name in NOTEBOOKS:
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        manager.save(manager.get(f"{name}.ipynb"), f"{name}.ipynb")
        after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        assert [k for k in after if before.get(k) != after[k]] == [], f"{name}: saving changed these files"
        spec = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4).metadata["kernelspec"]
        assert f'--name {spec["name"]} --display-name "{spec["display_name"]}"' in makefile
        if installed.resource_dir.startswith(os.path.realpath(sys.prefix)):  # the project's own kernel
            assert (spec["display_name"], spec["language"]) == (installed.display_name, installed.language)
