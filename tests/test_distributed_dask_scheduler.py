"""An open lc.Client is dask's scheduler: dask collections compute on its cluster,
``scheduler=client`` and ``client.get`` work, persisted collections compute, and
closing the clients (in any order) gives dask's setting back."""

import os

import pytest

import lazycell as lc
from lazycell.distributed import client as client_module

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

pytestmark = pytest.mark.timeout(120)


def new_client():
    return lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None, dashboard_address=None)


# These three run first, while no other client is open (the module's opens later).


def test_closing_clients_in_any_order_restores_dasks_setting():
    assert not client_module._open_clients
    with dask.config.set(scheduler="sync"):
        first = new_client()
        second = new_client()
        assert dask.config.get("scheduler") is client_module.dask_get
        first.close()  # the other is still open: dask still computes on it
        worker_pids = set(second.run(os.getpid).values())
        assert dask.delayed(pid_of)(3).compute() in worker_pids
        second.close()
        assert dask.config.get("scheduler") == "sync"
        assert dask.delayed(pid_of)(4).compute() == os.getpid()


def test_a_setting_chosen_while_open_is_kept_at_close():
    c = new_client()
    dask.config.set(scheduler="threads")
    try:
        c.close()
        assert dask.config.get("scheduler") == "threads"
    finally:
        dask.config.refresh()


def test_a_client_not_set_as_default_leaves_dask_alone():
    before = dask.config.get("scheduler", None)
    cluster = lc.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    with lc.Client(cluster, set_as_default=False):
        assert dask.config.get("scheduler", None) == before
    cluster.close()


@pytest.fixture(scope="module")
def client():
    with new_client() as c:
        yield c


def pid_of(_):
    return os.getpid()


def test_dask_collections_compute_on_the_open_client(client):
    worker_pids = set(client.run(os.getpid).values())
    pid = dask.delayed(pid_of)(1).compute()
    assert pid in worker_pids and pid != os.getpid()
    assert da.arange(10, chunks=3).sum().compute() == 45


def test_scheduler_client_runs_there_too(client):
    worker_pids = set(client.run(os.getpid).values())
    assert dask.delayed(pid_of)(2).compute(scheduler=client) in worker_pids
    assert dask.compute(da.ones(6, chunks=2).sum(), scheduler=client) == (6,)


def test_client_get_runs_a_dask_graph_and_keeps_the_shape_of_the_keys(client):
    dsk = {"a": 1, "b": (lambda v: v + 1, "a"), "c": (sum, ["a", "b"])}
    assert client.get(dsk, "c") == 3
    assert client.get(dsk, ["b", ["a", "c"]]) == [2, [1, 3]]


def test_client_get_without_sync_gives_futures(client):
    [future] = client.get({"x": (pow, 2, 8)}, ["x"], sync=False)
    assert isinstance(future, lc.Future) and future.result(timeout=30) == 256


def test_a_persisted_dask_collection_computes_from_the_held_results(client):
    x = da.arange(12, chunks=4) * 2
    y = client.persist(x)
    futures = [v for v in y.__dask_graph__().values() if isinstance(v, lc.Future)]
    assert len(futures) == 3
    assert y.sum().compute() == 132
    assert (y + 1).sum().compute(scheduler=client) == 144


def test_futures_inside_dask_delayed_calls_are_their_values(client):
    future = client.submit(pow, 2, 5)
    assert dask.delayed(lambda v: v + 1)(future).compute() == 33
    assert dask.delayed(sum)([future, future]).compute() == 64
    assert dask.delayed(lambda d: d["k"])({"k": future}).compute() == 32
