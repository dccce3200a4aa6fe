"""``medcam-lab batch``: run the numbered notebooks as one parameterized batch job per dataset (papermill).

Parameters come from ``params/common.yaml``, then ``params/<dataset>.yaml``, then ``-p key=value`` (later
wins). A params file maps a notebook name (``02_align``) to its parameters; the section ``all`` applies to
every notebook that declares the name, and ``stages`` lists the dataset's default notebooks. String values
may use ``{run_dir}``, ``{run_id}``, ``{dataset}`` and ``{notebook}``. Every key must be a parameter the
notebook declares (papermill itself would inject an unknown one silently).

Each run writes ``runs/<dataset>/<run_id>/``: the executed notebooks, each notebook's artifacts (under its
``out``), ``config.json`` (the batch's own options), ``parameters.json`` (the resolved parameters of every
notebook), ``run_info.json`` (git revision, package versions), ``status.json`` (each stage's state and
seconds) and, when the batch ends (finished or failed), ``batch_summary.md``/``.json``: each stage's status, time,
output notebook and key result (:mod:`medcam_lab.batch_summary`). The kernel is named
explicitly (``--kernel``, default ``python3``). A failing cell stops the batch with the notebook and cell
named; the partial output notebook is kept. Notebooks run with the current directory as working directory,
so relative paths in the params files are relative to where ``medcam-lab batch`` is started.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from medcam_lab.batch_summary import write_batch_summary
from medcam_lab.config import (
    PATH_FIELDS,
    AlignConfig,
    BatchConfig,
    EmbeddingsConfig,
    EvaluateConfig,
    FinetuneConfig,
    InspectConfig,
    PrepareConfig,
)
from medcam_lab.runinfo import write_json_atomic, write_run_info

log = logging.getLogger("medcam_lab")

NOTEBOOKS = ("01_prepare_cohort", "02_align", "03_finetune_evaluate", "04_embeddings_umap", "05_inspect_alignment")
NOTEBOOK_PACKAGES = ("papermill", "nbclient", "ipykernel", "jupyterlab", "ipywidgets", "jupyterlab_widgets",
                     "jupytext", "captum", "umap-learn", "plotly")
RESERVED = ("all", "stages")
#: The config classes each notebook's parameters fill (its first code cell builds them).
NOTEBOOK_CONFIGS: dict[str, tuple[type, ...]] = {
    "01_prepare_cohort": (PrepareConfig,),
    "02_align": (AlignConfig,),
    "03_finetune_evaluate": (FinetuneConfig, EvaluateConfig),
    "04_embeddings_umap": (EmbeddingsConfig,),
    "05_inspect_alignment": (InspectConfig,),
}
#: What makes each input, named in the message when an input is missing.
MAKES_INPUT = {
    "mimic_cxr": "your MIMIC-CXR-JPG copy from PhysioNet; for the generated cohort run `make demo` first",
    "mimic_iv": "your MIMIC-IV copy from PhysioNet; for the generated cohort run `make demo` first",
    "cohort": "`medcam-lab prepare` or stage 01 of a batch",
    "data": "`medcam-lab prepare` or stage 01 (dataset cohort), `medcam-lab prepare-images` (dataset images)",
    "weights": "`make demo` (demo_out/pretrain/encoder.pt), `medcam-lab pretrain`, stage 02 (the adapted backbone) "
               "or a published checkpoint file",
    "align_dir": "stage 02 of a batch or `medcam-lab align`",
    "predictions": "`medcam-lab finetune`",
}


class BatchError(RuntimeError):
    """A notebook of the batch failed; the message names the notebook, the cell and the kept output.

    Attributes:
        run_dir: the run folder (its ``batch_summary.md`` says what the stages before the failure wrote).
    """

    def __init__(self, message: str, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


def notebook_versions() -> dict[str, str | None]:
    """Versions of the notebook stack (kernel, papermill, widgets)."""
    out: dict[str, str | None] = {}
    for name in NOTEBOOK_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def resolve_stage(name: str) -> str:
    """``"2"``, ``"02"`` or ``"02_align"`` → ``"02_align"``."""
    for nb in NOTEBOOKS:
        if name == nb or (name.isdigit() and int(name) == int(nb[:2])):
            return nb
    raise ValueError(f"unknown stage {name!r}; stages are {list(NOTEBOOKS)} (or their numbers)")


def read_params_file(path: Path) -> dict[str, Any]:
    """One params file: a mapping of sections; unknown sections raise with the file named."""
    if not path.exists():
        raise FileNotFoundError(f"{path} missing (one params file per dataset: params/<dataset>.yaml)")
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(content).__name__}")
    for key, value in content.items():
        if key not in RESERVED and key not in NOTEBOOKS:
            raise KeyError(f"{path}: unknown section {key!r}; sections are {list(RESERVED) + list(NOTEBOOKS)}")
        if key != "stages" and not isinstance(value, dict):
            raise ValueError(f"{path}: section {key!r} must be a mapping of parameters")
    return content


def parse_overrides(items: tuple[str, ...]) -> list[tuple[str | None, str, Any]]:
    """``key=value`` or ``notebook.key=value`` (value parsed as YAML) → ``(notebook or None, key, value)``."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-p expects key=value, got {item!r}")
        notebook, dot, name = key.rpartition(".")
        out.append((resolve_stage(notebook) if dot else None, name, yaml.safe_load(raw)))
    return out


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its ``parameters`` cell), via papermill's inspection."""
    import papermill as pm

    return pm.inspect_notebook(str(notebook))


def _format(value: Any, context: dict[str, str]) -> Any:
    if isinstance(value, str):
        try:
            return value.format(**context)
        except KeyError as exc:
            raise KeyError(f"parameter value {value!r} uses {{{exc.args[0]}}}; available: {sorted(context)}") from None
    if isinstance(value, list):
        return [_format(v, context) for v in value]
    return value


def resolve_parameters(cfg: BatchConfig, run_dir: Path, run_id: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The notebooks to run and each one's parameters (files merged, overrides applied, placeholders filled).

    Raises:
        KeyError: a parameter a notebook does not declare (file or ``-p`` named).
    """
    params_dir, notebooks_dir = Path(cfg.params_dir), Path(cfg.notebooks_dir)
    files = [params_dir / "common.yaml", params_dir / f"{cfg.dataset}.yaml"]
    contents = [(f, read_params_file(f)) for f in files]
    stages = list(cfg.stages) or next((c["stages"] for _, c in reversed(contents) if "stages" in c), list(NOTEBOOKS))
    stages = [resolve_stage(str(s)) for s in stages]
    declared = {nb: declared_parameters(notebooks_dir / f"{nb}.ipynb") for nb in NOTEBOOKS}
    resolved: dict[str, dict[str, Any]] = {nb: {} for nb in stages}
    for path, content in contents:
        for name, value in content.get("all", {}).items():
            if not any(name in d for d in declared.values()):
                raise KeyError(f"{path}: section 'all' sets {name!r}, which no notebook declares")
            targets = [nb for nb in stages if name in declared[nb]]
            for nb in targets:
                resolved[nb][name] = value
        for nb in stages:
            for name, value in content.get(nb, {}).items():
                if name not in declared[nb]:
                    raise KeyError(f"{path}: section {nb!r} sets {name!r}, which notebook {nb} does not declare; "
                                   f"it takes {sorted(declared[nb])}")
                resolved[nb][name] = value
    for notebook, name, value in parse_overrides(cfg.parameters):
        targets = [notebook] if notebook else [nb for nb in stages if name in declared[nb]]
        if not targets or any(t not in stages or name not in declared[t] for t in targets):
            raise KeyError(f"-p {name}: no selected notebook ({', '.join(targets or stages)}) declares {name!r}")
        for nb in targets:
            resolved[nb][name] = value
    for nb in stages:
        context = {"run_dir": str(run_dir), "run_id": run_id, "dataset": cfg.dataset, "notebook": nb}
        resolved[nb] = {k: _format(v, context) for k, v in resolved[nb].items()}
    return stages, resolved


class BatchCheckError(ValueError):
    """Parameters that would fail inside a kernel: every problem found, one per line."""


def _producer(path: str, run_dir: Path) -> str | None:
    """The notebook of this run whose output folder holds ``path`` (``None`` outside the run)."""
    try:
        first = Path(path).resolve().relative_to(run_dir.resolve()).parts[:1]
    except ValueError:
        return None
    return first[0] if first and first[0] in NOTEBOOKS else None


def check_parameters(stages: list[str], resolved: dict[str, dict[str, Any]], run_dir: Path) -> None:
    """Check every selected notebook's parameters before any kernel starts: names and types (the configs the
    notebook builds), input paths (present, or written by an earlier stage of this batch) and checkpoints
    (readable and matching the encoder).

    Raises:
        BatchCheckError: listing every problem, each with the notebook, the parameter and what makes a missing
            input.
    """
    from medcam_lab.models import build_image_encoder
    from medcam_lab.notebook_params import configs_from_parameters

    problems: list[str] = []
    for position, nb in enumerate(stages):
        params = resolved[nb]
        try:
            configs = configs_from_parameters(params, *NOTEBOOK_CONFIGS[nb], notebook=nb)
        except (KeyError, TypeError) as exc:
            problems.append(str(exc))
            continue
        encoder = getattr(configs[0], "encoder", None)
        produced_here = set()
        for name, value in params.items():
            if name not in PATH_FIELDS or name == "out" or not isinstance(value, str) or not value:
                continue
            producer = _producer(value, run_dir)
            if producer is not None:
                produced_here.add(name)
                if producer not in stages[:position]:
                    problems.append(f"{nb}: {name}={value} is written by stage {producer}, which this batch does not "
                                    f"run before {nb}: add it to --stages or point -p {nb[:2]}.{name} at an earlier "
                                    f"run")
            elif not Path(value).exists():
                problems.append(f"{nb}: {name}={value} does not exist (relative paths are taken from {Path.cwd()}); "
                                f"it is made by {MAKES_INPUT.get(name, 'an earlier stage')}")
        weights = params.get("weights", "")
        if weights and encoder and "weights" not in produced_here and Path(weights).is_file():
            try:
                build_image_encoder(encoder, weights)
            except Exception as exc:  # noqa: BLE001 - any loading failure is reported before the batch starts
                problems.append(f"{nb}: weights: {exc}")
    if problems:
        raise BatchCheckError("the batch did not start; fix these parameters first:\n  - " + "\n  - ".join(problems))


def run_batch(cfg: BatchConfig) -> Path:
    """Run the batch; returns the run directory, which ends with ``batch_summary.md`` (also when a notebook fails).

    Raises:
        BatchError: a notebook failed (the summary is written first).
    """
    if not cfg.dataset:
        raise ValueError("--dataset is required (the name of a params/<dataset>.yaml file)")
    run_id = cfg.run_id or _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.runs_dir) / cfg.dataset / run_id
    if run_dir.exists() and any(run_dir.glob("*.ipynb")):
        raise FileExistsError(f"{run_dir} already holds a run; choose another --run-id")
    stages, resolved = resolve_parameters(cfg, run_dir, run_id)
    check_parameters(stages, resolved, run_dir)
    write_run_info(run_dir, "batch", cfg, notebook_versions=notebook_versions(), kernel=cfg.kernel, stages=stages)
    write_json_atomic(run_dir / "parameters.json", resolved)
    status: dict[str, Any] = {"run_dir": str(run_dir), "stages": {nb: "pending" for nb in stages}, "seconds": {}}
    write_json_atomic(run_dir / "status.json", status)
    try:
        _run_stages(cfg, stages, resolved, run_dir, status)
    finally:
        write_batch_summary(run_dir)
    return run_dir


def _run_stages(cfg: BatchConfig, stages: list[str], resolved: dict[str, dict[str, Any]], run_dir: Path,
                status: dict[str, Any]) -> None:
    """Execute the stages in order, recording each one's state and seconds in ``status.json``."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    for nb in stages:
        output = run_dir / f"{nb}.ipynb"
        log.info("== %s → %s", nb, output)
        status["stages"][nb] = "running"
        write_json_atomic(run_dir / "status.json", status)
        started = time.monotonic()
        try:
            pm.execute_notebook(
                str(Path(cfg.notebooks_dir) / f"{nb}.ipynb"), str(output), parameters=resolved[nb],
                kernel_name=cfg.kernel, cwd=str(Path.cwd()), log_output=cfg.log_output, progress_bar=False,
                execution_timeout=cfg.execution_timeout or None, request_save_on_cell_execute=True,
            )
        except pm.PapermillExecutionError as exc:
            status["seconds"][nb] = round(time.monotonic() - started, 1)
            status["stages"][nb] = "failed"
            status["error"] = {"notebook": nb, "cell_index": exc.cell_index, "execution_count": exc.exec_count,
                               "error": f"{exc.ename}: {exc.evalue}", "output": str(output)}
            write_json_atomic(run_dir / "status.json", status)
            raise BatchError(
                f"notebook {nb} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
                f"{exc.ename}: {exc.evalue}\npartial output notebook kept: {output}", run_dir
            ) from None
        except DeadKernelError as exc:
            status["seconds"][nb] = round(time.monotonic() - started, 1)
            status["stages"][nb] = "kernel died"
            status["error"] = {"notebook": nb, "error": str(exc), "output": str(output)}
            write_json_atomic(run_dir / "status.json", status)
            raise BatchError(f"notebook {nb}: the kernel died (out of memory or killed): {exc}\n"
                             f"partial output notebook kept: {output}", run_dir) from None
        status["seconds"][nb] = round(time.monotonic() - started, 1)
        status["stages"][nb] = "done"
        write_json_atomic(run_dir / "status.json", status)
