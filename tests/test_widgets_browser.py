"""The panel in JupyterLab, in headless Chromium: what a user sees, measured.

One JupyterLab (``browser_helpers.running_jupyterlab``) and one Chromium serve
every test of this module; each test opens its own notebook (so its own
kernel) in its own page. Screenshots go to ``test-artifacts/``; the light one
at 1400 px also to ``docs/images/panel.png``, which the README shows.

The kernels keep the live panel after a cell ends (``LAZYCELL_PANEL_KEEP_LIVE``)
so the tests can look at its charts; what replaces it by default is tested
where that is built.

First paint (printed, never asserted: a shared machine's timings are no
test): from Shift+Enter to the first bar drawn, and from the kernel's
``display_data`` of the panel reaching the page to that bar.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from browser_helpers import (
    chromium_browser,
    new_page,
    running_jupyterlab,
    screenshot,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS_IMAGE = Path(__file__).resolve().parent.parent / "docs" / "images" / "panel.png"

SETUP = """\
%load_ext lazycell
import time
import lazycell as lc

def work(i):  # 50 ms of CPU, holding the GIL: the Resources chart shows one busy core
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        pass
    return i + 1

total = lc.delayed(sum, name="total")([lc.delayed(work, name="work")(i) for i in range(40)])
"""
COMPUTE = "%compute --scheduler threads --workers 2 total"
PAINT_RUNS = 5
# JupyterLab's "Save Widget State Automatically": a saved notebook holds every widget's state.
SAVE_WIDGET_STATE = "@jupyter-widgets/jupyterlab-manager/plugin"

# Installed in every page before JupyterLab loads: when Shift+Enter went down,
# when a display_data carrying a widget view came in on the kernel's websocket,
# and a promise for when an element first has a size.
MARKS_SCRIPT = """
(() => {
  const marks = (window.__lazycell = { keys: [], displays: [] });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.shiftKey) marks.keys.push(performance.now());
  }, true);
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => {
        const data = event.data;
        const text = typeof data === 'string' ? data
          : data instanceof ArrayBuffer ? decoder.decode(data) : '';
        if (/"msg_type":\\s*"display_data"/.test(text) && text.includes('widget-view+json')) {
          marks.displays.push(performance.now());
        }
      });
    }
  };
  window.__lazycellSized = (selector) => new Promise((resolve) => {
    const look = () => {
      const element = document.querySelector(selector);
      if (element && element.getBoundingClientRect().width > 0) resolve(performance.now());
      else requestAnimationFrame(look);
    };
    look();
  });
})();
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_jupyterlab(
        tmp_path_factory.mktemp("jupyterlab"),
        env={"LAZYCELL_PANEL_KEEP_LIVE": "1"},
        settings={SAVE_WIDGET_STATE: {"saveState": True}},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def open_notebook(lab, browser):
    """``open_notebook(name, cells, width=)``: a page showing a new notebook, its kernel idle."""
    pages = []

    def open_(name: str, cells: list[str], width: int = 1400):
        write_notebook(lab.root / name, cells)
        page = new_page(browser, width=width, height=1000)
        pages.append(page)
        page.add_init_script(MARKS_SCRIPT)
        page.console = []  # every console message, for the tests that read them
        page.on("console", lambda message: page.console.append(message.text))
        # A workspace of its own: JupyterLab would reopen other tests' notebooks beside it.
        page.goto(lab.url(f"/lab/workspaces/{Path(name).stem}/tree/{name}"))
        wait_for_notebook(page)
        page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")  # fold the files
        page.wait_for_selector("#jp-left-stack", state="hidden", timeout=10_000)
        return page

    yield open_
    for page in pages:
        page.context.close()


def wait_for_notebook(page) -> None:
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)


def cell(index: int) -> str:
    return f".jp-Notebook .jp-Cell:nth-child({index + 1})"


def run_cell(page, index: int, timeout: float = 120_000) -> None:
    """Shift+Enter in cell ``index`` (again if the keypress came before the editor was
    ready) and wait until it finished."""
    prompt = f"{cell(index)} .jp-InputPrompt"
    for _ in range(5):
        dialog = page.query_selector(".jp-Dialog")
        if dialog is not None:  # nothing here opens one: say what it asks
            screenshot(page, "panel-unexpected-dialog.png", full_page=False)
            raise AssertionError(f"JupyterLab shows a dialog: {dialog.inner_text()!r}")
        page.click(f"{cell(index)} .cm-content")
        page.keyboard.press("Shift+Enter")
        try:  # "[*]:" while running, "[1]:" after: anything but the empty "[ ]:"
            page.wait_for_function(
                f"() => /\\[(\\*|\\d+)\\]/.test(document.querySelector('{prompt}')?.innerText)",
                timeout=20_000,
            )
            break
        except Exception:
            continue
    else:
        raise AssertionError(f"JupyterLab never started running cell {index}")
    page.wait_for_function(
        f"() => /\\[\\d+\\]/.test(document.querySelector('{prompt}')?.innerText)",
        timeout=timeout,
    )


def chart_marks(page, index: int) -> dict:
    """What the charts of cell ``index``'s panel draw: task bars, line points, notes."""
    return page.evaluate(
        """(root) => {
            const panel = document.querySelector(root + ' .lazycell-panel');
            if (!panel) return null;
            const lines = [...panel.querySelectorAll('.lazycell-resources-chart polyline')];
            return {
                bars: panel.querySelectorAll('.lazycell-task-stream-chart rect').length,
                lines: lines.length,
                points: lines.map((l) => l.getAttribute('points').trim().split(/\\s+/).length),
                notes: [...panel.querySelectorAll('.lazycell-chart-note')].map((n) => n.innerText),
            };
        }""",
        cell(index),
    )


def wait_for_charts(page, index: int) -> dict:
    page.wait_for_function(
        """(root) => document.querySelector(root + ' .lazycell-task-stream-chart rect')
            && document.querySelector(root + ' .lazycell-resources-chart polyline')""",
        arg=cell(index),
        timeout=60_000,
    )
    return chart_marks(page, index)


def test_panel_renders_in_jupyterlab_with_the_finished_totals(open_notebook):
    page = open_notebook("totals.ipynb", [SETUP, COMPUTE])
    run_cell(page, 0)
    run_cell(page, 1)
    try:
        page.wait_for_function(
            f"() => document.querySelector('{cell(1)} .lazycell-panel')"
            "?.innerText.includes('✔ 41 tasks')",
            timeout=120_000,
        )
        marks = wait_for_charts(page, 1)
    except Exception:
        screenshot(page, "panel-jupyterlab-failure.png", full_page=False)
        raise
    screenshot(page, "panel-jupyterlab.png")
    text = page.inner_text(f"{cell(1)} .lazycell-panel")
    group_bars = page.query_selector_all(f"{cell(1)} .lazycell-panel .lazycell-group-bar")
    output = page.inner_text(f"{cell(1)} .jp-OutputArea")
    assert "41 / 41" in text and "40 / 40" in text and "1 / 1" in text
    assert "threads · 2 workers" in text
    assert len(group_bars) == 2
    assert marks["bars"] == 41  # one bar per task in the task stream
    assert marks["lines"] == 2 and min(marks["points"]) >= 2  # CPU and memory
    assert "820" in output  # the compute's printed result, below the panel


def measure_first_paint(page, runs: int) -> list[tuple[float, float, float]]:
    """Run cell 1 ``runs`` times; per run, milliseconds from Shift+Enter to the first bar
    drawn, from Shift+Enter to the panel's display_data, and from that to the bar."""
    rows = []
    for _ in range(runs):
        # Each run's panel is new; the ones before are marked old.
        page.evaluate(
            """(selector) => {
                document.querySelectorAll('.lazycell-panel').forEach((p) => { p.dataset.old = 1; });
                window.__lazycell.keys = [];
                window.__lazycell.displays = [];
                window.__painted = undefined;
                window.__lazycellSized(selector).then((t) => { window.__painted = t; });
            }""",
            f"{cell(1)} .lazycell-panel:not([data-old]) .lazycell-overall-bar",
        )
        run_cell(page, 1)
        page.wait_for_function("() => window.__painted !== undefined", timeout=60_000)
        key, display, painted = page.evaluate(
            "() => [window.__lazycell.keys[0], window.__lazycell.displays[0], window.__painted]"
        )
        rows.append((painted - key, display - key, painted - display))
    return rows


def test_first_paint_is_measured_from_execute_to_the_first_bar(open_notebook):
    page = open_notebook("paint.ipynb", [SETUP, COMPUTE])
    run_cell(page, 0)
    rows = measure_first_paint(page, PAINT_RUNS)
    print("\nfirst paint of the panel (ms): execute -> first bar | kernel's display_data -> bar")
    for n, (total, kernel, browser) in enumerate(rows, 1):
        first = " (the kernel's first compute)" if n == 1 else ""
        print(f"  run {n}: {total:7.0f} | {kernel:7.0f} -> {browser:5.0f}{first}")
    later = rows[1:]
    print(
        f"  median of runs 2-{PAINT_RUNS}: execute -> bar "
        f"{statistics.median(r[0] for r in later):.0f} ms; display_data -> bar "
        f"{statistics.median(r[2] for r in later):.0f} ms"
    )
    assert all(browser >= 0 for _, _, browser in rows)  # the bar came after the panel


def test_a_reload_with_the_kernel_alive_brings_every_chart_back_with_its_data(lab, open_notebook):
    page = open_notebook("reload.ipynb", [SETUP, COMPUTE])
    run_cell(page, 0)
    run_cell(page, 1)
    before = wait_for_charts(page, 1)
    page.keyboard.press("Control+s")
    page.wait_for_selector(".jp-mod-current.jp-mod-dirty", state="detached", timeout=30_000)
    saved = json.loads((lab.root / "reload.ipynb").read_text())
    widget_state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
    state_bytes = len(json.dumps(widget_state))
    print(f"\nsaved widget state of a notebook with one panel: {state_bytes / 1e3:.1f} kB")
    page.console.clear()
    page.reload()
    wait_for_notebook(page)
    page.wait_for_selector(f"{cell(1)} .lazycell-panel", timeout=120_000)
    after = wait_for_charts(page, 1)
    screenshot(page, "panel-after-reload.png")
    errors = [text for text in page.console if "anywidget" in text or "Failed to" in text]
    assert before["bars"] == 41 and before["lines"] == 2
    assert after == before  # the same bars and line points, drawn again
    assert errors == []
    # Saved with the notebook: the charts' own markup, in kilobytes (plotly's were 10 MB).
    assert state_bytes < 200_000
    assert any("<rect " in str(m["state"].get("value")) for m in widget_state["state"].values())


LONG_COMPUTE = (
    "%compute --scheduler threads --workers 2 "
    "lc.delayed(sum)([lc.delayed(work, name='work')(i) for i in range(200)])"
)
SHORT_COMPUTE = "%compute --scheduler sync lc.delayed(sum, name='tiny')([1, 2])"


def test_charts_draw_while_the_compute_runs_and_a_short_one_says_it_was_not_sampled(
    open_notebook,
):
    page = open_notebook("live.ipynb", [SETUP, LONG_COMPUTE, SHORT_COMPUTE])
    run_cell(page, 0)
    prompt = f"{cell(1)} .jp-InputPrompt"
    page.click(f"{cell(1)} .cm-content")
    page.keyboard.press("Shift+Enter")
    # Still running ("[*]:") when the charts have bars and lines.
    page.wait_for_function(
        """([root, prompt]) => document.querySelector(root + ' .lazycell-task-stream-chart rect')
            && document.querySelector(root + ' .lazycell-resources-chart polyline')
            && document.querySelector(prompt).innerText.includes('*')""",
        arg=[cell(1), prompt],
        timeout=60_000,
    )
    running = chart_marks(page, 1)
    page.wait_for_function(
        f"() => /\\[\\d+\\]/.test(document.querySelector('{prompt}')?.innerText)",
        timeout=120_000,
    )
    finished = chart_marks(page, 1)
    run_cell(page, 2)
    page.wait_for_selector(f"{cell(2)} .lazycell-chart-note", timeout=60_000)
    short = chart_marks(page, 2)
    assert 0 < running["bars"] < finished["bars"] == 201  # 5 s of tasks, charts every 2 s
    assert short["bars"] == 1 and short["lines"] == 0
    assert any(note.startswith("Too short to sample") for note in short["notes"])


# -- looks: themes and widths


def panel_fit(page, index: int) -> dict:
    """Sizes of cell ``index``'s panel, and anything in it sticking out on the right."""
    return page.evaluate(
        """(root) => {
            const panel = document.querySelector(root + ' .lazycell-panel');
            const box = panel.getBoundingClientRect();
            const out = [...panel.querySelectorAll('*')].filter((e) => {
                const r = e.getBoundingClientRect();
                return r.width > 0 && r.right > box.right + 1;
            }).map((e) => e.tagName + '.' + (e.className.baseVal ?? e.className));
            // Text cut short: an element hiding what overflows it.
            const clipped = [...panel.querySelectorAll('*')].filter((e) =>
                e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible'
            ).map((e) => e.tagName + '.' + (e.className.baseVal ?? e.className) + ': '
                + e.innerText.slice(0, 60));
            const plot = panel.querySelector('.lazycell-resources-chart .lazycell-plot');
            return {
                panel: box.width,
                plot: plot.getBoundingClientRect().width,
                sticking_out: out.slice(0, 5),
                clipped: clipped.slice(0, 5),
                scroll: panel.scrollWidth - panel.clientWidth,
            };
        }""",
        cell(index),
    )


def label_colour(page, index: int) -> str:
    return page.evaluate(
        """(root) => getComputedStyle(
            document.querySelector(root + ' .lazycell-resources-chart text')).fill""",
        cell(index),
    )


def use_theme(page, theme: str) -> None:
    """Settings > Theme > ``theme``, as a user picks it."""
    page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
    page.hover(".lm-Menu-itemLabel:text-is('Theme')")
    page.click(f".lm-Menu-itemLabel:text-is('{theme}')")
    page.wait_for_function(
        "(name) => document.body.dataset.jpThemeName === name", arg=theme, timeout=30_000
    )
    page.wait_for_timeout(500)  # the theme's stylesheet applies


def panel_screenshot(page, index: int, name: str) -> Path:
    """The cell's output (panel and result) alone, saved as ``test-artifacts/<name>``."""
    output = page.query_selector(f"{cell(index)} .jp-OutputArea")
    output.scroll_into_view_if_needed()
    path = screenshot(page, name)  # the whole page, for context
    element_path = path.with_name(path.stem + "-panel.png")
    output.screenshot(path=str(element_path))
    return element_path


def test_charts_fill_the_width_and_follow_the_theme_also_after_a_change(open_notebook):
    page = open_notebook("looks.ipynb", [SETUP, COMPUTE], width=1400)
    run_cell(page, 0)
    run_cell(page, 1)
    wait_for_charts(page, 1)
    page.mouse.move(0, 0)  # no hover highlight in the screenshots

    fits = {}
    light = label_colour(page, 1)
    for width in (1400, 800, 600):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(300)
        fits[width] = panel_fit(page, 1)
        if width != 600:
            shot = panel_screenshot(page, 1, f"panel-light-{width}.png")
            if width == 1400:
                DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, DOCS_IMAGE)
                page.click(f"{cell(1)} .lm-TabBar-tab:has-text('Task stream')")
                panel_screenshot(page, 1, "panel-light-1400-task-stream.png")
                page.click(f"{cell(1)} .lm-TabBar-tab:has-text('Resources')")

    use_theme(page, "JupyterLab Dark")
    dark = label_colour(page, 1)
    for width in (800, 1400):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(300)
        panel_screenshot(page, 1, f"panel-dark-{width}.png")
    use_theme(page, "JupyterLab Dark High Contrast")
    high_contrast = label_colour(page, 1)
    panel_screenshot(page, 1, "panel-dark-high-contrast-1400.png")
    use_theme(page, "JupyterLab Light")

    print("\npanel and plot widths (px):", {w: (f["panel"], f["plot"]) for w, f in fits.items()})
    print("clipped:", {w: f["clipped"] for w, f in fits.items()})
    for width, fit in fits.items():
        assert fit["sticking_out"] == [] and fit["scroll"] <= 0, (width, fit)
        assert fit["clipped"] == [], (width, fit)
    # The plot takes the panel's width: wider with the window, never a fixed 700 px.
    assert fits[600]["plot"] < fits[800]["plot"] < fits[1400]["plot"]
    assert fits[1400]["plot"] > 0.75 * fits[1400]["panel"]
    # Drawn in light, then the theme changed: the chart's text took the dark theme's colour.
    assert re.match(r"rgb", light) and dark != light and high_contrast not in (light, dark)


# -- the client's panel (a local cluster in the kernel)

CLIENT = """\
import lazycell as lc
client = lc.Client(n_workers=2, threads_per_worker=1)
client
"""


@pytest.fixture(scope="module")
def client_page(lab, browser):
    """A page showing a notebook whose one cell displayed an open lc.Client."""
    write_notebook(lab.root / "client.ipynb", [CLIENT])
    page = new_page(browser, width=1400, height=1000)
    page.goto(lab.url("/lab/workspaces/client/tree/client.ipynb"))
    wait_for_notebook(page)
    page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    run_cell(page, 0)
    page.wait_for_selector(".lazycell-cluster .lazycell-cluster-worker", timeout=60_000)
    yield page
    page.context.close()


def clipped_text(page, root: str) -> list[str]:
    """Texts under ``root`` cut short by an element hiding what overflows it."""
    return page.evaluate(
        """(root) => [...document.querySelectorAll(root + ' *')].filter((e) =>
            e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible'
        ).map((e) => e.innerText)""",
        root,
    )


@pytest.mark.parametrize("width", [1400, 800])
def test_client_panel_shows_each_workers_numbers_whole(client_page, width):
    client_page.set_viewport_size({"width": width, "height": 1000})
    client_page.wait_for_timeout(300)
    screenshot(client_page, f"client-panel-{width}.png")
    rows = client_page.query_selector_all(".lazycell-cluster .lazycell-cluster-worker")
    assert len(rows) == 2
    assert clipped_text(client_page, ".lazycell-cluster") == []
