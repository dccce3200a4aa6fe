"""Macro AUROC / AUPRC for multi-label classification, with bootstrap confidence intervals.

Definitions (see ``shared/spec/method.md`` §5 and ``cxr.md`` Part A §5.1):

* **AUROC** of one label is the Mann–Whitney statistic computed from average ranks, i.e. the
  probability that a random positive scores higher than a random negative, ties counting one half.
  It equals ``sklearn.metrics.roc_auc_score``.
* **AUPRC** of one label is the *average precision* exactly as ``sklearn.metrics.average_precision_score``
  defines it: ``AP = sum_k (R_k - R_{k-1}) * P_k`` over the distinct score values taken as thresholds
  (tied scores form one threshold), without interpolation.
* **Macro** = unweighted mean of the per-label values over the labels that have both classes in the
  evaluated set. A label with a single class (after dropping rows whose label is unknown, ``NaN``) is
  *skipped* and reported as skipped, never silently averaged as 0 or 1.
* **Bootstrap**: ``n_resamples`` resamples of the table rows, with replacement and of the same size,
  drawn from ``np.random.default_rng(seed)`` (:func:`bootstrap_indices`). In each resample the macro
  metric is recomputed; a label with one class *in that resample* is skipped for that resample only
  (counted in ``resamples_with_skips``). The headline interval is the **percentile** interval of the
  resampled macro values; the MedMod-style **basic** (reverse-percentile) interval
  ``(2·point − q_hi, 2·point − q_lo)`` is reported next to it, for the macro and for every label.
  Percentiles use numpy's default linear interpolation; intervals are not clipped to [0, 1] (the basic
  interval can leave it).

Implementation: resampling rows with replacement is the same as weighting each row by its
multiplicity in the resample (``np.bincount`` of the drawn indices). Per label the scores are sorted
once; the weighted AUROC and AP of a whole block of resamples then follow from cumulative sums of the
weight matrix over that fixed order (ties are handled by looking the cumulative sums up at the
boundaries of each block of equal scores). The result equals a plain recomputation of
:func:`auroc` / :func:`auprc` on ``y[idx]`` for the same indices to floating-point rounding
(~1e-15), at a small fraction of the cost. Only numpy is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "auroc",
    "auprc",
    "per_label_metric",
    "bootstrap_indices",
    "bootstrap_ci",
    "paired_bootstrap_diff",
    "seed_bootstrap_indices",
    "pooled_seed_bootstrap",
]

#: Names accepted by the ``metric`` arguments.
METRICS: tuple[str, ...] = ("auroc", "auprc")

#: Size bound of one block of the (rows × resamples) int64 index / count matrices the bootstrap builds
#: at a time (resamples per block = this // (8 · N), at least 1). Temporaries per block are a small
#: multiple of it. Small blocks that stay in cache were fastest in measurements (2 MB blocks took about
#: half the time of 64 MB blocks on 20,000 × 14 × 1,000: ~1.5–2 s on 2 CPU cores), and memory stays flat.
_MAX_CHUNK_BYTES = 2 * 2**20


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _as_float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _check_scores_finite(s: np.ndarray, name: str = "y_score") -> None:
    bad = ~np.isfinite(s)
    if bad.any():
        n_nan = int(np.isnan(s).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} inf value(s); scores must be finite "
            "(check the model outputs before computing metrics)"
        )


def _check_labels(y: np.ndarray, allow_nan: bool, name: str = "y_true") -> None:
    ok = (y == 0) | (y == 1)
    if allow_nan:
        ok |= np.isnan(y)
    if not ok.all():
        bad = np.unique(y[~ok])[:5]
        allowed = "{0, 1, NaN}" if allow_nan else "{0, 1}"
        hint = "" if allow_nan else " (NaN = unknown label is only accepted by per_label_metric/bootstrap)"
        raise ValueError(f"{name} must contain only values in {allowed}{hint}; found e.g. {bad.tolist()}")


def _validate_1d(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_float_array(y_true, "y_true")
    s = _as_float_array(y_score, "y_score")
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"y_true and y_score must be 1-D for a single label, got shapes {y.shape} and {s.shape}; "
            "use per_label_metric for N x L arrays"
        )
    if y.shape != s.shape:
        raise ValueError(f"y_true and y_score must have the same shape, got {y.shape} and {s.shape}")
    if y.size == 0:
        raise ValueError("y_true and y_score are empty")
    _check_scores_finite(s)
    _check_labels(y, allow_nan=False)
    return y, s


def _validate_2d(y_true: Any, *scores: Any, score_names: Sequence[str] = ("y_score",)) -> tuple:
    """Validate a label table and one or more score tables; return 2-D float arrays and ``was_1d``."""
    y = _as_float_array(y_true, "y_true")
    if y.ndim not in (1, 2):
        raise ValueError(f"y_true must be 1-D (one label) or 2-D (N x L), got shape {y.shape}")
    out = []
    for s_in, nm in zip(scores, score_names):
        s = _as_float_array(s_in, nm)
        if s.shape != y.shape:
            raise ValueError(f"y_true and {nm} must have the same shape, got {y.shape} and {s.shape}")
        _check_scores_finite(s, nm)
        out.append(s.reshape(s.shape[0], -1) if s.ndim == 1 else s)
    was_1d = y.ndim == 1
    if was_1d:
        y = y.reshape(-1, 1)
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"y_true has no rows or no labels (shape {y.shape})")
    _check_labels(y, allow_nan=True)
    return (y, *out, was_1d)


def _check_metric(metric: str) -> str:
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    return metric.lower()


def _check_bootstrap_args(n_resamples: Any, confidence: Any) -> tuple[int, float]:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    try:
        conf = float(confidence)
    except (TypeError, ValueError):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}") from None
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return int(n_resamples), conf


def _label_names(label_names: Sequence[Any] | None, n_labels: int) -> list[str]:
    if label_names is None:
        return [f"label_{j}" for j in range(n_labels)]
    if isinstance(label_names, str):
        label_names = [label_names]
    names = [str(x) for x in label_names]
    if len(names) != n_labels:
        raise ValueError(f"label_names has {len(names)} entries but there are {n_labels} label(s)")
    if len(set(names)) != len(names):
        raise ValueError("label_names must be unique")
    return names


# --------------------------------------------------------------------------------------------------
# single-label metrics
# --------------------------------------------------------------------------------------------------


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` in ascending order, tied values sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]  # exclusive
    avg = (starts + 1 + ends) / 2.0  # mean of the ranks start+1 .. end
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve of one label (Mann–Whitney statistic with average ranks).

    Equals ``sklearn.metrics.roc_auc_score``: the probability that a random positive is scored
    higher than a random negative, tied pairs counting one half.

    Args:
        y_true: Binary labels in {0, 1} (bool or numeric).
        y_score: Finite scores; higher means more likely positive (probabilities or logits).

    Returns:
        AUROC in [0, 1].

    Raises:
        ValueError: If shapes differ, inputs are not 1-D, scores are not finite, labels are not
            in {0, 1}, or only one class is present.

    Shape:
        y_true: (N,); y_score: (N,).
    """
    y, s = _validate_1d(y_true, y_score)
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("only one class present in y_true; AUROC is undefined")
    ranks = _average_ranks(s)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auprc(y_true: Any, y_score: Any) -> float:
    """Area under the precision–recall curve of one label, as average precision.

    ``AP = sum_k (R_k - R_{k-1}) * P_k`` where k runs over the distinct score values in
    decreasing order (each one a threshold ``score >= t``; tied scores enter together), ``P_k`` and
    ``R_k`` are precision and recall at that threshold and ``R_0 = 0``. This is exactly
    ``sklearn.metrics.average_precision_score`` (step-wise, no interpolation).

    Args:
        y_true: Binary labels in {0, 1} (bool or numeric).
        y_score: Finite scores; higher means more likely positive.

    Returns:
        Average precision in [0, 1].

    Raises:
        ValueError: If shapes differ, inputs are not 1-D, scores are not finite, labels are not
            in {0, 1}, or only one class is present.

    Shape:
        y_true: (N,); y_score: (N,).
    """
    y, s = _validate_1d(y_true, y_score)
    n_pos = int((y == 1).sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError("only one class present in y_true; AUPRC (average precision) is undefined here")
    order = np.argsort(-s, kind="mergesort")
    ss = s[order]
    ys = y[order]
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), ss.size - 1]  # last index of each tie block
    tp = np.cumsum(ys)[last]
    n_above = last + 1.0  # tp + fp at each threshold
    precision = tp / n_above
    d_tp = np.diff(np.r_[0.0, tp])
    return float(np.sum(d_tp * precision) / n_pos)


_METRIC_FUNCS: dict[str, Callable[[Any, Any], float]] = {"auroc": auroc, "auprc": auprc}


def per_label_metric(
    y_true: Any, y_score: Any, metric: str | Callable[[np.ndarray, np.ndarray], float] = "auroc"
) -> tuple[np.ndarray, list[int]]:
    """Compute a binary metric for every label (column), skipping labels with a single class.

    Rows whose label is ``NaN`` (unknown) are dropped for that label only. A label whose remaining
    rows hold a single class (or no rows at all) gets ``NaN`` and its index is listed in ``skipped``.

    Args:
        y_true: Labels in {0, 1, NaN}; 1-D is treated as a single label.
        y_score: Finite scores of the same shape.
        metric: ``"auroc"``, ``"auprc"`` or a callable ``f(y_1d, score_1d) -> float`` called on the
            known rows of each non-skipped label.

    Returns:
        ``(values, skipped)``: per-label values (``NaN`` where skipped) and the skipped column indices.

    Raises:
        ValueError: On shape mismatch, non-finite scores, labels outside {0, 1, NaN} or an unknown
            metric name.

    Shape:
        y_true: (N, L) or (N,); y_score: same as y_true; values: (L,).
    """
    fn = _METRIC_FUNCS[_check_metric(metric)] if not callable(metric) else metric
    y, s, _ = _validate_2d(y_true, y_score)
    n_labels = y.shape[1]
    values = np.full(n_labels, np.nan)
    skipped: list[int] = []
    for j in range(n_labels):
        known = ~np.isnan(y[:, j])
        yj = y[known, j]
        n_pos = int((yj == 1).sum())
        if n_pos == 0 or n_pos == yj.size:
            skipped.append(j)
            continue
        values[j] = float(fn(yj, s[known, j]))
    return values, skipped


# --------------------------------------------------------------------------------------------------
# bootstrap machinery
# --------------------------------------------------------------------------------------------------


def bootstrap_indices(n_rows: int, n_resamples: int, seed: int | None = 0) -> np.ndarray:
    """Row indices of the bootstrap resamples used by :func:`bootstrap_ci` and friends.

    Resample ``r`` is the ``r``-th call ``rng.integers(0, n_rows, size=n_rows)`` of
    ``rng = np.random.default_rng(seed)`` (with numpy's generator this is the same stream as one
    call with ``size=(n_resamples, n_rows)``). The bootstrap functions draw the very same stream
    block by block, so ``y[idx[r]]`` reproduces their resample ``r``.

    Args:
        n_rows: Number of rows of the evaluated table (N).
        n_resamples: Number of resamples (R).
        seed: Seed for ``np.random.default_rng``.

    Returns:
        Integer array of row indices.

    Shape:
        output: (R, N).
    """
    if n_rows < 1 or n_resamples < 1:
        raise ValueError(f"n_rows and n_resamples must be >= 1, got {n_rows} and {n_resamples}")
    out = np.empty((n_resamples, n_rows), dtype=np.int64)
    for block in _index_blocks(n_rows, n_resamples, seed, block=n_resamples):
        out[:] = block
    return out


def _index_blocks(n_rows: int, n_resamples: int, seed: int | None, block: int):
    """Yield the bootstrap indices in consecutive blocks of at most ``block`` resamples."""
    rng = np.random.default_rng(seed)
    for r0 in range(0, n_resamples, block):
        c = min(block, n_resamples - r0)
        idx = np.empty((c, n_rows), dtype=np.int64)
        for r in range(c):
            idx[r] = rng.integers(0, n_rows, size=n_rows)
        yield idx


def _weight_blocks(n_rows: int, n_resamples: int, seed: int | None):
    """Yield ``(r0, W)`` where ``W[i, r]`` = multiplicity of row i in resample ``r0 + r``.

    Shape:
        W: (N, c) int32 with c <= block size.
    """
    block = max(1, min(n_resamples, _MAX_CHUNK_BYTES // (8 * n_rows)))
    r0 = 0
    for idx in _index_blocks(n_rows, n_resamples, seed, block):
        c = idx.shape[0]
        idx *= c
        idx += np.arange(c, dtype=np.int64)[:, None]  # flat position row * c + r in an (N, c) matrix
        w = np.bincount(idx.ravel(), minlength=n_rows * c).reshape(n_rows, c)
        del idx
        yield r0, w.astype(np.int32)
        r0 += c


@dataclass
class _LabelPlan:
    """Per-label precomputation on the full table (fixed sort order shared by all resamples).

    Positives and negatives are each sorted by decreasing score. For the p-th positive:
    ``neg_gt[p]`` / ``neg_ge[p]`` = number of negatives scoring strictly higher / at least as high,
    ``pos_ge[p]`` = number of positives scoring at least as high (itself and its ties included).
    """

    pos_rows: np.ndarray
    neg_rows: np.ndarray
    neg_gt: np.ndarray
    neg_ge: np.ndarray
    pos_ge: np.ndarray


def _plan_label(y_col: np.ndarray, s_col: np.ndarray) -> _LabelPlan | None:
    rows = np.flatnonzero(~np.isnan(y_col))
    pos = y_col[rows] == 1
    pos_rows, neg_rows = rows[pos], rows[~pos]
    if pos_rows.size == 0 or neg_rows.size == 0:
        return None
    pos_s, neg_s = s_col[pos_rows], s_col[neg_rows]
    po = np.argsort(-pos_s, kind="mergesort")
    no = np.argsort(-neg_s, kind="mergesort")
    pos_rows, pos_s = pos_rows[po], pos_s[po]
    neg_rows, neg_s = neg_rows[no], neg_s[no]
    neg_asc, pos_asc = neg_s[::-1], pos_s[::-1]
    n_pos, n_neg = pos_rows.size, neg_rows.size
    return _LabelPlan(
        pos_rows=pos_rows,
        neg_rows=neg_rows,
        neg_gt=n_neg - np.searchsorted(neg_asc, pos_s, side="right"),
        neg_ge=n_neg - np.searchsorted(neg_asc, pos_s, side="left"),
        pos_ge=n_pos - np.searchsorted(pos_asc, pos_s, side="left"),
    )


def _cumulative(w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``out[k] = sum of w[rows[:k]]`` (k = 0..len(rows)), exact in integers.

    Shape:
        w: (N, c); rows: (m,); output: (m + 1, c).
    """
    out = np.zeros((rows.size + 1, w.shape[1]), dtype=w.dtype)
    np.take(w, rows, axis=0, out=out[1:])
    np.cumsum(out[1:], axis=0, out=out[1:])
    return out


def _weighted_metric(plan: _LabelPlan, w: np.ndarray, metric: str) -> np.ndarray:
    """Metric of one label for a block of resamples given as row weights; NaN where single-class.

    AUROC: ``(P·N − ½·Σ_p w_p·(N_{>p} + N_{≥p})) / (P·N)`` with ``N_{>p}`` / ``N_{≥p}`` the resampled
    negative weight scoring above / at least as high as positive p — i.e. the expanded-sample
    Mann–Whitney statistic with ties counting ½. AP: ``Σ_p w_p · TP_{≥p} / (TP_{≥p} + FP_{≥p}) / P``,
    the precision at p's threshold block weighted by p's share of recall.

    Shape:
        w: (N, c) int; output: (c,).
    """
    wp = np.take(w, plan.pos_rows, axis=0).astype(np.float64)  # (n_pos, c)
    cn = _cumulative(w, plan.neg_rows)  # (n_neg + 1, c)
    p_tot = wp.sum(axis=0)
    n_tot = cn[-1].astype(np.float64)
    valid = (p_tot > 0) & (n_tot > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "auroc":
            ties2 = (cn[plan.neg_gt].astype(np.float64) + cn[plan.neg_ge]) * wp
            pn = p_tot * n_tot
            val = (pn - 0.5 * ties2.sum(axis=0)) / pn
        else:
            cp = _cumulative(w, plan.pos_rows)  # (n_pos + 1, c)
            tp = cp[plan.pos_ge].astype(np.float64)
            denom = np.maximum(tp + cn[plan.neg_ge], 1.0)  # 0 only where w_p = 0 (term vanishes)
            val = (wp * tp / denom).sum(axis=0) / p_tot
    return np.where(valid, val, np.nan)


def _macro(values: np.ndarray) -> np.ndarray:
    """Mean over labels ignoring NaN; NaN where every label is NaN (no warning).

    Shape:
        values: (R, L); output: (R,).
    """
    ok = ~np.isnan(values)
    cnt = ok.sum(axis=1)
    tot = np.where(ok, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _percentiles(x: np.ndarray, confidence: float) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(x, [alpha, 100.0 - alpha])
    return float(lo), float(hi)


def _interval(point: float, reps: np.ndarray, confidence: float) -> dict[str, float]:
    lo, hi = _percentiles(reps, confidence)
    return {
        "point": float(point),
        "low": lo,
        "high": hi,
        "basic_low": 2.0 * point - hi,
        "basic_high": 2.0 * point - lo,
    }


def _bootstrap_values(
    y: np.ndarray, score_sets: Sequence[np.ndarray], metric: str, n_resamples: int, seed: int | None
) -> tuple[list[int], list[int], list[np.ndarray], list[np.ndarray]]:
    """Point values on the full table and per-resample values for each score table.

    Returns ``(kept, skipped, points, reps)`` where ``points[k]`` has shape (L_kept,) and
    ``reps[k]`` has shape (R, L_kept) with NaN where the label is single-class in that resample.
    Labels are skipped (on the full table) from y alone, so every score table keeps the same labels.
    """
    n_rows, n_labels = y.shape
    fn = _METRIC_FUNCS[metric]
    plans: list[list[_LabelPlan]] = [[] for _ in score_sets]
    kept: list[int] = []
    skipped: list[int] = []
    for j in range(n_labels):
        per_set = [_plan_label(y[:, j], s[:, j]) for s in score_sets]
        found = [p for p in per_set if p is not None]  # None depends on y alone: for every score set or for none
        if not found:
            skipped.append(j)
            continue
        kept.append(j)
        for k, p in enumerate(found):
            plans[k].append(p)
    if not kept:
        raise ValueError(
            "no label has both classes (0 and 1) among its known rows; the macro metric is undefined"
        )
    points = []
    for s in score_sets:
        pts = []
        for j in kept:
            known = ~np.isnan(y[:, j])
            pts.append(fn(y[known, j], s[known, j]))
        points.append(np.asarray(pts))
    reps = [np.empty((n_resamples, len(kept))) for _ in score_sets]
    for r0, w in _weight_blocks(n_rows, n_resamples, seed):
        c = w.shape[1]
        for k in range(len(score_sets)):
            for col, plan in enumerate(plans[k]):
                reps[k][r0 : r0 + c, col] = _weighted_metric(plan, w, metric)
    return kept, skipped, points, reps


# --------------------------------------------------------------------------------------------------
# public bootstrap API
# --------------------------------------------------------------------------------------------------


def bootstrap_ci(
    y_true: Any,
    y_score: Any,
    metric: str = "auroc",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    label_names: Sequence[Any] | None = None,
    return_replicates: bool = False,
) -> dict[str, Any]:
    """Macro metric with a row-bootstrap confidence interval, plus per-label intervals.

    ``point`` is the mean over the non-skipped labels of the per-label metric on the full table.
    Rows are resampled with replacement (same size, :func:`bootstrap_indices` with ``seed``); in
    each resample the macro is recomputed over the labels that have both classes in that resample.
    ``low``/``high`` is the percentile interval of those macro values, ``basic_low``/``basic_high``
    the basic (reverse-percentile, MedMod) interval ``2·point − q_hi, 2·point − q_lo``. Resamples
    in which every label is single-class (only possible on tiny tables) give no macro value and are
    left out of the percentiles; ``n_valid_resamples`` says how many were used.

    Args:
        y_true: Labels in {0, 1, NaN} (NaN = unknown: that row is ignored for that label only).
            A 1-D array is one label.
        y_score: Finite scores (probabilities or logits), same shape as ``y_true``.
        metric: ``"auroc"`` or ``"auprc"`` (average precision).
        n_resamples: Number of bootstrap resamples (>= 1).
        confidence: Interval coverage in (0, 1), e.g. 0.95.
        seed: Seed of ``np.random.default_rng`` for the resamples.
        label_names: Optional unique names for the L labels (default ``label_0`` ... ``label_{L-1}``).
        return_replicates: If True, also return ``replicates`` (macro per resample, NaN where no
            label was usable) and ``label_replicates`` (name → per-resample values).

    Returns:
        Dict with ``point``, ``low``, ``high``, ``basic_low``, ``basic_high``, ``per_label``
        (name → {point, low, high, basic_low, basic_high}, non-skipped labels only, per-label
        percentiles over the resamples where that label had both classes), ``labels`` (names used),
        ``skipped_labels`` (names with a single class in the full table; excluded everywhere),
        ``n_resamples``, ``n_valid_resamples``, ``resamples_with_skips`` (resamples in which at
        least one label had to be skipped), ``confidence``, ``metric``, ``seed``, ``n_rows``.

    Raises:
        ValueError: On bad shapes, non-finite scores, labels outside {0, 1, NaN}, unknown metric,
            ``n_resamples < 1``, confidence outside (0, 1), bad ``label_names``, or when no label has
            both classes.

    Shape:
        y_true: (N, L) or (N,); y_score: same as y_true; replicates: (n_resamples,).
    """
    metric = _check_metric(metric)
    n_resamples, confidence = _check_bootstrap_args(n_resamples, confidence)
    y, s, _ = _validate_2d(y_true, y_score)
    names = _label_names(label_names, y.shape[1])
    kept, skipped, (points,), (reps,) = _bootstrap_values(y, [s], metric, n_resamples, seed)

    point = float(points.mean())
    macro_reps = _macro(reps)
    out: dict[str, Any] = _interval(point, macro_reps, confidence)
    out["per_label"] = {
        names[j]: _interval(points[col], reps[:, col], confidence) for col, j in enumerate(kept)
    }
    out.update(
        labels=[names[j] for j in kept],
        skipped_labels=[names[j] for j in skipped],
        n_resamples=n_resamples,
        n_valid_resamples=int((~np.isnan(macro_reps)).sum()),
        resamples_with_skips=int(np.isnan(reps).any(axis=1).sum()),
        confidence=confidence,
        metric=metric,
        seed=seed,
        n_rows=int(y.shape[0]),
    )
    if return_replicates:
        out["replicates"] = macro_reps
        out["label_replicates"] = {names[j]: reps[:, col].copy() for col, j in enumerate(kept)}
    return out


def paired_bootstrap_diff(
    y_true: Any,
    score_a: Any,
    score_b: Any,
    metric: str = "auroc",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    label_names: Sequence[Any] | None = None,
    return_replicates: bool = False,
) -> dict[str, Any]:
    """Paired bootstrap of the macro-metric difference ``macro(a) − macro(b)`` on the same rows.

    Both models are scored on the *same* resamples (:func:`bootstrap_indices` with ``seed``), and
    within a resample the same labels are skipped for both (skipping depends on ``y_true`` only), so
    the difference is a like-for-like comparison.

    p-value (two-sided, percentile-bootstrap): with ``d_r`` the resampled differences,
    ``p = min(1, 2 · #{r : d_r on the other side of 0 from the point estimate, 0 included} / R)``,
    i.e. ``2·mean(d_r <= 0)`` when ``point > 0``, ``2·mean(d_r >= 0)`` when ``point < 0``, and 1 when
    ``point == 0``. Its resolution is ``2/R``; ``p == 0`` means "below 1/R", not zero.

    Args:
        y_true: Labels in {0, 1, NaN}; 1-D is one label.
        score_a: Scores of model A, same shape as ``y_true``.
        score_b: Scores of model B, same shape as ``y_true``.
        metric: ``"auroc"`` or ``"auprc"``.
        n_resamples: Number of bootstrap resamples (>= 1).
        confidence: Interval coverage in (0, 1).
        seed: Seed of ``np.random.default_rng``.
        label_names: Optional unique label names.
        return_replicates: If True, also return ``replicates`` (the per-resample differences).

    Returns:
        Dict with ``point``, ``low``, ``high`` (percentile CI of the difference), ``basic_low``,
        ``basic_high``, ``p_value``, ``point_a``, ``point_b``, ``per_label`` (name → difference
        interval), ``labels``, ``skipped_labels``, ``n_resamples``, ``n_valid_resamples``,
        ``resamples_with_skips``, ``confidence``, ``metric``, ``seed``, ``n_rows``.

    Raises:
        ValueError: As :func:`bootstrap_ci`, for either score table.

    Shape:
        y_true: (N, L) or (N,); score_a, score_b: same as y_true; replicates: (n_resamples,).
    """
    metric = _check_metric(metric)
    n_resamples, confidence = _check_bootstrap_args(n_resamples, confidence)
    y, sa, sb, _ = _validate_2d(y_true, score_a, score_b, score_names=("score_a", "score_b"))
    names = _label_names(label_names, y.shape[1])
    kept, skipped, (pa, pb), (ra, rb) = _bootstrap_values(y, [sa, sb], metric, n_resamples, seed)

    point_a, point_b = float(pa.mean()), float(pb.mean())
    point = point_a - point_b
    diffs = _macro(ra) - _macro(rb)
    out: dict[str, Any] = _interval(point, diffs, confidence)
    valid = diffs[~np.isnan(diffs)]
    if point == 0.0 or valid.size == 0:
        p_value = 1.0
    else:
        other_side = (valid <= 0.0) if point > 0 else (valid >= 0.0)
        p_value = min(1.0, 2.0 * float(other_side.mean()))
    out.update(p_value=p_value, point_a=point_a, point_b=point_b)
    out["per_label"] = {
        names[j]: _interval(pa[col] - pb[col], ra[:, col] - rb[:, col], confidence)
        for col, j in enumerate(kept)
    }
    out.update(
        labels=[names[j] for j in kept],
        skipped_labels=[names[j] for j in skipped],
        n_resamples=n_resamples,
        n_valid_resamples=int(valid.size),
        resamples_with_skips=int(np.isnan(ra).any(axis=1).sum()),
        confidence=confidence,
        metric=metric,
        seed=seed,
        n_rows=int(y.shape[0]),
    )
    if return_replicates:
        out["replicates"] = diffs
    return out


# --------------------------------------------------------------------------------------------------
# repeats over training seeds
# --------------------------------------------------------------------------------------------------


def seed_bootstrap_indices(n_seeds: int, n_resamples: int, seed: int | None = 0) -> np.ndarray:
    """Seed positions drawn with replacement for each resample of :func:`pooled_seed_bootstrap`.

    Drawn from ``np.random.default_rng([seed, 1])`` (a stream apart from the rows' ``default_rng(seed)``, so
    the row resamples equal :func:`bootstrap_indices`). With one seed every entry is 0.

    Shape:
        output: (R, S) with entries in [0, S).
    """
    if n_seeds < 1 or n_resamples < 1:
        raise ValueError(f"n_seeds and n_resamples must be >= 1, got {n_seeds} and {n_resamples}")
    if n_seeds == 1:
        return np.zeros((n_resamples, 1), dtype=np.int64)
    rng = np.random.default_rng(None if seed is None else [seed, 1])
    return rng.integers(0, n_seeds, size=(n_resamples, n_seeds))


def _seed_summary(points: np.ndarray, reps: np.ndarray, seed_idx: np.ndarray, confidence: float,
                  seeds: Sequence[Any]) -> tuple[dict[str, Any], np.ndarray]:
    """points (S,), reps (R, S) macro values → (pooled interval, mean/sd/per-seed values; pooled values (R,))."""
    pooled = np.take_along_axis(reps, seed_idx, axis=1).mean(axis=1)  # NaN where a drawn seed had no macro
    out: dict[str, Any] = _interval(float(points.mean()), pooled, confidence)
    out.update(mean=float(points.mean()), sd=float(points.std(ddof=1)) if points.size > 1 else 0.0,
               per_seed={str(s): float(v) for s, v in zip(seeds, points)},
               n_valid_resamples=int((~np.isnan(pooled)).sum()))
    return out, pooled


def pooled_seed_bootstrap(
    y_true: Any,
    scores_a: Sequence[Any],
    scores_b: Sequence[Any] | None = None,
    metric: str = "auroc",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    seeds: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Macro metric over repeated training seeds, and the paired difference of two arms, pooled over seeds.

    ``scores_a[s]`` (and ``scores_b[s]``) are the test scores of the run with training seed ``s``; all runs
    score the same rows ``y_true``. Arms are paired by seed: run ``s`` of both arms shares its seed (head
    initialization, batch order and, below a label fraction of 1, the training subset). Resample ``r`` draws

    * rows ``i_r`` = :func:`bootstrap_indices` ``(N, R, seed)[r]``, shared by every seed and both arms, and
    * seeds ``σ_r`` = :func:`seed_bootstrap_indices` ``(S, R, seed)[r]`` (S positions with replacement), shared
      by both arms,

    and computes ``m_a(r) = mean_{s∈σ_r} macro(a_s on i_r)`` (same for b) and ``d(r) = m_a(r) − m_b(r)``.
    The point values are the means over seeds on the full table; the intervals are percentiles of ``m_a``
    and ``d``. Resampling seeds as well as rows makes the interval carry the between-seed variance (a
    two-level bootstrap); with one seed it is exactly :func:`bootstrap_ci` / :func:`paired_bootstrap_diff`.
    Labels are skipped per resample as there (from ``y_true`` only, so alike for every run).

    Returns:
        ``{"a": {...}, "b": {...}, "difference": {...}}`` (``b``/``difference`` only with ``scores_b``); each with
        ``point``, ``low``, ``high``, ``basic_low``, ``basic_high``, ``mean``, ``sd`` (over seeds, ddof 1),
        ``per_seed`` and ``n_valid_resamples``; the difference also ``p_value`` (as
        :func:`paired_bootstrap_diff`); plus ``metric``, ``n_resamples``, ``confidence``, ``seed``,
        ``seeds``, ``n_rows``, ``labels`` (kept label positions) and ``skipped_labels``.

    Shape:
        y_true: (N, L); scores_a[s], scores_b[s]: (N, L) for each of S seeds.
    """
    metric = _check_metric(metric)
    n_resamples, confidence = _check_bootstrap_args(n_resamples, confidence)
    arms = [list(scores_a)] + ([list(scores_b)] if scores_b is not None else [])
    n_seeds = len(arms[0])
    if n_seeds == 0 or any(len(arm) != n_seeds for arm in arms):
        raise ValueError(f"every arm needs one score table per seed, got {[len(arm) for arm in arms]}")
    seeds = list(seeds) if seeds is not None else list(range(n_seeds))
    if len(seeds) != n_seeds:
        raise ValueError(f"{len(seeds)} seed names for {n_seeds} score tables")
    flat = [s for arm in arms for s in arm]
    y, *checked, _ = _validate_2d(y_true, *flat, score_names=[f"scores[{k}]" for k in range(len(flat))])
    kept, skipped, points, reps = _bootstrap_values(y, checked, metric, n_resamples, seed)
    seed_idx = seed_bootstrap_indices(n_seeds, n_resamples, seed)
    out: dict[str, Any] = {}
    pooled = []
    for name, k0 in zip(("a", "b"), range(0, len(flat), n_seeds)):
        arm_points = np.array([points[k].mean() for k in range(k0, k0 + n_seeds)])
        arm_reps = np.stack([_macro(reps[k]) for k in range(k0, k0 + n_seeds)], axis=1)  # (R, S)
        out[name], _ = _seed_summary(arm_points, arm_reps, seed_idx, confidence, seeds)
        pooled.append((arm_points, arm_reps))
    if scores_b is not None:
        (pa, ra), (pb, rb) = pooled
        diff, diffs = _seed_summary(pa - pb, ra - rb, seed_idx, confidence, seeds)
        valid = diffs[~np.isnan(diffs)]
        point = diff["point"]
        if point == 0.0 or valid.size == 0:
            diff["p_value"] = 1.0
        else:
            other_side = (valid <= 0.0) if point > 0 else (valid >= 0.0)
            diff["p_value"] = min(1.0, 2.0 * float(other_side.mean()))
        out["difference"] = diff
    out.update(metric=metric, n_resamples=n_resamples, confidence=confidence, seed=seed, seeds=seeds,
               n_rows=int(y.shape[0]), labels=kept, skipped_labels=skipped)
    return out
