"""Ablation of how much of the image backbone alignment may change (``spec/method.md`` §4), on the demo.

Runs on an existing ``medcam-lab demo`` output (its cohort and its Barlow Twins encoder). For each
backbone mode it aligns, then fine-tunes image-only with one learning rate, and reports alignment
retrieval on validation and the fine-tuned **validation** macro-AUROC (the test split is not touched:
this is how the default is chosen). Usage:

    python benchmarks/ablation_backbone_mode.py --demo demo_out --out runs/ablation_backbone_mode
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from medcam_lab.config import AlignConfig, FinetuneConfig
from medcam_lab.training.align import align
from medcam_lab.training.finetune import finetune, macro_auroc, read_predictions

SETTINGS = {
    "no alignment (image-only)": None,
    "frozen": dict(backbone_mode="frozen"),
    "last_block ×0.1": dict(backbone_mode="last_block", backbone_lr_mult=0.1),
    "adapt ×0.1": dict(backbone_mode="adapt", backbone_lr_mult=0.1),
    "full, lr 3e-4": dict(backbone_mode="full", lr=3e-4),
    "full, lr 3e-4, global only": dict(backbone_mode="full", lr=3e-4, lambda_local=0.0),
    "full, lr 3e-4, local only": dict(backbone_mode="full", lr=3e-4, lambda_global=0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", required=True, help="a `medcam-lab demo` output directory")
    parser.add_argument("--only", nargs="+", default=None, help="run only these settings (names as in SETTINGS)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--align-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    demo, out = Path(args.demo), Path(args.out)
    demo_cfg = json.loads((demo / "config.json").read_text())
    align_cfg = json.loads((demo / "align" / "config.json").read_text())
    pretrained = str(demo / "pretrain" / "encoder.pt")
    rows = []
    for name, overrides in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        vals, tops = [], []
        for seed in args.seeds:
            tag = "".join(c if c.isalnum() else "_" for c in name) + f"_s{seed}"
            weights = pretrained
            if overrides is not None:
                cfg = AlignConfig(**{**align_cfg, "out": str(out / tag / "align"), "epochs": args.align_epochs,
                                     "seed": seed, "weights": pretrained, **overrides})
                weights = str(align(cfg))
                history = json.loads((out / tag / "align" / "history.json").read_text())
                tops.append(history[-1]["val_retrieval_top5"])
            ft = FinetuneConfig(data=align_cfg["cohort"], out=str(out / tag / "finetune"), encoder=align_cfg["encoder"],
                                weights=weights, image_size=align_cfg["image_size"], lr_grid=(1e-3,),
                                epochs=args.finetune_epochs, batch_size=32, eval_start=args.finetune_epochs * 2 // 5,
                                eval_every=2, patience=5, seed=seed)
            finetune(ft)
            y_true, y_score, _, _ = read_predictions(out / tag / "finetune" / "predictions_val.parquet")
            vals.append(macro_auroc(y_true, y_score))
        rows.append({"setting": name, "val_auroc_mean": float(np.mean(vals)), "val_auroc_per_seed": vals,
                     "val_retrieval_top5": float(np.mean(tops)) if tops else None})
        print(rows[-1], flush=True)
    lines = [f"Demo cohort `{demo}` (encoder {demo_cfg['encoder']}, {demo_cfg['image_size']} px), seeds {args.seeds}; "
             f"alignment {args.align_epochs} epochs, fine-tune lr 1e-3 up to {args.finetune_epochs} epochs.", "",
             "| setting | val macro-AUROC after fine-tuning (mean over seeds) | per seed "
             "| val image→EHR top-5 retrieval |",
             "|---|---|---|---|"]
    for r in rows:
        top5 = "–" if r["val_retrieval_top5"] is None else f"{r['val_retrieval_top5']:.3f}"
        lines.append(f"| {r['setting']} | {r['val_auroc_mean']:.4f} | "
                     f"{', '.join(f'{v:.4f}' for v in r['val_auroc_per_seed'])} | {top5} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
