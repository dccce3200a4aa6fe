"""Provenance written next to every run's outputs: resolved config, git revision, package versions.

``config.json`` is the resolved config, with one rule for paths (the fields in
:data:`~medcam_lab.config.PATH_FIELDS`): an absolute path is stored as given, a relative one is stored
relative to the run's own directory (``run_info.json`` says so: ``"paths_relative_to": "run_dir"``).
:func:`read_run_config` turns them back into paths that hold from any working directory, so a run made by
``medcam-lab batch`` from the repository root opens from a notebook whose kernel runs in ``notebooks/``,
and a run folder moved together with its inputs still opens.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from medcam_lab.atomic import atomic_write
from medcam_lab.config import PATH_FIELDS, config_from_dict, config_to_dict

T = TypeVar("T")
PATHS_RELATIVE_TO_RUN = "run_dir"
_PACKAGES = ("medcam-lab", "torch", "torchvision", "numpy", "pandas", "pyarrow", "isal", "scikit-learn")


def git_revision(path: str | os.PathLike[str] | None = None) -> str | None:
    """The git commit of the checkout holding ``path`` (this package by default), or None outside git."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev + ("-dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide a run's numbers."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON; the file is replaced in one step, never left half-written."""
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


def write_run_info(out_dir: str | os.PathLike[str], stage: str, config: Any, **extra: Any) -> dict[str, Any]:
    """Write ``config.json`` (the resolved config) and ``run_info.json`` (provenance) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = stored_paths(config_to_dict(config), out)
    info = {
        "stage": stage,
        "config_class": type(config).__name__,
        "paths_relative_to": PATHS_RELATIVE_TO_RUN,
        "working_directory": os.getcwd(),
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "versions": package_versions(),
        "platform": platform.platform(),
        "command": sys.argv,
        **extra,
    }
    write_json_atomic(out / "config.json", cfg)
    write_json_atomic(out / "run_info.json", info)
    return info


def stored_paths(values: dict[str, Any], run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``values`` with every relative, non-empty path field rewritten relative to ``run_dir`` (both taken
    from the current working directory); absolute paths and other fields unchanged. Both sides are taken
    with symlinks resolved, as :func:`read_run_config` resolves them, so a run reached through a symlinked
    folder still finds its inputs."""
    base = os.path.realpath(run_dir)
    out = dict(values)
    for name, value in values.items():
        if name in PATH_FIELDS and isinstance(value, str) and value and not os.path.isabs(value):
            out[name] = os.path.relpath(os.path.realpath(value), base)
    return out


def resolved_paths(values: dict[str, Any], run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The inverse of :func:`stored_paths`: every relative, non-empty path field joined to ``run_dir`` and
    normalised (absolute when ``run_dir`` is)."""
    out = dict(values)
    for name, value in values.items():
        if name in PATH_FIELDS and isinstance(value, str) and value and not os.path.isabs(value):
            out[name] = os.path.normpath(os.path.join(os.fspath(run_dir), value))
    return out


def read_run_config(run_dir: str | os.PathLike[str], cls: type[T]) -> T:
    """The config a run wrote (``config.json``), its paths valid from the current working directory.

    A run written before paths were stored relative to the run (no ``paths_relative_to`` in its
    ``run_info.json``) keeps its paths as stored: relative to the directory it was started from.

    Raises:
        FileNotFoundError: no ``config.json`` in ``run_dir``.
    """
    run = Path(run_dir)
    path = run / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: is {run_dir} the output directory of a medcam-lab run?")
    values = json.loads(path.read_text())
    info_path = run / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info.get("paths_relative_to") == PATHS_RELATIVE_TO_RUN:
        values = resolved_paths(values, os.path.realpath(run))  # a symlinked run folder: where it was written
    return config_from_dict(cls, values)
