r"""Cleaning of MIMIC-IV chart/lab events into discretizer strings (spec §5, ``mode="medfuse"``).

The rules are the ones the reference MIMIC-IV port *effectively* applies (bugs included), so that the
cleaned values equal what MedFuse/MedMod feed their discretizer:

=======================  ===================================================================
variable                 effective rule
=======================  ===================================================================
SBP / DBP                ``"a/b"`` -> ``a`` (SBP) / ``b`` (DBP); float
Capillary refill rate    ``Normal <3 secs`` / ``Brisk`` -> 0, ``Abnormal >3 secs`` / ``Delayed`` -> 1
FiO2                     **every** value divided by 100 (0.5 -> 0.005, 50 -> 0.5)
SpO2                     non-numeric -> dropped; value <= 1 -> x100
Glucose, pH              non-numeric (``ERROR``, ``NEG``, ``___``) -> dropped
Temperature              value >= 79 -> (v - 32) * 5 / 9
Weight                   label contains ``oz`` -> /16 then x0.453592; label contains ``lb`` -> x0.453592
Height                   label contains ``in`` -> round(v * 2.54) (226707's label is "Height": no-op)
HR, RR, MBP, GCS         raw string, unchanged
=======================  ===================================================================

Label tests are case-insensitive (the reference lower-cases the label). The unit column is never
consulted: in the MIMIC-IV port it actually holds ``valuenum``, so every unit-based test is a no-op.
"Numeric" for SpO2, Glucose and pH means an unsigned decimal string (``^\d+(\.\d*)?$``), the
reference's test; the other cleaned variables parse with Python ``float`` semantics (the reference
would crash on a non-number there; we drop the row instead and count it).

The value is read from the raw ``value`` string, as the reference does. Where ``value`` is NaN or blank
but ``valuenum`` is present, ``valuenum`` is used instead (a number, so it passes the numeric tests;
for uncleaned variables it becomes ``repr(float(valuenum))``), in both modes. Where ``value`` is text that
is not a number (MIMIC-IV's de-identification mask ``___``: every blood chemistry glucose 50931 of v2.2)
but ``valuenum`` is a number, a continuous variable's row is a **masked value**: switch
``valuenum_fallback`` (clean) uses ``valuenum`` and counts it (``"value masked, valuenum used"``); the
reference drops it, and medfuse mode drops it under its own name
(``"<variable>: value '___': dropped, valuenum ignored as in the reference"``). Both are counted per
variable, with the variable's row count, in ``counts["valuenum_fallback"]``. Cleaned numbers are returned as
``repr(float(x))`` strings (``"98.0"``, ``"0.005"``), the text the reference CSV would hold.

``mode="clean"`` (spec §7, the default) applies the fixes of :class:`~medcam_lab.ehr.switches.CleanSwitches`,
each one a named switch of the mode (:class:`~medcam_lab.ehr.mode.EHRMode`): canonical GCS / capillary
refill categories (numeric codes accepted), the MIMIC-IV capillary refill items, GCS total derived from the
three components charted at the same time, FiO2 percent -> fraction only above 1, blood-only glucose and pH,
unit conversion by item id (223761 °F, 226707 in, 226531 lb), HR / RR / mean BP parsed as numbers, and the
physiologic valid ranges of :mod:`medcam_lab.ehr.ranges`. Every dropped row is counted by variable and
reason; every unknown category string is counted by its text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from medcam_lab.ehr.categories import canonical_index, gcs_score
from medcam_lab.ehr.channels import CLEAN_POSSIBLE_VALUES, IS_CATEGORICAL
from medcam_lab.ehr.mode import DEFAULT_MODE, EHRMode
from medcam_lab.ehr.ranges import VALID_RANGES
from medcam_lab.ehr.switches import CleanSwitches

CLEANED_VARIABLES: frozenset[str] = frozenset(
    {
        "Capillary refill rate",
        "Diastolic blood pressure",
        "Systolic blood pressure",
        "Fraction inspired oxygen",
        "Oxygen saturation",
        "Glucose",
        "pH",
        "Temperature",
        "Weight",
        "Height",
    }
)
"""Variables the reference cleans into floats (the others stay raw strings)."""

UNMAPPED_KEY = "(unmapped): unknown itemid"
"""Key of the counts dict for rows whose item id is not mapped."""

_UNSIGNED_DECIMAL = r"\d+(?:\.\d*)?"
_NAN_LITERALS = {"nan", "+nan", "-nan"}
_REASONS = ("", "empty value", "non-numeric value", "not finite", "unrecognised value", "unknown category",
            "out of range", "masked value", "empty value, result only in comments")
_EMPTY, _NON_NUMERIC, _NOT_FINITE, _UNRECOGNISED, _UNKNOWN_CATEGORY, _OUT_OF_RANGE, _MASKED = 1, 2, 3, 4, 5, 6, 7
_ONLY_IN_COMMENTS = 8
MASKED_USED = "value masked, valuenum used"
"""Count key (per variable) of the rows where ``valuenum_fallback`` read ``valuenum`` behind a masked value."""
MASKED_IGNORED = "value masked: dropped, valuenum ignored as in the reference"
"""Count key (per variable) of the masked rows that medfuse mode drops, as the reference does."""
_F_TO_C_ITEM, _INCH_ITEM, _POUND_ITEM = 223761, 226707, 226531
NUMERIC_VITALS = frozenset({"Heart Rate", "Respiratory rate", "Mean blood pressure"})
"""Variables the reference keeps as raw strings that ``numeric_vitals`` parses as numbers."""


def _per_unique(func: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """Apply ``func`` to the distinct entries of ``values`` only and broadcast back (raw values repeat a lot).

    Shape:
        values: (n,) without NaN; ``func`` maps (u,) -> (u,); returns (n,).
    """
    codes, uniques = pd.factorize(values)
    return np.asarray(func(np.asarray(uniques, dtype=values.dtype)))[codes]


def _to_str(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Raw cells as strings plus a blank mask (NaN, None or whitespace-only).

    Shape:
        series: (n,); returns two arrays of shape (n,) (object strings, bool).
    """
    na = series.isna().to_numpy()
    text = series.astype(str).to_numpy(dtype=object)
    text[na] = ""
    blank = _per_unique(lambda u: (pd.Series(u, dtype=object).str.strip() == "").to_numpy(bool), text)
    return text, na | blank


def _parse_unique(text: np.ndarray, strict: bool) -> np.ndarray:
    """Parse distinct strings: float value, NaN where unparsable; ``nan`` literals give a NaN too.

    Shape:
        text: (u,) distinct strings; returns (u, 2) float64: value and ok flag (1.0 / 0.0).
    """
    series = pd.Series(text, dtype=object)
    if strict:
        ok = series.str.fullmatch(_UNSIGNED_DECIMAL).fillna(False).to_numpy(bool)
        values = np.full(len(text), np.nan)
        values[ok] = pd.to_numeric(series[ok]).to_numpy(dtype=float)
    else:
        stripped = series.str.strip()
        values = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(values) | stripped.str.lower().isin(_NAN_LITERALS).to_numpy(bool)
    return np.column_stack([values, ok.astype(float)])


def _numeric_values(
    text: np.ndarray, fallback: np.ndarray, use_fallback: np.ndarray, strict: bool, valuenum_fallback: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of one variable's rows and a reason code per row (0 = fine).

    A row whose text is not a number but whose ``valuenum`` is finite is a masked value: read from
    ``valuenum`` when ``valuenum_fallback`` is on (reason 0), else reason ``_MASKED``.

    Shape:
        all arguments (n,); returns (n,) float64, (n,) int8 and (n,) bool masked-value flags.
    """
    codes, uniques = pd.factorize(text)
    parsed = _parse_unique(np.asarray(uniques, dtype=object), strict)[codes]
    values, ok = parsed[:, 0], parsed[:, 1] > 0
    masked = ~ok & ~use_fallback & np.isfinite(fallback)
    take = use_fallback | (masked & valuenum_fallback)
    values = np.where(take, fallback, values)
    ok = ok | take
    reason = np.where(ok, 0, _NON_NUMERIC).astype(np.int8)
    reason[ok & ~np.isfinite(values)] = _NOT_FINITE
    if not valuenum_fallback:
        reason[masked] = _MASKED
    return values, reason, masked


def _parse_unique_rows(text: np.ndarray) -> np.ndarray:
    """1.0 where a raw string parses as a float (Python ``float`` semantics), else 0.0.

    Shape:
        text: (n,); returns (n,) float64.
    """
    return _per_unique(lambda u: _parse_unique(u, strict=False)[:, 1], text)


def _label_contains(label: np.ndarray, needle: str) -> np.ndarray:
    """Case-insensitive ``needle in label`` per row (missing label = no match).

    Shape:
        label: (n,); returns (n,) bool.
    """
    text = pd.Series(label, dtype=object).fillna("").astype(str).to_numpy(dtype=object)
    return _per_unique(lambda u: np.array([needle in s.lower() for s in u], dtype=bool), text)


def _format_floats(values: np.ndarray) -> np.ndarray:
    """``repr(float(x))`` strings (``"98.0"``, ``"0.005"``), computed once per distinct value.

    Shape:
        values: (n,) finite float64; returns (n,) object.
    """
    return _per_unique(lambda u: np.array([repr(float(x)) for x in u], dtype=object), values)


def _clean_numeric(
    variable: str,
    text: np.ndarray,
    fallback: np.ndarray,
    use_fallback: np.ndarray,
    label: np.ndarray,
    itemid: np.ndarray,
    switches: CleanSwitches,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the rule of one cleaned variable (medfuse rules, or the fixes ``switches`` turn on).

    Shape:
        text, fallback, use_fallback, label, itemid: (n,); returns (n,) float64, (n,) int8 reason codes and
        (n,) bool masked-value flags (:func:`_numeric_values`).
    """
    if variable == "Capillary refill rate":
        values = np.full(len(text), np.nan)
        values[np.isin(text, ["Normal <3 secs", "Brisk"])] = 0.0
        values[np.isin(text, ["Abnormal >3 secs", "Delayed"])] = 1.0
        reason = np.where(np.isnan(values), _UNRECOGNISED, 0).astype(np.int8)
        return values, reason, np.zeros(len(text), dtype=bool)
    if variable in ("Systolic blood pressure", "Diastolic blood pressure"):
        part = 0 if variable == "Systolic blood pressure" else 1
        text = _per_unique(
            lambda u: np.array([s.split("/")[part] if "/" in s else s for s in u], dtype=object), text
        )
    strict = variable in ("Oxygen saturation", "Glucose", "pH")
    values, reason, masked = _numeric_values(text, fallback, use_fallback, strict, switches.valuenum_fallback)
    by_item = switches.units_by_itemid
    with np.errstate(invalid="ignore"):
        if variable == "Fraction inspired oxygen":
            values = np.where(values > 1, values / 100.0, values) if switches.fio2_fraction_above_one else values / 100
        elif variable == "Oxygen saturation":
            values = np.where(values <= 1, values * 100.0, values)
        elif variable == "Temperature":
            fahrenheit = itemid == _F_TO_C_ITEM if by_item else values >= 79
            values = np.where(fahrenheit, (values - 32) * 5.0 / 9, values)
        elif variable == "Weight":
            if by_item:
                values = np.where(itemid == _POUND_ITEM, values * 0.453592, values)
            else:
                oz, lb = _label_contains(label, "oz"), _label_contains(label, "lb")
                values = np.where(oz, values / 16.0, values)
                values = np.where(oz | lb, values * 0.453592, values)
        elif variable == "Height":
            if by_item:
                values = np.where(itemid == _INCH_ITEM, values * 2.54, values)
            else:
                values = np.where(_label_contains(label, "in"), np.round(values * 2.54), values)
    return values, reason, masked


def _clean_category(
    variable: str, text: np.ndarray, switches: CleanSwitches
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Canonical category strings of one categorical variable (switch ``canonical_gcs``).

    Shape:
        text: (n,); returns (n,) object strings, (n,) int8 reason codes and ``{"<variable>: '<text>'": n}``
        for the unknown strings.
    """
    codes, uniques = pd.factorize(text)
    index = np.array([canonical_index(variable, u, switches.numeric_codes) for u in uniques], dtype=np.int64)
    names = np.array(CLEAN_POSSIBLE_VALUES[variable] + [""], dtype=object)
    row_index = index[codes]
    reason = np.where(row_index < 0, _UNKNOWN_CATEGORY, 0).astype(np.int8)
    unknown = pd.Series(text[row_index < 0], dtype=object).value_counts()
    return names[row_index], reason, {f"{variable}: {k!r}": int(v) for k, v in unknown.items()}


def clean_events(
    events: pd.DataFrame,
    mode: EHRMode | str = DEFAULT_MODE,
    itemid_map: Mapping[int, str] | None = None,
    by: str = "stay_id",
) -> tuple[pd.DataFrame, dict]:
    """Map item ids to channels, clean values (medfuse rules or clean fixes) and drop unusable rows.

    Args:
        events: Rows of ``icu/chartevents`` and/or ``hosp/labevents`` with columns ``itemid`` (int),
            ``value`` (raw string or NaN), ``label`` (item label from ``d_items``/``d_labitems``) and
            optionally ``valuenum`` (float) and ``valueuom`` (ignored, see module doc); other columns are
            kept untouched.
        mode: The EHR mode or its name (:meth:`EHRMode.of <medcam_lab.ehr.mode.EHRMode.of>`): the fixes
            applied are its switches, ``clean`` (spec §7, the default) all of them, ``"medfuse"`` (the
            reference) none; ``EHRMode.of("medfuse").with_switches(...)`` applies some.
        itemid_map: Item id -> channel name; defaults to the map of the mode's item switches
            (:meth:`EHRMode.itemid_map <medcam_lab.ehr.mode.EHRMode.itemid_map>`; the reference map in
            medfuse mode).
        by: Episode column used with ``charttime`` to derive GCS total (switch ``derive_gcs_total``;
            without that column all rows count as one episode).

    Returns:
        ``(kept, counts)``: the kept rows (original index and columns) plus ``variable`` (channel name)
        and ``clean_value`` (string read by the discretizer), then the derived GCS totals (new index
        values); ``counts = {"kept": n, "dropped": {"<variable>: <reason>": n}, "unknown_categories":
        {"<variable>: '<text>'": n}, "derived": {...}, "valuenum_fallback": {"<variable>": {"rows": n,
        MASKED_USED or MASKED_IGNORED: k}}, "rows_per_variable": {"<variable>": n}}`` (``valuenum_fallback``
        only for variables with masked values; ``rows`` = every row of the variable; ``rows_per_variable``
        for every mapped variable); reasons ``empty value``, ``non-numeric value``, ``not finite``,
        ``unrecognised value``, ``unknown category``, ``out of range [low, high]``, ``empty value, result
        only in comments`` (labevents rows with a ``comments`` column), ``value '<text>': dropped, valuenum
        ignored as in the reference`` (masked values, medfuse) and the key ``"(unmapped): unknown itemid"``.

    Shape:
        events: (n_rows, n_columns); kept: (n_kept, n_columns + 2).

    Examples:
        >>> df = pd.DataFrame({"itemid": [223835], "value": ["0.5"], "valuenum": [0.5], "label": ["FiO2"],
        ...                    "charttime": pd.to_datetime(["2150-01-01 08:00"])})
        >>> clean_events(df)[0]["clean_value"].tolist()  # clean: a percentage only above 1
        ['0.5']
        >>> clean_events(df, "medfuse")[0]["clean_value"].tolist()  # the reference divides every FiO2 by 100
        ['0.005']
    """
    mode = EHRMode.of(mode)
    switches = mode.switches
    missing = [c for c in ("itemid", "value", "label") if c not in events.columns]
    if missing:
        raise ValueError(f"clean_events: missing column(s) {missing}")
    mapping = mode.itemid_map() if itemid_map is None else itemid_map
    n = len(events)
    variable = events["itemid"].map(mapping).to_numpy(dtype=object)
    mapped = pd.notna(variable)
    text, blank = _to_str(events["value"])
    if "valuenum" in events.columns:
        fallback = pd.to_numeric(events["valuenum"], errors="coerce").to_numpy(dtype=float)
    else:
        fallback = np.full(n, np.nan)
    use_fallback = blank & ~np.isnan(fallback)
    reason = np.zeros(n, dtype=np.int8)
    reason[blank & ~use_fallback] = _EMPTY
    if "comments" in events.columns:  # labevents: a result such as NEG. / TR. written only in the comments
        _, no_comment = _to_str(events["comments"])
        reason[blank & ~use_fallback & ~no_comment] = _ONLY_IN_COMMENTS
    clean = text.copy()
    label = events["label"].to_numpy(dtype=object)
    itemid = pd.to_numeric(events["itemid"], errors="coerce").to_numpy(dtype=float)
    unknown_categories: dict[str, int] = {}
    out_of_range: dict[str, int] = {}
    masked_rows: dict[str, dict[str, int]] = {}
    masked_dropped: dict[str, int] = {}
    masked_key = MASKED_USED if switches.valuenum_fallback else MASKED_IGNORED

    var_codes, var_names = pd.factorize(variable)  # unmapped rows get code -1
    for code, var in enumerate(var_names):
        rows = np.flatnonzero((var_codes == code) & (reason == 0))
        masked = np.zeros(len(rows), dtype=bool)  # masked values: text not a number, valuenum a number
        if IS_CATEGORICAL.get(var, False) and switches.canonical_gcs:
            raw = np.where(use_fallback[rows], _format_floats(np.nan_to_num(fallback[rows])), text[rows])
            names, why, unknown = _clean_category(var, raw.astype(object), switches)
            reason[rows] = why
            clean[rows[why == 0]] = names[why == 0]
            unknown_categories.update(unknown)
        elif var in CLEANED_VARIABLES or (switches.numeric_vitals and var in NUMERIC_VITALS):
            values, why, masked = _clean_numeric(
                var, text[rows], fallback[rows], use_fallback[rows], label[rows], itemid[rows], switches
            )
            good = why == 0
            if switches.valid_ranges and var in VALID_RANGES:
                low, high = VALID_RANGES[var][:2]
                outside = good & ~((values >= low) & (values <= high))
                why[outside] = _OUT_OF_RANGE
                good &= ~outside
                if outside.any():
                    out_of_range[f"{var}: out of range [{low:g}, {high:g}]"] = int(outside.sum())
            reason[rows] = why
            clean[rows[good]] = _format_floats(values[good])
        else:
            fb = use_fallback[rows]
            reason[rows[fb & ~np.isfinite(fallback[rows])]] = _NOT_FINITE
            if not IS_CATEGORICAL.get(var, False):  # a raw continuous string the discretizer reads as float
                masked = ~fb & np.isfinite(fallback[rows]) & (_parse_unique_rows(text[rows]) == 0)
                reason[rows[masked]] = 0 if switches.valuenum_fallback else _MASKED
                fb = fb | (masked & switches.valuenum_fallback)
            fix = rows[fb & np.isfinite(fallback[rows])]
            clean[fix] = _format_floats(fallback[fix])
        if masked.any():
            masked_rows[str(var)] = {"rows": int((var_codes == code).sum()), masked_key: int(masked.sum())}
            if not switches.valuenum_fallback:
                for value, count in pd.Series(text[rows[masked]], dtype=object).value_counts().items():
                    key = f"{var}: value {value!r}: dropped, valuenum ignored as in the reference"
                    masked_dropped[key] = int(count)

    keep = mapped & (reason == 0)
    kept = events.loc[keep].copy()
    kept["variable"] = pd.Series(variable[keep], index=kept.index, dtype=object)
    kept["clean_value"] = pd.Series(clean[keep], index=kept.index, dtype=object)

    dropped: dict[str, int] = {}
    if (~mapped).any():
        dropped[UNMAPPED_KEY] = int((~mapped).sum())
    bad = mapped & (reason != 0) & (reason != _OUT_OF_RANGE) & (reason != _MASKED)
    if bad.any():
        keys = (
            pd.Series(variable[bad], dtype=object)
            + ": "
            + pd.Series(np.asarray(_REASONS, dtype=object)[reason[bad]], dtype=object)
        )
        dropped.update({str(k): int(v) for k, v in keys.value_counts().items()})
    dropped.update(out_of_range)
    dropped.update(masked_dropped)
    counts = {
        "kept": int(keep.sum()),
        "dropped": dict(sorted(dropped.items())),
        "unknown_categories": dict(sorted(unknown_categories.items())),
        "derived": {},
        "valuenum_fallback": dict(sorted(masked_rows.items())),
        "rows_per_variable": {
            str(var): int(n)
            for var, n in zip(var_names, np.bincount(var_codes[var_codes >= 0], minlength=len(var_names)), strict=True)
        },
    }
    if switches.derive_gcs_total and switches.canonical_gcs:
        derived, counts["derived"] = derive_gcs_total(kept, by)
        kept = pd.concat([kept, derived]) if len(derived) else kept
    return kept, counts


_GCS_COMPONENTS = (
    "Glascow coma scale eye opening",
    "Glascow coma scale verbal response",
    "Glascow coma scale motor response",
)
_GCS_TOTAL = "Glascow coma scale total"
DERIVED_TOTAL_LABEL = "GCS total (derived: eye + verbal + motor)"


def derive_gcs_total(cleaned: pd.DataFrame, by: str = "stay_id") -> tuple[pd.DataFrame, dict[str, int]]:
    """GCS total rows derived from the three canonical components charted at the same time.

    At every ``(by, charttime)`` where the eye, verbal and motor components are all present (the last
    one in row order if a component is charted twice) and none is ``ET/Trach`` (no verbal score), the
    total is their sum. A time that already has a charted total keeps it (nothing is derived there).

    Returns:
        ``(rows, counts)``: new rows (``itemid`` 0, ``label`` :data:`DERIVED_TOTAL_LABEL`, ``variable`` GCS
        total, ``clean_value`` the sum as text) and counts ``derived``, ``not derived: verbal ET/Trach``,
        ``not derived: component missing at that time``.

    Shape:
        cleaned: (n, c) with ``charttime``, ``variable``, ``clean_value``; rows: (k, c).
    """
    if "charttime" not in cleaned.columns:
        raise ValueError("derive_gcs_total: needs a 'charttime' column")
    keys = [by, "charttime"] if by in cleaned.columns else ["charttime"]
    parts = cleaned.loc[cleaned["variable"].isin([*_GCS_COMPONENTS, _GCS_TOTAL])]
    if parts.empty:
        return cleaned.iloc[0:0].copy(), {}
    wide = parts.drop_duplicates([*keys, "variable"], keep="last").pivot(
        index=keys, columns="variable", values="clean_value"
    )
    for name in (*_GCS_COMPONENTS, _GCS_TOTAL):
        if name not in wide.columns:
            wide[name] = np.nan
    has_all = wide[list(_GCS_COMPONENTS)].notna().all(axis=1) & wide[_GCS_TOTAL].isna()
    intubated = wide["Glascow coma scale verbal response"] == "ET/Trach"
    usable = wide.loc[has_all & ~intubated]
    total = np.zeros(len(usable), dtype=np.int64)
    for name in _GCS_COMPONENTS:
        total += np.array([gcs_score(name, c) for c in usable[name]], dtype=np.int64)
    first_rows = parts.drop_duplicates(keys, keep="first").set_index(keys)
    rows = first_rows.loc[usable.index].reset_index()
    rows["itemid"] = 0
    rows["label"] = DERIVED_TOTAL_LABEL
    rows["variable"] = _GCS_TOTAL
    rows["clean_value"] = [str(int(t)) for t in total]
    for col in ("value", "valuenum"):
        if col in rows.columns:
            rows[col] = rows["clean_value"] if col == "value" else total.astype(float)
    rows = rows[list(cleaned.columns)]
    rows.index = pd.RangeIndex(len(rows)) + (int(cleaned.index.max()) + 1 if len(cleaned) else 0)
    counts = {
        "GCS total: derived": len(rows),
        "GCS total: not derived, verbal ET/Trach": int((has_all & intubated).sum()),
        "GCS total: not derived, component missing at that time": int((~has_all & wide[_GCS_TOTAL].isna()).sum()),
    }
    return rows, counts
