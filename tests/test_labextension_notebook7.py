"""The lab extension in Notebook 7: no ILabShell and no status bar, the side panel still works.

Its own server (``jupyter notebook``) and browser; see test_labextension_browser.py
for the extension in JupyterLab.
"""

from __future__ import annotations

import pytest
from browser_helpers import chromium_browser, write_notebook
from lab_helpers import LabPage, lab_server
from test_labextension_browser import COMPUTE_CELL, PANEL, SETUP_CELL, save

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def test_notebook_7_shows_the_panel_without_jupyterlab_s_shell(tmp_path):
    with lab_server(tmp_path, app="notebook") as server:
        write_notebook(server.root / "nb7.ipynb", [SETUP_CELL, COMPUTE_CELL])
        with chromium_browser() as browser:
            page = LabPage(browser.new_page(viewport={"width": 1400, "height": 900}), server)
            page.open_notebook("nb7.ipynb", path="notebooks")
            page.run_cell(0)
            page.wait_for_execution_count(0, 1)
            page.command("lazycell:open-panel")
            page.page.wait_for_selector(f"{PANEL} .lazycell-HistorySection", state="visible")
            page.run_cell(1)
            page.page.wait_for_function(
                "() => /^\\d+\\/51 tasks/.test(document.querySelector('.lazycell-Progress-text')"
                "?.textContent ?? '')",
                timeout=60_000,
            )
            page.wait_for_execution_count(1, 2)
            page.page.wait_for_selector(".lazycell-HistoryRow:has-text('In [2]')")
            save(page, "notebook7-sidepanel.png")
