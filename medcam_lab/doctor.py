"""``medcam-lab doctor``: is this environment able to run and display the notebooks?

Prints the versions of the notebook stack, the Jupyter kernels and the JupyterLab extensions the widgets
and figures need, and lists the problems found (mismatched ipywidgets / jupyterlab_widgets versions are
the usual cause of blank widgets or "Error displaying widget: model not found").
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = ["DoctorReport", "diagnose", "render"]

EXTENSIONS = {
    "@jupyter-widgets/jupyterlab-manager": "ipywidgets in JupyterLab (package jupyterlab_widgets)",
    "jupyterlab-plotly": "plotly figures inside widgets (package plotly)",
}
PACKAGES = ("medcam-lab", "torch", "jupyterlab", "jupyter_server", "ipykernel", "ipywidgets", "jupyterlab_widgets",
            "widgetsnbextension", "papermill", "nbclient", "jupytext", "plotly", "captum", "umap-learn")


@dataclass
class DoctorReport:
    """What :func:`diagnose` found."""

    python: str
    versions: dict[str, str | None]
    kernels: dict[str, str]
    extensions: dict[str, str | None]
    problems: list[str] = field(default_factory=list)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _major(version: str | None) -> int | None:
    return int(version.split(".")[0]) if version else None


def _lab_extensions() -> dict[str, str | None]:
    from jupyter_core.paths import jupyter_path

    found: dict[str, str | None] = {name: None for name in EXTENSIONS}
    for root in jupyter_path("labextensions"):
        for name in EXTENSIONS:
            package = Path(root) / name / "package.json"
            if found[name] is None and package.exists():
                found[name] = json.loads(package.read_text()).get("version", "?")
    return found


def diagnose() -> DoctorReport:
    """Collect versions, kernels and extension state, and the problems they imply."""
    from jupyter_client.kernelspec import KernelSpecManager

    versions = {name: _version(name) for name in PACKAGES}
    kernels = {name: spec["spec"]["argv"][0] for name, spec in KernelSpecManager().get_all_specs().items()}
    report = DoctorReport(sys.version.split()[0], versions, kernels, _lab_extensions())
    for name in PACKAGES[1:]:
        if versions[name] is None:
            report.problems.append(f"package {name} is not installed (run `make install`)")
    if "python3" not in kernels:
        report.problems.append("no `python3` kernel: run `python -m ipykernel install --sys-prefix --name python3`")
    widgets, lab_widgets = _major(versions["ipywidgets"]), _major(versions["jupyterlab_widgets"])
    if widgets is not None and lab_widgets is not None and (widgets, lab_widgets) not in ((8, 3), (7, 1)):
        report.problems.append(f"ipywidgets {versions['ipywidgets']} needs jupyterlab_widgets "
                               f"{'3' if widgets == 8 else '1'}.x, found {versions['jupyterlab_widgets']}")
    for name, purpose in EXTENSIONS.items():
        if report.extensions[name] is None:
            report.problems.append(f"JupyterLab extension {name} not found: {purpose} will not display")
    return report


def render(report: DoctorReport) -> str:
    """The report as text."""
    lines = [f"python {report.python} ({sys.executable})", "", "packages:"]
    lines += [f"  {name:<20} {version or 'MISSING'}" for name, version in report.versions.items()]
    lines += ["", "kernels:"] + [f"  {name:<20} {argv0}" for name, argv0 in sorted(report.kernels.items())]
    lines += ["", "JupyterLab extensions:"]
    lines += [f"  {name:<38} {v or 'MISSING'}" for name, v in report.extensions.items()]
    lines += ["", "problems:" if report.problems else "no problems found"]
    lines += [f"  - {p}" for p in report.problems]
    return "\n".join(lines)
