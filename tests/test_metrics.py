"""Tests for medcam_lab.metrics (scikit-learn is the reference implementation)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import medcam_lab.metrics as M
from medcam_lab.metrics import (
    auprc,
    auroc,
    bootstrap_ci,
    bootstrap_indices,
    paired_bootstrap_diff,
    per_label_metric,
)

SK = {"auroc": roc_auc_score, "auprc": average_precision_score}
OURS = {"auroc": auroc, "auprc": auprc}


def _table(n=300, prev=(0.3, 0.05, 0.5, 0.02), nan_frac=0.1, decimals=1, seed=0, signal=0.6):
    """Labels with NaNs, rare labels, and heavily tied (rounded) scores."""
    rng = np.random.default_rng(seed)
    prev = np.asarray(prev)
    y = (rng.random((n, prev.size)) < prev).astype(float)
    s = rng.random((n, prev.size)) + signal * y
    if decimals is not None:
        s = np.round(s, decimals)
    if nan_frac:
        y[rng.random(y.shape) < nan_frac] = np.nan
    return y, s


def _sk_macro_loop(y, s, idx, metric):
    """Literal reference: macro over labels with both classes in each resample, via sklearn."""
    f = SK[metric]
    macros, per_label, skips = [], [], 0
    for r in range(idx.shape[0]):
        yy, ss = y[idx[r]], s[idx[r]]
        vals = []
        for j in range(y.shape[1]):
            known = ~np.isnan(yy[:, j])
            yj = yy[known, j]
            if yj.size == 0 or yj.min() == yj.max():
                vals.append(np.nan)
            else:
                vals.append(f(yj, ss[known, j]))
        vals = np.asarray(vals)
        skips += int(np.isnan(vals).any())
        macros.append(np.nanmean(vals) if (~np.isnan(vals)).any() else np.nan)
        per_label.append(vals)
    return np.asarray(macros), np.asarray(per_label), skips


# ------------------------------------------------------------------ single-label metrics


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
@pytest.mark.parametrize("decimals", [None, 2, 1, 0])
def test_matches_sklearn_random_with_ties(metric, decimals):
    rng = np.random.default_rng(42)
    for trial in range(25):
        n = int(rng.integers(2, 400))
        y = (rng.random(n) < rng.uniform(0.02, 0.9)).astype(int)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        s = rng.normal(size=n) + rng.uniform(0, 2) * y
        if decimals is not None:
            s = np.round(s, decimals)
        assert OURS[metric](y, s) == pytest.approx(SK[metric](y, s), abs=1e-12), (trial, n)


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
@pytest.mark.parametrize(
    "y,s",
    [
        ([0, 1], [0.1, 0.9]),  # minimal, perfect
        ([1, 0], [0.1, 0.9]),  # minimal, inverted
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]),  # all tied
        ([0, 0, 0, 1], [0.2, 0.2, 0.9, 0.2]),  # tie of the single positive with negatives
        ([1, 1, 1, 0], [3, -1, 2, 2]),  # integer logits, single negative
        ([True, False, True, False, False], [-2.0, -3.0, -2.0, -1.0, -3.0]),  # bool labels
        ([0, 1, 0, 0, 1, 1], [1e-12, 1e-12 + 1e-15, 0.0, -0.0, 1.0, 1.0]),  # +-0 and near-ties
    ],
)
def test_edge_cases_match_sklearn(metric, y, s):
    assert OURS[metric](np.array(y), np.array(s)) == pytest.approx(SK[metric](y, s), abs=1e-12)


def test_perfect_and_tied_values():
    y = np.array([0, 0, 1, 1, 1])
    assert auroc(y, [0, 1, 2, 3, 4]) == 1.0
    assert auprc(y, [0, 1, 2, 3, 4]) == 1.0
    assert auroc(y, [4, 3, 2, 1, 0]) == 0.0
    assert auroc(y, np.zeros(5)) == 0.5
    assert auprc(y, np.zeros(5)) == pytest.approx(0.6)  # all tied -> prevalence


@pytest.mark.parametrize("fn", [auroc, auprc])
def test_single_metric_errors(fn):
    with pytest.raises(ValueError, match="only one class"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="only one class"):
        fn([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="same shape"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="1-D"):
        fn(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fn([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="inf"):
        fn([0, 1, 1], [0.1, np.inf, 0.3])
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        fn([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        fn([0, np.nan, 1], [0.1, 0.2, 0.3])  # unknown labels only in the multi-label API
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="numeric"):
        fn(["a", "b"], [0.1, 0.2])


# ------------------------------------------------------------------ per-label metric


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_per_label_nan_exclusion_and_skips(metric):
    y, s = _table(n=200, prev=(0.3, 0.0, 0.5, 1.0, 0.1))
    y[:, 4] = np.nan  # label with no known row at all
    y[:3, 4] = [0, 1, 0]
    y[:, 2] = np.nan  # only unknown rows + one class -> skipped
    y[:50, 2] = 1
    values, skipped = per_label_metric(y, s, metric)
    assert skipped == [1, 2, 3]
    assert np.isnan(values[skipped]).all()
    for j in (0, 4):
        known = ~np.isnan(y[:, j])
        assert values[j] == pytest.approx(SK[metric](y[known, j], s[known, j]), abs=1e-12)


def test_per_label_callable_and_1d():
    y, s = _table(n=100, prev=(0.3,), nan_frac=0)
    values, skipped = per_label_metric(y[:, 0], s[:, 0], "auroc")
    assert values.shape == (1,) and skipped == []
    assert values[0] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    v2, _ = per_label_metric(y, s, lambda a, b: float(np.mean(b[a == 1])))
    assert v2[0] == pytest.approx(s[y[:, 0] == 1, 0].mean())
    with pytest.raises(ValueError, match="unknown metric"):
        per_label_metric(y, s, "accuracy")


# ------------------------------------------------------------------ bootstrap indices


def test_bootstrap_indices_reproducible():
    idx = bootstrap_indices(57, 9, seed=5)
    assert idx.shape == (9, 57) and idx.min() >= 0 and idx.max() < 57
    assert np.array_equal(idx, bootstrap_indices(57, 9, seed=5))
    assert not np.array_equal(idx, bootstrap_indices(57, 9, seed=6))
    ref = np.random.default_rng(5).integers(0, 57, size=(9, 57))
    assert np.array_equal(idx, ref)
    with pytest.raises(ValueError):
        bootstrap_indices(0, 3)


# ------------------------------------------------------------------ bootstrap CI


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_bootstrap_equals_literal_sklearn_loop(metric):
    y, s = _table(n=150, prev=(0.3, 0.03, 0.5, 0.0, 0.15), decimals=1, seed=3)
    R, seed = 80, 11
    res = bootstrap_ci(y, s, metric=metric, n_resamples=R, seed=seed, return_replicates=True)
    idx = bootstrap_indices(y.shape[0], R, seed)
    macro_ref, per_label_ref, skips_ref = _sk_macro_loop(y, s, idx, metric)

    assert res["skipped_labels"] == ["label_3"]
    assert res["labels"] == ["label_0", "label_1", "label_2", "label_4"]
    np.testing.assert_allclose(res["replicates"], macro_ref, rtol=0, atol=1e-10)
    # label_3 has one class in the full table: excluded everywhere, not counted as a per-resample skip
    kept_ref = per_label_ref[:, [0, 1, 2, 4]]
    assert skips_ref == 80
    assert res["resamples_with_skips"] == int(np.isnan(kept_ref).any(axis=1).sum())
    assert res["resamples_with_skips"] > 0  # the rare label vanishes from some resamples
    lo, hi = np.percentile(macro_ref, [2.5, 97.5])
    assert res["low"] == pytest.approx(lo, abs=1e-10) and res["high"] == pytest.approx(hi, abs=1e-10)

    vals, _ = per_label_metric(y, s, metric)
    assert res["point"] == pytest.approx(np.nanmean(vals), abs=1e-12)
    assert res["basic_low"] == pytest.approx(2 * res["point"] - hi, abs=1e-10)
    assert res["basic_high"] == pytest.approx(2 * res["point"] - lo, abs=1e-10)
    for j in [0, 1, 2, 4]:
        pl = res["per_label"][f"label_{j}"]
        ref = per_label_ref[:, j]
        np.testing.assert_allclose(res["label_replicates"][f"label_{j}"], ref, rtol=0, atol=1e-10)
        plo, phi = np.percentile(ref[~np.isnan(ref)], [2.5, 97.5])
        assert pl["point"] == pytest.approx(vals[j], abs=1e-12)
        assert (pl["low"], pl["high"]) == pytest.approx((plo, phi), abs=1e-10)
        assert pl["basic_low"] == pytest.approx(2 * vals[j] - phi, abs=1e-10)
        assert pl["basic_high"] == pytest.approx(2 * vals[j] - plo, abs=1e-10)
    assert "label_3" not in res["per_label"]


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_bootstrap_continuous_scores_and_block_size_invariance(metric, monkeypatch):
    y, s = _table(n=400, prev=(0.2, 0.6, 0.08), decimals=None, nan_frac=0.05, seed=8)
    res = bootstrap_ci(y, s, metric=metric, n_resamples=50, seed=2, return_replicates=True)
    macro_ref, _, _ = _sk_macro_loop(y, s, bootstrap_indices(400, 50, 2), metric)
    np.testing.assert_allclose(res["replicates"], macro_ref, rtol=0, atol=1e-10)
    monkeypatch.setattr(M, "_MAX_CHUNK_BYTES", 8 * 400 * 7)  # blocks of 7 resamples
    res7 = bootstrap_ci(y, s, metric=metric, n_resamples=50, seed=2, return_replicates=True)
    np.testing.assert_allclose(res7["replicates"], res["replicates"], rtol=0, atol=1e-14)


def test_bootstrap_deterministic_and_seed_dependent():
    y, s = _table(n=300, nan_frac=0.0, decimals=2)
    a = bootstrap_ci(y, s, n_resamples=200, seed=1)
    b = bootstrap_ci(y, s, n_resamples=200, seed=1)
    c = bootstrap_ci(y, s, n_resamples=200, seed=2)
    assert a == b
    assert a["point"] == c["point"]
    assert (a["low"], a["high"]) != (c["low"], c["high"])


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_interval_contains_point_and_shrinks_with_n(metric):
    widths = []
    for n in (300, 6000):
        y, s = _table(n=n, prev=(0.2, 0.4, 0.1), nan_frac=0.0, decimals=None, seed=4)
        res = bootstrap_ci(y, s, metric=metric, n_resamples=300, seed=0)
        assert res["low"] <= res["point"] <= res["high"]
        assert res["basic_low"] <= res["point"] <= res["basic_high"]
        for pl in res["per_label"].values():
            assert pl["low"] <= pl["point"] <= pl["high"]
        widths.append(res["high"] - res["low"])
    assert widths[1] < 0.5 * widths[0]  # ~ 1/sqrt(20) expected


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_perfect_classifier(metric):
    y, _ = _table(n=200, prev=(0.3, 0.5), nan_frac=0.1)
    s = np.where(np.isnan(y), 0.5, y) + 0.01 * np.random.default_rng(0).random(y.shape)
    res = bootstrap_ci(y, s, metric=metric, n_resamples=100)
    for key in ("point", "low", "high", "basic_low", "basic_high"):
        assert res[key] == 1.0


def test_single_label_1d_and_names():
    y, s = _table(n=120, prev=(0.3,), nan_frac=0.0)
    res = bootstrap_ci(y[:, 0], s[:, 0], n_resamples=50, label_names=["Edema"])
    assert list(res["per_label"]) == ["Edema"] and res["skipped_labels"] == []
    assert res["point"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    assert res["per_label"]["Edema"]["point"] == res["point"]
    assert (res["per_label"]["Edema"]["low"], res["per_label"]["Edema"]["high"]) == (res["low"], res["high"])
    for key in ("n_resamples", "confidence", "metric", "seed", "n_rows", "resamples_with_skips"):
        assert key in res
    assert (res["n_resamples"], res["metric"], res["seed"], res["n_rows"]) == (50, "auroc", 0, 120)


def test_tiny_table_all_labels_skipped_in_some_resamples():
    y = np.array([0.0, 1.0, 0.0])
    s = np.array([0.1, 0.9, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = bootstrap_ci(y, s, n_resamples=200, seed=0, return_replicates=True)
    assert res["point"] == 1.0
    assert res["n_valid_resamples"] < 200
    assert res["n_valid_resamples"] == int((~np.isnan(res["replicates"])).sum())
    assert res["resamples_with_skips"] == 200 - res["n_valid_resamples"]
    assert res["low"] == res["high"] == 1.0


def test_confidence_level_changes_interval():
    y, s = _table(n=300, nan_frac=0.0, decimals=None)
    r95 = bootstrap_ci(y, s, n_resamples=300, confidence=0.95)
    r50 = bootstrap_ci(y, s, n_resamples=300, confidence=0.5)
    assert r95["low"] < r50["low"] < r50["high"] < r95["high"]
    assert r50["confidence"] == 0.5


# ------------------------------------------------------------------ paired difference


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_paired_self_is_zero(metric):
    y, s = _table(n=250, seed=5)
    res = paired_bootstrap_diff(y, s, s.copy(), metric=metric, n_resamples=200)
    assert res["point"] == 0.0 and res["low"] == 0.0 and res["high"] == 0.0
    assert res["p_value"] == 1.0
    assert res["n_resamples"] == 200 and res["confidence"] == 0.95 and res["metric"] == metric


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_paired_sign_and_consistency(metric):
    rng = np.random.default_rng(9)
    y, _ = _table(n=600, prev=(0.3, 0.2, 0.4), nan_frac=0.05, seed=9)
    base = rng.normal(size=y.shape)
    good = base + 2.0 * np.nan_to_num(y)
    weak = base + 0.3 * np.nan_to_num(y)
    ab = paired_bootstrap_diff(y, good, weak, metric=metric, n_resamples=200, seed=3, return_replicates=True)
    ba = paired_bootstrap_diff(y, weak, good, metric=metric, n_resamples=200, seed=3)
    assert ab["point"] > 0 and ab["low"] > 0 and ab["p_value"] == 0.0
    assert ba["point"] == pytest.approx(-ab["point"]) and ba["high"] < 0
    assert ba["low"] == pytest.approx(-ab["high"]) and ba["high"] == pytest.approx(-ab["low"])

    # same resamples as bootstrap_ci with the same seed: difference of the macro replicates
    ra = bootstrap_ci(y, good, metric=metric, n_resamples=200, seed=3, return_replicates=True)
    rb = bootstrap_ci(y, weak, metric=metric, n_resamples=200, seed=3, return_replicates=True)
    np.testing.assert_allclose(ab["replicates"], ra["replicates"] - rb["replicates"], atol=1e-12)
    assert ab["point"] == pytest.approx(ra["point"] - rb["point"], abs=1e-12)
    assert ab["point_a"] == ra["point"] and ab["point_b"] == rb["point"]
    assert set(ab["per_label"]) == set(ra["per_label"])


def test_paired_p_value_definition():
    y, s = _table(n=80, prev=(0.3, 0.5), nan_frac=0.0, decimals=None, seed=1, signal=0.4)
    rng = np.random.default_rng(1)
    s2 = s + 0.3 * rng.normal(size=s.shape)
    res = paired_bootstrap_diff(y, s, s2, n_resamples=400, seed=4, return_replicates=True)
    d = res["replicates"]
    other = (d <= 0) if res["point"] > 0 else (d >= 0)
    assert res["p_value"] == pytest.approx(min(1.0, 2 * other.mean()))
    assert 0.0 < res["p_value"] <= 1.0


# ------------------------------------------------------------------ input validation


def test_bootstrap_input_errors():
    y, s = _table(n=50, prev=(0.3, 0.5), nan_frac=0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, s, metric="f1")
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(y, s, n_resamples=0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(y, s, n_resamples=10.5)
    for bad in (0, 1, 1.5, -0.1, "x"):
        with pytest.raises(ValueError, match="confidence"):
            bootstrap_ci(y, s, confidence=bad)
    with pytest.raises(ValueError, match="same shape"):
        bootstrap_ci(y, s[:, :1])
    with pytest.raises(ValueError, match="same shape"):
        bootstrap_ci(y, s[:-1])
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(y[..., None], s[..., None])
    s_nan = s.copy()
    s_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="y_score contains 1 NaN"):
        bootstrap_ci(y, s_nan)
    s_inf = s.copy()
    s_inf[0, 0] = -np.inf
    with pytest.raises(ValueError, match="inf"):
        bootstrap_ci(y, s_inf)
    y_bad = y.copy()
    y_bad[0, 0] = 2
    with pytest.raises(ValueError, match=r"\{0, 1, NaN\}"):
        bootstrap_ci(y_bad, s)
    y_bad[0, 0] = -1  # CheXpert "uncertain" must be mapped by the caller
    with pytest.raises(ValueError, match=r"\{0, 1, NaN\}"):
        bootstrap_ci(y_bad, s)
    with pytest.raises(ValueError, match="label_names"):
        bootstrap_ci(y, s, label_names=["a"])
    with pytest.raises(ValueError, match="unique"):
        bootstrap_ci(y, s, label_names=["a", "a"])
    with pytest.raises(ValueError, match="no label has both classes"):
        bootstrap_ci(np.ones_like(y), s)
    with pytest.raises(ValueError, match="score_b contains"):
        paired_bootstrap_diff(y, s, s_nan)
    with pytest.raises(ValueError, match="score_a and|y_true and score_a"):
        paired_bootstrap_diff(y, s[:, :1], s)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap_diff(y, s, s, confidence=1.0)


def test_skipped_labels_reported_by_name():
    y, s = _table(n=100, prev=(0.3, 0.0, 0.4, 1.0), nan_frac=0.0)
    names = ["Atelectasis", "Fracture", "Edema", "Support Devices"]
    res = bootstrap_ci(y, s, n_resamples=30, label_names=names)
    assert res["skipped_labels"] == ["Fracture", "Support Devices"]
    assert list(res["per_label"]) == ["Atelectasis", "Edema"]
    assert res["point"] == pytest.approx(
        np.mean([roc_auc_score(y[:, 0], s[:, 0]), roc_auc_score(y[:, 2], s[:, 2])])
    )
    diff = paired_bootstrap_diff(y, s, s, n_resamples=30, label_names=names)
    assert diff["skipped_labels"] == ["Fracture", "Support Devices"]
