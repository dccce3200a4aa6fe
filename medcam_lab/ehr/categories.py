"""Canonical categories of the categorical channels in ``clean`` mode (spec ``ehr.md`` §7).

The reference matches categorical strings exactly, so CareVue and MetaVision spellings of one score are
separate columns, and bare numbers (``4``, ``15.0``, ``0``) raise. ``clean`` mode maps every known alias,
case- and space-insensitively, to one canonical category per score of the published scales:

* eye opening 1–4 (Teasdale & Jennett 1974): No Response / To Pain / To Speech / Spontaneously;
* verbal 1–5: No Response / Incomprehensible sounds / Inappropriate Words / Confused / Oriented, plus
  the intubated response (``No Response-ETT``, ``1.0 ET/Trach``) as its own category ``ET/Trach``;
* motor 1–6: No Response / Abnormal extension / Abnormal flexion / Flex-withdraws / Localizes Pain /
  Obeys Commands;
* total 3–15;
* capillary refill: normal (< 3 s, ``Brisk``, code 0) / abnormal (> 3 s, ``Delayed``, code 1).

With ``numeric_codes`` a bare number that is a whole score of the scale (``4``, ``4.0``) maps to that
score's category (capillary refill: ``0``/``1``). Anything else is unknown (``None``): the caller counts
and reports it.
"""

from __future__ import annotations

from medcam_lab.ehr.channels import CLEAN_POSSIBLE_VALUES

EYE, MOTOR, TOTAL, VERBAL, CAPILLARY = (
    "Glascow coma scale eye opening",
    "Glascow coma scale motor response",
    "Glascow coma scale total",
    "Glascow coma scale verbal response",
    "Capillary refill rate",
)

_ALIASES: dict[str, dict[str, int]] = {
    # alias (lower case, single spaces) -> index in CLEAN_POSSIBLE_VALUES[channel]
    EYE: {
        "1 no response": 0, "no response": 0, "none": 0,
        "2 to pain": 1, "to pain": 1,
        "3 to speech": 2, "to speech": 2,
        "4 spontaneously": 3, "spontaneously": 3,
    },
    VERBAL: {
        "1 no response": 0, "no response": 0,
        "2 incomp sounds": 1, "incomprehensible sounds": 1, "2 incomprehensible sounds": 1,
        "3 inapprop words": 2, "inappropriate words": 2, "3 inappropriate words": 2,
        "4 confused": 3, "confused": 3,
        "5 oriented": 4, "oriented": 4,
        "no response-ett": 5, "1.0 et/trach": 5, "et/trach": 5, "1 et/trach": 5,
    },
    MOTOR: {
        "1 no response": 0, "no response": 0,
        "2 abnorm extensn": 1, "abnormal extension": 1, "2 abnormal extension": 1,
        "3 abnorm flexion": 2, "abnormal flexion": 2, "3 abnormal flexion": 2,
        "4 flex-withdraws": 3, "flex-withdraws": 3,
        "5 localizes pain": 4, "localizes pain": 4,
        "6 obeys commands": 5, "obeys commands": 5,
    },
    TOTAL: {},
    CAPILLARY: {
        "normal <3 secs": 0, "normal <3 seconds": 0, "brisk": 0, "normal < 3 secs": 0, "normal < 3 seconds": 0,
        "abnormal >3 secs": 1, "abnormal >3 seconds": 1, "delayed": 1, "abnormal > 3 secs": 1,
        "abnormal > 3 seconds": 1,
    },
}
_ALIASES = {ch: {**table, **{v.lower(): i for i, v in enumerate(CLEAN_POSSIBLE_VALUES[ch])}} for ch, table in
            _ALIASES.items()}

_SCORE_OFFSET = {EYE: 1, VERBAL: 1, MOTOR: 1, TOTAL: 3, CAPILLARY: 0}
"""Numeric code of category index 0 (scores start at 1, GCS total at 3, capillary refill codes at 0)."""

_N_SCORED = {EYE: 4, VERBAL: 5, MOTOR: 6, TOTAL: 13, CAPILLARY: 2}
"""Categories reachable by a numeric code (``ET/Trach`` has no number)."""


def canonical_index(channel: str, text: str, numeric_codes: bool = True) -> int:
    """Index of ``text``'s canonical category in ``CLEAN_POSSIBLE_VALUES[channel]``, or -1 if unknown.

    Examples:
        >>> canonical_index("Glascow coma scale eye opening", "Spontaneously")
        3
        >>> canonical_index("Glascow coma scale total", "15.0"), canonical_index("Glascow coma scale total", "2")
        (12, -1)
    """
    key = " ".join(str(text).split()).lower()
    found = _ALIASES[channel].get(key)
    if found is not None:
        return found
    if numeric_codes:
        try:
            number = float(key)
        except ValueError:
            return -1
        if number.is_integer():
            index = int(number) - _SCORE_OFFSET[channel]
            if 0 <= index < _N_SCORED[channel]:
                return index
    return -1


def canonical_category(channel: str, text: str, numeric_codes: bool = True) -> str | None:
    """Canonical category string of ``text`` (see :func:`canonical_index`), or None if unknown."""
    index = canonical_index(channel, text, numeric_codes)
    return None if index < 0 else CLEAN_POSSIBLE_VALUES[channel][index]


def gcs_score(channel: str, category: str) -> int | None:
    """Numeric score of a canonical GCS component category (None for ``ET/Trach``)."""
    index = CLEAN_POSSIBLE_VALUES[channel].index(category)
    return index + _SCORE_OFFSET[channel] if index < _N_SCORED[channel] else None
