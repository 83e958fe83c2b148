"""The numbers the panels and the dashboard show: group names, running vs queued, each
compute's own progress, and one rule for memory bars."""

import json
import re
import threading
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

import lazycell as lc
from lazycell.diagnostics.compute_state import ComputeTracker, GroupProgress, group_label
from lazycell.diagnostics.resources import total_memory
from lazycell.diagnostics.workers import task_slots, worker_memory_from_info
from lazycell.distributed.dashboard import SNAPSHOT_MAX_AGE
from lazycell.widgets import cluster_view
from lazycell.widgets.memory_view import MemoryView
from lazycell.widgets.progress_view import ProgressView, shown_groups
from lazycell.widgets.static_summary import static_bundle

DEADLINE = 60  # seconds: generous, for a loaded machine; never a timing claim

# -- group names, as dask names its task groups


def test_group_labels_are_dasks_own_key_split_names():
    dask_utils = pytest.importorskip("dask.utils")
    keys = [
        "sum-aggregate-finalize-hlgfinalizecompute-81e71e6f8676451d88821663395da63a",
        "finalize-hlgfinalizecompute-81e71e6f8676451d88821663395da63a",
        ("sum-partial-3829668a9c26345de659cb8db29bc347", 0, 1),
        "rechunk-merge-9c1e0f3a",
        "inc-3f2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c",
        "my-step2-3f2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c",
    ]
    from lazycell.graph.spec import key_group

    for key in keys:
        assert group_label(key_group(key)) == dask_utils.key_split(key), key


def test_a_dask_sum_shows_dask_group_names_with_full_names_in_the_tooltip():
    da = pytest.importorskip("dask.array")
    with ComputeTracker() as tracker:
        lc.compute(da.ones(100, chunks=10).sum(), scheduler="sync")
    rows = shown_groups(tracker.latest.groups)
    assert "sum-aggregate" in rows
    assert not any(label.startswith("sum-aggregate-finalize") for label in rows)
    merged = rows["sum-aggregate"]
    assert "sum-aggregate-finalize-hlgfinalizecompute" in merged.tooltip
    assert merged.progress.total == sum(tracker.latest.groups[n].total for n in merged.names)


def test_the_live_row_carries_the_full_names_as_its_tooltip():
    view = ProgressView()
    da = pytest.importorskip("dask.array")
    with ComputeTracker() as tracker:
        lc.compute(da.ones(100, chunks=10).sum(), scheduler="sync")
    view.show(tracker.latest)
    row = view.rows["sum-aggregate"]
    assert row.bar.description == "sum-aggregate"
    assert "sum-aggregate-finalize-hlgfinalizecompute" in row.bar.tooltip


def test_the_static_summary_uses_the_same_names_and_tooltips():
    da = pytest.importorskip("dask.array")
    with ComputeTracker() as tracker:
        lc.compute(da.ones(100, chunks=10).sum(), scheduler="sync")
    data, metadata = static_bundle([tracker.latest])
    page = data["text/html"]
    assert ">sum-aggregate</td>" in page
    assert ">sum-aggregate-finalize" not in page  # no row of its own, no cut name
    (title,) = re.findall(r'title="([^"]*sum-aggregate-finalize[^"]*)"', page)
    assert "sum-aggregate-finalize-hlgfinalizecompute" in title.split(", ")
    # the metadata keeps every group under its full name
    assert "sum-aggregate-finalize-hlgfinalizecompute" in metadata["lazycell"]["groups"]


def test_groups_with_one_label_are_summed_in_one_row():
    groups = {
        "sum-aggregate": GroupProgress(total=1, done=1),
        "sum-aggregate-finalize-x": GroupProgress(total=1, done=0, running=1),
    }
    (row,) = shown_groups(groups).values()
    assert (row.progress.total, row.progress.done, row.progress.running) == (2, 1, 1)


# -- running never exceeds the threads


def test_tasks_sent_beyond_the_threads_are_queued_not_running():
    assert task_slots(10, 2) == (2, 8)
    assert task_slots(1, 2) == (1, 0)
    assert task_slots(0, 4) == (0, 0)


def test_the_client_panel_says_queued_apart_from_running():
    worker = {"n_results": 3, "n_processing": 10, "threads": 2}
    assert cluster_view._tasks_text(worker) == "3 held · 2 running · 8 queued · 2 threads"


# -- on a real cluster: each compute's own progress, running within the threads


def nap(i):
    time.sleep(0.05)
    return i


def quick(i):
    return i


@pytest.fixture(scope="module")
def client():
    with lc.Client(n_workers=1, threads_per_worker=2, memory_limit="1GB") as c:
        yield c


def dashboard_data(client) -> dict:
    url = urlsplit(client.dashboard_link)
    token = parse_qs(url.query)["token"][0]
    address = f"{url.scheme}://{url.netloc}/data.json?token={token}"
    with urllib.request.urlopen(address, timeout=30) as response:
        return json.loads(response.read())


def idle_look(client) -> None:
    """A fresh look at the idle cluster (data.json is rebuilt at most every
    SNAPSHOT_MAX_AGE s): the progress counts the run after it."""
    time.sleep(SNAPSHOT_MAX_AGE + 0.1)
    dashboard_data(client)


def data_while(client, condition, what: str) -> dict:
    deadline = time.monotonic() + DEADLINE
    while True:
        data = dashboard_data(client)
        if condition(data):
            return data
        assert time.monotonic() < deadline, f"the dashboard never showed {what}: {data}"
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_a_second_compute_starts_from_zero_and_running_stays_within_the_threads(client):
    first = lc.delayed(sum, name="total")([lc.delayed(quick, name="step")(i) for i in range(200)])
    lc.compute(first, scheduler=client)
    data_while(client, lambda d: d["progress"]["totals"]["done"] == 201, "the first run done")

    second = lc.delayed(sum, name="total")([lc.delayed(nap, name="step")(i) for i in range(40)])
    runner = threading.Thread(target=lc.compute, args=(second,), kwargs={"scheduler": client})
    runner.start()
    try:
        during = data_while(
            client,
            lambda d: d["progress"]["totals"]["running"] > 0,
            "the second run running",
        )
    finally:
        runner.join(timeout=DEADLINE)
    totals = during["progress"]["totals"]
    assert totals["total"] == 41  # this run only, not 201 + 41
    assert totals["done"] < 41
    assert totals["running"] <= 2  # one worker with two threads
    assert during["progress"]["groups"]["step"]["running"] <= 2
    after = data_while(client, lambda d: d["progress"]["totals"]["done"] == 41, "the run done")
    assert after["progress"]["totals"]["total"] == 41
    assert after["activity"]["totals"]["done"] >= 242  # the cluster's own counts still add up


@pytest.mark.timeout(180)
def test_a_run_between_two_looks_counts_alone(client):
    idle_look(client)
    lc.compute([lc.delayed(quick, name="between")(i) for i in range(7)], scheduler=client)
    # the next look finds the cluster idle again, with 7 more tasks done
    after = data_while(client, lambda d: "between" in d["progress"]["groups"], "the run")
    assert after["progress"]["totals"]["total"] == 7


@pytest.mark.timeout(180)
def test_the_client_panel_never_shows_more_running_than_threads(client):
    futures = client.map(nap, range(30), pure=False)
    try:
        info = client.scheduler_info()
        text = cluster_view._totals_text(info)
        running = int(text.split(" running")[0].split("· ")[-1])
        assert running <= info["totals"]["threads"]
    finally:
        client.gather(futures)


# -- one rule for the memory bars


def test_the_kernels_bar_has_the_same_limit_under_threads_and_processes():
    view = MemoryView()
    view.show({"kernel": 1}, {1: 10**8}, total_memory())
    alone = view.rows["kernel"].text.value
    view.show({"kernel": 1, "process-0": 2, "process-1": 3}, {1: 10**8}, total_memory())
    with_workers = view.rows["kernel"].text.value
    assert alone == with_workers
    assert view.rows["process-0"].text.value.endswith(alone.split(" / ")[1])


def test_each_process_bar_states_the_rule_in_its_tooltip():
    view = MemoryView()
    view.show({"kernel": 1, "process-0": 2}, {}, 8 * 10**9)
    for row in view.rows.values():
        assert "drawn against the machine's memory (8.0 GB)" in row.bar.tooltip


def test_cluster_workers_without_a_limit_use_the_machine_like_the_kernel():
    info = {
        "workers": {
            name: {"managed_bytes": 0, "unmanaged_bytes": 10, "spilled_bytes": 0}
            for name in ("worker-0", "worker-1", "worker-2")
        }
    }
    memory = worker_memory_from_info(info, total_memory=9 * 10**9)
    assert {m.limit for m in memory.values()} == {9 * 10**9}
    assert not any(m.has_limit for m in memory.values())


def test_a_cluster_worker_with_a_limit_is_drawn_against_it_and_says_so():
    from lazycell.widgets.memory_view import ClusterMemoryRow

    info = {
        "workers": {
            "worker-0": {
                "managed_bytes": 0,
                "unmanaged_bytes": 10,
                "spilled_bytes": 0,
                "memory_limit": 10**9,
            }
        }
    }
    memory = worker_memory_from_info(info)["worker-0"]
    row = ClusterMemoryRow("worker-0")
    row.show(memory)
    assert memory.limit == 10**9
    assert "drawn against the worker&#x27;s memory limit (1.0 GB)" in row.bar.value


@pytest.mark.timeout(180)
def test_the_dashboard_shows_dasks_group_names_with_the_full_ones_for_the_tooltip(client):
    idle_look(client)
    parts = [lc.delayed(quick, name="part")(i) for i in range(3)]
    lc.compute(lc.delayed(sum, name="part-finalize")(parts), scheduler=client)
    after = data_while(client, lambda d: "part" in d["progress"]["groups"], "the run")
    (row,) = after["progress"]["groups"].values()  # dask reads "finalize" as a token
    assert (row["total"], row["done"]) == (4, 4)
    assert sorted(row["names"]) == ["part", "part-finalize"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_dashboard_page_says_queued_apart_and_starts_each_run_from_zero(client):
    from browser_helpers import chromium_page, screenshot

    lc.compute([lc.delayed(quick, name="warmup")(i) for i in range(50)], scheduler=client)
    idle_look(client)
    run = [lc.delayed(nap, name="slow")(i) for i in range(60)]
    runner = threading.Thread(target=lc.compute, args=(run,), kwargs={"scheduler": client})
    with chromium_page() as page:
        page.goto(client.dashboard_link)
        runner.start()
        try:
            overall_text = "document.querySelector('#progress .lazycell-overall-bar .text')"
            page.wait_for_function(
                f"() => / running/.test({overall_text}?.innerText)", timeout=60_000
            )
            status = page.inner_text("#status")
            overall = page.inner_text("#progress .lazycell-overall-bar .text")
            screenshot(page, "dashboard-running.png")
        finally:
            runner.join(timeout=DEADLINE)
    running = int(status.split(" running")[0].split("· ")[-1])
    assert running <= 2  # one worker, two threads
    assert f"{running} running · " in status and " queued · " in status
    assert overall.split(" · ")[0].endswith("/ 60")  # this run's tasks only
