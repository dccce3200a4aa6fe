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
import pyarrow as pa
import pyarrow.compute as pc

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


def _arrow_strings(series: pd.Series) -> pa.Array | None:
    """The Arrow text array behind a pandas string column (one chunk), or None for other dtypes."""
    if not isinstance(series.array, (pd.arrays.ArrowStringArray, pd.arrays.ArrowExtensionArray)):
        return None
    strings = pa.chunked_array(series.array.__arrow_array__()).combine_chunks()
    return strings if pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type) else None


def _non_empty(strings: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """``(measured, cells)``: which cells are measured (not null, not ``""``) and the same texts with every
    unmeasured cell null (the text buffers are shared, nothing is copied).

    Shape:
        strings: (n,); returns (n,) bool and (n,) strings.
    """
    keep = pc.fill_null(pc.greater(pc.binary_length(strings), 0), False)
    if strings.offset or keep.offset:
        strings, keep = pa.concat_arrays([strings]), pa.concat_arrays([keep])
    validity = keep.buffers()[1]
    cells = pa.Array.from_buffers(strings.type, len(strings), [validity, *strings.buffers()[1:]])
    return keep.to_numpy(zero_copy_only=False), cells


def _parse_continuous(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """``(values, measured, bad, texts, codes)`` of a continuous column; ``bad`` marks unparsable text.

    Shape:
        series: (n,); returns (n,) float64, (n,) bool, (n,) bool, u strings and (n,) int64 codes.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        n = len(values)
        return values, ~np.isnan(values), np.zeros(n, dtype=bool), [], np.full(n, -1, dtype=np.int64)
    strings = _arrow_strings(series)
    if strings is not None:  # Arrow text: parse the non-empty cells without hashing them
        measured, cells = _non_empty(strings)
        try:
            numbers = pc.cast(cells, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers = None  # some cell is not a plain decimal number: Python's ``float`` decides below
        if numbers is not None:
            values = numbers.to_numpy(zero_copy_only=False)  # NaN where not measured
            n = len(values)
            return values, measured, np.zeros(n, dtype=bool), [], np.full(n, -1, dtype=np.int64)
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
    strings = _arrow_strings(series)
    if strings is not None:  # Arrow text: hash the non-empty cells only
        measured, cells = _non_empty(strings)
        encoded = pc.dictionary_encode(cells)
        texts = encoded.dictionary.to_pylist()
        codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    else:
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

        n_ch = len(CHANNELS)
        n_values = self.layout.num_value_columns
        values = np.zeros((n_ch, n), dtype=np.float64)  # parsed cell (categorical: category index)
        usable = np.zeros((n_ch, n), dtype=bool)  # measured, inside the episode's span, valid
        for c, channel in enumerate(CHANNELS):
            if channel in table.columns:
                values[c], usable[c] = self._parse_channel(table[channel], channel, active, fail)

        bin_ep = np.repeat(np.arange(n_ep), n_bins)
        # rows past the span take their episode's last bin, so that bins stay sorted along the rows
        row_bin = np.where(active, global_bin, offsets[ep + 1] - 1)
        observed, value, carried = _last_rows(values, usable, row_bin, total, offsets[bin_ep])
        if self.impute_strategy == "previous":  # the last usable row at or before the bin, within the episode
            normal = np.array([_normal_code(ch, self.layout) for ch in CHANNELS])[:, None]
            value, write = np.where(carried[0], carried[1], normal), np.ones_like(observed)
        else:
            value, write = self._impute(observed, value, offsets[bin_ep], offsets[bin_ep + 1])

        out = np.zeros((total, n_values + (n_ch if self.store_masks else 0)), dtype=np.float32)
        begin = np.array(self.layout.begin)
        categorical = np.array([IS_CATEGORICAL[ch] for ch in CHANNELS])
        numeric = np.flatnonzero(~categorical)
        out[:, begin[numeric]] = np.where(write[numeric], value[numeric], 0.0).T
        cat = np.flatnonzero(categorical)
        which, bins = np.nonzero(write[cat])  # one-hot: the hot column of each written categorical cell
        columns = begin[cat[which]] + value[cat[which], bins].astype(np.int64)
        out.reshape(-1)[bins * out.shape[1] + columns] = 1.0
        if self.store_masks:
            out[:, n_values:] = observed.T
        return [out[offsets[e] : offsets[e + 1]] for e in range(n_ep)]

    def _parse_channel(
        self, column: pd.Series, channel: str, active: np.ndarray, fail: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(values, usable)`` of one channel's cells: float value (categorical: category index) and mask.

        ``usable`` = measured, in an active row, and valid. An invalid cell of an active row raises
        (``medfuse``) or is counted in :attr:`unknown_values` and left unmeasured (``clean``).

        Shape:
            column, active: (n_rows,); returns (n_rows,) float64 and (n_rows,) bool.
        """
        if IS_CATEGORICAL[channel]:
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
        return parsed, measured & active

    def _impute(
        self, observed: np.ndarray, value: np.ndarray, first_bin: np.ndarray, end_bin: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(value, write)`` after imputation of the unobserved cells of every channel at once.

        Shape:
            observed, value: (17, total_bins); first_bin, end_bin: (total_bins,) bounds of each bin's
            episode; returns (17, total_bins) float64 and (17, total_bins) bool.
        """
        if self.impute_strategy == "zero":
            return value, observed
        n_ch, total = observed.shape
        normal = np.array([_normal_code(ch, self.layout) for ch in CHANNELS])[:, None]
        positions = np.arange(total)
        if self.impute_strategy == "previous":  # nearest observed bin at or before, within the episode
            source = np.maximum.accumulate(np.where(observed, positions, -1), axis=1) if total else observed
            found = source >= first_bin
        elif self.impute_strategy == "next":  # nearest observed bin at or after, within the episode
            masked = np.where(observed, positions, total)
            source = np.minimum.accumulate(masked[:, ::-1], axis=1)[:, ::-1] if total else masked
            found = source < end_bin
        else:
            return np.where(observed, value, normal), np.ones_like(observed)
        carried = np.take_along_axis(value, np.where(found, source, 0), axis=1) if total else value
        return np.where(found, carried, normal), np.ones_like(observed)


def _last_rows(
    values: np.ndarray, usable: np.ndarray, row_bin: np.ndarray, total: int, first_bin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Per (channel, bin), the last usable row at or before the bin (rows in order, the last one wins).

    Returns ``(observed, value, (carried, carried_value))``: whether that row lies in the bin and its value
    (0 where not observed), and whether it lies in the bin's episode (``first_bin`` on) and its value.

    Shape:
        values, usable: (17, n_rows); row_bin: (n_rows,); first_bin: (total,); returns (17, total) arrays.
    """
    n_ch, n = values.shape
    if n and (row_bin[1:] < row_bin[:-1]).any():  # hours decreasing by < eps at a bin boundary
        order = np.argsort(row_bin, kind="stable")  # rows by bin, row order kept within a bin
        values, usable, row_bin = values[:, order], usable[:, order], row_bin[order]
    index_type = np.int32 if n < 2**31 - 1 else np.int64
    latest = np.maximum.accumulate(np.where(usable, np.arange(n, dtype=index_type), -1), axis=1) if n else usable
    upto = np.searchsorted(row_bin, np.arange(total), side="right") - 1  # last row with bin <= b
    last = np.where(upto >= 0, latest[:, np.maximum(upto, 0)], -1) if n else np.full((n_ch, total), -1)
    found = last >= 0
    safe = np.where(found, last, 0)
    last_bin = row_bin[safe] if n else safe
    row_value = np.take_along_axis(values, safe, axis=1) if n else np.zeros((n_ch, total))
    observed = found & (last_bin == np.arange(total))
    carried = found & (last_bin >= first_bin)
    return observed, np.where(observed, row_value, 0.0), (carried, row_value)
