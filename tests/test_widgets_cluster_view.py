"""The client in a notebook: a live panel of the cluster's workers, a table elsewhere;
and the compute panel's memory bars for a compute on the cluster."""

import time

import nbformat
import pytest
from kernel_helpers import execute_notebook

import lazycell as lc
from lazycell.widgets import cluster_view
from lazycell.widgets.memory_view import ClusterMemoryRow
from lazycell.widgets.panel import ComputePanel

pytestmark = pytest.mark.timeout(180)

DEADLINE = 30  # seconds: generous, for a loaded machine; never a timing claim


@pytest.fixture(scope="module")
def client():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit="1GB") as c:
        yield c


@pytest.fixture
def widgets_shown(monkeypatch):
    """Act as in a kernel: ``client_mimebundle`` returns the live widget."""
    monkeypatch.setattr(cluster_view, "can_show_widgets", lambda shell: True)


def megabytes(n):
    return b"x" * (n * 1_000_000)


def wait_for(condition, what: str):
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {DEADLINE} s"
        time.sleep(0.1)


def worker_rows(view) -> list[str]:
    """The worker names the widget shows, in order."""
    return [box.children[0].description for box in view.workers_box.children]


# -------------------------------------------------------------------- without widgets


def test_html_fallback_lists_every_worker_and_the_dashboard(client):
    bundle = client._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle  # no kernel here
    table = bundle["text/html"]
    assert table.count("<tr><td>worker-") == 2
    assert "<td>worker-0</td>" in table and "<td>worker-1</td>" in table
    assert f'href="{client.dashboard_link}"' in table


def test_text_fallback_is_a_one_line_summary_and_the_link(client):
    text = client._repr_mimebundle_()["text/plain"]
    first, link = text.splitlines()
    assert first.startswith("<lazycell Client: 2 workers, 2 threads, memory ")
    assert link == f"dashboard: {client.dashboard_link}"


def test_a_closed_client_says_it_is_closed():
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit="1GB") as closed:
        pass
    bundle = closed._repr_mimebundle_()
    assert "closed" in bundle["text/plain"] and "closed" in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in bundle


# -------------------------------------------------------------------- the live widget


def test_widget_lists_the_workers_and_links_the_dashboard(client, widgets_shown):
    bundle = client._repr_mimebundle_()
    view = cluster_view._views[client]
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.widget.model_id
    assert bundle["text/plain"].startswith("<lazycell Client: 2 workers")
    assert worker_rows(view) == ["worker-0", "worker-1"]
    assert f'href="{client.dashboard_link}"' in view.title.value
    assert 'target="_blank"' in view.title.value


def test_widget_shows_the_results_a_worker_holds(client, widgets_shown):
    held = client.map(megabytes, [30], pure=False)
    client.gather(held)
    client._repr_mimebundle_()
    view = cluster_view._views[client]
    texts = [row.text.value for row in view.rows.values()]
    assert sum("results 30.0 MB" in text for text in texts) == 1
    assert sorted(text.split(" held")[0] for text in texts) == ["0", "1"]
    del held


def test_displaying_the_client_twice_reuses_one_live_view(client, widgets_shown):
    first = client._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]
    second = client._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]
    assert first == second


def test_widget_follows_the_cluster_as_it_scales(widgets_shown):
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit="1GB") as scaled:
        scaled._repr_mimebundle_()
        view = cluster_view._views[scaled]
        assert len(worker_rows(view)) == 2
        scaled.cluster.scale(3)
        wait_for(lambda: len(worker_rows(view)) == 3, "showing 3 workers")
        assert "3 workers" in view.title.value


def test_widget_says_closed_and_stops_when_the_client_closes(widgets_shown):
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit="1GB") as short_lived:
        short_lived._repr_mimebundle_()
        view = cluster_view._views[short_lived]
    wait_for(lambda: view.stopped, "stopped")
    assert "closed" in view.title.value
    assert worker_rows(view) == []


def test_refreshing_stops_when_the_widget_is_closed(client, widgets_shown):
    client._repr_mimebundle_()
    view = cluster_view._views[client]
    view.widget.close()
    wait_for(lambda: view.stopped, "stopped")
    # the next display starts a new live view
    client._repr_mimebundle_()
    assert cluster_view._views[client] is not view


# -------------------------------------------------------------- the compute panel on a cluster


def test_compute_panel_shows_one_memory_row_per_cluster_worker(client):
    held = client.map(megabytes, [40], pure=False)
    client.gather(held)
    total = lc.delayed(sum)([lc.delayed(abs)(-i) for i in range(10)])
    with ComputePanel(display=False) as panel:
        # by name: the test config is reset after the module's client made it the default
        assert lc.compute(total, scheduler="distributed")[0] == 45
    assert panel.tracker.latest.scheduler == "distributed"
    rows = panel.memory.rows
    assert sorted(rows) == sorted(client.scheduler_info()["workers"]) == ["worker-0", "worker-1"]
    assert all(isinstance(row, ClusterMemoryRow) for row in rows.values())
    assert [row.bar.description for row in rows.values()] == list(rows)
    assert sum("results 40.0 MB" in row.text.value for row in rows.values()) == 1
    del held


def test_compute_panel_keeps_process_rows_for_local_schedulers(client):
    total = lc.delayed(sum)([lc.delayed(abs)(-i) for i in range(10)])
    with ComputePanel(display=False) as panel:
        assert lc.compute(total, scheduler="threads")[0] == 45
    assert list(panel.memory.rows) == ["kernel"]


# ------------------------------------------------------------------------- in a real kernel


@pytest.mark.slow
def test_client_as_a_cells_last_expression_shows_the_live_widget(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import lazycell as lc\n"
            "client = lc.Client(n_workers=2, threads_per_worker=1, memory_limit='1GB')\n"
            "link = client.dashboard_link"
        ),
        nbformat.v4.new_code_cell("client"),
        nbformat.v4.new_code_cell("print(link)\nclient.close()"),
    ]
    execute_notebook(nb, tmp_path, tmp_path / "ipython", store_widget_state=True)
    (output,) = [o for o in nb.cells[1].outputs if o.get("output_type") == "execute_result"]
    model_id = output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert output["data"]["text/plain"].startswith("<lazycell Client: 2 workers")
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    models = list(_descendants(state, model_id))
    worker_boxes = [m for m in models if "lazycell-cluster-worker" in _classes(m)]
    (title,) = [m for m in models if "lazycell-cluster-title" in _classes(m)]
    link = nb.cells[2].outputs[0]["text"].strip()
    assert len(worker_boxes) == 2
    assert f'href="{link}"' in title["state"]["value"]


def _classes(model: dict) -> list:
    return model["state"].get("_dom_classes", [])


def _descendants(state: dict, model_id: str):
    model = state[model_id]
    yield model
    for child in model["state"].get("children", []):
        yield from _descendants(state, child.removeprefix("IPY_MODEL_"))


def test_counts_of_one_are_in_the_singular():
    from lazycell.widgets.cluster_view import summary_text

    info = {
        "totals": {
            "workers": 1,
            "threads": 1,
            "memory": 10**8,
            "memory_limit": None,
            "n_results": 1,
            "n_processing": 0,
        }
    }
    assert summary_text(info, None) == (
        "<lazycell Client: 1 worker, 1 thread, memory 100.0 MB, 1 result held, 0 running, 0 queued>"
    )
