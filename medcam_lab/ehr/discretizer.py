"""The 76-feature discretizer of mimic3-benchmarks / MedFuse / MedMod (spec ``ehr.md`` §2).

``compat="medfuse"`` reproduces the reference bin for bin. With ``eps = 1e-6``, for each episode:

1. Hours must be non-decreasing (``t[k] < t[k+1] + eps``), else ``ValueError``.
2. ``first = 0`` (``start_time="zero"``) or the hour of the **first row** (``"relative"``).
3. ``span = end - first`` if ``end`` is given, else ``max(t) - first`` (empty rows count).
4. ``N = int(span / timestep + 1 - eps)`` bins (``int`` truncates toward zero): ceil(span/step) for a
   span that is not a multiple of the step, ``k`` for ``k`` steps, **0** for span 0.
5. Row hour ``t' = t - first``; the row is skipped if ``t' > span + eps``; otherwise
   ``bin = int(t'/timestep - eps)`` must lie in ``[0, N)`` (else ``ValueError``). Bins are right-closed:
   ``(k*ts, (k+1)*ts] -> k``, ``t'`` in ``(-ts, 0] -> 0``.
6. Every non-empty cell sets the mask and writes its value (continuous: ``float``; categorical: the
   whole one-hot block is rewritten). Rows apply in order: the last row of a bin wins, per channel.
   An unknown categorical string raises ``ValueError`` (aliases are separate columns, ``"4"`` or
   ``"15.0"`` are not allowed strings).
7. Unobserved (bin, channel) cells are imputed (mask stays 0): ``zero`` leaves zeros (no category
   hot), ``normal_value`` writes the normal value, ``previous`` / ``next`` carry the raw string of the
   nearest earlier / later observed bin of the episode, else the normal value.
8. With ``store_masks`` the 17 mask columns are appended: ``(N, 76)``, else ``(N, 59)``.

Cells: ``""``, NaN and None mean "not measured". Non-string cells are turned into the text the
reference would read from a CSV written by pandas: floats become ``repr(float(x))`` (``1.0 -> "1.0"``,
so a float ``1.0`` is a valid capillary refill value but ``15.0`` is not a valid GCS total), integers
``str(x)`` (``15 -> "15"``). For continuous channels only the float value matters: a numeric column is
used as is (NaN = not measured), a text column is parsed with Python ``float``.

Our defaults differ from the reference's: ``timestep=2.0`` and ``impute_strategy="previous"`` (the
MedCAM setting); the reference defaults are 0.8 and ``zero``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medcam_lab.ehr.channels import (
    CHANNEL_BEGIN,
    CHANNELS,
    IS_CATEGORICAL,
    NORMAL_VALUES,
    NUM_VALUE_COLUMNS,
    POSSIBLE_VALUES,
    feature_names,
)

EPS = 1e-6
IMPUTE_STRATEGIES = ("zero", "normal_value", "previous", "next")
START_TIMES = ("zero", "relative")


def _cells_as_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Cells as reference text and a "measured" mask (non-empty, non-NaN).

    Shape:
        series: (n,); returns (n,) object strings ("" where not measured) and (n,) bool.
    """
    na = series.isna().to_numpy()
    if pd.api.types.is_float_dtype(series.dtype):
        series = series.astype(np.float64)  # float32 -> repr of its float64 value
    text = series.astype(str).to_numpy(dtype=object)
    text[na] = ""
    return text, ~na & (text != "")


def _parse_continuous(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, measured, bad)`` of a continuous column; ``bad`` marks unparsable text.

    Shape:
        series: (n,); returns (n,) float64, (n,) bool, (n,) bool.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, ~np.isnan(values), np.zeros(len(values), dtype=bool)
    text, measured = _cells_as_text(series)
    codes, uniques = pd.factorize(text)
    parsed = np.empty(len(uniques), dtype=np.float64)
    unparsable = np.zeros(len(uniques), dtype=bool)
    for k, s in enumerate(uniques):  # loop over distinct strings, not rows
        try:
            parsed[k] = float(s)
        except ValueError:
            parsed[k], unparsable[k] = np.nan, True
    return parsed[codes], measured, unparsable[codes] & measured


def _parse_categorical(series: pd.Series, channel: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(category index, measured, text)`` of a categorical column; index -1 = unknown string.

    Shape:
        series: (n,); returns (n,) int64, (n,) bool, (n,) object.
    """
    text, measured = _cells_as_text(series)
    codes, uniques = pd.factorize(text)
    lookup = {s: i for i, s in enumerate(POSSIBLE_VALUES[channel])}
    index = np.array([lookup.get(s, -1) for s in uniques], dtype=np.int64)
    return index[codes], measured, text


def _normal_code(channel: str) -> float:
    if IS_CATEGORICAL[channel]:
        return float(POSSIBLE_VALUES[channel].index(NORMAL_VALUES[channel]))
    return float(NORMAL_VALUES[channel])


class Discretizer:
    """Turn irregular episode rows into fixed-step bins of 76 (or 59) features.

    Args:
        timestep: Bin width in hours (reference default 0.8; MedFuse code 1.0; MedCAM 2.0).
        impute_strategy: ``"zero"``, ``"normal_value"``, ``"previous"`` or ``"next"``.
        start_time: ``"zero"`` (bins start at 0 h = ICU intime) or ``"relative"`` (first row).
        store_masks: Append the 17 mask columns.
        compat: ``"medfuse"``; ``"clean"`` is not implemented in this version.

    Examples:
        >>> frame = pd.DataFrame({"Hours": [0.5, 3.0], "Heart Rate": ["80", ""]})
        >>> values, names = Discretizer(timestep=2.0).transform(frame, end=4.0)
        >>> values.shape, float(values[1, names.index("Heart Rate")])
        ((2, 76), 80.0)
    """

    def __init__(
        self,
        timestep: float = 2.0,
        impute_strategy: str = "previous",
        start_time: str = "zero",
        store_masks: bool = True,
        compat: str = "medfuse",
    ) -> None:
        if compat == "clean":
            raise ValueError("compat='clean' is not implemented in this version; use 'medfuse'")
        if compat != "medfuse":
            raise ValueError(f"unknown compat {compat!r}; use 'medfuse'")
        if impute_strategy not in IMPUTE_STRATEGIES:
            raise ValueError(f"impute_strategy must be one of {IMPUTE_STRATEGIES}, got {impute_strategy!r}")
        if start_time not in START_TIMES:
            raise ValueError(f"start_time must be one of {START_TIMES}, got {start_time!r}")
        if not timestep > 0:
            raise ValueError(f"timestep must be > 0, got {timestep!r}")
        self.timestep = float(timestep)
        self.impute_strategy = impute_strategy
        self.start_time = start_time
        self.store_masks = bool(store_masks)
        self.compat = compat

    @property
    def feature_names(self) -> list[str]:
        """Output column names (76, or 59 without masks)."""
        return feature_names(self.store_masks)

    def transform(self, frame: pd.DataFrame, end: float | None = None) -> tuple[np.ndarray, list[str]]:
        """Discretize one episode.

        Args:
            frame: Rows in time order with an ``Hours`` column and any subset of the 17 channel columns
                (other columns are ignored). Errors name the row as its 0-based position in ``frame``.
            end: Episode end in hours (the task period), or None for the last row's hour.

        Returns:
            ``(values, names)``: float32 bins and the column names.

        Shape:
            frame: (n_rows, n_columns); values: (N, 76), or (N, 59) without masks.
        """
        table = frame.reset_index(drop=True)
        ends = np.array([np.nan if end is None else float(end)])
        out = self._discretize(table, np.zeros(len(table), dtype=np.int64), [None], ends)
        return out[0], self.feature_names

    def transform_batch(
        self, table: pd.DataFrame, by: str = "stay_id", end: float | Mapping[Any, float | None] | None = None
    ) -> dict[Any, np.ndarray]:
        """Discretize many episodes of one long table at once (same output as ``transform`` each).

        Args:
            table: Rows of all episodes, with ``by``, ``Hours`` and channel columns; each episode's rows
                in time order (episodes may interleave; row order within an episode is kept).
            by: Episode id column.
            end: None (each episode ends at its last row), one value for all, or a mapping id -> end
                (None/NaN there = last row; a missing id is an error).

        Returns:
            ``{episode id: values}`` in order of first appearance; values as in :meth:`transform`.

        Shape:
            table: (n_rows, n_columns); each value: (N_episode, 76) or (N_episode, 59).
        """
        if by not in table.columns:
            raise ValueError(f"transform_batch: no column {by!r}")
        codes, ids = pd.factorize(table[by])
        if (codes < 0).any():
            raise ValueError(f"transform_batch: missing episode id in column {by!r}")
        order = np.argsort(codes, kind="stable")
        ordered = table.iloc[order].reset_index(drop=True)
        ids_list = ids.tolist()
        if isinstance(end, Mapping):
            missing = [i for i in ids_list if i not in end]
            if missing:
                raise ValueError(f"transform_batch: no end given for episode {missing[0]!r}")
            ends = np.array([np.nan if end[i] is None else float(end[i]) for i in ids_list])
        else:
            ends = np.full(len(ids_list), np.nan if end is None else float(end))
        arrays = self._discretize(ordered, codes[order], ids_list, ends)
        return dict(zip(ids_list, arrays, strict=True))

    # -- vectorized core -------------------------------------------------------------------------

    def _discretize(
        self, table: pd.DataFrame, ep: np.ndarray, ids: list[Any], ends: np.ndarray
    ) -> list[np.ndarray]:
        """Discretize contiguous episodes ``0..E-1`` of ``table`` (rows already grouped by ``ep``).

        Shape:
            table: (n, c); ep: (n,) sorted codes; ends: (E,) with NaN = no end; returns E arrays.
        """
        n_ep, ts, n = len(ids), self.timestep, len(table)

        if "Hours" not in table.columns:
            raise ValueError("missing column 'Hours'")
        hours = pd.to_numeric(table["Hours"], errors="coerce").to_numpy(dtype=np.float64)
        starts = np.searchsorted(ep, np.arange(n_ep))
        row_in_ep = np.arange(n) - starts[ep] if n else np.zeros(0, dtype=np.int64)

        def fail(row: int, message: str) -> None:
            e = int(ep[row])
            prefix = "" if ids[e] is None else f"episode {ids[e]!r}: "
            raw = table["Hours"].iloc[row]
            raw = raw.item() if isinstance(raw, np.generic) else raw
            raise ValueError(f"{prefix}row {int(row_in_ep[row])} (Hours {raw!r}): {message}")

        bad = np.flatnonzero(~np.isfinite(hours))
        if bad.size:
            fail(int(bad[0]), "Hours must be a finite number")
        same = ep[1:] == ep[:-1]
        bad = np.flatnonzero(same & ~(hours[:-1] < hours[1:] + EPS))
        if bad.size:
            k = int(bad[0])
            fail(k + 1, f"Hours must be non-decreasing (previous row has {hours[k]!r})")

        counts = np.diff(np.append(starts, n))
        empty = np.flatnonzero(counts == 0)
        no_end = np.isnan(ends)
        if empty.size and (no_end[empty].any() or self.start_time == "relative"):
            e = int(empty[no_end[empty] | (self.start_time == "relative")][0])
            prefix = "" if ids[e] is None else f"episode {ids[e]!r}: "
            raise ValueError(f"{prefix}episode has no rows (needs start_time='zero' and an end)")
        safe_starts = np.minimum(starts, max(n - 1, 0))
        if self.start_time == "relative":
            first = hours[safe_starts]
        else:
            first = np.zeros(n_ep)
        max_t = np.full(n_ep, -np.inf)
        nonempty = counts > 0
        if n:
            max_t[nonempty] = np.maximum.reduceat(hours, starts[nonempty])
        span = np.where(no_end, max_t - first, ends - first)
        with np.errstate(invalid="ignore"):
            n_bins_f = np.trunc(span / ts + 1.0 - EPS)
        neg = np.flatnonzero(~(n_bins_f >= 0))
        if neg.size:
            e = int(neg[0])
            prefix = "" if ids[e] is None else f"episode {ids[e]!r}: "
            raise ValueError(f"{prefix}span {span[e]!r} h gives a negative number of bins")
        n_bins = n_bins_f.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(n_bins)])
        total = int(offsets[-1])

        t_rel = hours - first[ep]
        active = ~(t_rel > span[ep] + EPS)
        bin_f = np.trunc(t_rel / ts - EPS)
        bad = np.flatnonzero(active & ((bin_f < 0) | (bin_f >= n_bins[ep])))
        if bad.size:
            k = int(bad[0])
            fail(k, f"bin {int(bin_f[k])} outside [0, {int(n_bins[ep[k]])})")
        global_bin = offsets[ep] + np.where(active, bin_f, 0).astype(np.int64)

        width = NUM_VALUE_COLUMNS + (len(CHANNELS) if self.store_masks else 0)
        out = np.zeros((total, width), dtype=np.float32)
        bin_ep = np.repeat(np.arange(n_ep), n_bins)
        for c, channel in enumerate(CHANNELS):
            self._fill_channel(out, c, channel, table, active, global_bin, offsets, bin_ep, fail)
        return [out[offsets[e] : offsets[e + 1]] for e in range(n_ep)]

    def _fill_channel(
        self,
        out: np.ndarray,
        c: int,
        channel: str,
        table: pd.DataFrame,
        active: np.ndarray,
        global_bin: np.ndarray,
        offsets: np.ndarray,
        bin_ep: np.ndarray,
        fail: Any,
    ) -> None:
        """Write observed and imputed values (and the mask) of one channel into ``out``.

        Shape:
            out: (total_bins, width); active, global_bin: (n_rows,); offsets: (E + 1,); bin_ep: (total_bins,).
        """
        total = out.shape[0]
        categorical = IS_CATEGORICAL[channel]
        observed = np.zeros(total, dtype=bool)
        value = np.zeros(total, dtype=np.float64)
        if channel in table.columns:
            column = table[channel]
            if categorical:
                parsed, measured, text = _parse_categorical(column, channel)
                bad = np.flatnonzero(measured & active & (parsed < 0))
                if bad.size:
                    k = int(bad[0])
                    fail(
                        k,
                        f"unknown value {text[k]!r} for categorical channel {channel!r} "
                        f"(allowed: {list(POSSIBLE_VALUES[channel])})",
                    )
            else:
                parsed, measured, unparsable = _parse_continuous(column)
                bad = np.flatnonzero(active & unparsable)
                if bad.size:
                    k = int(bad[0])
                    fail(k, f"value {column.iloc[k]!r} of channel {channel!r} is not a number")
            rows = np.flatnonzero(measured & active)
            if rows.size:
                # last row of each bin wins: first occurrence in the reversed row order
                uniq, first_rev = np.unique(global_bin[rows][::-1], return_index=True)
                last_rows = rows[::-1][first_rev]
                observed[uniq] = True
                value[uniq] = parsed[last_rows]

        write = observed.copy()
        if self.impute_strategy != "zero":
            normal = _normal_code(channel)
            filled = np.where(observed, value, normal)
            positions = np.arange(total)
            if self.impute_strategy == "previous":
                source = np.maximum.accumulate(np.where(observed, positions, -1)) if total else positions
                carried = ~observed & (source >= offsets[bin_ep])
            elif self.impute_strategy == "next":
                masked = np.where(observed, positions, total)
                source = np.minimum.accumulate(masked[::-1])[::-1] if total else positions
                carried = ~observed & (source < offsets[bin_ep + 1])
            else:
                source, carried = positions, np.zeros(total, dtype=bool)
            filled[carried] = value[source[carried]]
            value, write = filled, np.ones(total, dtype=bool)

        begin = CHANNEL_BEGIN[c]
        bins = np.flatnonzero(write)
        if categorical:
            out[bins, begin + value[bins].astype(np.int64)] = 1.0
        else:
            out[bins, begin] = value[bins]
        if self.store_masks:
            out[:, NUM_VALUE_COLUMNS + c] = observed
