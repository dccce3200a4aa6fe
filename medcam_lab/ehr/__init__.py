"""EHR side of medcam_lab: item ids, cleaning, wide tables, the 76-feature discretizer, the normalizer.

Spec ``ehr.md``; ``compat="medfuse"`` reproduces MedFuse/MedMod.

Flow: ``clean_events`` (raw chart/lab events -> channel strings) -> ``events_to_wide`` (one row per
charttime) -> add ``Hours`` -> ``Discretizer.transform`` / ``transform_batch`` (bins x 76) ->
``Normalizer`` (continuous columns standardized).
"""

from medcam_lab.ehr.channels import (
    CHANNELS,
    CONTINUOUS_FEATURE_INDICES,
    IS_CATEGORICAL,
    NORMAL_VALUES,
    POSSIBLE_VALUES,
    feature_names,
)
from medcam_lab.ehr.cleaning import CLEANED_VARIABLES, clean_events
from medcam_lab.ehr.discretizer import Discretizer
from medcam_lab.ehr.itemids import CHART_ITEMIDS, ITEMID_TABLE, ITEMID_TO_VARIABLE, LAB_ITEMIDS
from medcam_lab.ehr.normalizer import Normalizer
from medcam_lab.ehr.timeseries import events_to_wide

__all__ = [
    "CHANNELS",
    "CHART_ITEMIDS",
    "CLEANED_VARIABLES",
    "CONTINUOUS_FEATURE_INDICES",
    "Discretizer",
    "IS_CATEGORICAL",
    "ITEMID_TABLE",
    "ITEMID_TO_VARIABLE",
    "LAB_ITEMIDS",
    "NORMAL_VALUES",
    "Normalizer",
    "POSSIBLE_VALUES",
    "clean_events",
    "events_to_wide",
    "feature_names",
]
