"""Notebook parameters → validated config dataclasses.

Each notebook has one ``parameters`` cell of literals whose names are fields of config dataclasses. Its
first code cell records the names defined so far (``_names_before = names_before_parameters(globals())``);
the cell after the parameters (and after papermill's injected cell) calls :func:`parameters_since` and
:func:`configs_from_parameters`, so a parameter no config knows (a typo, or one papermill injected for
another notebook) or a value of the wrong type fails at once with the name in the message.

Run All twice in one kernel gives the same result: :func:`parameters_since` records the parameter names
it found (``_parameter_names`` in the namespace) and :func:`names_before_parameters` leaves them out of
the names "defined before", so the second run sees the same parameters as the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from medcam_lab.config import config_from_dict

__all__ = ["names_before_parameters", "parameters_since", "configs_from_parameters", "NotebookParameterError"]

RECORD = "_parameter_names"


class NotebookParameterError(KeyError):
    """A notebook parameter that no config of the notebook accepts."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def names_before_parameters(namespace: Mapping[str, Any]) -> set[str]:
    """The names defined before the parameters cell: all of ``namespace`` except the parameters an earlier
    run of the notebook recorded (so that a second Run All finds them again)."""
    return set(namespace) - set(namespace.get(RECORD, ()))


def parameters_since(namespace: MutableMapping[str, Any], before: Iterable[str]) -> dict[str, Any]:
    """The names defined in ``namespace`` after ``before`` was recorded (IPython's ``_``-names excluded);
    their names are recorded in ``namespace`` for :func:`names_before_parameters`."""
    seen = set(before)
    found = {k: v for k, v in namespace.items() if k not in seen and not k.startswith("_")}
    namespace[RECORD] = tuple(sorted(set(namespace.get(RECORD, ())) | set(found)))
    return found


def configs_from_parameters(params: Mapping[str, Any], *classes: type, notebook: str = "") -> tuple[Any, ...]:
    """One config per class from ``params``: each parameter goes to every class that has a field of its name.

    Raises:
        NotebookParameterError: a parameter matching no field (all known names listed).
        TypeError: a value of the wrong type (from :func:`~medcam_lab.config.config_from_dict`).
    """
    fields = [{f.name for f in dataclasses.fields(cls)} for cls in classes]
    known = set().union(*fields)
    unknown = sorted(set(params) - known)
    where = f"notebook {notebook}: " if notebook else ""
    if unknown:
        raise NotebookParameterError(
            f"{where}unknown parameter(s) {unknown}; this notebook takes {sorted(known)}"
        )
    out: list[Any] = []
    for cls, names in zip(classes, fields):
        try:
            out.append(config_from_dict(cls, {k: v for k, v in params.items() if k in names}))
        except TypeError as exc:
            raise TypeError(f"{where}{exc}") from exc
    return tuple(out)
