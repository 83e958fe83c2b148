"""The panel in JupyterLab, in headless Chromium: bars and charts render with the totals.

JupyterLab runs on this interpreter, on loopback with a random token, with its
config, data and runtime folders in a temporary directory (so no user setting
or kernelspec leaks in: the notebook's "python3" kernel is this interpreter).
A screenshot goes to ``test-artifacts/``.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from browser_helpers import chromium_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = """\
%load_ext lazycell
import lazycell as lc

def inc(x):
    return x + 1

total = lc.delayed(sum, name="total")([lc.delayed(inc, name="leaf")(i) for i in range(40)])
%compute --scheduler threads --workers 2 total
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path) -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "panel",
                "metadata": {},
                "outputs": [],
                "source": CELL,
            }
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail("JupyterLab did not start")


def stop_process_tree(process: subprocess.Popen) -> None:
    """Stop JupyterLab (it shuts its kernels down), then anything of ours still alive."""
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(started, timeout=10)
    for leftover in alive:
        leftover.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture
def jupyterlab(tmp_path):
    """(base url, token) of a JupyterLab serving ``tmp_path/panels.ipynb``."""
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "panels.ipynb")
    token = secrets.token_hex(16)
    port = free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--IdentityProvider.token={token}",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "jupyterlab.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/api/status?token={token}", process)
        yield base, token
    finally:
        stop_process_tree(process)


def run_first_cell(page) -> None:
    """Shift+Enter in the first cell, again if the keypress came before the editor was ready."""
    prompt = ".jp-Notebook .jp-Cell:first-child .jp-InputPrompt"
    for _ in range(5):
        page.click(".jp-Notebook .jp-Cell:first-child .cm-content")
        page.keyboard.press("Shift+Enter")
        try:  # "[*]:" while running, "[1]:" after: anything but the empty "[ ]:"
            page.wait_for_function(
                f"() => /\\[(\\*|\\d+)\\]/.test(document.querySelector('{prompt}')?.innerText)",
                timeout=20_000,
            )
            return
        except Exception:
            continue
    raise AssertionError("JupyterLab never started running the cell")


def test_panel_renders_in_jupyterlab_with_the_finished_totals(jupyterlab):
    base, token = jupyterlab
    with chromium_page() as page:
        page.goto(f"{base}/lab/tree/panels.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000
        )
        run_first_cell(page)
        try:
            panel = page.wait_for_selector(".lazycell-panel", timeout=120_000)
        except Exception:
            screenshot(page, "panel-jupyterlab-failure.png", full_page=False)
            raise
        page.wait_for_function(
            "() => document.querySelector('.lazycell-panel')?.innerText.includes('✔ 41 tasks')",
            timeout=120_000,
        )
        page.wait_for_selector(".lazycell-panel .js-plotly-plot", timeout=60_000)
        text = panel.inner_text()
        screenshot(page, "panel-jupyterlab.png")
        bars = page.query_selector_all(".lazycell-panel .lazycell-group-bar")
        charts = page.query_selector_all(
            ".lazycell-panel .lazycell-resources-chart, .lazycell-panel .lazycell-task-stream-chart"
        )
        output = page.inner_text(".jp-OutputArea")
    assert "41 / 41" in text and "40 / 40" in text and "1 / 1" in text
    assert "threads · 2 workers" in text
    assert len(bars) == 2
    assert len(charts) == 2
    assert "820" in output  # the compute's printed result, below the panel
