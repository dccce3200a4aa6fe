"""Normalizer tests: pooled statistics (spec ``ehr.md`` §3, ``mode="medfuse"``), which columns change, JSON round
trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medcam_lab.ehr import Normalizer, feature_names

CONTINUOUS = [2, 3, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58]


def random_episodes(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    episodes = []
    for length in (3, 1, 7, 24):
        x = (rng.random((length, 76)) < 0.5).astype(np.float32)  # one-hot / mask like
        x[:, CONTINUOUS] = rng.normal(80.0, 15.0, (length, 12))
        episodes.append(x)
    return episodes


def test_fit_matches_numpy_on_pooled_bins() -> None:
    episodes = random_episodes()
    norm = Normalizer.fit(iter(episodes), feature_names(), mode="medfuse")
    pooled = np.concatenate(episodes).astype(np.float64)
    np.testing.assert_allclose(norm.mean, pooled.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(norm.std, pooled.std(axis=0, ddof=1), rtol=1e-7)
    assert norm.continuous_indices == CONTINUOUS


def test_std_floor_for_constant_columns() -> None:
    norm = Normalizer.fit([np.full((4, 76), 3.0)], feature_names(), mode="medfuse")
    np.testing.assert_array_equal(norm.std, np.full(76, 1e-7))
    np.testing.assert_array_equal(norm.mean, np.full(76, 3.0))


def test_literal_statistics() -> None:
    # column values 1, 2, 3, 6 -> mean 3, sum of squares around mean 14, std sqrt(14/3)
    episodes = [np.full((2, 59), 0.0), np.full((2, 59), 0.0)]
    episodes[0][:, 2] = [1, 2]
    episodes[1][:, 2] = [3, 6]
    norm = Normalizer.fit(episodes, feature_names(store_masks=False), mode="medfuse")
    assert norm.mean[2] == pytest.approx(3.0) and norm.std[2] == pytest.approx((14 / 3) ** 0.5)
    out = norm.transform(episodes[1])
    assert out[:, 2] == pytest.approx([0.0, 3.0 / (14 / 3) ** 0.5])


def test_transform_only_continuous_columns() -> None:
    episodes = random_episodes(1)
    norm = Normalizer.fit(episodes, feature_names(), mode="medfuse")
    x = episodes[2]
    out = norm.transform(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    other = [i for i in range(76) if i not in CONTINUOUS]
    np.testing.assert_array_equal(out[:, other], x[:, other])
    np.testing.assert_allclose(
        out[:, CONTINUOUS], (x[:, CONTINUOUS] - norm.mean[CONTINUOUS]) / norm.std[CONTINUOUS], rtol=1e-5
    )
    np.testing.assert_array_equal(x, episodes[2])  # input unchanged


def test_json_round_trip(tmp_path: Path) -> None:
    norm = Normalizer.fit(random_episodes(2), feature_names(), mode="medfuse")
    path = tmp_path / "normalizer.json"
    norm.save(path)
    back = Normalizer.load(path)
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)
    assert back.columns == feature_names()
    assert Normalizer.from_dict(norm.to_dict()).columns == norm.columns
    assert path.read_text().lstrip().startswith("{")


def test_errors() -> None:
    with pytest.raises(ValueError):
        Normalizer([0.0], [1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="at least 2"):
        Normalizer.fit([np.zeros((1, 76))], feature_names(), mode="medfuse")
    norm = Normalizer(np.zeros(3), np.ones(3), ["a", "b->x", "c"])
    with pytest.raises(ValueError):
        norm.transform(np.zeros((2, 4)))
    np.testing.assert_array_equal(norm.transform(np.array([[1, 1, 1]])), [[1.0, 1.0, 1.0]])
