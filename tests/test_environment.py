"""The pip and conda set-ups pin the same notebook stack, and ``medcam-lab doctor`` reports on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medcam_lab.cli import main
from medcam_lab.doctor import diagnose, render

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "jupytext")


def _pins(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"([A-Za-z_\-]+)==([0-9][^\s\"',]*)", text)}


def test_environment_yml_and_pyproject_pin_the_same_widget_stack():
    pyproject, conda = _pins((ROOT / "pyproject.toml").read_text()), _pins((ROOT / "environment.yml").read_text())
    for name in PINNED:
        assert name in pyproject and pyproject[name] == conda.get(name), name


def test_doctor_reports_versions_kernels_and_extensions(capsys):
    report = diagnose()
    assert report.versions["ipywidgets"] and "python3" in report.kernels
    assert set(report.extensions) == {"@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly"}
    text = render(report)
    assert "ipywidgets" in text and "kernels:" in text and "JupyterLab extensions:" in text
    if report.problems:
        with pytest.raises(SystemExit):
            main(["doctor"])
    else:
        assert main(["doctor"]) == 0
    assert "jupyterlab_widgets" in capsys.readouterr().out
