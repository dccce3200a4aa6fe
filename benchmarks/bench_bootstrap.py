"""Bootstrap CIs: medcam_lab's vectorized ``bootstrap_ci`` vs a loop over scikit-learn's metric.

Table: 20,000 rows × 14 labels (10 % positives, continuous scores with ties from rounding), 1,000 resamples.
The scikit-learn loop recomputes the macro metric on the very same resample indices
(:func:`medcam_lab.metrics.bootstrap_indices`) for the first ``--sklearn-resamples`` of them (all 1,000 with
``--sklearn-resamples 1000``; the default extrapolates its per-resample time), and the largest absolute
difference of the macro replicates on those resamples is printed next to the speed ratio. Usage:

    python benchmarks/bench_bootstrap.py
    python benchmarks/bench_bootstrap.py --sklearn-resamples 1000 --metric auprc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from medcam_lab.metrics import bootstrap_ci, bootstrap_indices

SKLEARN = {"auroc": roc_auc_score, "auprc": average_precision_score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--labels", type=int, default=14)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--sklearn-resamples", type=int, default=100)
    parser.add_argument("--metric", default="auroc", choices=sorted(SKLEARN))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    y = (rng.random((args.rows, args.labels)) < 0.1).astype(np.float64)
    s = np.round(rng.random((args.rows, args.labels)) + 0.5 * y, 3)  # rounding makes ties

    t0 = time.perf_counter()
    result = bootstrap_ci(y, s, args.metric, n_resamples=args.resamples, seed=args.seed, return_replicates=True)
    ours_s = time.perf_counter() - t0

    idx = bootstrap_indices(args.rows, args.resamples, seed=args.seed)
    fn = SKLEARN[args.metric]
    n_sk = min(args.sklearn_resamples, args.resamples)
    t0 = time.perf_counter()
    reference = []
    for r in range(n_sk):
        yr, sr = y[idx[r]], s[idx[r]]
        reference.append(np.mean([fn(yr[:, j], sr[:, j]) for j in range(args.labels) if 0 < yr[:, j].sum() < len(yr)]))
    sk_per_resample = (time.perf_counter() - t0) / n_sk
    diff = float(np.max(np.abs(np.asarray(reference) - result["replicates"][:n_sk])))
    print(json.dumps({
        "figure": "bootstrap", "machine": platform.machine(), "cpu_count": os.cpu_count(), "metric": args.metric,
        "rows": args.rows, "labels": args.labels, "resamples": args.resamples,
        "medcam_lab_total_s": round(ours_s, 2), "sklearn_resamples_timed": n_sk,
        "sklearn_total_s": round(sk_per_resample * args.resamples, 1),
        "sklearn_total_is_extrapolated": n_sk < args.resamples,
        "speedup": round(sk_per_resample * args.resamples / ours_s, 1),
        "max_abs_diff_of_macro_replicates": diff, "point": result["point"],
        "ci": [result["low"], result["high"]],
    }))


if __name__ == "__main__":
    main()
