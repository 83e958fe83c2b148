"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser downloads are not used: ``executable_path`` points
at the system Chromium, found by :func:`find_chromium`. Without one the
browser tests are skipped (see ``conftest.py``); ``make test`` installs it
first when it can (``scripts/install-chromium``). Screenshots go to
``test-artifacts/`` at the repo root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
def chromium_page(width: int = 1280, height: int = 1100) -> Iterator:
    """A Playwright page in headless Chromium, closed (with the browser) on exit."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:  # conftest skips browser tests first; this names the cause otherwise
        raise RuntimeError(f"no chromium on PATH (or at ${CHROMIUM_ENV})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save ``test-artifacts/<name>`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
