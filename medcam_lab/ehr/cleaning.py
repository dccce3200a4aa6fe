r"""Cleaning of MIMIC-IV chart/lab events into discretizer strings (spec §5, ``compat="medfuse"``).

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
for uncleaned variables it becomes ``repr(float(valuenum))``). Cleaned numbers are returned as
``repr(float(x))`` strings (``"98.0"``, ``"0.005"``), the text the reference CSV would hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from medcam_lab.ehr.itemids import ITEMID_TO_VARIABLE

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
_REASONS = ("", "empty value", "non-numeric value", "not finite", "unrecognised value")
_EMPTY, _NON_NUMERIC, _NOT_FINITE, _UNRECOGNISED = 1, 2, 3, 4


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
    text: np.ndarray, fallback: np.ndarray, use_fallback: np.ndarray, strict: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Numbers of one variable's rows and a reason code per row (0 = fine).

    Shape:
        all arguments (n,); returns (n,) float64 and (n,) int8.
    """
    codes, uniques = pd.factorize(text)
    parsed = _parse_unique(np.asarray(uniques, dtype=object), strict)[codes]
    values, ok = parsed[:, 0], parsed[:, 1] > 0
    values = np.where(use_fallback, fallback, values)
    ok = ok | use_fallback
    reason = np.where(ok, 0, _NON_NUMERIC).astype(np.int8)
    reason[ok & ~np.isfinite(values)] = _NOT_FINITE
    return values, reason


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
    variable: str, text: np.ndarray, fallback: np.ndarray, use_fallback: np.ndarray, label: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the medfuse rule of one cleaned variable.

    Shape:
        all arguments (n,); returns (n,) float64 and (n,) int8 reason codes.
    """
    if variable == "Capillary refill rate":
        values = np.full(len(text), np.nan)
        values[np.isin(text, ["Normal <3 secs", "Brisk"])] = 0.0
        values[np.isin(text, ["Abnormal >3 secs", "Delayed"])] = 1.0
        reason = np.where(np.isnan(values), _UNRECOGNISED, 0).astype(np.int8)
        return values, reason
    if variable in ("Systolic blood pressure", "Diastolic blood pressure"):
        part = 0 if variable == "Systolic blood pressure" else 1
        text = _per_unique(
            lambda u: np.array([s.split("/")[part] if "/" in s else s for s in u], dtype=object), text
        )
    strict = variable in ("Oxygen saturation", "Glucose", "pH")
    values, reason = _numeric_values(text, fallback, use_fallback, strict)
    with np.errstate(invalid="ignore"):
        if variable == "Fraction inspired oxygen":
            values = values / 100.0
        elif variable == "Oxygen saturation":
            values = np.where(values <= 1, values * 100.0, values)
        elif variable == "Temperature":
            values = np.where(values >= 79, (values - 32) * 5.0 / 9, values)
        elif variable == "Weight":
            oz, lb = _label_contains(label, "oz"), _label_contains(label, "lb")
            values = np.where(oz, values / 16.0, values)
            values = np.where(oz | lb, values * 0.453592, values)
        elif variable == "Height":
            values = np.where(_label_contains(label, "in"), np.round(values * 2.54), values)
    return values, reason


def clean_events(
    events: pd.DataFrame, compat: str = "medfuse", itemid_map: Mapping[int, str] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Map item ids to channels, clean values (medfuse rules) and drop unusable rows.

    Args:
        events: Rows of ``icu/chartevents`` and/or ``hosp/labevents`` with columns ``itemid`` (int),
            ``value`` (raw string or NaN), ``label`` (item label from ``d_items``/``d_labitems``) and
            optionally ``valuenum`` (float) and ``valueuom`` (ignored, see module doc); other columns are
            kept untouched.
        compat: Only ``"medfuse"`` is implemented in this module version.
        itemid_map: Item id -> channel name; defaults to :data:`ITEMID_TO_VARIABLE`.

    Returns:
        ``(kept, counts)``: the kept rows (original index and columns) plus ``variable`` (channel name)
        and ``clean_value`` (string read by the discretizer); ``counts = {"kept": n, "dropped":
        {"<variable>: <reason>": n}}`` with reasons ``empty value``, ``non-numeric value``, ``not
        finite``, ``unrecognised value`` and the key ``"(unmapped): unknown itemid"``.

    Shape:
        events: (n_rows, n_columns); kept: (n_kept, n_columns + 2).

    Examples:
        >>> df = pd.DataFrame({"itemid": [223835], "value": ["50"], "valuenum": [50.0], "label": ["x"]})
        >>> clean_events(df)[0]["clean_value"].tolist()
        ['0.5']
    """
    if compat != "medfuse":
        raise ValueError(f"compat={compat!r}: only 'medfuse' is implemented in this module version")
    missing = [c for c in ("itemid", "value", "label") if c not in events.columns]
    if missing:
        raise ValueError(f"clean_events: missing column(s) {missing}")
    mapping = ITEMID_TO_VARIABLE if itemid_map is None else itemid_map
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
    clean = text.copy()
    label = events["label"].to_numpy(dtype=object)

    var_codes, var_names = pd.factorize(variable)  # unmapped rows get code -1
    for code, var in enumerate(var_names):
        rows = np.flatnonzero((var_codes == code) & (reason == 0))
        if var in CLEANED_VARIABLES:
            values, why = _clean_numeric(var, text[rows], fallback[rows], use_fallback[rows], label[rows])
            reason[rows] = why
            good = why == 0
            clean[rows[good]] = _format_floats(values[good])
        else:
            fb = use_fallback[rows]
            reason[rows[fb & ~np.isfinite(fallback[rows])]] = _NOT_FINITE
            fix = rows[fb & np.isfinite(fallback[rows])]
            clean[fix] = _format_floats(fallback[fix])

    keep = mapped & (reason == 0)
    kept = events.loc[keep].copy()
    kept["variable"] = pd.Series(variable[keep], index=kept.index, dtype=object)
    kept["clean_value"] = pd.Series(clean[keep], index=kept.index, dtype=object)

    dropped: dict[str, int] = {}
    if (~mapped).any():
        dropped[UNMAPPED_KEY] = int((~mapped).sum())
    bad = mapped & (reason != 0)
    if bad.any():
        keys = (
            pd.Series(variable[bad], dtype=object)
            + ": "
            + pd.Series(np.asarray(_REASONS, dtype=object)[reason[bad]], dtype=object)
        )
        dropped.update({str(k): int(v) for k, v in keys.value_counts().items()})
    return kept, {"kept": int(keep.sum()), "dropped": dict(sorted(dropped.items()))}
