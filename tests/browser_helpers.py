"""Headless Chromium and JupyterLab for the browser tests.

Playwright's own browser downloads are not used: ``executable_path`` points
at the system Chromium, found by :func:`find_chromium`. Without one the
browser tests are skipped (see ``conftest.py``); ``make test`` installs it
first when it can (``scripts/install-chromium``). Screenshots go to
``test-artifacts/`` at the repo root.

- :func:`chromium_browser` / :func:`new_page`: one browser for a module's
  tests, a page (own viewport) per test; :func:`chromium_page` does both for
  a single page.
- :func:`running_jupyterlab`: JupyterLab on this interpreter, on loopback with
  a random token, its config, data and runtime folders in a scratch directory
  (so no user setting or kernelspec leaks in: a notebook's "python3" kernel
  is this interpreter); :func:`write_notebook` puts notebooks in its root.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

CHROMIUM_ENV = "LAZYCELL_CHROMIUM"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def find_chromium() -> str | None:
    """The Chromium executable to drive, or None when there is none.

    ``$LAZYCELL_CHROMIUM`` wins when set (a path; one that is not an executable
    file means "no Chromium", which is how the skip path is tried), else
    ``chromium`` on ``PATH``.
    """
    chosen = os.environ.get(CHROMIUM_ENV)
    if chosen is not None:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    return shutil.which("chromium")


@contextmanager
def chromium_browser() -> Iterator:
    """A Playwright browser in headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:  # conftest skips browser tests first; this names the cause otherwise
        raise RuntimeError(f"no chromium on PATH (or at ${CHROMIUM_ENV})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 1280, height: int = 1100):
    """A page of its own (own cookies and storage) in ``browser``; close it with
    ``page.context.close()``."""
    context = browser.new_context(viewport={"width": width, "height": height})
    return context.new_page()


@contextmanager
def chromium_page(width: int = 1280, height: int = 1100) -> Iterator:
    """A Playwright page in headless Chromium, closed (with the browser) on exit."""
    with chromium_browser() as browser:
        yield browser.new_page(viewport={"width": width, "height": height})


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save ``test-artifacts/<name>`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


# -- JupyterLab


@dataclass
class JupyterLab:
    """A running JupyterLab: its base URL, token and the folder it serves."""

    base: str
    token: str
    root: Path

    def url(self, path: str) -> str:
        """``/lab/tree/x.ipynb`` -> the full URL with the token."""
        return f"{self.base}{path}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code cells with the "python3" kernel (this interpreter)."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def wait_until_serving(
    url: str, process: subprocess.Popen, timeout: float = 120, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            see = f": see {log}" if log is not None else ""
            raise RuntimeError(f"JupyterLab exited with {process.returncode}{see}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not start within {timeout:.0f} s")


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


# User settings of every test JupyterLab: no "get notified about news?" toast over the page.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}
# JupyterLab's command-line options: no news feed, no update check.
LAB_OPTIONS = (
    "--LabApp.news_url=",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
)


@contextmanager
def running_jupyterlab(
    scratch: Path,
    env: dict | None = None,
    settings: dict | None = None,
    app: str = "jupyterlab",
    options: tuple[str, ...] = LAB_OPTIONS,
) -> Iterator[JupyterLab]:
    """JupyterLab serving ``scratch/root`` (see module docstring); ``env``: extra
    environment variables for the server and its kernels (``None`` unsets one);
    ``settings``: user settings by plugin (``{"@jupyterlab/x-extension/plugin":
    {...}}``), over ``LAB_SETTINGS``. ``app="notebook"`` serves Notebook 7 instead
    (same server, same extensions), with its own ``options`` (command-line options
    after the server's). Its log is ``scratch/jupyterlab.log``."""
    root = scratch / "root"
    root.mkdir(parents=True, exist_ok=True)
    for plugin, values in {**LAB_SETTINGS, **(settings or {})}.items():
        path = scratch / "config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    port = free_port()
    environment = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_DATA_DIR=str(scratch / "data"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
        IPYTHONDIR=str(scratch / "ipython"),
        **(env or {}),
    )
    environment = {name: value for name, value in environment.items() if value is not None}
    log_path = scratch / "jupyterlab.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                app,
                "--no-browser",
                f"--IdentityProvider.token={token}",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.port_retries=0",
            ]
            + list(options)
            + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/api/status?token={token}", process, log=log_path)
            yield JupyterLab(base, token, root)
        finally:
            stop_process_tree(process)
