"""Label-efficiency subsets of a training split: a fraction of its patients, nested, seeded, covering labels.

``training_subset(train_rows, patients, labels, fraction, seed)`` keeps ``k = max(1, round(fraction × P))`` of
the ``P`` training patients (with all their images); validation and test are never passed in, so they cannot
change. For one ``seed`` the subsets of all fractions are prefixes of one patient order, hence **nested**
(the 1 % patients are inside the 10 %). The order is:

1. *coverage*: labels by increasing number of positive training patients (rarest first); for each label that
   no patient chosen so far has positive, the first patient, in a seeded random order, with a positive for
   it; this patient may cover other labels too;
2. every other patient, in the same seeded random order.

So a subset keeps at least one positive of every label that has one in the training split as long as
``k`` is at least the number of coverage patients (at most one per label); with a smaller ``k`` the rarest
labels keep theirs. Beyond this the subsets are a simple random sample of patients (no proportional
stratification). ``fraction = 1`` returns the training rows unchanged. Datasets without patient ids pass the
image id as the patient (one image per "patient").

For VinDr-CXR the BenchX lists of 1 % and 10 % of the training images (``benchx_vindr_train_{1,10}``,
nested, shipped in ``medcam_lab/datasets/splits``) replace the draw at those fractions; they do not depend on
the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["BENCHX_TRAIN_LISTS", "TrainingSubset", "patient_order", "training_subset", "benchx_subset"]

#: (dataset, fraction) → shipped list of training image ids (BenchX).
BENCHX_TRAIN_LISTS: dict[tuple[str, float], str] = {
    ("vindr", 0.01): "benchx_vindr_train_1",
    ("vindr", 0.1): "benchx_vindr_train_10",
}


@dataclass(frozen=True)
class TrainingSubset:
    """The training rows kept for one fraction and seed, and how they were chosen.

    Attributes:
        rows: sorted row indices (into the dataset's table) of the kept training images.
        method: ``all`` (fraction 1), ``patients`` (the seeded draw) or ``benchx:<list name>``.
        labels_without_positive: labels with a positive in the full training split but none in the subset.
    """

    rows: np.ndarray
    fraction: float
    seed: int
    method: str
    n_patients: int
    n_patients_total: int
    n_images_total: int
    labels_without_positive: list[str] = field(default_factory=list)
    listed_absent: int = 0

    def summary(self) -> dict:
        """The subset as a JSON-ready dict (``training_subset.json`` of a fine-tuning run): counts, method, gaps."""
        return {"fraction": self.fraction, "seed": self.seed, "method": self.method,
                "n_images": int(len(self.rows)), "n_images_total": self.n_images_total,
                "n_patients": self.n_patients, "n_patients_total": self.n_patients_total,
                "labels_without_positive": self.labels_without_positive, "listed_absent": self.listed_absent}


def _check_fraction(fraction: float) -> float:
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction!r}")
    return float(fraction)


def patient_order(patients: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """The seeded priority order of the unique patients (coverage patients first, see the module doc).

    Shape:
        patients: (N,) patient id per training row; labels: (N, L) in {0, 1, NaN}; returns (P,) unique ids.
    """
    unique, inverse = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    positive = np.zeros((len(unique), labels.shape[1]), dtype=bool)
    np.logical_or.at(positive, inverse, np.nan_to_num(labels, nan=0.0) == 1)
    random_rank = np.random.default_rng(seed).permutation(len(unique))  # patient i's place in the random order
    by_random = np.argsort(random_rank)
    chosen = np.zeros(len(unique), dtype=bool)
    covered = np.zeros(labels.shape[1], dtype=bool)
    head: list[int] = []
    counts = positive.sum(axis=0)
    for j in np.argsort(counts, kind="stable"):
        if counts[j] == 0 or covered[j]:
            continue
        candidates = by_random[positive[by_random, j] & ~chosen[by_random]]
        p = int(candidates[0])
        head.append(p)
        chosen[p] = True
        covered |= positive[p]
    rest = by_random[~chosen[by_random]]
    return unique[np.concatenate([np.asarray(head, dtype=np.int64), rest])]


def _missing_labels(labels: np.ndarray, kept: np.ndarray, names: tuple[str, ...]) -> list[str]:
    had = (np.nan_to_num(labels, nan=0.0) == 1).any(axis=0)
    has = (np.nan_to_num(labels[kept], nan=0.0) == 1).any(axis=0)
    return [names[j] for j in np.flatnonzero(had & ~has)]


def training_subset(train_rows: np.ndarray, patients: np.ndarray, labels: np.ndarray, fraction: float, seed: int,
                    names: tuple[str, ...]) -> TrainingSubset:
    """The nested, seeded, patient-level subset of the training rows for ``fraction``.

    Shape:
        train_rows: (N,) row indices; patients: (N,) their patient ids; labels: (N, L); names: L label names.
    """
    fraction = _check_fraction(fraction)
    train_rows = np.asarray(train_rows)
    patient_ids = np.asarray(patients).astype(str)
    n_patients = len(np.unique(patient_ids))
    if fraction == 1.0:
        return TrainingSubset(train_rows, 1.0, seed, "all", n_patients, n_patients, len(train_rows))
    order = patient_order(patient_ids, labels, seed)
    k = max(1, int(round(fraction * n_patients)))
    kept = np.isin(patient_ids, order[:k])
    return TrainingSubset(np.sort(train_rows[kept]), fraction, seed, "patients", k, n_patients, len(train_rows),
                          _missing_labels(labels, kept, names))


def benchx_subset(train_rows: np.ndarray, image_ids: np.ndarray, labels: np.ndarray, list_name: str,
                  fraction: float, seed: int, names: tuple[str, ...]) -> TrainingSubset:
    """The training rows whose image id is in a shipped BenchX list.

    Listed images that are not among the training rows (left out when the set was prepared: its
    ``report.json`` says why) are counted in ``listed_absent``; none of them may exceed half of the list.

    Raises:
        ValueError: if fewer than half of the listed ids are training rows (the prepared set does not hold
            the BenchX training split).
    """
    from medcam_lab.datasets.base import read_split_ids

    listed = set(read_split_ids(list_name))
    ids = np.asarray(image_ids).astype(str)
    kept = np.isin(ids, list(listed))
    absent = len(listed) - int(kept.sum())
    if 2 * absent > len(listed):
        raise ValueError(f"{absent} of the {len(listed)} images of the BenchX list {list_name!r} are not in the "
                         "training split of this prepared set: it was not prepared with the BenchX split")
    return TrainingSubset(np.sort(np.asarray(train_rows)[kept]), _check_fraction(fraction), seed,
                          f"benchx:{list_name}", int(kept.sum()), len(ids), len(ids),
                          _missing_labels(labels, kept, names), absent)
