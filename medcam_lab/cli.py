"""The ``medcam-lab`` command line: one subcommand per pipeline stage.

The flags of ``prepare``, ``pretrain``, ``align``, ``finetune``, ``evaluate`` and ``demo`` are generated
from the fields of their config dataclasses (``--image-size`` sets ``image_size``), so the CLI, the
notebooks' parameters and the ``config.json`` written by each run always use the same names. Each flag's help
is the field's description in the config's docstring (:mod:`medcam_lab.config_help`), with the allowed values
where the field has a fixed set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pickle
import sys
import typing
from collections.abc import Callable
from typing import Any

from medcam_lab.config import (
    AlignConfig,
    BatchConfig,
    DemoConfig,
    EvaluateConfig,
    FinetuneConfig,
    PrepareConfig,
    PrepareImagesConfig,
    PretrainConfig,
    ReproduceConfig,
    config_from_dict,
    own_fields,
)
from medcam_lab.config_help import allowed_values, field_descriptions, plain_text

log = logging.getLogger("medcam_lab")


def default_text(value: Any) -> str:
    """A default as it is typed on the command line: ``0.01 0.001`` for a list, ``none`` for an empty one."""
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return repr(value)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends a flag's allowed values (``action.allowed_values``, read only when the help is shown: some sets
    live in modules that import torch) and its default (``action.default_note``) to its description."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action) or ""
        allowed = getattr(action, "allowed_values", None)
        values = allowed() if allowed else None
        note = getattr(action, "default_note", "")
        if not (values or note):
            return text
        if text and not text.endswith("."):
            text += "."
        if values:
            text += f" One of: {', '.join(values)}.".replace("%", "%%")
        return f"{text} {note}".strip()


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    doc_defaults = cls()
    descriptions = field_descriptions(cls)
    for f in own_fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(doc_defaults, f.name)
        kind = hints[f.name]
        options: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                   "help": descriptions.get(f.name, "").replace("%", "%%")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            options.update(nargs="+", type=typing.get_args(kind)[0])
        else:
            options.update(type=kind, required=f.name in required)
        action = parser.add_argument(flag, **options)
        action.allowed_values = lambda name=f.name: allowed_values(cls, name)  # type: ignore[attr-defined]
        action.default_note = ("(required)" if f.name in required  # type: ignore[attr-defined]
                               else f"(default: {default_text(default)})".replace("%", "%%"))


def _config(cls: type, args: argparse.Namespace) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return config_from_dict(cls, {k: v for k, v in vars(args).items() if k in names})


def _cmd_synth(args: argparse.Namespace) -> None:
    from medcam_lab.synth import SynthConfig, generate_cohort

    manifest = generate_cohort(
        args.out, SynthConfig(n_patients=args.patients, seed=args.seed, visual_gain=args.visual_gain,
                               vitals_per_hour=args.vitals_per_hour)
    )
    print(json.dumps(manifest.get("counts", {}), indent=2))
    print(f"wrote a MIMIC-shaped demo cohort to {args.out}")


def _cmd_prepare(args: argparse.Namespace) -> None:
    from medcam_lab.prepare.cohort import prepare_cohort

    cfg = _config(PrepareConfig, args)
    report = prepare_cohort(cfg)
    for step in report["steps"]:
        print(f"{step['step']:<60} {step['count']:>8,}")
    print(f"dropped: {sum(report['dropped'].values()):,} items by {len(report['dropped'])} reasons "
          f"(see {cfg.out}/report.md)")


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from medcam_lab.training.pretrain import pretrain_image_encoder

    print(pretrain_image_encoder(_config(PretrainConfig, args)))


def _cmd_align(args: argparse.Namespace) -> None:
    from medcam_lab.training.align import align

    print(align(_config(AlignConfig, args)))


def _cmd_finetune(args: argparse.Namespace) -> None:
    from medcam_lab.training.finetune import finetune

    cfg = _config(FinetuneConfig, args)
    if not cfg.seeds:
        print(finetune(cfg))
        return
    from medcam_lab.evaluation import write_seed_summary
    from medcam_lab.training.finetune import finetune_seeds

    print(write_seed_summary(finetune_seeds(cfg), cfg.out))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from medcam_lab.evaluation import evaluate_predictions

    result = evaluate_predictions(_config(EvaluateConfig, args))
    for metric in ("auroc", "auprc"):
        r = result[metric]
        print(f"macro {metric.upper()}: {r['point']:.4f} (95% CI {r['low']:.4f}–{r['high']:.4f}); "
              f"skipped labels: {r['skipped_labels']}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from medcam_lab.demo import run_demo

    results = run_demo(_config(DemoConfig, args))
    print(open(results["report_path"]).read())


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from medcam_lab.reproduce import run_reproduce

    results = run_reproduce(_config(ReproduceConfig, args))
    print(open(results["report_path"]).read())

def _cmd_prepare_images(args: argparse.Namespace) -> None:
    from medcam_lab.prepare.images import prepare_images

    report = prepare_images(_config(PrepareImagesConfig, args))
    skipped = {reason: entry["count"] for reason, entry in report["skipped"].items()}
    print(f"{report['dataset']}: {report['images']} images {report['per_split']}; left out: {skipped or 'none'}")


def _cmd_batch(args: argparse.Namespace) -> None:
    from medcam_lab.batch import BatchCheckError, BatchError, run_batch

    cfg = config_from_dict(BatchConfig, {
        "dataset": args.dataset, "stages": tuple(args.stages or ()), "parameters": tuple(args.parameter or ()),
        "run_id": args.run_id, "kernel": args.kernel, "execution_timeout": args.execution_timeout,
        "params_dir": args.params_dir, "notebooks_dir": args.notebooks_dir, "runs_dir": args.runs_dir,
    })
    try:
        run_dir = run_batch(cfg)
    except (BatchError, BatchCheckError, FileExistsError) as exc:
        failed_run = getattr(exc, "run_dir", None)  # BatchError's; the other errors have none
        summary = failed_run / "batch_summary.md" if failed_run else None
        if summary and summary.is_file():
            print(summary.read_text())
        print(f"medcam-lab batch: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print((run_dir / "batch_summary.md").read_text())
    print(f"batch finished: {run_dir} (this summary: {run_dir / 'batch_summary.md'})")


def _params_files(params_dir: str) -> tuple[str, ...]:
    """The datasets with a params file in ``params_dir`` (``common.yaml`` is shared by all)."""
    from pathlib import Path

    return tuple(sorted(p.stem for p in Path(params_dir).glob("*.yaml") if p.stem != "common"))


def _add_batch_parser(sub: argparse._SubParsersAction) -> None:
    d = BatchConfig()
    doc = {k: v.replace("%", "%%") for k, v in field_descriptions(BatchConfig).items()}
    p = sub.add_parser("batch", help="run the numbered notebooks for a dataset with papermill",
                       formatter_class=_HelpFormatter,
                       description="Run notebooks/01..05 for one dataset with papermill: params/common.yaml, then "
                                   "params/<dataset>.yaml, then -p overrides; outputs under runs/<dataset>/<run_id>/, "
                                   "ending with a summary of each stage's results (batch_summary.md there).")
    dataset = p.add_argument("--dataset", required=True, help=doc["dataset"])
    dataset.allowed_values = lambda: _params_files(d.params_dir)
    p.add_argument("--stages", nargs="+", help=doc["stages"] + " E.g. --stages 01 02.")
    p.add_argument("-p", "--parameter", action="append", metavar="KEY=VALUE",
                   help=doc["parameters"] + " Repeatable: -p epochs=2 -p 02_align.lr=1e-3.")
    p.add_argument("--run-id", default=d.run_id, help=doc["run_id"])
    p.add_argument("--kernel", default=d.kernel, help=f"{doc['kernel']} (default: {d.kernel})")
    p.add_argument("--execution-timeout", type=int, default=d.execution_timeout, help=doc["execution_timeout"])
    p.add_argument("--params-dir", default=d.params_dir, help=argparse.SUPPRESS)
    p.add_argument("--notebooks-dir", default=d.notebooks_dir, help=argparse.SUPPRESS)
    p.add_argument("--runs-dir", default=d.runs_dir, help=f"{doc['runs_dir']} (default: {d.runs_dir})")
    p.set_defaults(func=_cmd_batch)


def _cmd_doctor(args: argparse.Namespace) -> None:
    from medcam_lab.doctor import diagnose, render

    report = diagnose()
    print(render(report))
    if report.problems:
        raise SystemExit(1)


COMMANDS: dict[str, tuple[str, type, tuple[str, ...], Callable[[argparse.Namespace], None]]] = {
    "prepare": ("MIMIC-CXR-JPG + MIMIC-IV → a cohort directory (pairs, EHR arrays, image cache, report)",
                PrepareConfig, ("mimic_cxr", "mimic_iv", "out"), _cmd_prepare),
    "pretrain": ("image-only Barlow Twins pretraining (stand-in for BarlowTwins-CXR)", PretrainConfig,
                 ("cohort", "out"), _cmd_pretrain),
    "align": ("MedCAM alignment of an image encoder with the EHR", AlignConfig, ("cohort", "out"), _cmd_align),
    "finetune": ("image-only fine-tuning + lr grid + early stopping; predicts test once", FinetuneConfig,
                 ("data", "out"), _cmd_finetune),
    "evaluate": ("macro/per-label AUROC and AUPRC with bootstrap CIs", EvaluateConfig, ("predictions",),
                 _cmd_evaluate),
    "demo": ("the whole pipeline on a generated MIMIC-shaped cohort (CPU, minutes)", DemoConfig, (), _cmd_demo),
    "prepare-images": ("NIH / VinDr-CXR / CheXpert raw root → image cache + label table for finetune "
                       "--dataset images", PrepareImagesConfig, ("dataset", "root", "out"), _cmd_prepare_images),
    "reproduce": ("the paper's Tables 2-4 and ablations (every row the data allow) with 95% CIs", ReproduceConfig,
                  (), _cmd_reproduce),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``medcam-lab`` argument parser: ``synth``, ``batch``, ``doctor`` and one subcommand per config class."""
    parser = argparse.ArgumentParser(prog="medcam-lab", description=plain_text(__doc__.splitlines()[0]),
                                     epilog="medcam-lab COMMAND --help lists a command's options.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write a MIMIC-shaped demo cohort in the official layouts")
    synth.add_argument("--out", required=True, help="directory to write")
    synth.add_argument("--patients", type=int, default=400, help="number of patients (default: 400)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--visual-gain", type=float, default=1.0,
                       help="strength of the findings drawn in the images (default: 1.0; the demo uses 3.0)")
    synth.add_argument("--vitals-per-hour", type=float, default=1.0,
                       help="charting rate of the bedside vitals (default: 1.0, about 600 chart rows per ICU stay; "
                            "13 gives MIMIC-IV's ~6,000 per stay)")
    synth.set_defaults(func=_cmd_synth)
    _add_batch_parser(sub)
    sub.add_parser("doctor", help="versions, kernels and widget extensions of the notebook set-up").set_defaults(
        func=_cmd_doctor)
    for name, (help_text, cls, required, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text,  # help is %-formatted
                           formatter_class=_HelpFormatter)
        _add_dataclass_flags(p, cls, required)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``medcam-lab`` with ``argv`` (default: the command line).

    Returns:
        The exit status: 0, or 2 after an error in the input (printed in one line; ``-v`` re-raises it).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except (FileNotFoundError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        if args.verbose:
            raise
        print(f"medcam-lab {args.command}: error: {exc} (run with -v for the full traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
