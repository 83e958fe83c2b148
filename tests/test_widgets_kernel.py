"""The panel in a real kernel: final widget state (nbclient) and live comm updates.

Kernels run on this interpreter (``sys.executable -m ipykernel_launcher``), not
on a user's kernelspec, so they import the lazycell under test.
"""

import sys
from queue import Empty

import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpec
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

SETUP = """\
%load_ext lazycell
import time
import lazycell as lc
lc.config.set({"panel.keep_live": True})  # these tests read the live widgets' final state

def inc(x):
    return x + 1

def fail_on_two(x):
    if x == 2:
        raise ValueError("two")
    return x

def tree(n):
    return lc.delayed(sum, name="total")([lc.delayed(inc, name="leaf")(i) for i in range(n)])
"""

CELLS = {
    "threads": "%%compute --scheduler threads --workers 2\ntree(40)",
    "sync": "%%compute --scheduler sync\ntree(5)",
    "processes": "%%compute --scheduler processes --workers 2\ntree(12)",
    "failure": """\
with lc.diagnostics.live():
    try:
        lc.delayed(sum, name="total")(
            [lc.delayed(fail_on_two, name="check")(i) for i in range(4)]
        ).compute(scheduler="sync")
    except ValueError:
        pass
""",
}


def venv_kernel_manager() -> KernelManager:
    km = KernelManager()
    km._kernel_spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="lazycell test kernel",
        language="python",
    )
    return km


@pytest.fixture(scope="module")
def executed():
    """Run the notebook once; {cell name: (panel model id, widget state)}."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [
        nbformat.v4.new_code_cell(source) for source in CELLS.values()
    ]
    NotebookClient(nb, km=venv_kernel_manager(), timeout=120, store_widget_state=True).execute()
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    return panel_of_each_cell(CELLS, nb.cells[1:]), state


def panel_of_each_cell(names, cells) -> dict:
    """{name: (the one panel's model id, the cell)} of executed cells, in order."""
    panels = {}
    for name, cell in zip(names, cells):
        views = [
            output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
            for output in cell.outputs
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
        ]
        assert len(views) == 1, cell.outputs
        panels[name] = (views[0], cell)
    return panels


def descendants(state: dict, model_id: str):
    """Every widget model under ``model_id`` (children, as the front end would render)."""
    model = state[model_id]
    yield model
    for child in model["state"].get("children", []):
        yield from descendants(state, child.removeprefix("IPY_MODEL_"))


def panel_parts(executed, name: str) -> dict:
    panels, state = executed
    model_id, cell = panels[name]
    parts = {"group_bars": {}, "memory_bars": [], "labels": [], "cell": cell, "charts": []}
    for model in descendants(state, model_id):
        traits = model["state"]
        classes = traits.get("_dom_classes", [])
        if "lazycell-group-bar" in classes:
            parts["group_bars"][traits["description"]] = traits
        elif "lazycell-overall-bar" in classes:
            parts["overall"] = traits
        elif "lazycell-memory-bar" in classes:
            parts["memory_bars"].append(traits)
        elif "lazycell-timing" in classes:
            parts["summary"] = traits["value"]
        elif model["model_name"] == "LabelModel":
            parts["labels"].append(traits["value"])
        if any(c.endswith("-chart") for c in classes):
            parts["charts"].append(classes)
    return parts


def test_task_total_equals_the_graph_size(executed):
    overall = panel_parts(executed, "threads")["overall"]
    assert (overall["value"], overall["max"]) == (41, 41)


def test_each_group_has_its_bar_with_its_counts(executed):
    bars = panel_parts(executed, "threads")["group_bars"]
    assert {name: (b["value"], b["max"]) for name, b in bars.items()} == {
        "leaf": (40, 40),
        "total": (1, 1),
    }


def test_erred_count_and_red_bar_after_a_failure(executed):
    parts = panel_parts(executed, "failure")
    check = parts["group_bars"]["check"]
    assert check["bar_style"] == "danger"
    assert any(label.endswith("1 erred") for label in parts["labels"])
    assert parts["summary"].startswith("✖")


@pytest.mark.parametrize(
    "name, workers, memory_bars",
    [("sync", "1 worker", 1), ("threads", "2 workers", 1), ("processes", "2 workers", 3)],
)
def test_worker_count_per_scheduler(executed, name, workers, memory_bars):
    parts = panel_parts(executed, name)
    assert parts["summary"].endswith(f"{name} · {workers}")
    assert len(parts["memory_bars"]) == memory_bars


def test_panel_has_both_charts(executed):
    charts = panel_parts(executed, "threads")["charts"]
    assert len(charts) == 2


def test_text_fallback_is_the_final_summary_and_the_result_follows(executed):
    cell = panel_parts(executed, "threads")["cell"]
    texts = [o["data"]["text/plain"] for o in cell.outputs if "data" in o]
    assert texts[0].startswith("✔ 41 tasks in ")
    assert texts[-1] == str(sum(range(1, 41)))


# -- live updates, message by message


SLOW_COMPUTE = """\
import time
import lazycell as lc

def nap(i):
    time.sleep(0.1)
    return i

with lc.live(interval=0.1):
    lc.delayed(sum, name="total")([lc.delayed(nap, name="nap")(i) for i in range(30)]).compute(
        scheduler="sync"
    )
"""


@pytest.fixture
def kernel():
    km = venv_kernel_manager()
    km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def run_and_capture(client, code: str) -> tuple[list, dict]:
    """Execute ``code``; the iopub messages up to idle, and the execute_reply."""
    msg_id = client.execute(code)
    messages = []
    while True:
        try:
            message = client.get_iopub_msg(timeout=120)
        except Empty:
            pytest.fail("kernel went quiet")
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=60)
    # A kernel slow to start (a loaded machine) answers wait_for_ready's repeated
    # kernel_info requests more than once: the replies it did not read come first.
    while reply["msg_type"] == "kernel_info_reply":
        reply = client.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok", reply["content"]
    return messages, reply


def dom_classes_by_comm(messages) -> dict:
    """comm id -> the widget's CSS classes (set after the comm opens, so in an update)."""
    classes = {}
    for m in messages:
        if m["msg_type"] in ("comm_open", "comm_msg"):
            state = m["content"]["data"].get("state", {})
            if "_dom_classes" in state:
                classes[m["content"]["comm_id"]] = state["_dom_classes"]
    return classes


def test_progress_rises_while_the_cell_runs_before_its_reply(kernel):
    messages, reply = run_and_capture(kernel, SLOW_COMPUTE)
    overall_bar = next(
        comm_id
        for comm_id, classes in dom_classes_by_comm(messages).items()
        if "lazycell-overall-bar" in classes
    )
    values = [
        (m["header"]["date"], m["content"]["data"]["state"]["value"])
        for m in messages
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == overall_bar
        and "value" in m["content"]["data"].get("state", {})
    ]
    progress = [value for _, value in values]
    assert progress == sorted(progress)  # rising
    assert progress[-1] == 31
    assert len([v for v in progress if 0 < v < 31]) >= 2  # seen mid-way, more than once
    assert all(date < reply["header"]["date"] for date, _ in values)
