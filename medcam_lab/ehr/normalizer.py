"""Standardization of the continuous discretizer columns (spec ``ehr.md`` §3).

Only columns whose name contains no ``->`` are standardized: the 12 continuous columns of a discretizer's
``feature_names`` (``[2, 3, 49..58]`` in the ``medfuse`` layout); one-hot (``<channel>-><string>``) and mask
(``mask-><channel>``) columns are left untouched. Statistics are kept for every column, as the reference
does, pooled over every bin of every episode (in ``clean`` mode, the default, a continuous column only over
the bins where it was observed: switch ``normalizer_observed_only``), with
``std = sqrt((Σx² − 2·Σx·mean + N·mean²)/(N−1))`` floored at 1e-7 (a radicand that rounding makes slightly
negative counts as 0). State is saved as JSON, never pickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcam_lab.ehr.mode import DEFAULT_MODE, EHRMode

STD_FLOOR = 1e-7


class Normalizer:
    """Per-column ``(x - mean) / std`` on the continuous columns.

    Args:
        mean: Mean of every column.
        std: Standard deviation of every column.
        columns: Column names (a discretizer's ``feature_names``); a name without ``->`` is standardized.

    Shape:
        mean, std: (F,); columns: F names.

    Examples:
        >>> from medcam_lab.ehr.discretizer import Discretizer
        >>> names = Discretizer(mode="medfuse").feature_names
        >>> norm = Normalizer.fit([np.ones((3, 76)), np.zeros((1, 76))], names, mode="medfuse")
        >>> norm.continuous_indices[:3], float(norm.mean[2])
        ([2, 3, 49], 0.75)
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
        self.unfitted: list[str] = []
        """Columns with fewer than 2 values at fit time (mean 0, std 1)."""
        self.observed_only = False
        """Whether the continuous statistics were fitted on observed bins only."""

    @classmethod
    def fit(
        cls, episodes: Iterable[np.ndarray], columns: Sequence[str], mode: EHRMode | str = DEFAULT_MODE
    ) -> Normalizer:
        """Pool every bin of every episode and compute per-column mean and std.

        Args:
            episodes: Discretized episodes (the same settings and ``end`` as at use time).
            columns: Their column names.
            mode: The EHR mode or its name; its switch ``normalizer_observed_only`` (on in ``clean``
                mode, the default; off in ``"medfuse"`` mode, which pools every bin) fits on observed bins
                only: a continuous column's statistics use only the bins where its ``mask-><channel>``
                column is 1, so imputed values do not pull the mean toward the normal value nor shrink the
                std. A continuous column observed in fewer than 2 bins gets mean 0 and std 1 and is listed
                in :attr:`unfitted`. Needs the mask columns.

        Shape:
            each episode: (T_i, F) with F == len(columns).
        """
        observed_only = EHRMode.of(mode).switches.normalizer_observed_only
        width = len(columns)
        names = [str(c) for c in columns]
        weight_of: dict[int, int] = {}
        if observed_only:
            for i, name in enumerate(names):
                if "->" not in name:
                    if f"mask->{name}" not in names:
                        raise ValueError(f"observed_only needs the column 'mask->{name}'")
                    weight_of[i] = names.index(f"mask->{name}")
        weighted = np.array(sorted(weight_of), dtype=np.int64)
        mask_cols = np.array([weight_of[i] for i in weighted], dtype=np.int64)
        total = np.zeros(width)
        total_sq = np.zeros(width)
        count = np.zeros(width)
        for values in episodes:
            x = np.asarray(values, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != width:
                raise ValueError(f"episode of shape {x.shape} does not have {width} columns")
            w = np.ones_like(x)
            if weighted.size:
                w[:, weighted] = x[:, mask_cols] > 0
            total += (w * x).sum(axis=0)
            total_sq += (w * x * x).sum(axis=0)
            count += w.sum(axis=0)
        if count.max(initial=0) < 2:
            raise ValueError(f"need at least 2 bins to fit a normalizer, got {int(count.max(initial=0))}")
        unfitted = [names[i] for i in range(width) if count[i] < 2]
        safe = np.maximum(count, 2)
        mean = total / safe
        radicand = (total_sq - 2.0 * total * mean + safe * mean * mean) / (safe - 1)
        std = np.maximum(np.sqrt(np.maximum(radicand, 0.0)), STD_FLOOR)
        low = count < 2
        mean[low], std[low] = 0.0, 1.0
        norm = cls(mean, std, columns)
        norm.unfitted = unfitted
        norm.observed_only = observed_only
        return norm

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
        return {
            "columns": list(self.columns), "mean": self.mean.tolist(), "std": self.std.tolist(),
            "observed_only": self.observed_only, "unfitted": list(self.unfitted),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Normalizer:
        """Rebuild from :meth:`to_dict` output."""
        norm = cls(state["mean"], state["std"], state["columns"])
        norm.observed_only = bool(state.get("observed_only", False))
        norm.unfitted = list(state.get("unfitted", []))
        return norm

    def save(self, path: str | Path) -> None:
        """Write the state as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        """Read a state written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
