"""Descriptions of config fields, read from the ``Attributes:`` sections of the config dataclasses' docstrings
(the one source of the ``--help`` text of every generated flag), and the allowed values of the fields that have
a fixed set, taken from the modules that check them.

An ``Attributes:`` entry is ``name: text`` or ``name, other: text`` (one text for several fields); continuation
lines are indented further. Docstring markup (````literal````, ``:class:`X```) is removed for terminal output.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_ENTRY = re.compile(r"^([a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*):\s+(.*)$")


def plain_text(text: str) -> str:
    """Docstring markup → terminal text: ``:class:`X``` → ``X``, double backquotes removed."""
    return _ROLE.sub(r"\1", text).replace("``", "")


def _own_descriptions(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of ``cls``'s own docstring."""
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = lines.index("Attributes:") + 1
    except ValueError:
        return {}
    entries: list[tuple[list[str], list[str]]] = []
    indent = None
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:  # the section ended
            break
        match = _ENTRY.match(line.strip()) if depth == indent else None
        if match:
            entries.append(([n.strip() for n in match.group(1).split(",")], [match.group(2)]))
        elif entries and depth > indent:
            entries[-1][1].append(line.strip())
        else:
            raise ValueError(f"{cls.__name__} docstring: cannot read the Attributes line {line.strip()!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    for names, text in entries:
        unknown = sorted(set(names) - fields)
        if unknown:
            raise ValueError(f"{cls.__name__} docstring describes {unknown}, which are not fields")
        for name in names:
            out[name] = plain_text(" ".join(text))
    return out


def field_descriptions(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` sections of the docstrings of ``cls`` and of the config
    dataclasses it derives from (plain text, one line; ``cls``'s own entry wins).

    Names a section lists that are not fields of its class raise, so a docstring cannot describe a field that no
    longer exists.
    """
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            out.update(_own_descriptions(klass))
    return out


def _from(module: str, name: str) -> Callable[[], tuple[str, ...]]:
    """A reader of the constant (or the list a function returns) ``name`` of ``module``, imported when called."""
    def read() -> tuple[str, ...]:
        value = getattr(importlib.import_module(module), name)
        return tuple(value() if callable(value) else value)

    return read


_SWITCHES = _from("medcam_lab.training.runtime", "SWITCH_VALUES")
_BACKBONE_MODES = _from("medcam_lab.models.aligner", "BACKBONE_MODES")

#: Fields with a fixed set of values, by field name (every config), and by (config class name, field name)
#: where the same name means different things. Each entry reads the set from the module that checks it; the
#: imports happen only when a help text is shown.
ALLOWED_VALUES: dict[str, Callable[[], tuple[str, ...]]] = {
    "encoder": _from("medcam_lab.models.image_encoders", "list_image_encoders"),
    "precision": _from("medcam_lab.training.runtime", "PRECISIONS"),
    "channels_last": _SWITCHES,
    "compile": _SWITCHES,
    "backbone_mode": _BACKBONE_MODES,
    "align_backbone_mode": _BACKBONE_MODES,
    "compat": _from("medcam_lab.ehr.mode", "COMPAT_MODES"),
    "impute_strategy": _from("medcam_lab.ehr.discretizer", "IMPUTE_STRATEGIES"),
    "merge": _from("medcam_lab.datasets.vindr", "MERGE_RULES"),
    "preset": _from("medcam_lab.presets", "PRESETS"),
}
CLASS_ALLOWED_VALUES: dict[tuple[str, str], Callable[[], tuple[str, ...]]] = {
    ("PrepareImagesConfig", "dataset"): _from("medcam_lab.prepare.images", "PREPARABLE"),
    ("EmbeddingsConfig", "split"): _from("medcam_lab.datasets.patient_split", "SPLIT_NAMES"),
    ("FinetuneConfig", "dataset"): _from("medcam_lab.training.finetune", "FINETUNE_DATASETS"),
    ("PrepareImagesConfig", "split_source"): _from("medcam_lab.datasets.nih", "SPLIT_SOURCES"),
}


def allowed_values(cls: type, name: str) -> tuple[str, ...] | None:
    """The fixed set of values of field ``name`` of ``cls``, or ``None`` where the field takes any value."""
    source = CLASS_ALLOWED_VALUES.get((cls.__name__, name)) or ALLOWED_VALUES.get(name)
    return source() if source else None


def missing_descriptions(cls: type) -> list[str]:
    """The fields of ``cls`` its docstring does not describe."""
    described = field_descriptions(cls)
    return [f.name for f in dataclasses.fields(cls) if f.name not in described]
