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

``compat="clean"`` runs the same algorithm on the canonical layout of
:class:`~medcam_lab.ehr.channels.Layout` (60 columns): categorical cells are mapped through
:func:`~medcam_lab.ehr.categories.canonical_index` (aliases and numeric codes accepted), and a cell that
is an unknown category or an unparsable number is left unmeasured and counted in
:attr:`Discretizer.unknown_values` instead of raising.

Our defaults differ from the reference's: ``timestep=2.0`` and ``impute_strategy="previous"`` (the
MedCAM setting); the reference defaults are 0.8 and ``zero``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medcam_lab.ehr.categories import canonical_index
from medcam_lab.ehr.channels import CHANNELS, COMPAT_MODES, IS_CATEGORICAL, Layout

EPS = 1e-6
IMPUTE_STRATEGIES = ("zero", "normal_value", "previous", "next")
START_TIMES = ("zero", "relative")


def _cell_text(value: Any) -> str:
    """The text the reference would read from a CSV cell written by pandas."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def _factorize_cells(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes of the distinct cells (-1 = not measured: NaN, None or ``""``) and each distinct cell's text.

    Works on the distinct values only (factorizing an Arrow-backed string column stays in Arrow).

    Shape:
        series: (n,); returns (n,) int64 codes and u strings.
    """
    if pd.api.types.is_float_dtype(series.dtype):
        series = series.astype(np.float64)  # float32 -> repr of its float64 value
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = [_cell_text(u) for u in np.asarray(uniques, dtype=object)]
    codes = np.asarray(codes, dtype=np.int64)
    if "" in texts:  # an empty string is "not measured": remap its code to -1 (table[-1] serves code -1)
        table = np.array([-1 if t == "" else k for k, t in enumerate(texts)] + [-1], dtype=np.int64)
        codes = table[codes]
    return codes, texts


def _parse_continuous(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """``(values, measured, bad, texts, codes)`` of a continuous column; ``bad`` marks unparsable text.

    Shape:
        series: (n,); returns (n,) float64, (n,) bool, (n,) bool, u strings and (n,) int64 codes.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        n = len(values)
        return values, ~np.isnan(values), np.zeros(n, dtype=bool), [], np.full(n, -1, dtype=np.int64)
    codes, texts = _factorize_cells(series)
    parsed = np.empty(len(texts) + 1, dtype=np.float64)
    unparsable = np.zeros(len(texts) + 1, dtype=bool)
    for k, text in enumerate(texts):  # loop over distinct strings, not rows
        try:
            parsed[k] = float(text)
        except ValueError:
            parsed[k], unparsable[k] = np.nan, True
    parsed[-1] = np.nan  # code -1: not measured
    return parsed[codes], codes >= 0, unparsable[codes] & (codes >= 0), texts, codes


def _parse_categorical(
    series: pd.Series, channel: str, layout: Layout
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """``(category index, measured, texts, codes)`` of a categorical column; index -1 = unknown string.

    ``medfuse``: exact string match against the channel's column list; ``clean``: canonical category
    of the alias or numeric code (:func:`~medcam_lab.ehr.categories.canonical_index`).

    Shape:
        series: (n,); returns (n,) int64, (n,) bool, u strings, (n,) int64 codes.
    """
    codes, texts = _factorize_cells(series)
    if layout.compat == "clean":
        index = [canonical_index(channel, t) for t in texts]
    else:
        lookup = {s: i for i, s in enumerate(layout.possible_values[channel])}
        index = [lookup.get(t, -1) for t in texts]
    table = np.array([*index, -1], dtype=np.int64)
    return table[codes], codes >= 0, texts, codes


def _normal_code(channel: str, layout: Layout) -> float:
    normal = layout.normal_values[channel]
    if IS_CATEGORICAL[channel]:
        return float(layout.possible_values[channel].index(normal))
    return float(normal)


class Discretizer:
    """Turn irregular episode rows into fixed-step bins of 76 (or 59) features; 60 (or 43) in ``clean`` mode.

    Args:
        timestep: Bin width in hours (reference default 0.8; MedFuse code 1.0; MedCAM 2.0).
        impute_strategy: ``"zero"``, ``"normal_value"``, ``"previous"`` or ``"next"``.
        start_time: ``"zero"`` (bins start at 0 h = ICU intime) or ``"relative"`` (first row).
        store_masks: Append the 17 mask columns.
        compat: ``"medfuse"`` (the reference's 76 columns, exact string matching, unknown strings raise)
            or ``"clean"`` (canonical GCS / capillary refill categories, 60 columns; aliases and numeric
            codes accepted; an unknown category or unparsable number is not measured and is counted in
            :attr:`unknown_values` instead of raising).

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
        if compat not in COMPAT_MODES:
            raise ValueError(f"unknown compat {compat!r}; use one of {COMPAT_MODES}")
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
        self.layout = Layout(compat)
        self.unknown_values: Counter[tuple[str, str]] = Counter()
        """``clean`` mode: ``(channel, text) -> count`` of cells skipped as unknown, over every call."""

    @property
    def feature_names(self) -> list[str]:
        """Output column names (76, or 59 without masks; ``clean``: 60 or 43)."""
        return self.layout.feature_names(self.store_masks)

    def transform(self, frame: pd.DataFrame, end: float | None = None) -> tuple[np.ndarray, list[str]]:
        """Discretize one episode.

        Args:
            frame: Rows in time order with an ``Hours`` column and any subset of the 17 channel columns
                (other columns are ignored). Errors name the row as its 0-based position in ``frame``.
            end: Episode end in hours (the task period), or None for the last row's hour.

        Returns:
            ``(values, names)``: float32 bins and the column names.

        Shape:
            frame: (n_rows, n_columns); values: (N, F) with F = 76 (``clean``: 60), or 59 (43) without masks.
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
            table: (n_rows, n_columns); each value: (N_episode, F) as in :meth:`transform`.
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

        n_values = self.layout.num_value_columns
        out = np.zeros((total, n_values + (len(CHANNELS) if self.store_masks else 0)), dtype=np.float32)
        masks = np.zeros((total, len(CHANNELS)), dtype=bool)
        bin_ep = np.repeat(np.arange(n_ep), n_bins)
        episode_bounds = (offsets[bin_ep], offsets[bin_ep + 1])  # first bin and end of each bin's episode
        for c, channel in enumerate(CHANNELS):
            masks[:, c] = self._fill_channel(out, c, channel, table, active, global_bin, episode_bounds, fail)
        if self.store_masks:
            out[:, n_values:] = masks
        return [out[offsets[e] : offsets[e + 1]] for e in range(n_ep)]

    def _fill_channel(
        self,
        out: np.ndarray,
        c: int,
        channel: str,
        table: pd.DataFrame,
        active: np.ndarray,
        global_bin: np.ndarray,
        episode_bounds: tuple[np.ndarray, np.ndarray],
        fail: Any,
    ) -> np.ndarray:
        """Write observed and imputed values of one channel into ``out``; return its mask.

        Shape:
            out: (total_bins, width); active, global_bin: (n_rows,); episode_bounds: two (total_bins,);
            returns (total_bins,) bool.
        """
        total = out.shape[0]
        categorical = IS_CATEGORICAL[channel]
        observed = np.zeros(total, dtype=bool)
        value = np.zeros(total, dtype=np.float64)
        if channel in table.columns:
            column = table[channel]
            if categorical:
                parsed, measured, texts, codes = _parse_categorical(column, channel, self.layout)
                bad_rows = measured & active & (parsed < 0)
                allowed = list(self.layout.possible_values[channel])
                what = f"unknown value {{!r}} for categorical channel {channel!r} (allowed: {allowed})"
            else:
                parsed, measured, bad_rows, texts, codes = _parse_continuous(column)
                bad_rows = bad_rows & active
                what = f"value {{!r}} of channel {channel!r} is not a number"
            bad = np.flatnonzero(bad_rows)
            if bad.size and self.compat == "medfuse":
                k = int(bad[0])
                fail(k, what.format(texts[codes[k]]))
            if bad.size:  # clean: counted, not measured
                for code, n in zip(*np.unique(codes[bad], return_counts=True), strict=True):
                    self.unknown_values[(channel, texts[code])] += int(n)
                measured = measured & ~bad_rows
            rows = np.flatnonzero(measured & active)
            if rows.size:
                # rows are grouped by episode with non-decreasing hours, so global bins are non-decreasing:
                # the last row of each bin is the one whose successor lies in another bin
                bins_of_rows = global_bin[rows]
                if (bins_of_rows[1:] < bins_of_rows[:-1]).any():  # hours decreasing by < eps at a boundary
                    uniq, first_rev = np.unique(bins_of_rows[::-1], return_index=True)
                    last_rows = rows[::-1][first_rev]
                else:
                    last = np.ones(rows.size, dtype=bool)
                    last[:-1] = bins_of_rows[1:] != bins_of_rows[:-1]
                    uniq, last_rows = bins_of_rows[last], rows[last]
                observed[uniq] = True
                value[uniq] = parsed[last_rows]

        write = observed.copy()
        if self.impute_strategy != "zero":
            normal = _normal_code(channel, self.layout)
            filled = np.where(observed, value, normal)
            positions = np.arange(total)
            if self.impute_strategy == "previous":
                source = np.maximum.accumulate(np.where(observed, positions, -1)) if total else positions
                carried = ~observed & (source >= episode_bounds[0])
            elif self.impute_strategy == "next":
                masked = np.where(observed, positions, total)
                source = np.minimum.accumulate(masked[::-1])[::-1] if total else positions
                carried = ~observed & (source < episode_bounds[1])
            else:
                source, carried = positions, np.zeros(total, dtype=bool)
            filled[carried] = value[source[carried]]
            value, write = filled, np.ones(total, dtype=bool)

        begin = self.layout.begin[c]
        if write.all():
            if categorical:
                out[np.arange(total), begin + value.astype(np.int64)] = 1.0
            else:
                out[:, begin] = value
        else:
            bins = np.flatnonzero(write)
            if categorical:
                out[bins, begin + value[bins].astype(np.int64)] = 1.0
            else:
                out[bins, begin] = value[bins]
        return observed
