"""Cleaned events -> wide per-charttime table (the reference episode ``*_timeseries.csv``, spec §5).

One row per distinct ``(by, charttime)``; one column per channel holding the string the discretizer
reads (``""`` where the channel was not measured at that time). When a channel has several values at
the same ``(by, charttime)``, the reference sorts the events by ``(charttime, variable, value)`` and
keeps the last one: for the variables it cleans into floats (:data:`CLEANED_VARIABLES`) that is the
**numeric maximum**, for the raw-string variables (heart rate, respiratory rate, mean BP, GCS) the
**string-order maximum** (so ``"86"`` beats ``"100"``).

That is the ``medfuse`` rule. In ``clean`` mode (the default) every continuous channel keeps its numeric
maximum and a categorical channel its highest canonical category (the best score; ``ET/Trach`` after the
scored verbal responses).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medcam_lab.ehr.channels import CHANNELS, IS_CATEGORICAL
from medcam_lab.ehr.cleaning import CLEANED_VARIABLES
from medcam_lab.ehr.mode import DEFAULT_MODE, EHRMode


def events_to_wide(events: pd.DataFrame, by: str = "stay_id", mode: EHRMode | str = DEFAULT_MODE) -> pd.DataFrame:
    """Pivot cleaned events into one row per ``(by, charttime)`` with the 17 channel columns.

    Args:
        events: Cleaned events with columns ``[by, "charttime", "variable", "clean_value"]``
            (``charttime`` datetime64, ``clean_value`` strings; NaN or ``""`` values are ignored).
        by: Episode key column (e.g. ``stay_id``).
        mode: The EHR mode or its name: ``"clean"`` (the default) or ``"medfuse"`` (the reference's
            survivor rule); see the module doc.

    Returns:
        Columns ``[by, "charttime"] + CHANNELS`` (channel cells are strings, ``""`` = not measured),
        sorted by ``(by, charttime)``, with a fresh ``RangeIndex``.

    Shape:
        events: (n_events, >= 4); returns (n_distinct_times, 19).

    Examples:
        >>> ev = pd.DataFrame({"stay_id": [1, 1], "charttime": pd.to_datetime(["2020-01-01"] * 2),
        ...                    "variable": ["Heart Rate"] * 2, "clean_value": ["100", "86"]})
        >>> events_to_wide(ev, mode="medfuse")["Heart Rate"].tolist()  # string order
        ['86']
        >>> events_to_wide(ev)["Heart Rate"].tolist()  # clean: numeric maximum
        ['100']
    """
    mode = EHRMode.of(mode)
    missing = [c for c in (by, "charttime", "variable", "clean_value") if c not in events.columns]
    if missing:
        raise ValueError(f"events_to_wide: missing column(s) {missing}")
    channel_of = {name: i for i, name in enumerate(CHANNELS)}
    var_codes, var_names = pd.factorize(events["variable"])
    unknown = sorted(str(v) for v in var_names if v not in channel_of)
    if unknown or (var_codes < 0).any():
        raise ValueError(f"events_to_wide: unknown variable(s) {unknown or ['<missing>']}")
    channel = np.array([channel_of[v] for v in var_names], dtype=np.int64)[var_codes]

    value = events["clean_value"]
    text = value.astype(str).to_numpy(dtype=object)
    val_codes, val_uniques = pd.factorize(np.where(value.isna().to_numpy(), "", text))
    uniques = np.asarray(val_uniques, dtype=object)
    # order key of each distinct value: its float for cleaned variables, its rank in string order otherwise
    rank = np.empty(len(uniques), dtype=np.float64)
    rank[np.argsort(uniques, kind="stable")] = np.arange(len(uniques))
    as_float = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(dtype=float)
    if mode.name == "clean":
        numeric_names = [v for v in CHANNELS if not IS_CATEGORICAL[v]]
        categories = mode.layout.possible_values
        rank_in = {v: {c: float(i) for i, c in enumerate(categories[v])} for v in categories}
        categorical = ~np.isin(channel, [channel_of[v] for v in numeric_names])
        cat_rows = np.flatnonzero(categorical)
        names = np.asarray(CHANNELS, dtype=object)[channel[cat_rows]]
        cat_rank = [rank_in[n].get(v, np.nan) for n, v in zip(names, uniques[val_codes[cat_rows]], strict=True)]
        rank = rank[val_codes].copy()
        rank[cat_rows] = cat_rank
        val_rank = rank
    else:
        numeric_names = list(CLEANED_VARIABLES)
        val_rank = rank[val_codes]
    numeric = np.isin(channel, [channel_of[v] for v in numeric_names])
    bad = numeric & np.isnan(as_float[val_codes]) & (uniques[val_codes] != "")
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"events_to_wide: {events['variable'].iloc[k]!r} value {text[k]!r} is not a number")
    key = np.where(numeric, as_float[val_codes], val_rank)

    by_codes, by_uniques = pd.factorize(events[by], sort=True)
    time_codes, time_uniques = pd.factorize(events["charttime"], sort=True)
    if (by_codes < 0).any() or (time_codes < 0).any():
        raise ValueError(f"events_to_wide: missing {by} or charttime")
    keep = np.flatnonzero(uniques[val_codes] != "")
    order = keep[np.lexsort((key[keep], channel[keep], time_codes[keep], by_codes[keep]))]
    by_s, time_s, chan_s = by_codes[order], time_codes[order], channel[order]
    # the last row of each (by, charttime, channel) group is the survivor
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (by_s[1:] != by_s[:-1]) | (time_s[1:] != time_s[:-1]) | (chan_s[1:] != chan_s[:-1])
    new_row = np.ones(len(order), dtype=bool)
    new_row[1:] = (by_s[1:] != by_s[:-1]) | (time_s[1:] != time_s[:-1])
    row_of = np.cumsum(new_row) - 1
    cells = np.full((int(new_row.sum()), len(CHANNELS)), "", dtype=object)
    cells[row_of[last], chan_s[last]] = uniques[val_codes[order[last]]]

    starts = np.flatnonzero(new_row)
    out = pd.DataFrame({by: by_uniques.take(by_s[starts]), "charttime": time_uniques.take(time_s[starts])})
    for i, name in enumerate(CHANNELS):
        out[name] = pd.Series(cells[:, i], dtype=object)
    return out
