"""``medcam-lab evaluate``: macro and per-label AUROC/AUPRC with seeded bootstrap 95% CIs.

Reads a predictions file written by ``finetune`` (``true:<label>`` / ``score:<label>`` columns; NaN = label
unknown, excluded for that label) and writes ``metrics.json``. Labels with one class in the evaluated
set are skipped and listed. ``compare_predictions`` gives the paired-bootstrap CI of a difference between
two models scored on the same rows; ``pool_seed_predictions`` the same over runs repeated with several
training seeds (mean, sd, per-seed values, and the seed-and-row bootstrap of
:func:`medcam_lab.metrics.pooled_seed_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medcam_lab.config import EvaluateConfig
from medcam_lab.metrics import bootstrap_ci, paired_bootstrap_diff, pooled_seed_bootstrap
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


def _same_rows(path_a: str | Path, path_b: str | Path, a: tuple, b: tuple) -> None:
    (y_true_a, _, names_a, ids_a), (y_true_b, _, names_b, ids_b) = a, b
    if names_a != names_b or not np.array_equal(ids_a.to_numpy(), ids_b.to_numpy()):
        raise ValueError(f"{path_a} and {path_b} do not score the same rows and labels")
    if not np.array_equal(np.nan_to_num(y_true_a, nan=-1), np.nan_to_num(y_true_b, nan=-1)):
        raise ValueError(f"{path_a} and {path_b} disagree on the true labels")


def compare_predictions(path_a: str | Path, path_b: str | Path, n_resamples: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> dict:
    """Paired bootstrap of macro(a) − macro(b) for AUROC and AUPRC; the two files must hold the same rows."""
    read_a, read_b = read_predictions(path_a), read_predictions(path_b)
    _same_rows(path_a, path_b, read_a, read_b)
    y_true_a, score_a, names_a, _ = read_a
    score_b = read_b[1]
    return {
        metric: paired_bootstrap_diff(y_true_a, score_a, score_b, metric=metric, n_resamples=n_resamples,
                                      confidence=confidence, seed=seed, label_names=names_a)
        for metric in METRICS
    }


def pool_seed_predictions(paths_a: Mapping[int, str | Path], paths_b: Mapping[int, str | Path] | None = None,
                          n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Macro AUROC/AUPRC of runs repeated over training seeds ({seed: predictions file}), pooled; with
    ``paths_b`` (the same seeds) also the paired difference a − b pooled over seeds and rows.

    Returns:
        {metric: :func:`medcam_lab.metrics.pooled_seed_bootstrap` result} for ``auroc`` and ``auprc``.
    """
    seeds = list(paths_a)
    if paths_b is not None and list(paths_b) != seeds:
        raise ValueError(f"both arms need the same seeds, got {seeds} and {list(paths_b)}")
    files = [paths_a[s] for s in seeds] + ([paths_b[s] for s in seeds] if paths_b is not None else [])
    read = [read_predictions(p) for p in files]
    for p, r in zip(files[1:], read[1:]):
        _same_rows(files[0], p, read[0], r)
    scores = [r[1] for r in read]
    scores_a, scores_b = scores[:len(seeds)], (scores[len(seeds):] if paths_b is not None else None)
    return {metric: pooled_seed_bootstrap(read[0][0], scores_a, scores_b, metric=metric, n_resamples=n_resamples,
                                          confidence=confidence, seed=seed, seeds=seeds)
            for metric in METRICS}


def write_seed_summary(paths: Mapping[int, str | Path], out: str | Path, n_resamples: int = 1000,
                       confidence: float = 0.95) -> Path:
    """``seeds_metrics.json`` in ``out``: :func:`pool_seed_predictions` of one arm's runs over seeds
    ({seed: predictions file}) — mean, sd and per-seed macro AUROC/AUPRC with the seed-and-row bootstrap."""
    path = Path(out) / "seeds_metrics.json"
    write_json_atomic(path, {"predictions": {str(s): str(p) for s, p in paths.items()},
                             **pool_seed_predictions(paths, n_resamples=n_resamples, confidence=confidence)})
    return path


def label_efficiency_curve(runs: dict[float, dict[str, dict[int, str | Path]]], compare: tuple[str, str] | None = None,
                           n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Macro AUROC/AUPRC per label fraction and row, pooled over seeds, and the paired difference of two rows.

    Args:
        runs: ``{fraction: {row: {seed: predictions file}}}``; all files of one fraction score the same rows.
        compare: ``(a, b)``: rows whose difference a − b is pooled over seeds and rows per fraction (the two
            rows need the same seeds at each fraction); skipped where either row is missing.
        n_resamples: bootstrap resamples (of test rows and seeds) per interval.
        confidence: level of the intervals.
        seed: seed of the bootstrap draws.

    Returns:
        ``{"fractions": [...], "rows": {row: {fraction key: {metric: pooled "a"}}}, "compare": [a, b] or None,
        "difference": {fraction key: {metric: pooled "difference" with n_resamples}}}``; the fraction key is
        ``str(float(fraction))`` (JSON keys), each pooled entry as :func:`medcam_lab.metrics.pooled_seed_bootstrap`.
    """
    fractions = sorted(float(f) for f in runs)
    rows: dict[str, dict[str, dict]] = {}
    difference: dict[str, dict] = {}
    for fraction in fractions:
        key, by_row = str(fraction), runs[fraction]
        pair = compare if compare and all(r in by_row for r in compare) else None
        for row, paths in by_row.items():
            if pair and row in pair:
                continue
            pooled = pool_seed_predictions(paths, n_resamples=n_resamples, confidence=confidence, seed=seed)
            rows.setdefault(row, {})[key] = {m: pooled[m]["a"] | {"seeds": pooled[m]["seeds"]} for m in METRICS}
        if pair:
            a, b = pair
            pooled = pool_seed_predictions(by_row[a], by_row[b], n_resamples=n_resamples, confidence=confidence,
                                           seed=seed)
            for row, arm in ((a, "a"), (b, "b")):
                rows.setdefault(row, {})[key] = {m: pooled[m][arm] | {"seeds": pooled[m]["seeds"]} for m in METRICS}
            difference[key] = {m: pooled[m]["difference"] | {"n_resamples": pooled[m]["n_resamples"],
                                                             "seeds": pooled[m]["seeds"]} for m in METRICS}
    return {"fractions": fractions, "rows": rows, "compare": list(compare) if compare else None,
            "difference": difference}


def describe_label_efficiency(curve: dict, labels: dict[str, str], metric: str = "auroc") -> str:
    """One sentence per fraction on the difference of :func:`label_efficiency_curve`, whichever way it falls."""
    if not curve.get("compare") or not curve["difference"]:
        return "No paired difference was computed."
    a, b = (labels.get(r, r) for r in curve["compare"])
    parts = []
    for key, diff in curve["difference"].items():
        d = diff[metric]
        if d["low"] > 0:
            verdict = f"{a} is better"
        elif d["high"] < 0:
            verdict = f"{b} is better"
        else:
            verdict = "the interval includes 0, so no difference is shown"
        parts.append(f"at {float(key):.0%} of the training labels, {a} − {b} macro {metric.upper()} = "
                     f"{d['point']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] over seeds {d['seeds']} "
                     f"({verdict})")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
