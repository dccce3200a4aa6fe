"""The EHR mode, ``clean`` (the default) or ``medfuse`` (spec ``ehr.md`` §7), as one object built once.

``EHRMode.of(name)`` is the one place a mode name becomes a mode (and the one place it is checked); every
EHR function and class takes the object, or a name it turns into one through :meth:`EHRMode.of`. Without a
mode they all use :data:`DEFAULT_MODE`, ``clean``, the default of ``PrepareConfig.compat`` (``--compat``);
``medfuse`` is always asked for by name.

Examples:
    >>> mode = EHRMode.of("medfuse")
    >>> mode.name, mode.layout.n_features, mode.switches.valid_ranges
    ('medfuse', 76, False)
    >>> EHRMode.of().name, EHRMode.of().layout.n_features
    ('clean', 60)
    >>> mode.with_switches(valid_ranges=True).switches.valid_ranges
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from medcam_lab.ehr.channels import CLEAN_NORMAL_VALUES, CLEAN_POSSIBLE_VALUES, MEDFUSE_LAYOUT, Layout
from medcam_lab.ehr.itemids import itemid_map
from medcam_lab.ehr.switches import CleanSwitches

COMPAT_MODES: tuple[str, ...] = ("medfuse", "clean")
"""The mode names (``PrepareConfig.compat``, ``prepare --compat``)."""

DEFAULT_MODE = "clean"
"""The mode of every EHR function and class not given one (the default of ``PrepareConfig.compat`` too)."""

_LAYOUTS: dict[str, Layout] = {
    "medfuse": MEDFUSE_LAYOUT,
    "clean": Layout(CLEAN_POSSIBLE_VALUES, CLEAN_NORMAL_VALUES),
}


@dataclass(frozen=True)
class EHRMode:
    """One EHR mode: its name, its cleaning switches and its column layout.

    Build it with :meth:`of` (from a name) and :meth:`with_switches` (a switch flipped); two modes are equal
    when name and switches are.

    Attributes:
        name: ``"clean"`` (spec §7 fixes) or ``"medfuse"`` (the reference MedFuse/MedMod extraction, bugs
            included). Besides the switches, the name selects the rules that are not switches: the layout, how
            the discretizer reads a cell (``medfuse``: exact strings, an unreadable cell raises; ``clean``:
            canonical categories, an unreadable cell is counted and left unmeasured), and which value of a
            channel survives at one charttime in the wide table (``medfuse``: the reference's sort order;
            ``clean``: the numeric maximum, the best category).
        switches: The ``clean`` fixes applied (:class:`~medcam_lab.ehr.switches.CleanSwitches`): cleaning of
            the events, the item-id map (:meth:`itemid_map`) and the normalizer's fit on observed bins only.
            Every switch on for ``clean``, every switch off for ``medfuse``; :meth:`with_switches` flips some
            (how each fix is tested alone against the reference).
        layout: The output columns of the discretizer (:class:`~medcam_lab.ehr.channels.Layout`: categories
            and normal value of each channel, first column of each channel, names), from ``name``: 76
            columns with the reference's strings for ``medfuse``, 60 with one column per canonical category
            for ``clean``.
    """

    name: str
    switches: CleanSwitches
    layout: Layout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name not in COMPAT_MODES:
            raise ValueError(f"unknown compat {self.name!r} (EHR mode); use one of {', '.join(COMPAT_MODES)}")
        object.__setattr__(self, "layout", _LAYOUTS[self.name])

    @classmethod
    def of(cls, mode: EHRMode | str = DEFAULT_MODE) -> EHRMode:
        """The mode named ``mode`` (every switch on for ``clean``, off for ``medfuse``), or ``mode`` itself.

        Raises:
            ValueError: ``mode`` is not one of :data:`COMPAT_MODES`.
        """
        if isinstance(mode, EHRMode):
            return mode
        on = mode == "clean"
        return cls(mode, CleanSwitches(**{f.name: on for f in fields(CleanSwitches)}))

    def with_switches(self, **switches: bool) -> EHRMode:
        """This mode with the named switches set (e.g. ``EHRMode.of("medfuse").with_switches(valid_ranges=True)``:
        the reference with one fix on); name and layout stay."""
        return replace(self, switches=replace(self.switches, **switches))

    def itemid_map(self) -> dict[int, str]:
        """Item id -> channel under this mode's item switches (the reference map in ``medfuse`` mode)."""
        return itemid_map(self.switches.capillary_refill_items, self.switches.blood_only_labs)
