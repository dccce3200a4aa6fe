"""Provenance written next to every run's outputs: resolved config, git revision, package versions."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from medcam_lab.config import config_to_dict

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_run_info(out_dir: str | os.PathLike[str], stage: str, config: Any, **extra: Any) -> dict[str, Any]:
    """Write ``config.json`` (the resolved config) and ``run_info.json`` (provenance) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_to_dict(config)
    info = {
        "stage": stage,
        "config_class": type(config).__name__,
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
