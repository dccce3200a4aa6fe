"""The 17 EHR channels and the column layouts of the discretizer (spec ``ehr.md`` §1 and §7).

Channel order is Python string order of the names (upper case sorts before lower case, so ``pH`` is
last); this is also the column order of the reference ``discretizer_config.json`` and of the episode
CSV header. A categorical channel takes one output column per allowed string, **in the config's list
order (not sorted)**; a continuous channel takes one column. After the 59 value columns come, when
masks are stored, the 17 mask columns (``59 + i`` for channel ``i``), 76 in all.

Categorical matching is exact string equality: aliases (``4 Spontaneously`` / ``Spontaneously``) are
separate columns, and e.g. ``4`` for GCS eye or ``15.0`` for GCS total is not an allowed string.

The module-level layout names (:data:`MEDFUSE_LAYOUT`, :data:`CHANNEL_BEGIN`, :data:`CONTINUOUS_FEATURE_INDICES`,
:func:`feature_names`) describe this 76-column ``medfuse`` layout only.
The layout of a mode (``clean``, the default, has 60 columns: one per canonical category) is
``EHRMode.of(mode).layout`` (:class:`Layout`; :mod:`medcam_lab.ehr.mode`).

Examples:
    >>> len(feature_names())
    76
    >>> feature_names()[2], feature_names()[-1]
    ('Diastolic blood pressure', 'mask->pH')
"""

from __future__ import annotations

CHANNELS: list[str] = [
    "Capillary refill rate",
    "Diastolic blood pressure",
    "Fraction inspired oxygen",
    "Glascow coma scale eye opening",
    "Glascow coma scale motor response",
    "Glascow coma scale total",
    "Glascow coma scale verbal response",
    "Glucose",
    "Heart Rate",
    "Height",
    "Mean blood pressure",
    "Oxygen saturation",
    "Respiratory rate",
    "Systolic blood pressure",
    "Temperature",
    "Weight",
    "pH",
]
"""The 17 channel names, in discretizer order (Python string sort: ``pH`` last)."""

POSSIBLE_VALUES: dict[str, list[str]] = {
    "Capillary refill rate": ["0.0", "1.0"],
    "Glascow coma scale eye opening": [
        "To Pain",
        "3 To speech",
        "1 No Response",
        "4 Spontaneously",
        "None",
        "To Speech",
        "Spontaneously",
        "2 To pain",
    ],
    "Glascow coma scale motor response": [
        "1 No Response",
        "3 Abnorm flexion",
        "Abnormal extension",
        "No response",
        "4 Flex-withdraws",
        "Localizes Pain",
        "Flex-withdraws",
        "Obeys Commands",
        "Abnormal Flexion",
        "6 Obeys Commands",
        "5 Localizes Pain",
        "2 Abnorm extensn",
    ],
    "Glascow coma scale total": [
        "11",
        "10",
        "13",
        "12",
        "15",
        "14",
        "3",
        "5",
        "4",
        "7",
        "6",
        "9",
        "8",
    ],
    "Glascow coma scale verbal response": [
        "1 No Response",
        "No Response",
        "Confused",
        "Inappropriate Words",
        "Oriented",
        "No Response-ETT",
        "5 Oriented",
        "Incomprehensible sounds",
        "1.0 ET/Trach",
        "4 Confused",
        "2 Incomp sounds",
        "3 Inapprop words",
    ],
}
"""Allowed strings of each categorical channel, in one-hot column order (the config's, not sorted)."""

IS_CATEGORICAL: dict[str, bool] = {name: name in POSSIBLE_VALUES for name in CHANNELS}
"""``True`` for the 5 categorical channels, ``False`` for the 12 continuous ones."""

NORMAL_VALUES: dict[str, str] = {
    "Capillary refill rate": "0.0",
    "Diastolic blood pressure": "59.0",
    "Fraction inspired oxygen": "0.21",
    "Glascow coma scale eye opening": "4 Spontaneously",
    "Glascow coma scale motor response": "6 Obeys Commands",
    "Glascow coma scale total": "15",
    "Glascow coma scale verbal response": "5 Oriented",
    "Glucose": "128.0",
    "Heart Rate": "86",
    "Height": "170.0",
    "Mean blood pressure": "77.0",
    "Oxygen saturation": "98.0",
    "Respiratory rate": "19",
    "Systolic blood pressure": "118.0",
    "Temperature": "36.6",
    "Weight": "81.0",
    "pH": "7.4",
}
"""Normal value of each channel, as the string the reference config holds (used by imputation)."""


class Layout:
    """Column layout of a discretizer: categories per channel, normal values, begin positions, names.

    A mode's layout is ``EHRMode.of(mode).layout`` (:mod:`medcam_lab.ehr.mode`): ``medfuse`` has the
    reference's strings (:data:`POSSIBLE_VALUES`, 76 columns), ``clean`` the canonical categories
    (:data:`CLEAN_POSSIBLE_VALUES`, 60 columns).

    Args:
        possible_values: Column list of each categorical channel (one-hot column order).
        normal_values: Normal value of each channel (imputation), a string of its column list if categorical.

    Examples:
        >>> Layout(POSSIBLE_VALUES, NORMAL_VALUES).n_features
        76
        >>> Layout(CLEAN_POSSIBLE_VALUES, CLEAN_NORMAL_VALUES).n_features
        60
    """

    def __init__(self, possible_values: dict[str, list[str]], normal_values: dict[str, str]) -> None:
        self.possible_values = possible_values
        self.normal_values = normal_values
        begins, pos = [], 0
        for name in CHANNELS:
            begins.append(pos)
            pos += len(self.possible_values[name]) if IS_CATEGORICAL[name] else 1
        self.begin: tuple[int, ...] = tuple(begins)
        self.num_value_columns: int = pos
        self.n_features: int = pos + len(CHANNELS)
        self.continuous_indices: list[int] = [
            self.begin[i] for i, name in enumerate(CHANNELS) if not IS_CATEGORICAL[name]
        ]

    def feature_names(self, store_masks: bool = True) -> list[str]:
        """Output column names (``<channel>-><category>``, ``<channel>``, then ``mask-><channel>``)."""
        names: list[str] = []
        for name in CHANNELS:
            if IS_CATEGORICAL[name]:
                names.extend(f"{name}->{value}" for value in self.possible_values[name])
            else:
                names.append(name)
        if store_masks:
            names.extend(f"mask->{name}" for name in CHANNELS)
        return names


MEDFUSE_LAYOUT: Layout = Layout(POSSIBLE_VALUES, NORMAL_VALUES)
"""The 76-column reference layout (``medfuse`` mode); the module-level names below are read from it."""

CHANNEL_BEGIN: tuple[int, ...] = MEDFUSE_LAYOUT.begin
"""First value column of each channel in the ``medfuse`` layout (sum of the widths of the channels before it)."""

CONTINUOUS_FEATURE_INDICES: list[int] = MEDFUSE_LAYOUT.continuous_indices
"""The 12 continuous columns ``[2, 3, 49, ..., 58]`` of the ``medfuse`` layout (the only ones the normalizer
standardizes there)."""


def feature_names(store_masks: bool = True) -> list[str]:
    """Output column names of the ``medfuse`` discretizer (the 76-column reference layout).

    ``<channel>-><string>`` for one-hot columns, ``<channel>`` for continuous ones, then
    ``mask-><channel>`` for the 17 masks when ``store_masks``. Those of any mode:
    ``EHRMode.of(mode).layout.feature_names(store_masks)`` or ``Discretizer(mode=...).feature_names``.

    Args:
        store_masks: Whether the 17 mask columns are appended.

    Returns:
        76 names (59 when ``store_masks`` is False).
    """
    return MEDFUSE_LAYOUT.feature_names(store_masks)


# -- clean mode (spec §7): one column per canonical category -------------------------------------------

CLEAN_POSSIBLE_VALUES: dict[str, list[str]] = {
    "Capillary refill rate": ["Normal <3 secs", "Abnormal >3 secs"],
    "Glascow coma scale eye opening": ["1 No Response", "2 To Pain", "3 To Speech", "4 Spontaneously"],
    "Glascow coma scale motor response": [
        "1 No Response",
        "2 Abnormal extension",
        "3 Abnormal flexion",
        "4 Flex-withdraws",
        "5 Localizes Pain",
        "6 Obeys Commands",
    ],
    "Glascow coma scale total": [str(score) for score in range(3, 16)],
    "Glascow coma scale verbal response": [
        "1 No Response",
        "2 Incomprehensible sounds",
        "3 Inappropriate Words",
        "4 Confused",
        "5 Oriented",
        "ET/Trach",
    ],
}
"""Canonical categories of each categorical channel in ``clean`` mode, in column order (ascending score;
the intubated verbal response ``ET/Trach`` is its own category, after the scored ones)."""

CLEAN_NORMAL_VALUES: dict[str, str] = {
    **NORMAL_VALUES,
    "Capillary refill rate": "Normal <3 secs",
    "Glascow coma scale eye opening": "4 Spontaneously",
    "Glascow coma scale motor response": "6 Obeys Commands",
    "Glascow coma scale total": "15",
    "Glascow coma scale verbal response": "5 Oriented",
}
"""Normal values in ``clean`` mode: the top score of each GCS scale, brisk capillary refill."""
