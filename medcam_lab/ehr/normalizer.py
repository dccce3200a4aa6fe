"""Standardization of the continuous discretizer columns (spec ``ehr.md`` §3).

Only columns whose name contains no ``->`` are standardized: built from
:func:`~medcam_lab.ehr.channels.feature_names` these are exactly the 12 continuous columns
``[2, 3, 49..58]``; one-hot (``<channel>-><string>``) and mask (``mask-><channel>``) columns are left
untouched. Statistics are kept for every column, as the reference does, pooled over every bin of every
episode, with ``std = sqrt((Σx² − 2·Σx·mean + N·mean²)/(N−1))`` floored at 1e-7 (a radicand that
rounding makes slightly negative counts as 0). State is saved as JSON, never pickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

STD_FLOOR = 1e-7


class Normalizer:
    """Per-column ``(x - mean) / std`` on the continuous columns.

    Args:
        mean: Mean of every column.
        std: Standard deviation of every column.
        columns: Column names (e.g. ``feature_names()``); a name without ``->`` is standardized.

    Shape:
        mean, std: (F,); columns: F names.

    Examples:
        >>> from medcam_lab.ehr.channels import feature_names
        >>> names = feature_names()
        >>> norm = Normalizer.fit([np.ones((3, 76)), np.zeros((1, 76))], names)
        >>> norm.continuous_indices[:3]
        [2, 3, 49]
    """

    def __init__(
        self, mean: Sequence[float] | np.ndarray, std: Sequence[float] | np.ndarray, columns: Sequence[str]
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.columns = [str(c) for c in columns]
        if not (self.mean.shape == self.std.shape == (len(self.columns),)):
            raise ValueError(
                f"mean {self.mean.shape}, std {self.std.shape} and {len(self.columns)} columns disagree"
            )
        self.continuous_indices = [i for i, name in enumerate(self.columns) if "->" not in name]

    @classmethod
    def fit(cls, episodes: Iterable[np.ndarray], columns: Sequence[str]) -> Normalizer:
        """Pool every bin of every episode and compute per-column mean and std.

        Args:
            episodes: Discretized episodes (the same settings and ``end`` as at use time).
            columns: Their column names.

        Shape:
            each episode: (T_i, F) with F == len(columns).
        """
        width = len(columns)
        total = np.zeros(width)
        total_sq = np.zeros(width)
        count = 0
        for values in episodes:
            x = np.asarray(values, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != width:
                raise ValueError(f"episode of shape {x.shape} does not have {width} columns")
            total += x.sum(axis=0)
            total_sq += (x * x).sum(axis=0)
            count += x.shape[0]
        if count < 2:
            raise ValueError(f"need at least 2 bins to fit a normalizer, got {count}")
        mean = total / count
        radicand = (total_sq - 2.0 * total * mean + count * mean * mean) / (count - 1)
        std = np.maximum(np.sqrt(np.maximum(radicand, 0.0)), STD_FLOOR)
        return cls(mean, std, columns)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Standardize the continuous columns of ``values`` (a new array; the input is not changed).

        Shape:
            values: (..., F); returns the same shape (float input keeps its dtype).
        """
        values = np.asarray(values)
        x = np.array(values, dtype=values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64)
        if x.shape[-1] != len(self.columns):
            raise ValueError(f"values have {x.shape[-1]} columns, the normalizer {len(self.columns)}")
        idx = self.continuous_indices
        x[..., idx] = (x[..., idx] - self.mean[idx]) / self.std[idx]
        return x

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: ``{"columns", "mean", "std"}``."""
        return {"columns": list(self.columns), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Normalizer:
        """Rebuild from :meth:`to_dict` output."""
        return cls(state["mean"], state["std"], state["columns"])

    def save(self, path: str | Path) -> None:
        """Write the state as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        """Read a state written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
