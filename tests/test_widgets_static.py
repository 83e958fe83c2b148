"""The static summary a finished panel leaves: what a saved notebook shows without its kernel.

Unit tests build it from real computes folded by ``ComputeTracker``; the slow
tests run a notebook with nbclient in a real kernel, save it, read it back with
nbformat (no kernel) and render it with ``jupyter nbconvert --to html``.
"""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from kernel_helpers import execute_notebook

import lazycell as lc
from lazycell.diagnostics.compute_state import ComputeTracker
from lazycell.widgets.panel import ComputePanel, close_widget_tree
from lazycell.widgets.static_summary import NO_COMPUTE_TEXT, static_bundle

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def inc(x):
    return x + 1


def fail_on_two(x):
    if x == 2:
        raise ValueError("two")
    return x


def tree(n):
    return lc.delayed(sum, name="total")([lc.delayed(inc, name="leaf")(i) for i in range(n)])


def failing(n):
    checks = [lc.delayed(fail_on_two, name="check")(i) for i in range(n)]
    return lc.delayed(sum, name="total")(checks)


def bundle_of(*graphs, scheduler="sync"):
    with ComputeTracker() as tracker:
        for graph in graphs:
            try:
                lc.compute(graph, scheduler=scheduler)
            except ValueError:
                pass
    return static_bundle(tracker.states.values())


def test_metadata_counts_the_tasks_of_each_group():
    _, metadata = bundle_of(tree(40))
    numbers = metadata["lazycell"]
    counts = (numbers["tasks"], numbers["done"], numbers["erred"], numbers["not_run"])
    assert counts == (41, 41, 0, 0)
    assert {name: g["total"] for name, g in numbers["groups"].items()} == {"leaf": 40, "total": 1}
    assert numbers["scheduler"] == "sync" and numbers["workers"] == 1
    assert numbers["status"] == "ok" and numbers["duration"] >= 0


def test_metadata_counts_one_failed_task_apart_from_the_rest():
    _, metadata = bundle_of(failing(4))
    numbers = metadata["lazycell"]
    assert (numbers["erred"], numbers["done"], numbers["not_run"]) == (1, 2, 2)
    assert numbers["groups"]["check"]["erred"] == 1
    assert numbers["status"] == "error"


def test_each_compute_has_its_section_and_the_latest_is_the_top_level():
    data, metadata = bundle_of(tree(3), tree(5))
    assert [c["tasks"] for c in metadata["lazycell"]["computes"]] == [4, 6]
    assert metadata["lazycell"]["tasks"] == 6
    assert data["text/html"].count('class="lazycell-static-summary"') == 2


def test_metadata_is_plain_json():
    _, metadata = bundle_of(tree(3), failing(4))
    assert json.loads(json.dumps(metadata)) == metadata


def test_html_has_the_summary_line_and_a_bar_per_row_and_no_script():
    data, _ = bundle_of(tree(40))
    page = data["text/html"]
    assert "✔ 41 tasks in " in page
    assert page.count('class="lazycell-static-bar"') == 3  # all tasks, leaf, total
    assert "<script" not in page.lower() and "<style" not in page.lower()
    assert "40 / 40" in page and "1 / 1" in page


def test_html_colours_are_fills_that_read_on_light_and_dark():
    data, _ = bundle_of(tree(3))
    page = data["text/html"]
    assert "background-color:rgba(128,128,128,0.25)" in page  # a grey track on white or black
    # text keeps the theme's colour
    assert "color:" not in page.replace("background-color:", "").replace("color:inherit", "")


def test_text_is_the_summary_line_then_one_line_per_group():
    data, _ = bundle_of(failing(4))
    lines = data["text/plain"].splitlines()
    assert lines[0].startswith("✖ 1 of 5 tasks failed (check) · 2 done · 2 not run")
    assert lines[1].split() == ["check", "2", "/", "4", "·", "1", "erred"]
    assert lines[2].split() == ["total", "0", "/", "1"]


def test_group_names_are_escaped_in_html():
    graph = lc.delayed(inc, name="<b>x</b>")(1)
    data, _ = bundle_of(graph)
    assert "<b>x</b>" not in data["text/html"]


def test_no_compute_says_so():
    data, metadata = static_bundle([])
    assert data["text/plain"] == NO_COMPUTE_TEXT
    assert metadata["lazycell"]["computes"] == []


def test_closing_the_panel_closes_every_widget_it_built():
    panel = ComputePanel(display=False)
    spares = [*panel.progress.spare_rows(), *panel.memory.spare_rows()]
    close_widget_tree(panel.widget, *spares)
    assert panel.widget.comm is None
    assert panel.progress.overall.bar.comm is None
    assert panel.progress.overall.bar.layout.comm is None  # layouts and styles too
    assert all(widget.comm is None for widget in spares)


# -- in a real kernel, saved, and rendered without it

SETUP = """\
%load_ext lazycell
import lazycell as lc
from test_widgets_static import tree, failing
"""

CELLS = {
    "threads": "%%compute --scheduler threads --workers 2\ntree(40)",
    "failure": """\
with lc.live():
    try:
        failing(4).compute(scheduler="sync")
    except ValueError:
        pass
""",
    "keep-live": "%%compute --scheduler sync --keep-live\ntree(5)",
    "config-keep-live": """\
with lc.config.set({"panel.keep_live": True}):
    with lc.live():
        tree(2).compute(scheduler="sync")
""",
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The notebook run once with nbclient and saved; its path."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [
        nbformat.v4.new_code_cell(source) for source in CELLS.values()
    ]
    cwd, ipython_dir = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("ipython")
    execute_notebook(nb, cwd, ipython_dir)
    path = cwd / "saved.ipynb"
    nbformat.write(nb, path)
    return path


def saved_cells(path: Path) -> dict:
    """{cell name: its outputs}, read back from the file without a kernel."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return dict(zip(CELLS, (cell.outputs for cell in nb.cells[1:])))


def lazycell_output(outputs) -> dict:
    (output,) = [o for o in outputs if "lazycell" in o.get("metadata", {})]
    return output


@pytest.mark.slow
def test_saved_notebook_holds_the_numbers_that_ran(saved):
    cells = saved_cells(saved)
    numbers = lazycell_output(cells["threads"]).metadata["lazycell"]
    assert (numbers["tasks"], numbers["done"], numbers["erred"]) == (41, 41, 0)
    assert {name: g["done"] for name, g in numbers["groups"].items()} == {"leaf": 40, "total": 1}
    assert (numbers["scheduler"], numbers["workers"]) == ("threads", 2)


@pytest.mark.slow
def test_saved_notebook_holds_the_erred_count(saved):
    numbers = lazycell_output(saved_cells(saved)["failure"]).metadata["lazycell"]
    assert (numbers["erred"], numbers["done"], numbers["not_run"]) == (1, 2, 2)


@pytest.mark.slow
def test_finished_cells_keep_no_live_widget(saved):
    cells = saved_cells(saved)
    for name in ("threads", "failure"):
        assert not any(WIDGET_VIEW in o.get("data", {}) for o in cells[name])
        assert lazycell_output(cells[name]).data["text/plain"].startswith(("✔", "✖"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keep-live", "config-keep-live"])
def test_keep_live_leaves_the_widget(saved, name):
    outputs = saved_cells(saved)[name]
    assert sum(WIDGET_VIEW in o.get("data", {}) for o in outputs) == 1
    assert not any("lazycell" in o.get("metadata", {}) for o in outputs)


@pytest.mark.slow
def test_nbconvert_html_shows_the_static_summary(saved):
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(saved)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = saved.with_suffix(".html").read_text("utf-8")
    assert page.count('class="lazycell-static-summary"') == 2  # threads and failure
    assert "✔ 41 tasks in " in page
    assert "✖ 1 of 5 tasks failed (check)" in page
    assert page.count('class="lazycell-static-bar"') == 3 + 3


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(300)
def test_jupyterlab_shows_the_saved_summary_of_a_reopened_notebook(saved, tmp_path):
    """Reopened from disk (untrusted: JupyterLab sanitises its HTML and drops SVG), no cell
    run again: the bars' inline styles survive."""
    from browser_helpers import chromium_page, running_jupyterlab, screenshot

    with running_jupyterlab(tmp_path) as lab:
        (lab.root / "saved.ipynb").write_bytes(saved.read_bytes())
        with chromium_page(width=1000, height=900) as page:
            page.goto(lab.url("/lab/tree/saved.ipynb"))
            page.wait_for_selector(".lazycell-static-summary", timeout=120_000)
            page.wait_for_function(
                "() => document.querySelectorAll('.lazycell-static-summary').length == 2",
                timeout=60_000,
            )
            summaries = page.query_selector_all(".lazycell-static-summary")
            texts = [summary.inner_text() for summary in summaries]
            bars = [
                summary.eval_on_selector_all(
                    ".lazycell-static-bar > div",
                    "parts => parts.map(p => Math.round(p.getBoundingClientRect().width))",
                )
                for summary in summaries
            ]
            screenshot(page, "static-summary-jupyterlab.png", full_page=False)
    assert texts[0].startswith("✔ 41 tasks in ") and "40 / 40" in texts[0]
    assert texts[1].startswith("✖ 1 of 5 tasks failed (check)") and "1 erred" in texts[1]
    # done and erred parts of each row, in pixels of the 160 px bar: the styles survived
    assert bars[0] == [160, 0, 160, 0, 160, 0]  # all tasks, leaf, total: all done
    assert bars[1] == [64, 32, 80, 40, 0, 0]  # 2 / 5 done + 1 erred; check 2 / 4 + 1; total 0
