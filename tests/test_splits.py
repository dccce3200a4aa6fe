"""Patient-level splits: no subject in two splits, fractions respected, deterministic by seed."""

import numpy as np
import pandas as pd
import pytest

from medcam_lab.datasets.patient_split import patient_split


def test_no_subject_in_two_splits_and_fractions():
    rng = np.random.default_rng(0)
    subjects = pd.Series(rng.integers(10_000_000, 10_000_500, size=3000))
    split = patient_split(subjects, (0.6, 0.2, 0.2), seed=3)
    per_subject = pd.DataFrame({"s": subjects, "split": split}).groupby("s")["split"].nunique()
    assert (per_subject == 1).all()
    counts = pd.DataFrame({"s": subjects, "split": split}).drop_duplicates("s")["split"].value_counts()
    n = subjects.nunique()
    assert counts["train"] == round(0.6 * n) and counts["val"] == round(0.2 * n)
    assert counts.sum() == n


def test_deterministic_and_seed_dependent():
    subjects = pd.Series(np.arange(200).repeat(2))
    a = patient_split(subjects, (0.6, 0.2, 0.2), seed=1)
    assert (a == patient_split(subjects, (0.6, 0.2, 0.2), seed=1)).all()
    assert (a != patient_split(subjects, (0.6, 0.2, 0.2), seed=2)).any()


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.6, 0.3, 0.3), (-0.1, 0.6, 0.5)])
def test_bad_fractions(bad):
    with pytest.raises(ValueError):
        patient_split(pd.Series([1, 2, 3]), bad, 0)
