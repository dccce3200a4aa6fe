"""The 76-feature discretizer of mimic3-benchmarks / MedFuse / MedMod (spec ``ehr.md`` §2).

``mode="medfuse"`` reproduces the reference bin for bin. With ``eps = 1e-6``, for each episode:

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

``mode="clean"`` (the default, as for ``prepare``) runs the same algorithm on the canonical layout of
the mode (:class:`~medcam_lab.ehr.mode.EHRMode`, 60 columns): categorical cells are mapped through
:func:`~medcam_lab.ehr.categories.canonical_index` (aliases and numeric codes accepted), and a cell that
is an unknown category or an unparsable number is left unmeasured and counted in
:attr:`Discretizer.unknown_values` instead of raising.

Our defaults differ from the reference's: ``timestep=2.0`` and ``impute_strategy="previous"`` (the
MedCAM setting), and ``mode="clean"``; the reference is ``mode="medfuse"`` with 0.8 and ``zero``.

Implementation: one pass over the long table for all episodes. Hours, spans and bins are NumPy
operations; the per-cell work (reading numbers and categories from Arrow text buffers, "last row wins",
imputation, writing the output) runs in the compiled kernels of :mod:`medcam_lab.ehr.kernels`, which
reproduce Python's ``float`` bit for bit and hand every text they do not handle back to Python.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from medcam_lab.ehr.categories import canonical_index
from medcam_lab.ehr.channels import CHANNELS, IS_CATEGORICAL, POSSIBLE_VALUES, Layout
from medcam_lab.ehr.mode import DEFAULT_MODE, EHRMode

EPS = 1e-6
ENCODE_THREADS = 4
"""Threads that read the channel columns of a large table in parallel (fewer on fewer cores)."""
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


@functools.lru_cache(maxsize=None)
def _category_reader(channel: str, mode: EHRMode) -> tuple[Callable[[str], float | None], dict[str, float]]:
    """``(read, known)`` for a categorical channel: ``read(text)`` is the category index or None (unknown);
    ``known`` maps the texts MIMIC writes (the reference's list, and in ``clean`` mode also the canonical
    names) to their index, for byte-for-byte matching before ``read`` is asked."""
    layout = mode.layout
    if mode.name == "clean":

        def read(text: str) -> float | None:
            index = canonical_index(channel, text)
            return None if index < 0 else float(index)

        spellings = [*POSSIBLE_VALUES[channel], *layout.possible_values[channel]]
    else:
        lookup = {text: float(i) for i, text in enumerate(layout.possible_values[channel])}

        def read(text: str) -> float | None:
            return lookup.get(text)

        spellings = list(lookup)
    known = {text: read(text) for text in spellings}
    return read, {text: index for text, index in known.items() if index is not None}


def _read_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_arrow_text(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.StringDtype) and series.dtype.storage in ("pyarrow", "pyarrow_numpy")


def _encode_column(
    series: pd.Series, channel: str, mode: EHRMode
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], list[str]]]:
    """``(values, status, texts_of)`` of one channel column, one entry per row.

    ``values`` holds the number (continuous) or category index (categorical); ``status`` is
    :data:`~medcam_lab.ehr.kernels.NOT_MEASURED` (NaN, None or ``""``), ``PARSED`` or ``INVALID`` (an
    unknown category, or a text that is not a number); ``texts_of(rows)`` gives the cells' texts for
    messages. ``medfuse``: exact string match against the channel's column list; ``clean``: canonical
    category of the alias or numeric code (:func:`~medcam_lab.ehr.categories.canonical_index`). A numeric
    column of a continuous channel is used as is (NaN = not measured).

    An Arrow-backed text column (pandas' default string type) is read by compiled kernels straight from
    its buffers: plain decimals and the known category spellings there, any other text by Python once
    per distinct text. Other columns are factorized and each distinct text read once.

    Shape:
        series: (n,); returns (n,) float64, (n,) int8 and a function of row numbers.
    """
    from medcam_lab.ehr import kernels  # compiled on first use

    categorical = IS_CATEGORICAL[channel]
    read = _category_reader(channel, mode)[0] if categorical else _read_number
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype) and not categorical:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        status = np.where(np.isnan(values), kernels.NOT_MEASURED, kernels.PARSED).astype(np.int8)
        return values, status, lambda rows: [repr(v) for v in values[rows]]
    if _is_arrow_text(series):
        cells = pa.chunked_array(pa.array(series.array)) if len(series) else pa.chunked_array([], pa.string())
        if not (pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type)):  # e.g. string_view
            cells = cells.cast(pa.large_string())
        if categorical:
            values, status = kernels.match_known_cells(cells, _category_reader(channel, mode)[1])
        else:
            values, status = kernels.parse_decimal_cells(cells)
        slow = np.flatnonzero(status == kernels.NEEDS_PYTHON)
        if slow.size:  # the texts the kernels leave to Python: read once per distinct text
            distinct = pc.dictionary_encode(cells.take(pa.array(slow))).combine_chunks()
            read_texts = [read(text) for text in distinct.dictionary.to_pylist()]
            index = distinct.indices.to_numpy(zero_copy_only=False)
            values[slow] = np.array([np.nan if v is None else v for v in read_texts])[index]
            status[slow] = np.array([kernels.INVALID if v is None else kernels.PARSED for v in read_texts])[index]
        return values, status, lambda rows: cells.take(pa.array(rows, type=pa.int64())).to_pylist()
    codes, texts = _factorize_cells(series)
    read_texts = [read(text) for text in texts]  # once per distinct text, not per row
    table = np.array([np.nan if v is None else v for v in read_texts] + [np.nan])
    state = np.array([kernels.INVALID if v is None else kernels.PARSED for v in read_texts] + [kernels.NOT_MEASURED])
    return table[codes], state[codes].astype(np.int8), lambda rows: [texts[k] for k in codes[rows]]


def _normal_code(channel: str, layout: Layout) -> float:
    normal = layout.normal_values[channel]
    if IS_CATEGORICAL[channel]:
        return float(layout.possible_values[channel].index(normal))
    return float(normal)


class Discretizer:
    """Turn irregular episode rows into fixed-step bins of 60 (or 43) features; 76 (or 59) in ``medfuse`` mode.

    Args:
        timestep: Bin width in hours (reference default 0.8; MedFuse code 1.0; MedCAM 2.0).
        impute_strategy: ``"zero"``, ``"normal_value"``, ``"previous"`` or ``"next"``.
        start_time: ``"zero"`` (bins start at 0 h = ICU intime) or ``"relative"`` (first row).
        store_masks: Append the 17 mask columns.
        mode: The EHR mode or its name (:meth:`EHRMode.of <medcam_lab.ehr.mode.EHRMode.of>`): ``"clean"``
            (the default: canonical GCS / capillary refill categories, 60 columns; aliases and numeric codes
            accepted; an unknown category or unparsable number is not measured and is counted in
            :attr:`unknown_values` instead of raising) or ``"medfuse"`` (the reference's 76 columns, exact
            string matching, unknown strings raise).

    Examples:
        >>> frame = pd.DataFrame({"Hours": [0.5, 3.0], "Heart Rate": ["80", ""]})
        >>> values, names = Discretizer(timestep=2.0).transform(frame, end=4.0)
        >>> values.shape, float(values[1, names.index("Heart Rate")])
        ((2, 60), 80.0)
        >>> Discretizer(timestep=2.0, mode="medfuse").transform(frame, end=4.0)[0].shape
        (2, 76)
    """

    def __init__(
        self,
        timestep: float = 2.0,
        impute_strategy: str = "previous",
        start_time: str = "zero",
        store_masks: bool = True,
        mode: EHRMode | str = DEFAULT_MODE,
    ) -> None:
        self.mode = EHRMode.of(mode)
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
        self.layout: Layout = self.mode.layout
        self.unknown_values: Counter[tuple[str, str]] = Counter()
        """``clean`` mode: ``(channel, text) -> count`` of cells skipped as unknown, over every call."""

    @property
    def feature_names(self) -> list[str]:
        """Output column names (60, or 43 without masks; ``medfuse``: 76 or 59)."""
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
            frame: (n_rows, n_columns); values: (N, F) with F = 60 (``medfuse``: 76), or 43 (59) without masks.
        """
        table = frame.reset_index(drop=True)
        ends = np.array([np.nan if end is None else float(end)])
        out = self._discretize(table, None, np.zeros(len(table), dtype=np.int64), [None], ends)
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
        # rows grouped by episode; the table itself is not reordered, only the per-row arrays made from it
        order = None if (codes[1:] >= codes[:-1]).all() else np.argsort(codes, kind="stable")
        ids_list = ids.tolist()
        if isinstance(end, Mapping):
            missing = [i for i in ids_list if i not in end]
            if missing:
                raise ValueError(f"transform_batch: no end given for episode {missing[0]!r}")
            ends = np.array([np.nan if (e := end[i]) is None else float(e) for i in ids_list])
        else:
            ends = np.full(len(ids_list), np.nan if end is None else float(end))
        ep = codes if order is None else codes[order]
        arrays = self._discretize(table.reset_index(drop=True), order, ep.astype(np.int64), ids_list, ends)
        return dict(zip(ids_list, arrays, strict=True))

    # -- core: all episodes in one pass ---------------------------------------------------------

    def _discretize(
        self, table: pd.DataFrame, order: np.ndarray | None, ep: np.ndarray, ids: list[Any], ends: np.ndarray
    ) -> list[np.ndarray]:
        """Discretize episodes ``0..E-1``: row ``i`` of the grouped view is row ``order[i]`` of ``table``.

        Shape:
            table: (n, c) with a default index; order: (n,) permutation or None (already grouped);
            ep: (n,) sorted episode codes of the grouped view; ends: (E,) with NaN = no end; returns E arrays.
        """
        n_ep, ts, n = len(ids), self.timestep, len(table)

        def grouped(values: np.ndarray) -> np.ndarray:
            return values if order is None else values[order]

        if "Hours" not in table.columns:
            raise ValueError("missing column 'Hours'")
        hours = grouped(pd.to_numeric(table["Hours"], errors="coerce").to_numpy(dtype=np.float64))
        starts = np.searchsorted(ep, np.arange(n_ep))
        row_in_ep = np.arange(n) - starts[ep] if n else np.zeros(0, dtype=np.int64)

        def fail(row: int, message: str) -> None:
            e = int(ep[row])
            prefix = "" if ids[e] is None else f"episode {ids[e]!r}: "
            raw = table["Hours"].iloc[row if order is None else int(order[row])]
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
        row_bin = np.where(active, offsets[ep] + np.where(active, bin_f, 0).astype(np.int64), -1)

        from medcam_lab.ehr import kernels  # compiled on first use

        n_channels, n_values = len(CHANNELS), self.layout.num_value_columns
        # float32 like the output (same rounding); one spare last row for the rows that are not recorded
        last_value = np.zeros((total + 1, n_channels), dtype=np.float32)
        observed = np.zeros((total + 1, n_channels), dtype=bool)
        present = [(c, channel, table[channel]) for c, channel in enumerate(CHANNELS) if channel in table.columns]
        for (c, channel, _), encoded in zip(present, self._encode_columns(present), strict=True):
            values, status = self._channel_values(encoded, channel, order, active, fail)
            kernels.record_last(status, row_bin, values, c, last_value, observed)
        out = np.zeros((total, n_values + (n_channels if self.store_masks else 0)), dtype=np.float32)
        normal = np.array([_normal_code(ch, self.layout) for ch in CHANNELS])
        categorical = np.array([IS_CATEGORICAL[ch] for ch in CHANNELS])
        begin = np.array(self.layout.begin, dtype=np.int64)
        kernels.write_bins(last_value, observed, offsets.astype(np.int64), kernels.IMPUTE_CODES[self.impute_strategy],
                           normal, categorical, begin, n_values if self.store_masks else -1, out)
        return [out[offsets[e] : offsets[e + 1]] for e in range(n_ep)]

    def _encode_columns(self, present: list[tuple[int, str, pd.Series]]) -> list[Any]:
        """:func:`_encode_column` of every present channel, on up to :data:`ENCODE_THREADS` threads.

        The compiled kernels release the GIL, so channels are read in parallel; the results (and so the
        output) do not depend on the number of threads.
        """
        threads = min(ENCODE_THREADS, os.cpu_count() or 1, len(present))
        if threads <= 1 or len(present) * len(present[0][2]) < 100_000:  # small tables: threads cost more
            return [_encode_column(column, channel, self.mode) for _, channel, column in present]
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="discretizer") as pool:
            return list(pool.map(lambda item: _encode_column(item[2], item[1], self.mode), present))

    def _channel_values(
        self, encoded: Any, channel: str, order: np.ndarray | None, active: np.ndarray, fail: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Values and status of one channel's cells in grouped row order, invalid cells handled.

        ``medfuse``: an unknown category or a text that is not a number in an active row raises, naming the
        row; ``clean``: such cells are counted in :attr:`unknown_values` and treated as not measured.

        Shape:
            encoded: :func:`_encode_column` of the (n,) column in table order; order: (n,) or None; active:
            (n,) grouped; returns (n,) float64 values and (n,) int8 status.
        """
        from medcam_lab.ehr import kernels

        values, status, texts_of = encoded
        if order is not None:
            values, status = values[order], status[order]
        bad = np.flatnonzero((status == kernels.INVALID) & active)
        if not bad.size:
            return values, status
        rows_in_table = bad if order is None else order[bad]
        if self.mode.name == "medfuse":
            text = texts_of(rows_in_table[:1])[0]
            if IS_CATEGORICAL[channel]:
                allowed = list(self.layout.possible_values[channel])
                fail(int(bad[0]), f"unknown value {text!r} for categorical channel {channel!r} (allowed: {allowed})")
            fail(int(bad[0]), f"value {text!r} of channel {channel!r} is not a number")
        self.unknown_values.update((channel, text) for text in texts_of(rows_in_table))
        return values, status
