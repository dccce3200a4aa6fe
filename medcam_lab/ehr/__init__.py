"""EHR side of medcam_lab: item ids, cleaning, wide tables, the discretizer, the normalizer.

Spec ``ehr.md``. Every step takes the EHR mode, :class:`EHRMode` or its name (``mode=``), built once by
``EHRMode.of``: ``"clean"`` (the default everywhere, as for ``prepare --compat``) applies the fixes of spec
§7, each a named switch of :class:`CleanSwitches` (60 features: canonical categories); ``"medfuse"``,
always asked for by name, reproduces MedFuse/MedMod (76 features).

Flow: ``clean_events`` (raw chart/lab events -> channel strings) -> ``events_to_wide`` (one row per
charttime) -> add ``Hours`` -> ``Discretizer.transform`` / ``transform_batch`` (bins x 60, or 76) ->
``Normalizer`` (continuous columns standardized). The module-level ``feature_names`` and
``CONTINUOUS_FEATURE_INDICES`` are those of the 76-column ``medfuse`` layout; a mode's are
``EHRMode.of(mode).layout``.

Examples:
    >>> mode = EHRMode.of("medfuse")
    >>> Discretizer(mode=mode).feature_names == feature_names()
    True
    >>> len(Discretizer().feature_names)
    60
"""

from medcam_lab.ehr.channels import (
    CHANNELS,
    CLEAN_POSSIBLE_VALUES,
    CONTINUOUS_FEATURE_INDICES,
    IS_CATEGORICAL,
    NORMAL_VALUES,
    POSSIBLE_VALUES,
    Layout,
    feature_names,
)
from medcam_lab.ehr.cleaning import CLEANED_VARIABLES, clean_events, derive_gcs_total
from medcam_lab.ehr.discretizer import Discretizer
from medcam_lab.ehr.itemids import CHART_ITEMIDS, ITEMID_TABLE, ITEMID_TO_VARIABLE, LAB_ITEMIDS
from medcam_lab.ehr.mode import COMPAT_MODES, DEFAULT_MODE, EHRMode
from medcam_lab.ehr.normalizer import Normalizer
from medcam_lab.ehr.ranges import VALID_RANGES
from medcam_lab.ehr.switches import CleanSwitches
from medcam_lab.ehr.timeseries import events_to_wide

__all__ = [
    "CHANNELS",
    "CHART_ITEMIDS",
    "CLEANED_VARIABLES",
    "CLEAN_POSSIBLE_VALUES",
    "CleanSwitches",
    "COMPAT_MODES",
    "CONTINUOUS_FEATURE_INDICES",
    "DEFAULT_MODE",
    "Discretizer",
    "EHRMode",
    "IS_CATEGORICAL",
    "ITEMID_TABLE",
    "ITEMID_TO_VARIABLE",
    "LAB_ITEMIDS",
    "Layout",
    "NORMAL_VALUES",
    "Normalizer",
    "POSSIBLE_VALUES",
    "VALID_RANGES",
    "clean_events",
    "derive_gcs_total",
    "events_to_wide",
    "feature_names",
]
