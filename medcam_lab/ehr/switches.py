"""The named switches that separate ``clean`` from ``medfuse`` mode (spec ``ehr.md`` §7).

The switches of a mode are ``EHRMode.of(mode).switches`` (:mod:`medcam_lab.ehr.mode`): ``medfuse`` turns
every fix off (the reference, bugs included), ``clean`` turns every fix on. Each switch can also be flipped
alone (``EHRMode.with_switches``), which is how each fix is tested against the reference behaviour.

=============================  ===================================================================
switch                         on (clean)                              / off (medfuse)
=============================  ===================================================================
``canonical_gcs``              GCS and capillary refill aliases -> one canonical category per score
                               / raw strings, aliases are separate columns
``numeric_codes``              bare numbers (``4``, ``15.0``, ``0``) -> the category of that score
                               / unknown (the reference raises)
``capillary_refill_items``     MIMIC-IV items 223951, 224308 mapped to capillary refill / unmapped
``derive_gcs_total``           GCS total = eye + verbal + motor charted at the same time / never
``fio2_fraction_above_one``    FiO2 divided by 100 only when > 1 / always divided by 100
``blood_only_labs``            Glucose 50931, 50809 and pH 50820 only / urine and other-fluid items too
``units_by_itemid``            °F (223761), inches (226707), lb (226531) converted by item id
                               / value >= 79 -> °F, label tests
``valid_ranges``               out-of-range values dropped and counted (:mod:`.ranges`) / kept
``numeric_vitals``             HR, RR and mean BP parsed as numbers in cleaning (garbage dropped there)
                               / raw strings
``normalizer_observed_only``   normalizer fitted on observed bins only / on every bin (imputed too)
``valuenum_fallback``          a continuous variable's ``value`` that is not a number (``___``, the
                               de-identification mask) while ``valuenum`` is -> ``valuenum`` used,
                               counted / dropped and counted under its own name, as the reference drops it
=============================  ===================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CleanSwitches:
    """One flag per ``clean``-mode fix; see the module table."""

    canonical_gcs: bool = True
    numeric_codes: bool = True
    capillary_refill_items: bool = True
    derive_gcs_total: bool = True
    fio2_fraction_above_one: bool = True
    blood_only_labs: bool = True
    units_by_itemid: bool = True
    valid_ranges: bool = True
    numeric_vitals: bool = True
    normalizer_observed_only: bool = True
    valuenum_fallback: bool = True

    def to_dict(self) -> dict[str, bool]:
        """``{switch: on}`` for every switch (as ``report.json`` records them)."""
        return asdict(self)
