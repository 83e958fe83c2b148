"""The ``lazycell`` comm in a real kernel, driven the way the JupyterLab extension drives it.

The test plays the front end with jupyter_client: it opens the ``lazycell``
comm on the shell channel and reads lazycell's comm messages from IOPub
(as the extension does, whichever comm they name). The kernel is ipykernel
on this interpreter (``kernel_helpers.RunningKernel``).
"""

from __future__ import annotations

import time
import uuid

import pytest
from kernel_helpers import RunningKernel

import lazycell as lc
from lazycell.diagnostics.compute_state import ComputeTracker
from lazycell.diagnostics.resources import ResourceSample
from lazycell.kernel_ext.lab_messages import (
    RESOURCE_WINDOW_SECONDS,
    CellOfCompute,
    compute_message,
    dask_cluster_workers,
    history_entry,
    local_workers,
    resource_points,
)

pytestmark = pytest.mark.timeout(240)

SLOW_CELL = """\
%%compute --scheduler threads --workers 2 --quiet
import time

def slow_square(x):
    time.sleep(0.1)
    return x * x

total = lc.delayed(sum, name="total")(
    [lc.delayed(slow_square, name="slow_square")(i) for i in range(30)]
)
total
"""


# -- the messages, from a real compute in this process


def test_compute_message_counts_groups_and_names_the_cell():
    def inc(x):
        return x + 1

    total = lc.delayed(sum, name="total")([lc.delayed(inc, name="inc")(i) for i in range(10)])
    with ComputeTracker() as tracker:
        assert total.compute(scheduler="threads", num_workers=2) == 55
    state = tracker.latest
    message = compute_message(state, CellOfCompute(7, "cell-abc"))
    assert message["cell"] == 7 and message["cellId"] == "cell-abc"
    assert message["status"] == "ok" and message["eta"] is None
    assert (message["done"], message["nTasks"]) == (11, 11)
    groups = {group["name"]: group for group in message["groups"]}
    assert groups["inc"]["total"] == groups["inc"]["done"] == 10
    assert groups["total"]["done"] == 1
    entry = history_entry(state, CellOfCompute(7, "cell-abc"))
    assert entry["scheduler"] == "threads" and entry["nTasks"] == 11
    assert entry["status"] == "ok" and entry["summary"].startswith("✔ 11 tasks")


def test_local_workers_show_the_kernel_with_its_threads_tasks_and_memory():
    def inc(x):
        return x + 1

    with ComputeTracker() as tracker:
        lc.compute(*[lc.delayed(inc)(i) for i in range(4)], scheduler="threads", num_workers=3)
    sample = ResourceSample(time.perf_counter(), 150.0, 123_000_000, {4242: 123_000_000})
    (row,) = local_workers(tracker.latest, {"kernel": 4242}, sample, 8_000_000_000)
    assert row["name"] == "kernel" and row["threads"] == 3 and row["tasks"] == 4
    assert row["unmanaged"] == 123_000_000 and row["limit"] == 8_000_000_000
    assert row["cpu"] == 150.0


def test_dask_workers_without_a_memory_limit_are_drawn_against_the_machines_memory():
    info = {
        "workers": {
            "tcp://a": {"name": "a", "memory_limit": 0, "metrics": {}},
            "tcp://b": {"name": "b", "memory_limit": 2_000_000_000, "metrics": {}},
        }
    }
    rows = {row["name"]: row for row in dask_cluster_workers(info, 8_000_000_000)}
    assert rows["a"]["limit"] == 8_000_000_000  # the machine's, not a share of it
    assert rows["b"]["limit"] == 2_000_000_000


def test_resource_points_keep_the_chart_window_oldest_first():
    now = 1000.0
    samples = [
        ResourceSample(now - RESOURCE_WINDOW_SECONDS - 5, 1.0, 1, {}),
        ResourceSample(now - 10, 2.0, 2, {}),
        ResourceSample(now - 1, 3.0, 3, {}),
    ]
    assert resource_points(samples, now) == [[10.0, 2.0, 2], [1.0, 3.0, 3]]


# -- the comm in a kernel


class LabFrontEnd:
    """The extension's side of the comm, over jupyter_client: open, request, listen to IOPub."""

    def __init__(self, kernel: RunningKernel):
        self.kernel = kernel
        self.client = kernel.client
        self.messages: list[dict] = []  # lazycell's comm_msg data, in arrival order
        self.closed: list[str] = []  # comm ids the kernel closed
        self.opened_by_kernel: list[dict] = []  # comm_open contents with target lazycell

    def open_comm(self, data: dict | None = None) -> str:
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": "lazycell", "data": data or {}}
        self.client.shell_channel.send(self.client.session.msg("comm_open", content))
        return comm_id

    def send(self, comm_id: str, data: dict) -> None:
        content = {"comm_id": comm_id, "data": data}
        self.client.shell_channel.send(self.client.session.msg("comm_msg", content))

    def pump(self, until, timeout: float = 60.0, what: str = "a message"):
        """Read IOPub until ``until(message)`` is true for a lazycell message; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=0.2)
            except Exception:  # queue.Empty
                continue
            found = self.take(msg)
            if found is not None and until(found):
                return found
        pytest.fail(f"no {what} within {timeout} s")

    def take(self, msg: dict) -> dict | None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_close":
            self.closed.append(content["comm_id"])
            return {"type": "closed", "comm_id": content["comm_id"]}
        if kind == "comm_open" and content.get("target_name") == "lazycell":
            self.opened_by_kernel.append(content)
            return {"type": "opened", **content}
        if kind == "comm_msg" and "lazycell" in content["data"]:
            self.messages.append(content["data"])
            return content["data"]
        return None


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lab-comm")
    (directory / "ipython").mkdir()
    running = RunningKernel(directory, directory / "ipython")
    try:
        yield running
    finally:
        running.shutdown()


def test_a_kernel_without_lazycell_loaded_closes_the_comm(kernel):
    kernel.drain_iopub()
    front = LabFrontEnd(kernel)
    comm_id = front.open_comm({"request": "snapshot"})
    front.pump(lambda m: m.get("comm_id") == comm_id and m["type"] == "closed", what="comm_close")


def test_loading_lazycell_offers_a_comm_and_answers_a_snapshot(kernel):
    kernel.drain_iopub()
    front = LabFrontEnd(kernel)
    msg_id = kernel.start_running("%load_ext lazycell\nimport lazycell as lc")
    front.pump(lambda m: m["type"] == "opened", what="comm_open from the kernel")
    assert kernel.wait_for_reply(msg_id)["status"] == "ok"
    comm_id = front.open_comm({"request": "snapshot"})
    state = front.pump(lambda m: m["type"] == "state", what="a state message")
    assert state["scheduler"] == "threads" and state["compute"] is None
    assert [worker["name"] for worker in state["workers"]] == ["kernel"]
    history = front.pump(lambda m: m["type"] == "history", what="the history")
    assert history["replace"] is True and history["computes"] == []
    front.send(comm_id, {"request": "nonsense"})
    error = front.pump(lambda m: m["type"] == "error", what="an error")
    assert "'nonsense'" in error["message"] and "'snapshot'" in error["message"]
    # The panel's scale control, with no cluster open: the error says how to start one.
    front.send(comm_id, {"request": "scale", "workers": 2})
    error = front.pump(lambda m: m["type"] == "error", what="an error")
    assert error["message"].startswith("scale: no cluster is open")
    assert "lc.Client(" in error["message"]


def test_state_moves_while_the_cell_runs_and_history_keeps_the_cell(kernel):
    kernel.run("%load_ext lazycell\nimport lazycell as lc")
    kernel.drain_iopub()
    front = LabFrontEnd(kernel)
    comm_id = front.open_comm({"request": "snapshot"})
    front.pump(lambda m: m["type"] == "history", what="the first snapshot")
    msg_id = kernel.start_running(SLOW_CELL)
    cell_done = False
    progress: list[int] = []
    deadline = time.monotonic() + 120
    while not cell_done and time.monotonic() < deadline:
        try:
            msg = kernel.client.get_iopub_msg(timeout=0.2)
        except Exception:
            continue
        if (
            msg["msg_type"] == "status"
            and msg["parent_header"].get("msg_id") == msg_id
            and msg["content"]["execution_state"] == "idle"
        ):
            cell_done = True
        data = front.take(msg)
        if data is not None and data["type"] == "state" and data["compute"]:
            if data["compute"]["status"] == "running":
                progress.append(data["compute"]["done"])
    assert cell_done
    reply = kernel.wait_for_reply(msg_id)
    assert reply["status"] == "ok"
    number = reply["execution_count"]
    # Several states while the cell ran, progress moving between them.
    assert len(progress) >= 2 and progress[-1] > progress[0], progress
    final = [m for m in front.messages if m["type"] == "state" and m["compute"]][-1]
    compute = final["compute"]
    assert compute["status"] == "ok" and compute["done"] == compute["nTasks"] == 31
    assert compute["cell"] == number
    # The task stream came with the end: every task a bar on one of the two threads.
    stream = [m["stream"] for m in front.messages if m["type"] == "state" and m["stream"]][-1]
    assert stream["computeId"] == compute["id"] and len(stream["bars"]) == 31
    assert set(stream["groups"]) == {"slow_square", "total"} and len(stream["workers"]) == 2
    assert all(0 <= start <= stop for _, start, stop, _, _ in stream["bars"])
    appended = [m for m in front.messages if m["type"] == "history" and not m["replace"]]
    assert appended and appended[-1]["computes"][0]["cell"] == number
    # A reloaded page asks for the history: the kernel kept it.
    front.send(comm_id, {"request": "history"})
    history = front.pump(lambda m: m["type"] == "history" and m["replace"], what="the history")
    (entry,) = [e for e in history["computes"] if e["cell"] == number]
    assert entry["scheduler"] == "threads" and entry["nTasks"] == 31
    assert entry["status"] == "ok" and entry["duration"] > 0.5


def test_unloading_closes_the_comms(kernel):
    kernel.run("%load_ext lazycell")
    kernel.drain_iopub()
    front = LabFrontEnd(kernel)
    comm_id = front.open_comm({"request": "snapshot"})
    front.pump(lambda m: m["type"] == "history", what="the snapshot")
    msg_id = kernel.start_running("%unload_ext lazycell")
    front.pump(lambda m: m["type"] == "closed" and m["comm_id"] == comm_id, what="comm_close")
    assert kernel.wait_for_reply(msg_id)["status"] == "ok"
