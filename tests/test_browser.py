"""A real browser: JupyterLab on loopback, the inspector notebook opened and run in headless Chromium
(Debian's ``chromium`` driven by Playwright; no browser is downloaded), and the rendered widget checked
and screenshotted (``inspector.png`` in the test's tmp dir).

Outside CI the test is skipped when chromium or Playwright is missing; in CI (``CI`` set) it fails instead:
``.ci/run`` installs chromium.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs chromium)")
    pytest.skip(f"{reason}; install it (apt-get install chromium) to run the browser test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def test_inspector_renders_in_jupyterlab(tiny_align_run, tmp_path):
    chromium = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    _require(chromium is not None, "no chromium executable on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "the playwright package is not installed (pip install -e '.[dev]')")

    # the README's layout: JupyterLab started at the project root, the notebook in notebooks/ (its kernel runs
    # there), the run folder under runs/ (a symlink to the alignment run) typed as a relative path
    lab_root = tmp_path / "lab"
    (lab_root / "notebooks").mkdir(parents=True)
    (lab_root / "runs" / "tiny").mkdir(parents=True)
    (lab_root / "runs" / "tiny" / "02_align").symlink_to(tiny_align_run, target_is_directory=True)
    pm.execute_notebook(str(ROOT / "notebooks" / "05_inspect_alignment.ipynb"),
                        str(lab_root / "notebooks" / "inspect.ipynb"),
                        parameters={"align_dir": "../runs/tiny/02_align", "out": "../runs/tiny/05_mine",
                                    "splits": ["test"], "n_snapshots": 0, "device": "cpu"},
                        prepare_only=True, kernel_name="python3", progress_bar=False)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter_config"))  # no user settings, no workspace restore
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.allow_root=True"],
        cwd=lab_root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/notebooks/inspect.ipynb?token={token}&reset")
                page.wait_for_selector(".jp-Notebook", timeout=90_000)
                page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                       "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                       "&& window.jupyterapp.shell.currentWidget.sessionContext.session",
                                       timeout=90_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_selector(".medcam-inspector .widget-slider", timeout=150_000)
                page.wait_for_selector(".medcam-inspector .js-plotly-plot", timeout=60_000)
                page.wait_for_selector(".medcam-inspector img", timeout=30_000)
                inspector = page.locator(".medcam-inspector").first
                inspector.scroll_into_view_if_needed()
                page.wait_for_timeout(1000)
                page.screenshot(path=str(tmp_path / "inspector.png"))
                inspector.screenshot(path=str(tmp_path / "inspector_widget.png"))
                text = page.inner_text("body")
                assert "Error displaying widget" not in text
                assert "top-k" in inspector.inner_text()
                assert page.locator(".medcam-inspector .js-plotly-plot").count() == 1  # the attention view
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print(f"screenshots: {tmp_path / 'inspector.png'}, {tmp_path / 'inspector_widget.png'}")
