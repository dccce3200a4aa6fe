"""``medcam-lab demo``: the whole MedCAM pipeline on the generated MIMIC-shaped cohort, on CPU.

synth → prepare (MIMIC cohort + NIH-layout OOD set) → image-only Barlow Twins pretraining (the stand-in
for BarlowTwins-CXR) → two arms fine-tuned and evaluated identically:

(a) **image-only**: the pretrained encoder fine-tuned directly;
(b) **MedCAM**: the same encoder aligned with the EHR (global + local losses), then fine-tuned.

Each arm is evaluated under two protocols: full fine-tuning (the paper's) and a linear probe on the frozen
encoder (which shows what alignment put into the representation itself), on the in-distribution test
split and on the OOD set, with bootstrap CIs and the paired-bootstrap CI of the difference. Label
efficiency: both arms fine-tuned on shares of the training labels (``label_fractions``) over ``seeds``, pooled
intervals, the paired difference and ``label_efficiency.{png,html}``.
Every run after pretraining uses one torch thread, and the runs go side by side, one per core
(:mod:`medcam_lab.demo_jobs`): their numbers do not depend on the machine's core count.
Writes ``results.json`` and ``report.md``. The generated
cohort proves the mechanism (every code path, and whether EHR alignment transfers planted information),
not the paper's numbers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from medcam_lab.config import (
    AlignConfig,
    DemoConfig,
    EvaluateConfig,
    FinetuneConfig,
    PrepareConfig,
    PretrainConfig,
)
from medcam_lab.demo_jobs import Job, run_jobs
from medcam_lab.prepare.image_cache import default_workers
from medcam_lab.presets import DEMO, image_cache_size_for, validation_start
from medcam_lab.runinfo import write_json_atomic, write_run_info

log = logging.getLogger("medcam_lab")

ARMS = {"image_only": "Image-only pretrained (Barlow Twins)", "medcam": "MedCAM-aligned"}
DATASETS = {"mimic": "MIMIC-shaped (in-distribution)", "nih": "NIH-shaped (out-of-distribution)"}
PROTOCOLS = {
    "finetune": "Fine-tuned (encoder + linear head, the paper's protocol)",
    "linear_probe": "Linear probe (encoder frozen: what the representation itself holds)",
}


def run_demo(cfg: DemoConfig) -> dict:
    """Run every stage under ``cfg.out``; returns the results dict (also in ``results.json``)."""
    from medcam_lab.evaluation import compare_predictions, evaluate_predictions
    from medcam_lab.prepare.cohort import prepare_cohort
    from medcam_lab.prepare.images import prepare_image_dataset
    from medcam_lab.synth import SynthConfig, generate_cohort
    from medcam_lab.training.align import align
    from medcam_lab.training.finetune import finetune
    from medcam_lab.training.pretrain import pretrain_image_encoder

    out = Path(cfg.out)
    write_run_info(out, "demo", cfg)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    def timed(name: str, fn, *args):
        t0 = time.perf_counter()
        log.info("== %s", name)
        value = fn(*args)
        timings[name] = round(time.perf_counter() - t0, 1)
        return value

    data = out / "data"
    synth_cfg = SynthConfig(n_patients=cfg.patients, seed=cfg.seed, n_ood_patients=max(40, round(0.5 * cfg.patients)),
                            visual_gain=cfg.visual_gain)
    timed("synth", generate_cohort, data, synth_cfg)
    cache = image_cache_size_for(cfg.image_size)
    prep = DEMO.config(PrepareConfig, mimic_cxr=str(data / "mimic-cxr-jpg"), mimic_iv=str(data / "mimic-iv"),
                       out=str(out / "cohort"), seed=cfg.seed, image_cache_size=cache)
    cohort_report = timed("prepare", prepare_cohort, prep)
    nih_report = timed("prepare_nih", lambda: prepare_image_dataset(  # the generated set ships official lists
        "nih", data / "nih", out / "nih", cache, split_source="official", seed=cfg.seed))

    encoder = {"encoder": cfg.encoder, "image_size": cfg.image_size, "seed": cfg.seed}
    pre = DEMO.config(PretrainConfig, cohort=prep.out, out=str(out / "pretrain"), epochs=cfg.pretrain_epochs,
                      **encoder)
    pretrained = timed("pretrain", pretrain_image_encoder, pre)
    ali = DEMO.config(AlignConfig, cohort=prep.out, out=str(out / "align"), weights=str(pretrained),
                      epochs=cfg.align_epochs, lr=cfg.align_lr, backbone_mode=cfg.align_backbone_mode, **encoder)

    # every run after pretraining: one torch thread each, side by side (medcam_lab.demo_jobs)
    sources = {"mimic": (prep.out, "cohort"), "nih": (str(out / "nih"), "images")}
    jobs = [Job("align", align, (ali,))]
    for protocol in PROTOCOLS:
        for ds, (path, kind) in sources.items():
            for arm in ARMS:
                def args(w, done, path=path, kind=kind, arm=arm, ds=ds, protocol=protocol):
                    return (_finetune_config(cfg, path, kind, out / protocol / arm / ds, w, protocol),)
                jobs.append(_arm_job(f"{protocol} {arm} {ds}", arm, finetune, str(pretrained), (), args))
    if cfg.label_fractions:
        jobs += label_efficiency_jobs(cfg, out, prep.out, str(pretrained))
    t0 = time.perf_counter()
    lanes = default_workers()
    runs, seconds = run_jobs(_by_priority(jobs), lanes)
    timings.update(seconds)
    timings[f"training runs ({lanes} side by side)"] = round(time.perf_counter() - t0, 1)

    results: dict = {"arms": ARMS, "datasets": DATASETS, "protocols": PROTOCOLS, "metrics": {}, "differences": {}}
    for protocol in PROTOCOLS:
        for ds in sources:
            predictions = {arm: runs[f"{protocol} {arm} {ds}"] for arm in ARMS}
            for arm in ARMS:
                ev = EvaluateConfig(predictions=str(predictions[arm]),
                                    out=str(Path(predictions[arm]).parent / "evaluation"),
                                    n_resamples=cfg.n_resamples, seed=cfg.seed)
                results["metrics"].setdefault(protocol, {}).setdefault(ds, {})[arm] = evaluate_predictions(ev)
            results["differences"].setdefault(protocol, {})[ds] = compare_predictions(
                predictions["medcam"], predictions["image_only"], n_resamples=cfg.n_resamples, seed=cfg.seed
            )
    if cfg.label_fractions:
        results["label_efficiency"] = label_efficiency(cfg, out, runs)
    timings["total"] = round(time.perf_counter() - t_start, 1)
    results["timings_s"] = timings
    results["cohort_counts"] = {s["step"]: s["count"] for s in cohort_report["steps"]}
    left_out = {f"left out: {reason}": entry["count"] for reason, entry in nih_report["skipped"].items()}
    results["nih_counts"] = {"images": nih_report["images"], **nih_report["per_split"], **left_out}
    report_path = out / "report.md"
    report_path.write_text(render_report(results, cfg))
    results["report_path"] = str(report_path)
    write_json_atomic(out / "results.json", results)
    return results


def _finetune_config(cfg: DemoConfig, data: str, kind: str, out: Path, weights: str, protocol: str,
                     **changes) -> FinetuneConfig:
    """The one fine-tuning protocol of the demo (both arms, both datasets, every label fraction): the ``demo``
    preset's, validation from two fifths of ``cfg.finetune_epochs`` on."""
    return DEMO.config(FinetuneConfig, data=data, dataset=kind, out=str(out), encoder=cfg.encoder, weights=weights,
                       image_size=cfg.image_size, lr_grid=cfg.lr_grid, linear_probe=protocol == "linear_probe",
                       epochs=cfg.finetune_epochs, eval_start=validation_start(cfg.finetune_epochs), seed=cfg.seed,
                       **changes)


def _arm_job(name: str, arm: str, fn, pretrained: str, after: tuple[str, ...], args) -> Job:
    """A run of one arm, ``fn(*args(weights, done))``: the image-only arm starts from ``pretrained``, MedCAM from
    alignment's result; ``done`` holds the results of the jobs named in ``after``."""
    if arm == "medcam":
        return Job(name, fn, after=("align", *after), prepare=lambda done: args(str(done["align"]), done))
    return Job(name, fn, after=after, prepare=lambda done: args(pretrained, done))


def _le_name(arm: str, fraction: float) -> str:
    return f"label efficiency {arm} {float(fraction):g}"


def label_efficiency_jobs(cfg: DemoConfig, out: Path, cohort: str, pretrained: str) -> list[Job]:
    """Both arms fine-tuned on each of ``cfg.label_fractions`` of the MIMIC-shaped training patients, once per
    seed of ``cfg.seeds``. The main table's run is reused for 100 % and ``cfg.seed`` when that is the first seed
    (it searched the lr grid, as the first seed of every fraction does)."""
    from medcam_lab.training.finetune import finetune_seeds

    seeds = tuple(cfg.seeds) or (cfg.seed,)
    jobs = []
    for fraction in cfg.label_fractions:
        for arm in ARMS:
            main = f"finetune {arm} mimic"
            reuse = float(fraction) == 1.0 and seeds[0] == cfg.seed

            def args(w, done, arm=arm, fraction=fraction, main=main, reuse=reuse):
                ft = _finetune_config(cfg, cohort, "cohort", out / "label_efficiency" / arm / f"fraction_{fraction:g}",
                                      w, "finetune", label_fraction=float(fraction), seeds=seeds, select_lr_once=True)
                return ft, None, ({cfg.seed: done[main]} if reuse else None)
            jobs.append(_arm_job(_le_name(arm, fraction), arm, finetune_seeds, pretrained, (main,) if reuse else (),
                                 args))
    return jobs


def _by_priority(jobs: list[Job]) -> list[Job]:
    """Longest chains first: alignment, the main MIMIC fine-tunings (MedCAM's first: it waits for alignment;
    the label-efficiency runs at 100 % wait for them), those runs, the NIH fine-tunings, the other
    label-efficiency runs, then the linear probes (a few seconds each)."""
    head = ["align", *(f"finetune {arm} mimic" for arm in ("medcam", "image_only")),
            *(_le_name(arm, 1.0) for arm in ("medcam", "image_only")),
            *(f"finetune {arm} nih" for arm in ("medcam", "image_only"))]
    rank = {name: i for i, name in enumerate(head)}
    later = [j for j in jobs if j.name not in rank]
    return sorted((j for j in jobs if j.name in rank), key=lambda j: rank[j.name]) + \
        sorted(later, key=lambda j: j.name.startswith("linear_probe"))


def label_efficiency(cfg: DemoConfig, out: Path, runs: dict) -> dict:
    """Macro AUROC/AUPRC of :func:`label_efficiency_jobs`' runs pooled over seeds and test rows, MedCAM −
    image-only paired by seed; the figure under ``out``."""
    from medcam_lab.evaluation import describe_label_efficiency, label_efficiency_curve
    from medcam_lab.viz.label_efficiency import save_label_efficiency_figure

    seeds = tuple(cfg.seeds) or (cfg.seed,)
    by_fraction = {float(f): {arm: runs[_le_name(arm, f)] for arm in ARMS} for f in cfg.label_fractions}
    curve = label_efficiency_curve(by_fraction, compare=("medcam", "image_only"), n_resamples=cfg.n_resamples,
                                   seed=cfg.seed)
    figure = save_label_efficiency_figure({DATASETS["mimic"]: curve}, ARMS, out,
                                          title="label efficiency: fine-tuned, MIMIC-shaped test split")
    return {"dataset": "mimic", "protocol": "finetune", "seeds": list(seeds), "curve": curve, "figure": figure,
            "runs": {str(f): {arm: {str(s): str(p) for s, p in by_seed.items()} for arm, by_seed in by_arm.items()}
                     for f, by_arm in by_fraction.items()},
            "summary": describe_label_efficiency(curve, ARMS)}


def _p_value(d: dict) -> str:
    """A bootstrap p of 0 only says p < 2/R (R resamples)."""
    return f"< {2 / d['n_resamples']:.3f}" if d["p_value"] == 0 else f"{d['p_value']:.3f}"


def _interval(r: dict) -> str:
    return f"{r['point']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


def render_report(results: dict, cfg: DemoConfig) -> str:
    """Markdown tables in the shape of the paper's Tables 2–3, with explicit 95% intervals."""
    lines = [
        "# medcam-lab demo report",
        "",
        "Generated MIMIC-shaped cohort (see `data_cards/synthetic.md`): these numbers show that the pipeline "
        "runs and whether EHR alignment transfers the planted information; they are not the paper's numbers.",
        "",
        f"Encoder `{cfg.encoder}` at {cfg.image_size} px; {cfg.patients} generated patients (visual gain "
        f"{cfg.visual_gain}); alignment: backbone mode `{cfg.align_backbone_mode}`, lr {cfg.align_lr:g}; "
        f"seed {cfg.seed}; {cfg.n_resamples} bootstrap resamples (percentile 95% intervals). Both arms start "
        "from the same image-only encoder and are fine-tuned and evaluated identically; the test splits are "
        "touched once per arm.",
    ]
    header = "| model | " + " | ".join(f"{DATASETS[d]} AUROC | {DATASETS[d]} AUPRC" for d in DATASETS) + " |"
    for protocol, title in PROTOCOLS.items():
        lines += ["", f"## {title}", "", header, "|---|" + "---|---|" * len(DATASETS)]
        for arm, label in ARMS.items():
            cells = []
            for ds in DATASETS:
                m = results["metrics"][protocol][ds][arm]
                cells += [_interval(m["auroc"]), _interval(m["auprc"])]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "Paired bootstrap, MedCAM − image-only (same resampled rows for both):", "",
                  "| dataset | ΔAUROC [95% CI] | p | ΔAUPRC [95% CI] | p |", "|---|---|---|---|---|"]
        for ds in DATASETS:
            d = results["differences"][protocol][ds]
            lines.append(
                f"| {DATASETS[ds]} | {_interval(d['auroc'])} | {_p_value(d['auroc'])} | "
                f"{_interval(d['auprc'])} | {_p_value(d['auprc'])} |"
            )
        skipped = {f"{ds}/{arm}": results["metrics"][protocol][ds][arm]["auroc"]["skipped_labels"]
                   for ds in DATASETS for arm in ARMS}
        skipped = {k: v for k, v in skipped.items() if v}
        if skipped:
            lines += ["", f"Labels skipped (one class in the test split): {skipped}"]
    if "label_efficiency" in results:
        lines += render_label_efficiency(results["label_efficiency"])
    lines += ["", "Stage timings (s; the runs after pretraining side by side, one thread each): "
              + ", ".join(f"{k} {v}" for k, v in results["timings_s"].items()), ""]
    return "\n".join(lines)


def render_label_efficiency(result: dict) -> list[str]:
    """Markdown of :func:`label_efficiency`: per fraction both arms and the paired difference, then the
    generated sentence and the figure files."""
    from medcam_lab.viz.label_efficiency import fraction_label

    curve = result["curve"]
    lines = ["", "## Label efficiency (fine-tuned, MIMIC-shaped test split)", "",
             f"Each arm fine-tuned on a share of the training patients (nested, seeded subsets; validation and "
             f"test whole), once per seed {result['seeds']}; the first seed searches the lr grid, the others reuse "
             "its choice. Mean over seeds; 95% intervals resample seeds and test rows; the difference is paired "
             "by seed and row.", "",
             "| training labels | " + " | ".join(f"{label} AUROC" for label in ARMS.values())
             + " | ΔAUROC MedCAM − image-only [95% CI] | p | AUROC per seed (image-only / MedCAM) |",
             "|---|" + "---|" * len(ARMS) + "---|---|---|"]
    for fraction in curve["fractions"]:
        key = str(float(fraction))
        cells = [_interval(curve["rows"][arm][key]["auroc"]) for arm in ARMS]
        d = curve["difference"][key]["auroc"]
        per_seed = " / ".join(", ".join(f"{v:.3f}" for v in curve["rows"][arm][key]["auroc"]["per_seed"].values())
                              for arm in ARMS)
        lines.append(f"| {fraction_label(fraction)} | " + " | ".join(cells)
                     + f" | {d['point']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] | {_p_value(d)} | {per_seed} |")
    lines += ["", result["summary"], "",
              f"Figure: `{Path(result['figure']['png']).name}` and `{Path(result['figure']['html']).name}`."]
    return lines
