"""``medcam-lab reproduce --suite paper``: every row of the paper's Tables 2–4 (and the ablations) that the
data present allow, fine-tuned and evaluated with one protocol (``spec/method.md`` §5), in one command.

Rows (``MODELS``):
- ``supervised_resnet``: the ResNet from random init, fine-tuned (supervised baseline).
- ``image_only``: the image-pretrained encoder MedCAM starts from, fine-tuned (``--weights image_only=...``;
  else ``<data-root>/pretrain/encoder.pt`` from ``medcam-lab demo``; else BarlowTwins-CXR's file if given;
  else the Barlow Twins stand-in is pretrained here).
- ``barlowtwins_cxr``, ``eva_x_tiny``, ``eva_x_small``: published image-only encoders (need ``--weights``).
- ``medmod_infonce``, ``medmod_vicreg``, ``medmod_align``: MedMod concurrent image–EHR pretraining.
- ``medcam``: the image-only encoder aligned with the EHR (global + local losses), then fine-tuned.
- ``medcam_global_only``, ``medcam_local_only``, ``medcam_k<k>``, ``medcam_frozen``: ablations (AlignConfig
  ``lambda_local=0``, ``lambda_global=0``, ``k``, ``backbone_mode="frozen"``).
- ``convirt``, ``gloria``, ``medclip``, ``mgca``: image encoders exported from image-text models (need
  ``--weights``).

Datasets: ``mimic`` (a prepared cohort); ``nih``, ``vindr`` and ``chexpert`` (a ``prepare-images`` directory,
or the raw root → prepared here through the dataset classes: NIH and VinDr BenchX split, VinDr union of
radiologists; CheXpert official train, official test as val, official valid as test, U-zeros, frontal AP/PA).
Anything that cannot run is a row that says why. Outputs under ``out``:
``tables/*.{md,csv,json}``, ``report.md``, ``results.json`` (numbers), one folder per model and dataset.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medcam_lab.config import (
    AlignConfig,
    EvaluateConfig,
    FinetuneConfig,
    MedModConfig,
    PretrainConfig,
    ReproduceConfig,
    config_to_dict,
)
from medcam_lab.paper_tables import build_tables, to_markdown, write_tables
from medcam_lab.presets import MEDMOD_ALIGN_OBJECTIVE, Preset, get_preset, image_cache_size_for
from medcam_lab.runinfo import write_json_atomic, write_run_info
from medcam_lab.viz.label_efficiency import fraction_label, save_label_efficiency_figure

log = logging.getLogger("medcam_lab")

EXTERNAL = {"barlowtwins_cxr": "barlowtwins_cxr", "eva_x_tiny": "eva_x_tiny", "eva_x_small": "eva_x_small",
            "convirt": "convirt_resnet50", "gloria": "gloria_resnet50", "medclip": "medclip_resnet50",
            "mgca": "mgca_resnet50"}
BASE_MODELS = {
    "supervised_resnet": "Supervised ResNet (random init)",
    "image_only": "Image-only pretrained (BarlowTwins-CXR or its stand-in)",
    "barlowtwins_cxr": "BarlowTwins-CXR (image-only)",
    "eva_x_tiny": "EVA-X-Ti (image-only)",
    "eva_x_small": "EVA-X-S (image-only)",
    "medmod_infonce": "MedMod cross-modal InfoNCE (ConVIRT/SimCLR-style)",
    "medmod_vicreg": "MedMod VICReg",
    "medmod_align": "MedMod ALIGN (mismatched pairs)",
    "medcam": "MedCAM",
    "medcam_global_only": "MedCAM, global loss only",
    "medcam_local_only": "MedCAM, local loss only",
    "medcam_frozen": "MedCAM, frozen backbone (sanity: equals image-only)",
    "convirt": "ConVIRT image encoder",
    "gloria": "GLoRIA image encoder",
    "medclip": "MedCLIP image encoder",
    "mgca": "MGCA image encoder",
}
DATASETS = ("mimic", "nih", "vindr", "chexpert")


def model_labels(cfg: ReproduceConfig) -> dict[str, str]:
    """All row names of the suite (the k sweep depends on ``cfg.k_sweep``) → display labels."""
    labels = dict(BASE_MODELS)
    for k in cfg.k_sweep:
        labels[f"medcam_k{k}"] = f"MedCAM, k = {k}"
    return labels


def model_groups(cfg: ReproduceConfig) -> dict[str, list[str]]:
    """The rows of each table of the suite: ``table2``, ``table3``, ``table4`` and ``ablations``."""
    image = ["supervised_resnet", "image_only", "barlowtwins_cxr", "eva_x_tiny", "eva_x_small"]
    medmod = ["medmod_infonce", "medmod_vicreg", "medmod_align"]
    return {
        "table2": [*image, *medmod, "medcam"],
        "table3": [*image, *medmod, "medcam"],
        "table4": ["convirt", "gloria", "medclip", "mgca", "medcam"],
        "ablations": ["medcam", "medcam_global_only", "medcam_local_only",
                      *[f"medcam_k{k}" for k in cfg.k_sweep], "medcam_frozen"],
    }


def parse_weights(entries: tuple[str, ...]) -> dict[str, str]:
    """``("name=path", ...)`` → {name: path}; unknown names and missing files are errors naming them."""
    known = {*EXTERNAL, "image_only"}
    out = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not path:
            raise ValueError(f"--weights entries are name=path, got {entry!r}")
        if name not in known:
            raise ValueError(f"--weights: unknown model {name!r}; known: {sorted(known)}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--weights {name}: file not found: {path}")
        out[name] = path
    return out


def locate_data(cfg: ReproduceConfig, out: Path,
                image_size: int) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Which datasets can run: {name: (prepared path, finetune dataset kind)} and {name: reason skipped}; raw
    image datasets are prepared at the cache size of model input ``image_size``."""
    from medcam_lab.data.cohort import PAIRS_FILE, is_cohort
    from medcam_lab.data.prepared_images import DATASET_FILE, is_prepared_images, read_dataset_info
    from medcam_lab.prepare.images import prepare_image_dataset

    root = Path(cfg.data_root)
    found: dict[str, tuple[str, str]] = {}
    skipped: dict[str, str] = {}
    cohort = root / "cohort" if is_cohort(root / "cohort") else root
    if is_cohort(cohort):
        found["mimic"] = (str(cohort), "cohort")
    else:
        skipped["mimic"] = f"no prepared cohort ({PAIRS_FILE}) under {root} or {root / 'cohort'}; run " \
                           "`medcam-lab prepare` first"
    for name in ("nih", "vindr", "chexpert"):
        raw = root / name
        if is_prepared_images(raw):  # already a `medcam-lab prepare-images` directory
            kind = read_dataset_info(raw).get("dataset")
            if kind == name:
                found[name] = (str(raw), "images")
            else:
                skipped[name] = f"{raw / DATASET_FILE} says dataset {kind!r}, not {name!r}"
        elif not raw.is_dir():
            skipped[name] = f"{raw} absent"
        elif cfg.datasets and name not in cfg.datasets:
            skipped[name] = "not requested (--datasets)"
        else:
            prepared = out / "data" / name
            try:
                if not is_prepared_images(prepared):
                    prepare_image_dataset(name, raw, prepared, image_cache_size_for(image_size))
            except (FileNotFoundError, ValueError) as err:
                skipped[name] = f"{raw} cannot be prepared: {err}"
            else:
                found[name] = (str(prepared), "images")
    if cfg.datasets:
        unknown = sorted(set(cfg.datasets) - set(DATASETS))
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; known: {list(DATASETS)}")
        for name in DATASETS:
            if name not in cfg.datasets:
                found.pop(name, None)
                skipped[name] = "not requested (--datasets)"
    return found, skipped


def _set(**flags) -> dict:
    """The flags given on the command line: unset ones (0, empty) leave the preset's value."""
    return {name: value for name, value in flags.items() if value not in (0, "", ())}


@dataclass(frozen=True)
class StageSettings:
    """The stage configs of every row, without their paths: ``cfg.preset`` with ``cfg``'s flags on top."""

    pretrain: PretrainConfig
    align: AlignConfig
    finetune: FinetuneConfig
    medmod: MedModConfig

    @classmethod
    def resolve(cls, cfg: ReproduceConfig) -> StageSettings:
        """The stage configs of ``cfg.preset`` with the flags set in ``cfg`` (and its seed and device) on top."""
        preset: Preset = get_preset(cfg.preset)
        common = _set(encoder=cfg.encoder, image_size=cfg.image_size, batch_size=cfg.batch_size) | {
            "seed": cfg.seed, "device": cfg.device}
        return cls(
            pretrain=preset.config(PretrainConfig, **common, **_set(epochs=cfg.pretrain_epochs)),
            align=preset.config(AlignConfig, **common, **_set(epochs=cfg.align_epochs)),
            finetune=preset.config(FinetuneConfig, **common, linear_probe=cfg.linear_probe,
                                   select_lr_once=cfg.select_lr_once,
                                   **_set(epochs=cfg.finetune_epochs, lr_grid=tuple(cfg.lr_grid))),
            medmod=preset.config(MedModConfig, **common, **_set(epochs=cfg.align_epochs)),
        )


class Runner:
    """Runs (and caches on disk) pretraining, alignment, fine-tuning and evaluation for the suite."""

    def __init__(self, cfg: ReproduceConfig, out: Path, data: dict[str, tuple[str, str]], weights: dict[str, str],
                 settings: StageSettings | None = None):
        self.cfg, self.out, self.data, self.weights = cfg, out, data, weights
        self.settings = settings or StageSettings.resolve(cfg)
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, fn, *args):
        t0 = time.perf_counter()
        log.info("== %s", name)
        value = fn(*args)
        self.timings[name] = round(time.perf_counter() - t0, 1)
        return value

    def image_only_weights(self) -> str:
        """The image-only pretrained encoder weights that alignment starts from.

        In order: ``--weights image_only``, the demo's ``pretrain/encoder.pt`` under the data root, the
        ``barlowtwins_cxr`` weights when the encoder is ``resnet50``, else an encoder pretrained here on the MIMIC
        cohort (once; reused after).

        Raises:
            LookupError: if there is none and no cohort to pretrain one on.
        """
        if "image_only" in self.weights:
            return self.weights["image_only"]
        demo = Path(self.cfg.data_root) / "pretrain" / "encoder.pt"
        if demo.is_file():
            return str(demo)
        if "barlowtwins_cxr" in self.weights and self.settings.align.encoder == "resnet50":
            return self.weights["barlowtwins_cxr"]
        if "mimic" not in self.data:
            raise LookupError("no image-pretrained encoder given (--weights image_only=PATH) and no cohort to "
                              "pretrain one on")
        path = self.out / "pretrain" / "encoder.pt"
        if not path.is_file():
            from medcam_lab.training.pretrain import pretrain_image_encoder

            pre = replace(self.settings.pretrain, cohort=self.data["mimic"][0], out=str(self.out / "pretrain"))
            self._timed("pretrain image_only", pretrain_image_encoder, pre)
        return str(path)

    def encoder_for(self, model: str) -> tuple[str, str]:
        """(registry encoder name, weights path or "") of a row; raises LookupError with the skip reason."""
        encoder = self.settings.align.encoder
        if model == "supervised_resnet":
            return encoder, ""
        if model == "image_only":
            return encoder, self.image_only_weights()
        if model in EXTERNAL:
            if model not in self.weights:
                raise LookupError("no weights file given (--weights " + model + "=PATH)")
            return EXTERNAL[model], self.weights[model]
        if "mimic" not in self.data:
            raise LookupError("needs the paired MIMIC cohort for pretraining/alignment")
        if model.startswith("medmod_"):
            return encoder, str(self._medmod(model.removeprefix("medmod_")))
        return encoder, str(self._align(model))

    def _medmod(self, objective: str) -> Path:
        from medcam_lab.training.medmod import pretrain_medmod

        path = self.out / "models" / f"medmod_{objective}" / "pretrain" / "pretrained_backbone.pt"
        if path.is_file():
            return path
        mm = replace(self.settings.medmod, cohort=self.data["mimic"][0], out=str(path.parent), objective=objective,
                     **(MEDMOD_ALIGN_OBJECTIVE if objective == "align" else {}))
        return self._timed(f"medmod {objective}", pretrain_medmod, mm)

    def align_config(self, model: str) -> AlignConfig:
        """The alignment config of a MedCAM row (``medcam``, an ablation or ``medcam_k<k>``).

        Raises:
            ValueError: for any other row name.
        """
        base = replace(self.settings.align, cohort=self.data["mimic"][0],
                       out=str(self.out / "models" / model / "align"), weights=self.image_only_weights())
        if model == "medcam":
            return base
        if model == "medcam_global_only":
            return replace(base, lambda_local=0.0)
        if model == "medcam_local_only":
            return replace(base, lambda_global=0.0)
        if model == "medcam_frozen":
            return replace(base, backbone_mode="frozen")
        if model.startswith("medcam_k"):
            return replace(base, k=int(model.removeprefix("medcam_k")))
        raise ValueError(f"unknown model {model!r}")

    def _align(self, model: str) -> Path:
        from medcam_lab.training.align import align

        ali = self.align_config(model)
        path = Path(ali.out) / "adapted_backbone.pt"
        return path if path.is_file() else self._timed(f"align {model}", align, ali)

    def finetune_config(self, model: str, dataset: str, encoder: str, weights: str, fraction: float) -> FinetuneConfig:
        """The fine-tuning config of one row on one dataset at one label fraction.

        The image size is the settings' where the row uses their encoder, else the encoder's own input size; with
        label fractions or seeds the run goes under ``fraction_<f>`` and trains every seed.
        """
        from medcam_lab.models import get_image_encoder_spec

        base = self.settings.finetune
        data, kind = self.data[dataset]
        image_size = base.image_size if encoder == base.encoder else get_image_encoder_spec(encoder).input_size
        out = self.out / "models" / model / dataset
        if self.label_efficiency:
            out = out / f"fraction_{fraction:g}"
        return replace(base, data=data, dataset=kind, out=str(out), encoder=encoder, weights=weights,
                       image_size=image_size, label_fraction=float(fraction),
                       seeds=self.seeds if self.label_efficiency else ())

    @property
    def label_efficiency(self) -> bool:
        """Runs per label fraction and seed (else one run per row, as the paper's tables)."""
        return tuple(self.cfg.label_fractions) != (1.0,) or bool(self.cfg.seeds)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The fine-tuning seeds: ``cfg.seeds``, or ``cfg.seed`` alone."""
        return tuple(self.cfg.seeds) or (self.cfg.seed,)

    def finetune_and_evaluate(self, model: str, dataset: str, encoder: str, weights: str,
                              fraction: float = 1.0) -> dict:
        """Fine-tune one row on one dataset and evaluate it on test; runs whose predictions exist are reused.
        Per label fraction and seed, only the runs: their pooled metrics come from :func:`run_reproduce`'s
        label-efficiency curve."""
        from medcam_lab.evaluation import evaluate_predictions
        from medcam_lab.training.finetune import finetune, finetune_seeds, seed_run_dir

        cfg = self.cfg
        ft = self.finetune_config(model, dataset, encoder, weights, fraction)
        protocol = {"protocol": "linear probe" if cfg.linear_probe else "fine-tune", "encoder": encoder,
                    "weights": weights}
        name = f"finetune {model} {dataset}" + (f" fraction {fraction:g}" if self.label_efficiency else "")
        if self.label_efficiency:
            done = {s: seed_run_dir(ft.out, s) / "predictions_test.parquet" for s in self.seeds}
            done = {s: p for s, p in done.items() if p.is_file()}
            paths = done if len(done) == len(self.seeds) else self._timed(name, finetune_seeds, ft, None, done)
            return {"predictions_by_seed": {str(s): str(p) for s, p in paths.items()}, "label_fraction": fraction,
                    **protocol}
        predictions = Path(ft.out) / "predictions_test.parquet"
        if not predictions.is_file():
            predictions = self._timed(name, finetune, ft)
        evaluation = EvaluateConfig(predictions=str(predictions), out=str(Path(ft.out) / "evaluation"),
                                    n_resamples=cfg.n_resamples, seed=cfg.seed)
        metrics = evaluate_predictions(evaluation)
        return {"predictions": str(predictions), "metrics": metrics, **protocol}


def _difference(cfg: ReproduceConfig, a: dict, b: dict) -> dict:
    """MedCAM (``a``) − a baseline (``b``) on one dataset: paired bootstrap over test rows (one run each), or
    pooled over seeds and rows (runs per seed)."""
    from medcam_lab.evaluation import compare_predictions, pool_seed_predictions

    if "skipped" in a or "skipped" in b:
        return {"skipped": b.get("skipped") or a.get("skipped")}
    if "predictions" in a:
        return compare_predictions(a["predictions"], b["predictions"], n_resamples=cfg.n_resamples, seed=cfg.seed)
    pooled = pool_seed_predictions({int(s): p for s, p in a["predictions_by_seed"].items()},
                                   {int(s): p for s, p in b["predictions_by_seed"].items()},
                                   n_resamples=cfg.n_resamples, seed=cfg.seed)
    return {m: pooled[m]["difference"] | {"n_resamples": pooled[m]["n_resamples"]} for m in pooled}


def run_reproduce(cfg: ReproduceConfig) -> dict:
    """Run the suite; returns the results dict (also written to ``results.json``)."""
    if cfg.suite != "paper":
        raise ValueError(f"unknown suite {cfg.suite!r}; known: ['paper']")
    out = Path(cfg.out)
    write_run_info(out, "reproduce", cfg)
    if not cfg.data_root:
        raise ValueError("--data-root is required: a `medcam-lab demo` output directory (run `make demo`), or "
                         "a folder holding a prepared cohort in cohort/ and raw nih/, vindr/, chexpert/")
    weights = parse_weights(cfg.weights)
    labels = model_labels(cfg)
    models = list(cfg.models) or list(labels)
    unknown = sorted(set(models) - set(labels))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {sorted(labels)}")
    if not cfg.label_fractions or any(not 0.0 < float(f) <= 1.0 for f in cfg.label_fractions):
        raise ValueError(f"--label-fractions must be shares in (0, 1], got {list(cfg.label_fractions)}")
    settings = StageSettings.resolve(cfg)
    data, data_skipped = locate_data(cfg, out, settings.align.image_size)
    runner = Runner(cfg, out, data, weights, settings)
    fractions = sorted({float(f) for f in cfg.label_fractions})
    by_fraction: dict[float, dict] = {f: {"runs": {}, "differences": {}} for f in fractions}
    t0 = time.perf_counter()
    for model in models:
        try:
            encoder, path = runner.encoder_for(model) if data else ("", "")
        except LookupError as reason:
            for f in fractions:
                by_fraction[f]["runs"][model] = {ds: {"skipped": str(reason)} for ds in DATASETS}
            continue
        for f in fractions:
            runs = by_fraction[f]["runs"].setdefault(model, {})
            for ds in DATASETS:
                if ds in data_skipped:
                    runs[ds] = {"skipped": data_skipped[ds], "scope": "dataset"}
                else:
                    runs[ds] = runner.finetune_and_evaluate(model, ds, encoder, path, f)
    curves = _label_efficiency_curves(cfg, by_fraction, data) if runner.label_efficiency else {}
    for f in fractions:
        runs = by_fraction[f]["runs"]
        if "medcam" in runs:
            for baseline in (m for m in models if m != "medcam"):
                for ds in data:
                    pooled = curves.get(ds, {}).get("difference", {}).get(str(f)) if baseline == "image_only" else None
                    by_fraction[f]["differences"].setdefault(baseline, {})[ds] = pooled or _difference(
                        cfg, runs["medcam"][ds], runs[baseline][ds])
    groups = {name: [m for m in members if m in by_fraction[fractions[0]]["runs"]]
              for name, members in model_groups(cfg).items()}
    results: dict[str, Any] = {"suite": cfg.suite, "models": labels, "groups": groups, "datasets": list(DATASETS),
                               "skipped_datasets": data_skipped}
    report_tables: dict[str, dict[str, dict]] = {}
    if runner.label_efficiency:
        results["label_efficiency"] = {"fractions": fractions, "seeds": list(runner.seeds), "by_fraction": {},
                                       "tables": {}}
        for f in fractions:
            part = results | by_fraction[f]
            tables = {name: table | {"title": f"{table['title']} — {fraction_label(f)} of the training labels, "
                                              f"mean over seeds {list(runner.seeds)}"}
                      for name, table in build_tables(part).items()}
            results["label_efficiency"]["by_fraction"][str(f)] = by_fraction[f]
            results["label_efficiency"]["tables"][str(f)] = write_tables(tables, out / "tables" / f"fraction_{f:g}")
            report_tables[fraction_label(f)] = tables
        results["label_efficiency"]["figure"] = save_label_efficiency_figure(
            curves, labels, out, title="label efficiency: macro AUROC vs share of training labels")
    else:
        results |= by_fraction[1.0]
        tables = build_tables(results)
        results["tables"] = write_tables(tables, out / "tables")
        report_tables[""] = tables
    results["timings_s"] = runner.timings | {"total": round(time.perf_counter() - t0, 1)}
    report = out / "report.md"
    results["settings"] = {stage: config_to_dict(getattr(settings, stage))
                           for stage in ("pretrain", "align", "finetune", "medmod")}
    report.write_text(render_report(cfg, settings, results, report_tables))
    results["report_path"] = str(report)
    write_json_atomic(out / "results.json", results)
    return results


def _label_efficiency_curves(cfg: ReproduceConfig, by_fraction: dict[float, dict], data: dict) -> dict[str, dict]:
    """Per dataset, :func:`medcam_lab.evaluation.label_efficiency_curve` of every row that ran (MedCAM −
    image-only paired); each run's ``metrics`` is filled from it, so the tables and the figure show one set of
    pooled numbers."""
    from medcam_lab.evaluation import label_efficiency_curve

    curves = {}
    for ds in data:
        runs = {f: {model: {int(s): p for s, p in per_ds[ds]["predictions_by_seed"].items()}
                    for model, per_ds in part["runs"].items() if "predictions_by_seed" in per_ds.get(ds, {})}
                for f, part in by_fraction.items()}
        curves[ds] = label_efficiency_curve(runs, compare=("medcam", "image_only"), n_resamples=cfg.n_resamples,
                                            seed=cfg.seed)
        for f, part in by_fraction.items():
            for model, per_ds in part["runs"].items():
                if model in runs[f]:
                    per_ds[ds]["metrics"] = curves[ds]["rows"][model][str(f)]
    return curves


def render_report(cfg: ReproduceConfig, settings: StageSettings, results: dict,
                  tables: dict[str, dict[str, dict]]) -> str:
    """``tables``: {heading: tables}; one group without heading, or one per label fraction."""
    protocol = "linear probe (frozen encoder)" if cfg.linear_probe else "fine-tuning (encoder + linear head)"
    ali, ft = settings.align, settings.finetune
    lines = [
        "# medcam-lab reproduce --suite paper",
        "",
        f"Data root `{cfg.data_root}`; preset `{cfg.preset}`; encoder `{ali.encoder}` at {ali.image_size} px for "
        f"the supervised, MedMod and MedCAM rows; alignment: projections {ali.proj_dim}, EHR hidden "
        f"{ali.ehr_hidden}, k = {ali.k}, τ = {ali.temperature:g}, lr {ali.lr:g}, {ali.epochs} epochs, batch "
        f"{ali.batch_size}; protocol: {protocol}, lr grid {list(ft.lr_grid)}, up to {ft.epochs} epochs "
        f"(validation from epoch {ft.eval_start} every {ft.eval_every}, patience {ft.patience}), best validation "
        "macro-AUROC kept, test touched once per row; "
        f"{cfg.n_resamples} bootstrap resamples (percentile 95% intervals), seed {cfg.seed}. "
        "Paper columns: published mean ± 95% half-width (spec/method.md §8); the image-only row stands in for "
        "BarlowTwins-CXR when no BarlowTwins-CXR file is given. On generated data these numbers show the "
        "pipeline, not the paper's results.",
        "",
        "## Datasets not run",
        "",
    ]
    lines += [f"- `{ds}`: {why}" for ds, why in results["skipped_datasets"].items()] or ["- none"]
    lines += [""]
    if "label_efficiency" in results:
        le = results["label_efficiency"]
        lines += ["## Label efficiency", "",
                  f"Every row fine-tuned on {', '.join(fraction_label(f) for f in le['fractions'])} of the training "
                  f"patients (nested, seeded subsets; validation and test whole), once per seed {le['seeds']}"
                  + (" (the first seed searches the lr grid, the others reuse its choice)" if cfg.select_lr_once
                     else "") + ". Cells: mean over seeds with the 95% interval over seeds and test rows; "
                  "differences paired by seed and row. Figure: `label_efficiency.png`, `label_efficiency.html`.", ""]
    for heading, group in tables.items():
        if heading:
            lines += [f"## {heading} of the training labels", ""]
        for table in group.values():
            lines += [to_markdown(table)]
    lines += ["Stage timings (s): " + ", ".join(f"{k} {v}" for k, v in results["timings_s"].items()), ""]
    return "\n".join(lines)
