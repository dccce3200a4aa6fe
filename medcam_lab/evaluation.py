"""``medcam-lab evaluate``: macro and per-label AUROC/AUPRC with seeded bootstrap 95% CIs.

Reads a predictions file written by ``finetune`` (``true:<label>`` / ``score:<label>`` columns; NaN = label
unknown, excluded for that label) and writes ``metrics.json``. Labels with one class in the evaluated
set are skipped and listed. ``compare_predictions`` gives the paired-bootstrap CI of a difference between
two models scored on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medcam_lab.config import EvaluateConfig
from medcam_lab.metrics import bootstrap_ci, paired_bootstrap_diff
from medcam_lab.runinfo import write_json_atomic, write_run_info
from medcam_lab.training.finetune import read_predictions

METRICS = ("auroc", "auprc")


def evaluate_predictions(cfg: EvaluateConfig) -> dict:
    """Bootstrap CIs of macro AUROC and AUPRC (and per label) for one predictions file."""
    y_true, y_score, names, ids = read_predictions(cfg.predictions)
    result: dict = {"predictions": str(cfg.predictions), "n_rows": int(len(ids)), "labels": names}
    for metric in METRICS:
        result[metric] = bootstrap_ci(
            y_true, y_score, metric=metric, n_resamples=cfg.n_resamples, confidence=cfg.confidence,
            seed=cfg.seed, label_names=names,
        )
    if cfg.out:
        write_run_info(cfg.out, "evaluate", cfg)
        write_json_atomic(Path(cfg.out) / "metrics.json", result)
    return result


def compare_predictions(path_a: str | Path, path_b: str | Path, n_resamples: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> dict:
    """Paired bootstrap of macro(a) − macro(b) for AUROC and AUPRC; the two files must hold the same rows."""
    y_true_a, score_a, names_a, ids_a = read_predictions(path_a)
    y_true_b, score_b, names_b, ids_b = read_predictions(path_b)
    if names_a != names_b or not np.array_equal(ids_a.to_numpy(), ids_b.to_numpy()):
        raise ValueError(f"{path_a} and {path_b} do not score the same rows and labels")
    if not np.array_equal(np.nan_to_num(y_true_a, nan=-1), np.nan_to_num(y_true_b, nan=-1)):
        raise ValueError(f"{path_a} and {path_b} disagree on the true labels")
    return {
        metric: paired_bootstrap_diff(y_true_a, score_a, score_b, metric=metric, n_resamples=n_resamples,
                                      confidence=confidence, seed=seed, label_names=names_a)
        for metric in METRICS
    }
