"""``medcam-lab batch``: parameter resolution (files, sections, -p, placeholders), refusals before any kernel
starts, and a failing cell stopping the batch with the notebook and cell named and the partial notebook kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from medcam_lab.batch import (
    BatchCheckError,
    BatchError,
    parse_overrides,
    resolve_parameters,
    resolve_stage,
    run_batch,
)
from medcam_lab.cli import main
from medcam_lab.config import BatchConfig
from medcam_lab.notebook_params import NotebookParameterError, configs_from_parameters, parameters_since

ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path, text: str) -> Path:
    d = tmp_path / "params"
    d.mkdir(exist_ok=True)
    shutil.copy(ROOT / "params" / "common.yaml", d / "common.yaml")
    (d / "x.yaml").write_text(text)
    return d


def _cfg(params_dir, **kw):
    return BatchConfig(dataset="x", params_dir=str(params_dir), notebooks_dir=str(ROOT / "notebooks"), **kw)


def test_precedence_common_then_dataset_then_overrides(tmp_path):
    d = _params(tmp_path, "stages: ['02', '04']\nall:\n  seed: 5\n02_align:\n  epochs: 3\n  lr: 0.5\n")
    stages, p = resolve_parameters(_cfg(d, parameters=("lr=0.25", "02_align.k=4", "04.split=val")), tmp_path / "r",
                                   "r")
    assert stages == ["02_align", "04_embeddings_umap"]
    assert p["02_align"] == {"seed": 5, "device": "auto", "out": str(tmp_path / "r" / "02_align"), "epochs": 3,
                             "lr": 0.25, "k": 4}
    assert p["04_embeddings_umap"]["split"] == "val" and p["04_embeddings_umap"]["seed"] == 5
    stages, _ = resolve_parameters(_cfg(d, stages=("5",)), tmp_path / "r", "r")
    assert stages == ["05_inspect_alignment"]


def test_unknown_names_are_refused_before_any_kernel_starts(tmp_path):
    d = _params(tmp_path, "02_align:\n  epoch: 3\n")
    with pytest.raises(KeyError, match="'epoch'.*02_align"):
        resolve_parameters(_cfg(d, stages=("02",)), tmp_path / "r", "r")
    d = _params(tmp_path, "02_allign:\n  epochs: 3\n")
    with pytest.raises(KeyError, match="unknown section '02_allign'"):
        resolve_parameters(_cfg(d), tmp_path / "r", "r")
    d = _params(tmp_path, "all:\n  sed: 1\n")
    with pytest.raises(KeyError, match="'all' sets 'sed', which no notebook declares"):
        resolve_parameters(_cfg(d), tmp_path / "r", "r")
    d = _params(tmp_path, "stages: ['02']\n")
    with pytest.raises(KeyError, match="no selected notebook"):
        resolve_parameters(_cfg(d, parameters=("split=val",)), tmp_path / "r", "r")
    with pytest.raises(ValueError, match="unknown stage"):
        resolve_stage("07")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(("epochs",))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        resolve_parameters(BatchConfig(dataset="nope", params_dir=str(d)), tmp_path / "r", "r")
    assert parse_overrides(("02.lr_grid=[0.1, 0.01]",)) == [("02_align", "lr_grid", [0.1, 0.01])]


def test_notebook_parameter_validation_names_the_key():
    before = {"x"}
    ns = {"x": 1, "cohort": "c", "epochs": 2, "_i3": "ignored"}
    assert parameters_since(ns, before) == {"cohort": "c", "epochs": 2}
    from medcam_lab.config import AlignConfig, EvaluateConfig, FinetuneConfig

    with pytest.raises(NotebookParameterError, match=r"02_align: unknown parameter\(s\) \['epoch'\]"):
        configs_from_parameters({"epoch": 2}, AlignConfig, notebook="02_align")
    with pytest.raises(TypeError, match="'epochs' must be int"):
        configs_from_parameters({"epochs": "two"}, AlignConfig)
    ft, ev = configs_from_parameters({"seed": 4, "n_resamples": 9, "out": "o"}, FinetuneConfig, EvaluateConfig)
    assert (ft.seed, ev.seed, ev.n_resamples, ft.out) == (4, 4, 9, "o")


def test_a_failing_cell_stops_the_batch_naming_notebook_and_cell(tmp_path, capsys):
    not_a_cohort = tmp_path / "empty"
    not_a_cohort.mkdir()  # exists, so the check before the start passes; reading it fails in the kernel
    d = _params(tmp_path, f"stages: ['02', '03']\n02_align:\n  cohort: {not_a_cohort}\n  encoder: resnet_small\n"
                          f"03_finetune_evaluate:\n  data: {not_a_cohort}\n")
    runs = tmp_path / "runs"
    cfg = _cfg(d, parameters=("device=cpu",), run_id="bad", runs_dir=str(runs), log_output=False)
    with pytest.raises(BatchError, match=r"notebook 02_align failed in cell \d+ .*FileNotFoundError"):
        run_batch(cfg)
    run = runs / "x" / "bad"
    partial = nbformat.read(run / "02_align.ipynb", as_version=4)
    errors = [o for c in partial.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "FileNotFoundError"
    status = json.loads((run / "status.json").read_text())
    assert status["stages"] == {"02_align": "failed", "03_finetune_evaluate": "pending"}
    assert not (run / "03_finetune_evaluate.ipynb").exists()
    # the command line says the same and exits non-zero; the same run id is refused afterwards
    argv = ["batch", "--dataset", "x", "--stages", "02", "-p", "device=cpu", "--run-id", "bad2", "--params-dir", str(d),
            "--notebooks-dir", str(ROOT / "notebooks"), "--runs-dir", str(runs)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    assert "notebook 02_align failed in cell" in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        run_batch(cfg)


def test_parameters_are_found_again_when_the_notebook_runs_a_second_time():
    from medcam_lab.notebook_params import names_before_parameters

    namespace = {"Path": object}
    for _ in range(2):  # Run All twice in one kernel
        before = names_before_parameters(namespace)
        namespace.update(align_dir="runs/x/02_align", out="o")  # the parameters cell
        assert parameters_since(namespace, before) == {"align_dir": "runs/x/02_align", "out": "o"}
        namespace.update(cfg="built", out_dir="o")  # later cells


def test_the_batch_checks_every_notebook_before_any_kernel_starts(tmp_path, capsys):
    from medcam_lab.models import backbone_state_dict, build_image_encoder
    from medcam_lab.models.checkpoints import save_state_dict_atomic

    good = save_state_dict_atomic(backbone_state_dict(build_image_encoder("resnet_small")), tmp_path / "small.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(good.read_bytes()[:1000])
    d = _params(tmp_path, f"""stages: ['01', '02', '04']
01_prepare_cohort:
  mimic_cxr: demo_out_missing/data/mimic-cxr-jpg
  mimic_iv: {tmp_path}
02_align:
  cohort: "{{run_dir}}/01_prepare_cohort"
  encoder: resnet50
  weights: {good}
04_embeddings_umap:
  align_dir: "{{run_dir}}/02_align"
""")
    runs = tmp_path / "runs"
    with pytest.raises(BatchCheckError) as info:
        run_batch(_cfg(d, parameters=("01.seed=two",), run_id="r", runs_dir=str(runs)))
    message = str(info.value)
    assert "'seed' must be int" in message
    assert "02_align: weights: " in message and "pass --encoder resnet_small" in message
    assert not (runs / "x" / "r").exists()  # nothing started, nothing written
    with pytest.raises(BatchCheckError) as info:
        run_batch(_cfg(d, parameters=(f"02.weights={broken}", "02.encoder=resnet_small"), run_id="r",
                       runs_dir=str(runs)))
    message = str(info.value)
    assert "01_prepare_cohort: mimic_cxr=demo_out_missing/data/mimic-cxr-jpg does not exist" in message
    assert "run `make demo` first" in message and "broken.pt: not a readable weights file" in message
    with pytest.raises(BatchCheckError, match=r"04_embeddings_umap: align_dir=.*02_align is written by stage "
                                              r"02_align, which this batch does not run before"):
        run_batch(_cfg(d, stages=("04",), run_id="r", runs_dir=str(runs)))
    argv = ["batch", "--dataset", "x", "--stages", "04", "--run-id", "r", "--params-dir", str(d),
            "--notebooks-dir", str(ROOT / "notebooks"), "--runs-dir", str(runs)]
    with pytest.raises(SystemExit):
        main(argv)
    assert "the batch did not start" in capsys.readouterr().err
