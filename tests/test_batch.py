"""``medcam-lab batch``: parameter resolution (files, sections, -p, placeholders), refusals before any kernel
starts, and a failing cell stopping the batch with the notebook and cell named and the partial notebook kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from medcam_lab.batch import (
    NOTEBOOKS,
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
    assert status["seconds"]["02_align"] > 0 and "03_finetune_evaluate" not in status["seconds"]
    assert not (run / "03_finetune_evaluate.ipynb").exists()
    summary = (run / "batch_summary.md").read_text()
    assert "- 02_align: failed: FileNotFoundError" in summary and "- 03_finetune_evaluate: not run" in summary
    # the command line says the same and exits non-zero; the same run id is refused afterwards
    argv = ["batch", "--dataset", "x", "--stages", "02", "-p", "device=cpu", "--run-id", "bad2", "--params-dir", str(d),
            "--notebooks-dir", str(ROOT / "notebooks"), "--runs-dir", str(runs)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    printed = capsys.readouterr()
    assert "notebook 02_align failed in cell" in printed.err
    assert "0 of 1 stage(s) done." in printed.out and "- 02_align: failed: FileNotFoundError" in printed.out
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


def _fake_run(tmp_path: Path, seeds: list[int] | None = None) -> Path:
    """A finished batch folder with the files each stage writes (values typed in, no kernel)."""
    run = tmp_path / "runs" / "demo" / "r1"
    outs = {nb: run / nb for nb in NOTEBOOKS}
    for nb, out in outs.items():
        out.mkdir(parents=True)
        (run / f"{nb}.ipynb").write_text("{}")
    (run / "status.json").write_text(json.dumps({
        "run_dir": str(run), "stages": {nb: "done" for nb in NOTEBOOKS},
        "seconds": {"01_prepare_cohort": 72.4, "02_align": 3725.0, "03_finetune_evaluate": 9.96,
                    "04_embeddings_umap": 60.0, "05_inspect_alignment": 0.5}}))
    params = {nb: {"out": str(out)} for nb, out in outs.items()}
    params["03_finetune_evaluate"]["seeds"] = seeds or []
    (run / "parameters.json").write_text(json.dumps(params))
    (outs["01_prepare_cohort"] / "report.json").write_text(json.dumps({
        "steps": [{"step": "ICU stays in icustays", "count": 877},
                  {"step": "pairs in train", "count": 900, "patients": 401},
                  {"step": "pairs in val", "count": 296, "patients": 134},
                  {"step": "pairs in test", "count": 1304, "patients": 133}],
        "ehr": {"compat": "clean", "n_features": 60}}))
    align = outs["02_align"]
    (align / "selected.json").write_text(json.dumps({"keep_best": True, "best_epoch": 2, "best_val_loss": 5.54456,
                                                     "epochs_run": 3}))
    (align / "history.json").write_text(json.dumps([
        {"epoch": e, "val_loss": 6.0 - e / 10, "val_retrieval_top1": e / 100, "val_retrieval_top5": e / 20}
        for e in (1, 2, 3)]))
    detail = outs["03_finetune_evaluate"] / (f"seed_{seeds[0]}" if seeds else "")
    (detail / "evaluation").mkdir(parents=True)
    metric = {"point": 0.89980, "low": 0.88317, "high": 0.91554, "skipped_labels": [], "confidence": 0.95}
    (detail / "evaluation" / "metrics.json").write_text(json.dumps({
        "n_rows": 304, "auroc": metric, "auprc": {**metric, "point": 0.5, "low": 0.4, "high": 0.6,
                                                  "skipped_labels": ["Fracture"]}}))
    (detail / "finetune_summary.json").write_text(json.dumps({"selected": {"lr": 0.01, "best_val_auroc": 0.8962}}))
    if seeds:
        pooled = {"mean": 0.81, "sd": 0.02, "low": 0.78, "high": 0.84, "confidence": 0.95}
        (outs["03_finetune_evaluate"] / "seeds_metrics.json").write_text(json.dumps(
            {"auroc": {"a": pooled}, "auprc": {"a": {**pooled, "mean": 0.41}}}))
    (outs["04_embeddings_umap"] / "retrieval.json").write_text(json.dumps({
        "split": "test", "before": {"top1": 0.01, "top5": 0.02, "n": 304},
        "after": {"top1": 0.1, "top5": 0.25, "n": 304, "chance_top1": 1 / 304, "chance_top5": 5 / 304}}))
    for i in range(3):
        (outs["05_inspect_alignment"] / f"test_{i:03d}_subject_1_attention.html").write_text("<html/>")
    return run


def test_the_batch_summary_reads_each_stages_key_result_from_its_files(tmp_path):
    from medcam_lab.batch_summary import write_batch_summary

    run = _fake_run(tmp_path)
    text = write_batch_summary(run)
    assert (run / "batch_summary.md").read_text() == text
    summary = json.loads((run / "batch_summary.json").read_text())
    rows = {s["stage"]: s for s in summary["stages"]}
    assert list(rows) == list(NOTEBOOKS) and summary["stages_done"] == 5
    assert [rows[nb]["status"] for nb in NOTEBOOKS] == ["done"] * 5
    assert rows["02_align"]["notebook"] == str(run / "02_align.ipynb")
    assert rows["01_prepare_cohort"]["result"] == ("image–EHR pairs train 900 / val 296 / test 1,304 "
                                                   "(patients 401 / 134 / 133); 60 EHR features (clean mode)")
    assert rows["02_align"]["result"] == ("best epoch 2 of 3 kept (validation loss 5.5446); validation retrieval "
                                          "top-1 0.020, top-5 0.100 at epoch 2")
    assert rows["03_finetune_evaluate"]["result"] == (
        "304 test images: macro AUROC 0.8998 (95% CI 0.8832–0.9155); macro AUPRC 0.5000 (95% CI 0.4000–0.6000), "
        "1 label(s) skipped; lr 0.01 chosen (validation AUROC 0.8962)")
    assert rows["04_embeddings_umap"]["result"] == (
        "image → EHR retrieval on test (304 images): top-1 0.010 → 0.100, top-5 0.020 → 0.250 before → after "
        "alignment (chance 0.003 / 0.016)")
    assert rows["05_inspect_alignment"]["result"].startswith("3 snapshot(s)")
    for nb, shown in zip(NOTEBOOKS, ("1 min 12 s", "1 h 02 min", "10.0 s", "1 min 00 s", "0.5 s")):
        assert f"| {nb}" in text and shown in next(line for line in text.splitlines() if line.startswith(f"| {nb}"))
        assert f"- {nb}: {rows[nb]['result']}" in text
    assert len(text.splitlines()) < 25  # one screen


def test_the_batch_summary_names_a_missing_file_and_a_failed_stage_instead_of_stopping(tmp_path):
    from medcam_lab.batch_summary import summarize_batch

    run = _fake_run(tmp_path)
    (run / "04_embeddings_umap" / "retrieval.json").unlink()
    (run / "02_align" / "selected.json").write_text("{not json")
    status = json.loads((run / "status.json").read_text())
    status["stages"]["05_inspect_alignment"] = "failed"
    status["error"] = {"notebook": "05_inspect_alignment", "error": "ValueError: bad k"}
    (run / "status.json").write_text(json.dumps(status))
    rows = {s["stage"]: s for s in summarize_batch(run)["stages"]}
    assert rows["04_embeddings_umap"]["result"] == f"not found: {run / '04_embeddings_umap' / 'retrieval.json'}"
    assert rows["02_align"]["result"].startswith(f"unreadable: {run / '02_align' / 'selected.json'}")
    assert rows["05_inspect_alignment"]["result"] == "failed: ValueError: bad k"
    status["stages"]["05_inspect_alignment"] = "pending"
    del status["error"], status["seconds"]["05_inspect_alignment"]
    (run / "status.json").write_text(json.dumps(status))
    (run / "05_inspect_alignment.ipynb").unlink()
    row = summarize_batch(run)["stages"][-1]
    assert (row["result"], row["seconds"], row["notebook"]) == ("not run", None, None)
    status["stages"]["05_inspect_alignment"] = "running"  # interrupted (Ctrl-C) during the stage
    (run / "status.json").write_text(json.dumps(status))
    assert summarize_batch(run)["stages"][-1]["result"] == "stopped while running"


def test_the_batch_summary_of_seed_repeats_gives_the_pooled_result_then_the_first_seed(tmp_path):
    from medcam_lab.batch_summary import summarize_batch

    run = _fake_run(tmp_path, seeds=[1, 2])
    result = summarize_batch(run)["stages"][2]["result"]
    assert result.startswith("macro AUROC over seeds [1, 2] mean 0.8100 (sd 0.0200) (95% CI 0.7800–0.8400); "
                             "macro AUPRC over seeds [1, 2] mean 0.4100 (sd 0.0200) (95% CI 0.7800–0.8400); "
                             "seed 1: 304 test images: macro AUROC 0.8998")
