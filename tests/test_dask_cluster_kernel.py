"""A real kernel computing on a real dask cluster: the magics, the panel, %pdb, Ctrl-C.

The cluster is started the way an admin starts one: a ``dask scheduler`` and
two ``dask worker --nthreads 1`` processes from the command line, on
127.0.0.1, none of which can import lazycell (the helpers of
``test_dask_cluster.py``). Kernels run on this interpreter
(``kernel_helpers``) and name the cluster by its address, as a user would:

- a notebook run by nbclient, whose widget state says what the panel showed;
- one kernel driven over jupyter_client, for the debugger (stdin channel),
  an interrupt, and dask's own API through the connection;
- ``notebooks/dask_cluster.ipynb``, run top to bottom.

Nothing any of them started may outlive the module (checked with psutil).
"""

from __future__ import annotations

import json
import os
import re
import time

import nbformat
import psutil
import pytest
from kernel_helpers import REPO_DIR, RunningKernel, execute_notebook

pytest.importorskip("distributed")

# After the importorskip: importing it imports distributed.
from test_dask_cluster import (  # noqa: E402
    DASK_CLI,
    NOTEBOOK_CELL,
    STARTUP_TIMEOUT,
    no_lazycell_path,
    start,
    stop_processes,
    wait_for_file,
)
from test_widgets_kernel import panel_of_each_cell, panel_parts  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

NOTEBOOK = REPO_DIR / "notebooks" / "dask_cluster.ipynb"
CELL_TIMEOUT = 60  # seconds for one cell of ours; the tasks themselves take at most 5 s
WORKER_NAMES = ("a", "b")
N_WORKERS = len(WORKER_NAMES)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def no_process_left_behind():
    """Set up first, torn down last: every process the module started is gone."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and running(p)
    ]
    assert left == [], f"processes left running after the module: {left}"


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------------------------------- the example notebook
# First in the file: it starts its own LocalCluster, and runs before ours is up.


@pytest.fixture(scope="module")
def example(no_process_left_behind, tmp_path_factory):
    """``notebooks/dask_cluster.ipynb`` executed; its code cells, in order."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells), "commit the notebook cleared"
    cwd, ipython_dir = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("ipython")
    execute_notebook(nb, cwd, ipython_dir)  # no process may outlive it
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def printed(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs)


def result_of(cell) -> str | None:
    results = [out for out in cell.outputs if out.output_type == "execute_result"]
    return results[0].data["text/plain"] if results else None


def test_the_example_connects_to_its_cluster_as_the_default_scheduler(example):
    assert printed(example[0]).startswith("<DaskClusterClient tcp://127.0.0.1:")  # lc.Client
    assert "default scheduler: dask" in printed(example[0])
    assert "workers: 2" in printed(example[0])


def test_the_example_computes_on_the_cluster_with_the_panel(example):
    summary = next(out.data["text/plain"] for out in example[2].outputs if "data" in out)
    summary = summary.splitlines()[0]  # the static summary's first line; then one per group
    assert summary.startswith("✔ 41 tasks in ")
    assert summary.endswith(" · dask · 2 workers")
    assert result_of(example[2]) == str(sum(range(2000)))


def test_the_example_shows_the_named_error_of_the_failing_task(example):
    (error,) = [out for out in example[3].outputs if out.output_type == "error"]
    assert (error.ename, error.evalue) == ("ValueError", "34950 is not a multiple of 7")
    traceback = "\n".join(error.traceback)
    assert "(function check) failed on the dask scheduler" in traceback


def test_the_example_uses_dasks_own_api_through_the_connection(example):
    assert printed(example[4]).strip() == "285 [0, 1, 4]"


def test_the_example_closes_and_the_previous_default_comes_back(example):
    assert printed(example[-1]).strip() == "default scheduler: threads"


# ------------------------------------------------------------------------ the CLI cluster


@pytest.fixture(scope="module")
def cluster_address(no_process_left_behind, tmp_path_factory) -> str:
    """``dask scheduler`` and two ``dask worker --nthreads 1``, without lazycell; the address."""
    root = tmp_path_factory.mktemp("dask-cli")
    env = dict(os.environ, PYTHONPATH=no_lazycell_path(root / "no-lazycell"))
    scheduler_file = root / "scheduler.json"
    no_dashboard = ["--no-dashboard"]
    procs = [
        start(
            [DASK_CLI, "scheduler", "--host", "127.0.0.1", "--port", "0", *no_dashboard]
            + ["--scheduler-file", str(scheduler_file)],
            root / "scheduler.log",
            env,
        )
    ]
    try:
        wait_for_file(scheduler_file, procs[0], STARTUP_TIMEOUT)
        address = json.loads(scheduler_file.read_text())["address"]
        for name in WORKER_NAMES:
            args = [DASK_CLI, "worker", address, "--host", "127.0.0.1", "--nthreads", "1"]
            args += [*no_dashboard, "--name", name, "--local-directory", str(root / name)]
            procs.append(start(args, root / f"worker-{name}.log", dict(env)))
        with cluster_probe(address) as probe:
            probe.wait_for_workers(N_WORKERS, timeout=STARTUP_TIMEOUT)
        yield address
    finally:
        stop_processes(procs)


def cluster_probe(address: str):
    """A plain ``distributed.Client`` of the test's own, to look at the cluster's state."""
    import distributed

    return distributed.Client(address, timeout=STARTUP_TIMEOUT, set_as_default=False)


# ------------------------------------------------------------ a notebook: the panel's state

# The user's functions of tests/test_dask_cluster.py, defined in the kernel's first cell.
FUNCTIONS = "%load_ext lazycell\nimport lazycell as lc\n" + NOTEBOOK_CELL

# 32 tasks of the group "inc" and 8 of "total"; the result is a list of 8 sums.
TWO_GROUPS = """\
%%compute -s {address}
leaves = [lc.delayed(inc)(i) for i in range(32)]
[lc.delayed(total)(leaves[i : i + 4]) for i in range(0, 32, 4)]
"""

DASK_ARRAY_AND_LAZYCELL = """\
%%compute -s {address}
import dask.array as da

array_sum = da.arange(100, chunks=10).sum()
lc.delayed(add)(array_sum, lc.delayed(inc)(1)), array_sum
"""

PANEL_CELLS = {"two groups": TWO_GROUPS, "dask array": DASK_ARRAY_AND_LAZYCELL}


@pytest.fixture(scope="module")
def executed(cluster_address, tmp_path_factory):
    """The panel notebook run once: ({cell name: (panel model id, cell)}, widget state)."""
    nb = nbformat.v4.new_notebook()
    keep_live = "lc.config.set({'panel.keep_live': True})\n"  # these tests read the live widgets
    nb.cells = [nbformat.v4.new_code_cell(FUNCTIONS + keep_live)] + [
        nbformat.v4.new_code_cell(source.format(address=cluster_address))
        for source in PANEL_CELLS.values()
    ]
    cwd, ipython_dir = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("ipython")
    execute_notebook(nb, cwd, ipython_dir, store_widget_state=True)
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    return panel_of_each_cell(PANEL_CELLS, nb.cells[1:]), state


def without_numpy_reprs(text: str) -> str:
    """``(np.int64(4952), 3)`` as ``(4952, 3)``: numpy 1 and 2 print scalars differently."""
    return re.sub(r"np\.\w+\((.*?)\)", r"\1", text)


def test_compute_with_an_address_gives_the_cells_result(executed):
    cell = panel_parts(executed, "two groups")["cell"]
    results = [out for out in cell.outputs if out.output_type == "execute_result"]
    sums = [sum(range(i + 1, i + 5)) for i in range(0, 32, 4)]
    assert results[0].data["text/plain"] == str(sums)


def test_the_panel_shows_every_task_of_each_group_done(executed):
    parts = panel_parts(executed, "two groups")
    bars = {name: (bar["value"], bar["max"]) for name, bar in parts["group_bars"].items()}
    assert bars == {"inc": (32, 32), "total": (8, 8)}
    assert (parts["overall"]["value"], parts["overall"]["max"]) == (40, 40)


def test_the_panels_summary_names_the_dask_scheduler_and_its_workers(executed):
    summary = panel_parts(executed, "two groups")["summary"]
    assert summary.startswith("✔ 40 tasks in ")
    assert summary.endswith(f"dask · {N_WORKERS} workers")


def test_a_dask_array_and_lazycell_objects_compute_together_in_one_cell(executed):
    parts = panel_parts(executed, "dask array")
    results = [out for out in parts["cell"].outputs if out.output_type == "execute_result"]
    assert without_numpy_reprs(results[0].data["text/plain"]) == "(4952, 4950)"
    assert parts["overall"]["value"] == parts["overall"]["max"] > 2  # the array's tasks too
    assert parts["summary"].startswith("✔")


# ----------------------------------------------- one kernel: the debugger, Ctrl-C, dask's API


@pytest.fixture(scope="module")
def kernel(cluster_address, tmp_path_factory):
    kernel = RunningKernel(
        cwd=tmp_path_factory.mktemp("cwd"), ipython_dir=tmp_path_factory.mktemp("ipython")
    )
    try:
        setup = kernel.run(FUNCTIONS, timeout=CELL_TIMEOUT)
        assert setup.status == "ok", setup.text
        yield kernel
    finally:
        kernel.shutdown()
    assert kernel.leftover_processes == []


@pytest.fixture
def probe(cluster_address):
    with cluster_probe(cluster_address) as client:
        yield client


def test_pdb_opens_in_the_failing_tasks_frame_with_its_real_input(kernel, cluster_address):
    kernel.run("%pdb on")
    try:
        cell = kernel.run(
            f"%%compute -s {cluster_address}\nlc.delayed(check_positive)(lc.delayed(add)(-5, 2))",
            ["p x", "q"],
            timeout=CELL_TIMEOUT,
        )
    finally:
        kernel.run("%pdb off")
    assert (cell.ename, cell.evalue) == ("ValueError", "-3 is negative")
    assert "failed on the dask scheduler" in cell.traceback  # it failed there first
    assert "traceback in the worker" in cell.traceback
    frame, *printed_lines = cell.stdout.splitlines()
    assert frame.startswith("> ") and frame.endswith("check_positive()")
    assert "-3" in printed_lines
    assert (len(cell.prompts), cell.unexpected_prompts) == (2, 0)


def test_an_interrupt_ends_a_long_compute_and_the_cluster_keeps_serving(
    kernel, cluster_address, probe
):
    kernel.drain_iopub()
    msg_id = kernel.start_running(
        f"%%compute -s {cluster_address}\n"
        "print('STARTED', flush=True)\n"
        "[lc.delayed(time.sleep)(5) for _ in range(12)]"
    )
    kernel.wait_for_stdout("STARTED", timeout=CELL_TIMEOUT)
    wait_until(lambda: any(probe.processing().values()), 30, "the tasks start on the workers")
    interrupted = time.monotonic()
    kernel.manager.interrupt_kernel()
    reply = kernel.wait_for_reply(msg_id, timeout=CELL_TIMEOUT)
    assert (reply["status"], reply.get("ename")) == ("error", "KeyboardInterrupt")
    assert time.monotonic() - interrupted < 3  # not after the running 5 s tasks
    wait_until(lambda: not any(probe.processing().values()), 5, "the cluster drops the compute")
    # (the next compute may wait for the tasks still sleeping: threads cannot be stopped)
    after = kernel.run(f"%%compute -s {cluster_address}\nlc.delayed(add)(1, 2)", timeout=30)
    assert after.result == "3", after.text


def test_submit_and_gather_go_through_the_one_connection_to_the_address(kernel, cluster_address):
    cell = kernel.run(
        f"dc = lc.Client({cluster_address!r})\n"
        f"print(dc is lc.dask_cluster.open_client_at({cluster_address!r}), "
        "len(lc.dask_cluster.open_clients()))\n"
        "print(dc.gather(dc.map(inc, range(5))), dc.submit(add, 40, 2).result())\n",
        timeout=CELL_TIMEOUT,
    )
    assert cell.stdout.splitlines() == ["True 1", "[1, 2, 3, 4, 5] 42"], cell.text
