"""A JupyterLab server and a page in it, for the lab extension's browser tests.

- :func:`lab_server`: JupyterLab on this interpreter, on 127.0.0.1 with a
  random token, its config and runtime folders (and the user data folder) in
  a scratch directory, so no user setting leaks in; extensions installed in
  this environment (``share/jupyter/labextensions``) are what it loads. The
  app is exposed as ``window.jupyterapp`` so tests can run commands.
- :class:`LabPage`: the Playwright page with the steps the tests take (open a
  notebook, wait for its kernel, run a cell by index, read the status item).

Chromium is Debian's, driven through ``executable_path`` (see browser_helpers).
"""

from __future__ import annotations

import json
import os
import secrets
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
from browser_helpers import CHROMIUM_ARGS, find_chromium

START_TIMEOUT = 120
# The notebook panel in the main area (the current widget may be a console beside it).
NOTEBOOK_JS = (
    "[...window.jupyterapp.shell.widgets('main')].find(w => w.context?.path?.endsWith('.ipynb'))"
)


APP_OPTIONS = {
    "jupyterlab": [
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
    ],
    "notebook": ["--JupyterNotebookApp.expose_app_in_browser=True"],
}


@dataclass
class LabServer:
    base: str
    token: str
    root: Path
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base}/{path}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, cells: list[str]) -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{index}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def _stop(process: subprocess.Popen) -> None:
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


@contextmanager
def lab_server(scratch: Path, app: str = "jupyterlab") -> Iterator[LabServer]:
    """JupyterLab serving ``scratch/root`` (see the module docstring); stopped on exit.

    ``app="notebook"`` serves Notebook 7 instead (same server, same extensions).
    """
    root = scratch / "root"
    root.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_DATA_DIR=str(scratch / "data"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
        IPYTHONDIR=str(scratch / "ipython"),
    )
    env.pop("LAZYCELL_SCHEDULER", None)
    # No "get notified about Jupyter news?" toast over the screenshots.
    settings = scratch / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = scratch / "jupyterlab.log"
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
        + APP_OPTIONS[app]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 - the server writes to it until it stops
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {process.returncode}: see {log}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start in {START_TIMEOUT} s") from None
                time.sleep(0.5)
        yield LabServer(base, token, root, log)
    finally:
        _stop(process)


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator:
    """A headless Chromium browser (Debian's), closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError("no chromium on PATH (or at $LAZYCELL_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class LabPage:
    """A JupyterLab tab, with the steps the extension's tests take."""

    def __init__(self, page, server: LabServer):
        self.page = page
        self.server = server

    def open_notebook(self, name: str, path: str = "lab/tree") -> None:
        """Open ``name`` (in Notebook 7: ``path="notebooks"``) and wait for its kernel."""
        self.page.goto(self.server.url(f"{path}/{name}"))
        self.wait_for_kernel()

    def wait_for_kernel(self, timeout: float = 90_000) -> None:
        """Until the app is up and the current notebook's kernel is idle."""
        self.page.wait_for_function(
            "() => window.jupyterapp?.shell && "
            f"{NOTEBOOK_JS}?.sessionContext?.session?.kernel?.status === 'idle'",
            timeout=timeout,
        )

    def command(self, command: str, args: dict | None = None) -> None:
        self.page.evaluate(
            "([command, args]) => window.jupyterapp.commands.execute(command, args)",
            [command, args or {}],
        )

    def run_cell(self, index: int) -> None:
        """Start the current notebook's cell ``index`` (Shift+Enter, without moving on).

        Returns once the cell is sent: the command's promise (which resolves when
        the cell ends) is not awaited.
        """
        self.page.evaluate(
            f"""(index) => {{
                const panel = {NOTEBOOK_JS};
                window.jupyterapp.shell.activateById(panel.id);
                panel.content.activeCellIndex = index;
                void window.jupyterapp.commands.execute('notebook:run-cell');
            }}""",
            index,
        )

    def execution_count(self, index: int) -> int | None:
        return self.page.evaluate(
            f"(index) => {NOTEBOOK_JS}.content.widgets[index].model.executionCount",
            index,
        )

    def wait_for_execution_count(self, index: int, count: int, timeout: float = 120_000) -> None:
        self.page.wait_for_function(
            f"""([index, count]) => {{
                const panel = {NOTEBOOK_JS};
                const cell = panel.content.widgets[index];
                const kernel = panel.sessionContext.session.kernel;
                return cell.model.executionCount === count && kernel.status === 'idle';
            }}""",
            arg=[index, count],
            timeout=timeout,
        )

    def status_text(self) -> str:
        return self.page.inner_text(".lazycell-StatusItem")

    def active_cell_index(self) -> int:
        return self.page.evaluate(f"() => {NOTEBOOK_JS}.content.activeCellIndex")
