"""The JupyterLab extension in a real JupyterLab, in headless Chromium.

One lab server and one browser for the module (``lab_helpers``); the
notebook's kernel is this interpreter's ipykernel. The tests run in order on
one notebook: load lazycell, run a ~5 s ``%%compute``, watch the status item
and the side panel, check the history, reload mid-compute, switch to the dark
theme. Screenshots go to ``test-artifacts/`` (the README's to ``docs/images/``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_helpers import ARTIFACTS, chromium_browser, write_notebook
from lab_helpers import NOTEBOOK_JS, LabPage, lab_server

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
PANEL = "#lazycell-sidepanel"

SETUP_CELL = "%load_ext lazycell\nimport lazycell as lc"
# 50 tasks of 0.2 s on 2 threads: about 5 s.
COMPUTE_CELL = """\
%%compute --scheduler threads --workers 2
import time

def slow_square(x):
    time.sleep(0.2)
    return x * x

total = lc.delayed(sum, name="total")(
    [lc.delayed(slow_square, name="slow_square")(i) for i in range(50)]
)
total
"""
TASKS = 51
FAILING_CELL = """\
%%compute --scheduler threads --workers 2
def ratio(x):
    return 1 / (x - 3)

lc.delayed(sum, name="total")([lc.delayed(ratio, name="ratio")(i) for i in range(6)])
"""
# The same, four times as long (20 s), for the reload: the page must come back before it
# ends, also on a busy machine.
LONG_COMPUTE_CELL = COMPUTE_CELL.replace("range(50)", "range(200)")
LONG_TASKS = 201
DONE = re.compile(r"^([\d,]+)/([\d,]+) tasks")

CLUSTER_CELL = 'client = lc.Client(n_workers=1, threads_per_worker=1, memory_limit="400MB")'
CLOSE_CELL = "client.close()"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("lab-extension")
    with lab_server(scratch) as server:
        write_notebook(
            server.root / "lazycell.ipynb",
            [SETUP_CELL, COMPUTE_CELL, LONG_COMPUTE_CELL, FAILING_CELL, CLUSTER_CELL, CLOSE_CELL],
        )
        with chromium_browser() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            lab_page = LabPage(page, server)
            lab_page.open_notebook("lazycell.ipynb")
            yield lab_page


def save(lab: LabPage, name: str, docs: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    lab.page.screenshot(path=str(path))
    if docs:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / name)
    return path


def progress_done(lab: LabPage) -> int | None:
    """Tasks done, as the panel's progress line says while the compute runs."""
    text = lab.page.evaluate(
        "() => document.querySelector('.lazycell-Progress-text')?.textContent ?? ''"
    )
    match = DONE.match(text)
    return int(match.group(1).replace(",", "")) if match else None


def test_labextension_list_shows_lazycell_enabled_and_ok():
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    (line,) = [line for line in text.splitlines() if line.strip().startswith("lazycell ")]
    assert "enabled" in line and "OK" in line and "(python, lazycell)" in line, line


def test_the_panel_offers_to_load_lazycell_then_shows_the_scheduler(lab):
    lab.page.wait_for_selector(".lazycell-StatusItem:has-text('lazycell: not loaded')")
    lab.page.click(".lazycell-StatusItem")  # opens the panel, which offers to load it
    lab.page.click(f"{PANEL} .lazycell-LoadButton")
    lab.page.wait_for_selector(".lazycell-StatusItem:has-text('lazycell: threads')")
    lab.page.wait_for_selector(f"{PANEL} .lazycell-HistorySection", state="visible")
    assert lab.execution_count(0) is None  # loaded silently: no cell ran
    lab.run_cell(0)
    lab.wait_for_execution_count(0, 1)


def test_status_and_panel_move_while_the_cell_runs_and_history_lists_it(lab):
    lab.run_cell(1)
    statuses, done, saved = set(), [], None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and lab.execution_count(1) != 2:
        statuses.add(lab.status_text())
        count = progress_done(lab)
        if count is not None and (not done or count != done[-1]):
            done.append(count)
        if not saved and count is not None and count >= 30:  # mid-compute, charts filled in
            saved = save(lab, "lab-sidepanel.png", docs=True)
        time.sleep(0.1)
    lab.wait_for_execution_count(1, 2)
    running = [s for s in statuses if "tasks" in s]
    assert running and all(s.startswith("lazycell: threads · ") for s in running), statuses
    assert any(re.search(r"\d+/51 tasks · 2 workers", s) for s in running), statuses
    # The panel's progress moved before the cell ended.
    assert len(done) >= 3 and done == sorted(done) and done[-1] < TASKS, done
    assert saved is not None
    lab.page.wait_for_selector(".lazycell-StatusItem:text-is('lazycell: threads')")
    row = lab.page.wait_for_selector(".lazycell-HistoryRow:has-text('In [2]')")
    assert "51 tasks" in row.inner_text() and "threads" in row.inner_text()
    assert "✔" in lab.page.inner_text(".lazycell-Compute .lazycell-Progress-text")
    # The task stream: a bar per task (51 fit under the bar limit), on two threads' lanes.
    lab.page.wait_for_function(
        "() => document.querySelectorAll('.lazycell-TaskStream rect').length === 51"
    )
    assert "2 workers · 51 of 51 tasks drawn" in lab.page.inner_text(".lazycell-TaskStream")
    save(lab, "lab-sidepanel-finished.png")


def test_a_history_row_shows_its_cell(lab):
    lab.page.evaluate(f"() => {{ {NOTEBOOK_JS}.content.activeCellIndex = 0; }}")
    lab.page.click(".lazycell-HistoryRow:has-text('In [2]')")
    lab.page.wait_for_function(f"() => {NOTEBOOK_JS}.content.activeCellIndex === 1")


def test_the_panel_recovers_after_a_reload_mid_compute(lab):
    lab.run_cell(2)
    lab.page.wait_for_selector(".lazycell-StatusItem:has-text('tasks')", timeout=30_000)
    lab.page.reload()
    lab.page.wait_for_function(f"() => window.jupyterapp?.shell && {NOTEBOOK_JS}", timeout=90_000)
    # The layout restorer reopens the panel; the kernel's broadcasts reach it mid-compute.
    lab.page.wait_for_selector(f"{PANEL}", state="visible", timeout=60_000)
    lab.page.wait_for_function(
        "() => /^\\d+\\/201 tasks/.test(document.querySelector('.lazycell-Progress-text')"
        "?.textContent ?? '')",
        timeout=60_000,
    )
    during = progress_done(lab)
    assert during is not None and during < LONG_TASKS
    # ... and it keeps moving: the reloaded page follows the running compute.
    lab.page.wait_for_function(
        "(during) => { const m = /^(\\d+)\\/201 tasks/.exec(document.querySelector("
        "'.lazycell-Progress-text')?.textContent ?? ''); return m && Number(m[1]) > during; }",
        arg=during,
        timeout=30_000,
    )
    save(lab, "lab-sidepanel-after-reload.png")
    # The reloaded page's own request is answered when the cell ends: the history
    # the kernel kept, with the compute from before the reload.
    lab.page.wait_for_selector(".lazycell-HistoryRow:has-text('In [3]')", timeout=60_000)
    assert "201 tasks" in lab.page.inner_text(".lazycell-HistoryRow:has-text('In [3]')")
    lab.page.wait_for_selector(".lazycell-HistoryRow:has-text('In [2]')", timeout=30_000)
    assert lab.page.locator(".lazycell-HistoryRow").count() == 2  # each compute once


def test_a_failed_compute_turns_the_status_red_and_debug_opens_pdb(lab):
    lab.run_cell(3)
    lab.page.wait_for_selector(".lazycell-StatusItem.lazycell-mod-danger", timeout=60_000)
    assert lab.status_text() == "lazycell: threads · failed"
    error = lab.page.wait_for_selector(".lazycell-Error")
    assert "ratio" in error.inner_text() and "ZeroDivisionError" in error.inner_text()
    lab.page.wait_for_selector(".lazycell-HistoryRow.lazycell-mod-failed:has-text('In [4]')")
    save(lab, "lab-sidepanel-failed.png")
    # Clicking the error goes to the cell that failed.
    lab.page.evaluate(f"() => {{ {NOTEBOOK_JS}.content.activeCellIndex = 0; }}")
    lab.page.click(".lazycell-Error a")
    lab.page.wait_for_function(f"() => {NOTEBOOK_JS}.content.activeCellIndex === 3")
    # "debug": a console on the notebook's kernel runs %debug, in the task's frame.
    lab.page.click(".lazycell-Error .lazycell-DebugButton")
    prompt = lab.page.wait_for_selector(".jp-CodeConsole .jp-Stdin-prompt", timeout=60_000)
    assert "pdb" in prompt.inner_text()
    lab.page.wait_for_selector(".jp-CodeConsole .jp-OutputArea:has-text('1 / (x - 3)')")
    save(lab, "lab-debug-console.png")
    lab.page.fill(".jp-CodeConsole .jp-Stdin-input", "q")
    lab.page.press(".jp-CodeConsole .jp-Stdin-input", "Enter")
    lab.page.wait_for_selector(".jp-CodeConsole .jp-Stdin-prompt", state="detached")


def test_the_panel_shows_a_local_cluster_and_scales_it(lab):
    lab.run_cell(4)
    lab.page.wait_for_selector(".lazycell-Workers h3:has-text('LocalCluster')", timeout=60_000)
    assert lab.page.locator(".lazycell-Worker").count() == 1
    assert "400.0 MB" in lab.page.inner_text(".lazycell-Worker-memory")
    lab.page.fill(".lazycell-ScaleWorkers", "2")
    lab.page.click(".lazycell-ScaleButton")
    lab.page.wait_for_function(
        "() => document.querySelectorAll('.lazycell-Worker').length === 2", timeout=60_000
    )
    lab.page.fill(".lazycell-AdaptMinimum", "1")
    lab.page.fill(".lazycell-AdaptMaximum", "3")
    lab.page.click(".lazycell-AdaptButton")
    lab.page.wait_for_selector(".lazycell-ClusterMessage:has-text('adapting between 1 and 3')")
    save(lab, "lab-sidepanel-cluster.png")
    lab.run_cell(5)
    lab.page.wait_for_selector(".lazycell-ClusterControls", state="hidden", timeout=30_000)


def test_the_interrupt_button_stops_the_compute(lab):
    lab.run_cell(2)
    lab.page.wait_for_selector(".lazycell-InterruptButton", timeout=60_000)
    lab.page.click(".lazycell-InterruptButton")
    lab.page.wait_for_function(
        f"() => {NOTEBOOK_JS}.content.widgets[2].model.executionCount > 3", timeout=60_000
    )
    number = lab.execution_count(2)
    row = lab.page.wait_for_selector(
        f".lazycell-HistoryRow:has-text('In [{number}]')", timeout=60_000
    )
    assert row.inner_text().startswith("■"), row.inner_text()  # interrupted, not finished
    assert "/201 tasks" in row.inner_text()
    assert "interrupted" in row.get_attribute("title")
    lab.page.wait_for_selector(".lazycell-InterruptButton", state="detached")


def test_dark_theme_screenshot(lab):
    lab.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    lab.page.wait_for_function(
        "() => document.body.dataset.jpThemeName === 'JupyterLab Dark'", timeout=30_000
    )
    lab.page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=30_000)
    lab.page.wait_for_selector(f"{PANEL} .lazycell-HistoryRow")
    background = lab.page.evaluate(
        f"() => getComputedStyle(document.querySelector('{PANEL}')).backgroundColor"
    )
    red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 3 * 100, background  # a dark panel, from --jp-layout-color1
    save(lab, "lab-sidepanel-dark.png", docs=True)


def test_high_contrast_theme(lab):
    lab.command("apputils:change-theme", {"theme": "JupyterLab Dark High Contrast"})
    lab.page.wait_for_function(
        "() => document.body.dataset.jpThemeName === 'JupyterLab Dark High Contrast'",
        timeout=30_000,
    )
    lab.page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=30_000)
    lab.page.wait_for_selector(f"{PANEL} .lazycell-HistoryRow")
    save(lab, "lab-sidepanel-high-contrast.png")
