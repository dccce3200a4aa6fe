"""Patient-level splits: every image of a subject lands in the same split."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "val", "test")


def patient_split(subject_ids: pd.Series, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Assign each row the split of its subject; subjects are shuffled with ``seed`` and cut by ``fractions``.

    The number of subjects in train and val is ``round(fraction × n_subjects)``; test takes the rest.

    Shape:
        subject_ids: (N,); returns (N,) array of ``"train"``/``"val"``/``"test"``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    subjects = np.array(sorted(pd.unique(subject_ids)))
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_train = int(round(fractions[0] * len(subjects)))
    n_val = int(round(fractions[1] * len(subjects)))
    assignment = np.empty(len(subjects), dtype=object)
    assignment[order[:n_train]] = "train"
    assignment[order[n_train : n_train + n_val]] = "val"
    assignment[order[n_train + n_val :]] = "test"
    lookup = dict(zip(subjects.tolist(), assignment.tolist()))
    return np.array([lookup[s] for s in subject_ids.tolist()], dtype=object)
