"""lazycell graphs on a real dask.distributed cluster: results, events, failures, Ctrl-C.

The main cluster is started the way an admin starts one: ``dask scheduler``
and ``dask worker`` processes from the command line, on 127.0.0.1, on free
ports. Neither the scheduler nor one of the three workers can import
lazycell (a ``lazycell`` package that raises ImportError comes first on
their path): the event plugin and the graphs must reach them without it.

The users' functions are defined as in a notebook cell (module ``__main__``),
which is how dask ships them by value to workers that have only dask.
"""

from __future__ import annotations

import _thread
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import pytest

import lazycell as lc
from lazycell.events import ComputeFinished, GraphSubmitted, TaskErred, TaskFinished
from lazycell.graph.spec import Ref, call_spec, data_spec

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

from lazycell import dask_cluster  # noqa: E402  (after the importorskip of distributed)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DASK_CLI = str(Path(sys.executable).with_name("dask"))
STARTUP_TIMEOUT = 60  # seconds; generous, the machine may be busy with other tests

NOTEBOOK_CELL = """
import os
import time

def inc(x):
    return x + 1

def add(x, y):
    return x + y

def total(values):
    return sum(values)

def check_positive(x):
    if x < 0:
        raise ValueError(f"{x} is negative")
    return x

def nap(seconds):
    time.sleep(seconds)
    return seconds

def end_the_process(x):
    os._exit(1)
"""


@pytest.fixture(scope="module")
def cell() -> SimpleNamespace:
    """The user's functions, defined as in a notebook cell: module ``__main__``."""
    namespace = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL, "<notebook cell>", "exec"), namespace)
    return SimpleNamespace(**namespace)


# ------------------------------------------------------------------ the CLI cluster


def no_lazycell_path(directory: Path) -> str:
    """A directory whose ``lazycell`` package fails to import: put first on a PYTHONPATH."""
    package = directory / "lazycell"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        'raise ImportError("lazycell is not installed on this machine")\n'
    )
    return str(directory)


def start(args: list, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        assert proc.poll() is None, f"{proc.args[:2]} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.1)


def stop_processes(procs: list) -> None:
    """Terminate the processes we started (and the nannies' workers), by pid; check none is left."""
    import psutil

    family = []
    for proc in procs:
        try:
            family += [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(True)]
        except psutil.NoSuchProcess:
            pass
    for proc in reversed(procs):  # workers first, the scheduler last
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    left = [pid for pid in family if psutil.pid_exists(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in family if _running(pid)]
    for pid in left:
        psutil.Process(pid).kill()
    assert left == [], f"processes left running after the cluster stopped: {left}"


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """``dask scheduler`` + 2 ``dask worker`` + 1 worker without lazycell, from the CLI."""
    root = tmp_path_factory.mktemp("dask-cli")
    without_lazycell = dict(os.environ, PYTHONPATH=no_lazycell_path(root / "no-lazycell"))
    scheduler_file = root / "scheduler.json"
    common = ["--no-dashboard"]
    procs = [
        start(
            [DASK_CLI, "scheduler", "--host", "127.0.0.1", "--port", "0"]
            + [*common, "--scheduler-file", str(scheduler_file)],
            root / "scheduler.log",
            without_lazycell,
        )
    ]
    try:
        wait_for_file(scheduler_file, procs[0], STARTUP_TIMEOUT)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = [DASK_CLI, "worker", address, "--host", "127.0.0.1", "--nthreads", "1"]
        for name, env in (("a", os.environ), ("b", os.environ), ("no-lazycell", without_lazycell)):
            args = [*worker, *common, "--name", name, "--local-directory", str(root / name)]
            procs.append(start(args, root / f"worker-{name}.log", dict(env)))
        with distributed.Client(address, timeout=STARTUP_TIMEOUT) as probe:
            probe.wait_for_workers(3, timeout=STARTUP_TIMEOUT)
            by_name = {w["name"]: a for a, w in probe.scheduler_info()["workers"].items()}
        yield SimpleNamespace(address=address, workers=by_name, root=root)
    finally:
        stop_processes(procs)


@pytest.fixture(scope="module")
def dc(cli_cluster):
    client = dask_cluster.connect(cli_cluster.address, set_as_default=False)
    yield client
    client.close()


@pytest.fixture
def events():
    seen: list = []
    with lc.diagnostics.subscribe(seen.extend):
        yield seen


# ---------------------------------------------------------------------------- results


def test_a_chain_and_a_tree_give_the_sync_schedulers_results(dc, cell):
    chain = lc.delayed(cell.inc)(0)
    for _ in range(20):
        chain = lc.delayed(cell.inc)(chain)
    leaves = [lc.delayed(cell.inc)(i) for i in range(16)]
    while len(leaves) > 1:
        leaves = [lc.delayed(cell.add)(a, b) for a, b in zip(leaves[::2], leaves[1::2])]
    tree = leaves[0]
    assert lc.compute(chain, tree, scheduler=dc) == lc.compute(chain, tree, scheduler="sync")


def test_a_dask_array_and_lazycell_objects_compute_together(dc, cell):
    import dask.array as da

    array_sum = da.arange(100, chunks=10).sum()
    lazy = lc.delayed(cell.add)(array_sum, lc.delayed(cell.inc)(1))
    assert lc.compute(lazy, array_sum, scheduler=dc) == (4950 + 2, 4950)


def test_keys_dask_does_not_take_are_renamed_and_come_back(dc, cell):
    graph = {
        ("start", True): data_spec(1),
        None: call_spec(cell.inc, (Ref(("start", True)),)),
        "end": call_spec(cell.add, (Ref(None), Ref(("start", True)))),
    }
    runner = dc.graph_runner()
    assert runner.run(graph, ["end", None]) == {"end": 3, None: 2}


def test_the_wrapper_passes_dasks_own_api_through(dc, cell):
    futures = dc.map(cell.inc, [1, 2, 3])
    assert dc.gather(futures) == [2, 3, 4]
    assert dc.submit(cell.add, 1, 2).result() == 3
    assert set(dc.who_has(futures)) == {f.key for f in futures}
    assert sum(len(keys) for keys in dc.has_what().values()) >= 3
    assert len(dc.scheduler_info()["workers"]) == dc.n_workers == 3
    assert set(dc.run(os.getpid)) == set(dc.scheduler_info()["workers"])
    assert dc.compute(lc.delayed(cell.inc)(41)).result() == 42


def test_persist_keeps_a_result_on_the_cluster(dc, cell):
    held = dc.persist(lc.delayed(cell.inc)(10))
    assert lc.compute(lc.delayed(cell.add)(held, 1), scheduler=dc) == (12,)
    assert held.key in dc.who_has()  # used, not recomputed, and still there
    assert held.compute(scheduler="sync") == 11  # any scheduler reads it from the cluster


# ----------------------------------------------------------------------------- events


def test_events_announce_the_graph_and_every_task_on_its_worker(dc, cell, events, cli_cluster):
    total = lc.delayed(cell.total)([lc.delayed(cell.inc)(i) for i in range(10)])
    assert lc.compute(total, scheduler=dc) == (55,)
    (submitted,) = [e for e in events if type(e) is GraphSubmitted]
    assert (submitted.n_tasks, submitted.groups) == (11, {"inc": 10, "total": 1})
    assert (submitted.scheduler, submitted.n_workers) == ("dask", 3)
    finished = [e for e in events if type(e) is TaskFinished]
    assert len(finished) == len({e.key for e in finished}) == 11
    assert {e.worker for e in finished} <= set(cli_cluster.workers.values())
    assert all(e.stop >= e.start and e.nbytes > 0 for e in finished)
    assert [e.status for e in events if type(e) is ComputeFinished] == ["ok"]
    assert type(events[-1]) is ComputeFinished  # every task event came before the end


# --------------------------------------------------------------------------- failures


def test_a_failing_task_raises_the_users_exception_naming_the_task(dc, cell, events):
    checked = lc.delayed(cell.check_positive)(lc.delayed(cell.add)(-5, 2))
    with pytest.raises(ValueError, match="-3 is negative") as caught:
        lc.compute(lc.delayed(cell.inc)(checked), scheduler=dc)
    exc = caught.value
    assert (exc.lazycell_task_key, exc.lazycell_function) == (checked.key, "check_positive")
    assert any("check_positive" in note for note in exc.__notes__)
    assert "check_positive" in exc.lazycell_remote_traceback
    (erred,) = [e for e in events if type(e) is TaskErred]
    assert (erred.key, erred.error) == (checked.key, "ValueError: -3 is negative")
    assert [e.status for e in events if type(e) is ComputeFinished] == ["error"]


def test_the_rerun_runs_the_failed_task_here_with_its_real_inputs(dc, cell):
    checked = lc.delayed(cell.check_positive)(lc.delayed(cell.add)(-5, 2))
    with pytest.raises(ValueError) as caught:
        lc.compute(checked, scheduler=dc)
    with pytest.raises(ValueError, match="-3 is negative") as again:
        caught.value.lazycell_rerun()
    assert traceback.extract_tb(again.value.__traceback__)[-1].name == "check_positive"


def test_rerun_exceptions_locally_raises_from_a_frame_of_the_users_function(dc, cell):
    checked = lc.delayed(cell.check_positive)(lc.delayed(cell.add)(-5, 1))
    with pytest.raises(ValueError, match="-4 is negative") as caught:
        lc.compute(checked, scheduler=dc, rerun_exceptions_locally=True)
    assert traceback.extract_tb(caught.value.__traceback__)[-1].name == "check_positive"


def test_a_task_that_calls_lazycell_code_is_refused_by_name(dc):
    from lazycell.graph.keys import tokenize

    graph = {"tokens": call_spec(tokenize, (1,))}
    with pytest.raises(dask_cluster.NotRunnableOnDask, match="'tokens'.*function tokenize"):
        dc.graph_runner().run(graph, ["tokens"])


def test_an_argument_that_does_not_pickle_is_named_with_its_task(dc, cell):
    locked = lc.delayed(cell.inc)(threading.Lock())
    with pytest.raises(lc.SerializationError, match=f"{locked.key!r} \\(function inc\\)"):
        lc.compute(locked, scheduler=dc)


# ---------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_cancels_the_compute_on_the_cluster_and_returns_at_once(dc, cell):
    naps = lc.delayed(cell.total)([lc.delayed(cell.nap)(2.0) for _ in range(12)])
    timer = threading.Timer(0.8, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            lc.compute(naps, scheduler=dc)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 0.8 + 2.0
    deadline = time.monotonic() + 5
    while any(dc.dask.processing().values()):
        assert time.monotonic() < deadline, f"still processing: {dc.dask.processing()}"
        time.sleep(0.1)
    assert lc.compute(lc.delayed(cell.inc)(1), scheduler=dc) == (2,)


# ---------------------------------------------------------------- workers without lazycell


def test_a_worker_without_lazycell_runs_lazycell_graphs(dc, cell, cli_cluster, events):
    bare = cli_cluster.workers["no-lazycell"]
    with pytest.raises(ImportError, match="not installed on this machine"):
        dc.run(lambda: __import__("lazycell"), workers=[bare])
    with pytest.raises(ImportError, match="not installed on this machine"):  # nor the scheduler
        dc.dask.run_on_scheduler(lambda: __import__("lazycell"))
    assert dc.feed.mode == "push"  # the event plugin runs there all the same
    runner = dc.graph_runner(workers=[bare])
    total = lc.delayed(cell.total)([lc.delayed(cell.inc)(i) for i in range(5)])
    mixed = lc.delayed([total, {"twice": total * 2}])  # containers, an operator
    assert lc.compute(mixed, scheduler=runner) == ([15, {"twice": 30}],)
    assert {e.worker for e in events if type(e) is TaskFinished} == {bare}


# ----------------------------------------------------------- a Cluster object, KilledWorker


@pytest.fixture(scope="module")
def local_cluster():
    # One death and the task is given up on (dask's default retries it on 3 more workers).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    with cluster:
        yield cluster


def test_a_local_cluster_object_runs_lazycell_graphs_with_events(local_cluster, cell, events):
    with dask_cluster.connect(local_cluster, set_as_default=False) as client:
        total = lc.delayed(cell.total)([lc.delayed(cell.inc)(i) for i in range(10)])
        assert lc.compute(total, scheduler=client) == (55,)
    assert len([e for e in events if type(e) is TaskFinished]) == 11


def test_a_task_that_kills_its_worker_is_a_clear_error_naming_it(local_cluster, cell):
    with dask_cluster.connect(local_cluster, set_as_default=False) as client:
        deadly = lc.delayed(cell.end_the_process)(1)
        with pytest.raises(lc.WorkerDiedError, match="end_the_process.*KilledWorker"):
            lc.compute(deadly, scheduler=client)
        client.dask.wait_for_workers(2, timeout=STARTUP_TIMEOUT)  # the nanny restarted it


# -------------------------------------------------------------- refused plugins, lost scheduler

REFUSE_PLUGINS = '''
"""Preloaded by a scheduler whose admin allows no plugins."""

def dask_setup(scheduler):
    async def refuse(*args, **kwargs):
        raise PermissionError("this cluster accepts no scheduler plugins")

    scheduler.handlers["register_scheduler_plugin"] = refuse
'''


def test_a_cluster_that_refuses_the_plugin_is_polled_instead(tmp_path, cell, events):
    preload = tmp_path / "refuse_plugins.py"
    preload.write_text(REFUSE_PLUGINS)
    cluster = distributed.LocalCluster(
        n_workers=1,
        processes=False,
        dashboard_address=":0",
        scheduler_kwargs={"preload": [str(preload)]},
    )
    with cluster:
        with pytest.warns(RuntimeWarning, match="refused lazycell's event plugin.*polling"):
            client = dask_cluster.connect(cluster, set_as_default=False)
        with client:
            total = lc.delayed(cell.total)([lc.delayed(cell.inc)(i) for i in range(10)])
            assert lc.compute(total, scheduler=client) == (55,)
            failing = lc.delayed(cell.check_positive)(-1)
            with pytest.raises(ValueError) as caught:
                lc.compute(failing, scheduler=client)
    assert caught.value.lazycell_task_key == failing.key
    assert len([e for e in events if type(e) is TaskFinished]) == 11
    assert [e.key for e in events if type(e) is TaskErred] == [failing.key]


def test_a_lost_scheduler_is_a_clear_connection_error(cell):
    cluster = distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0")
    with dask_cluster.connect(cluster, set_as_default=False) as client:
        closing = threading.Timer(0.5, cluster.close)
        closing.start()
        try:
            with pytest.raises(ConnectionError, match="lost the connection to the dask scheduler"):
                lc.compute(lc.delayed(cell.nap)(1.5), scheduler=client)
        finally:
            closing.join(timeout=30)


# ----------------------------------------------------------------------- the scheduler name


def test_connect_gives_an_open_connection_back_by_address(dc, cli_cluster):
    assert dask_cluster.connect(cli_cluster.address) is dc
    assert dask_cluster.scheduler_for(dc).name == "dask"


def test_a_connection_made_default_runs_compute_until_closed(cli_cluster, cell):
    with dask_cluster.connect(cli_cluster.address, set_as_default=True) as client:
        assert dask_cluster.current_client() is client
        assert lc.delayed(cell.inc)(1).compute() == 2
        assert lc.api.resolve_scheduler().name == "dask"
    assert lc.api.resolve_scheduler().name == "threads"


def test_without_distributed_connecting_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "lazycell\[dask\]"'):
        dask_cluster.DaskClusterClient("tcp://127.0.0.1:8786")


def test_lc_client_with_an_address_or_a_dask_cluster_connects_to_dask(local_cluster, cell):
    with lc.Client(local_cluster.scheduler_address) as by_address:
        assert isinstance(by_address, dask_cluster.DaskClusterClient)
        assert lc.delayed(cell.inc)(1).compute() == 2  # the default scheduler while open
        assert lc.api.resolve_scheduler().name == "dask"
    assert lc.api.resolve_scheduler().name == "threads"
    with lc.Client(local_cluster) as by_cluster:
        assert isinstance(by_cluster, dask_cluster.DaskClusterClient)
        assert by_cluster.submit(cell.inc, 41).result(timeout=60) == 42
    assert lc.api.resolve_scheduler().name == "threads"


def test_lc_client_with_an_address_already_connected_gives_that_connection(dc, cli_cluster):
    assert lc.Client(cli_cluster.address) is dc


def test_lc_client_with_something_it_cannot_use_says_what_it_takes():
    with pytest.raises(ValueError, match="a dask scheduler's address"):
        lc.Client(42)


def test_a_connection_made_from_a_cluster_object_scales_it(cell):
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    with cluster, dask_cluster.connect(cluster, set_as_default=False) as client:
        client.scale(2)
        client.dask.wait_for_workers(2, timeout=60)
        assert client.graph_runner().n_workers == 2


def test_a_connection_by_address_cannot_scale_and_says_why(dc):
    with pytest.raises(ValueError, match="needs the Cluster object"):
        dc.scale(3)


def test_a_distributed_client_is_a_scheduler_without_becoming_the_default(local_cluster, cell):
    with distributed.Client(local_cluster, set_as_default=False) as plain:
        total = lc.delayed(cell.total)([lc.delayed(cell.inc)(i) for i in range(4)])
        assert lc.compute(total, scheduler=plain) == (10,)
        opened = len(dask_cluster.open_clients())
        assert total.compute(scheduler=plain) == 10  # the same connection, reused
        assert len(dask_cluster.open_clients()) == opened
        assert lc.api.resolve_scheduler().name == "threads"
        dask_cluster.connection_for(plain).close()
