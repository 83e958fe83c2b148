"""Client, Future, wait and as_completed on a real local cluster of worker processes."""

import asyncio
import concurrent.futures
import operator
import os
import threading
import time

import pytest

import lazycell as lc

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as c:
        yield c


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def slow_inc(x, seconds=0.3):
    time.sleep(seconds)
    return x + 1


def pid_of(_=None):
    return os.getpid()


def wait_until_idle(client, timeout=30):
    """Tasks of earlier tests that still run would skew placement-sensitive tests."""
    deadline = time.monotonic() + timeout
    while any(w["n_processing"] for w in client.workers()):
        assert time.monotonic() < deadline
        time.sleep(0.02)


# -------------------------------------------------------------------- submit / map / gather


def test_submit_returns_a_future_whose_result_is_the_value(client):
    future = client.submit(pow, 2, 10)
    assert isinstance(future, lc.Future)
    assert future.result(timeout=30) == 1024
    assert future.done() and future.status == "finished"


def test_submit_takes_keyword_arguments(client):
    assert client.submit(slow_inc, 1, seconds=0.01).result(timeout=30) == 2


def test_futures_passed_to_submit_are_replaced_by_their_values(client):
    a = client.submit(inc, 1)
    b = client.submit(add, a, 10)
    assert b.result(timeout=30) == 12


def test_futures_inside_lists_and_dicts_are_replaced_too(client):
    parts = client.map(inc, range(5))
    total = client.submit(sum, parts)
    named = client.submit(lambda d: d["x"] * d["y"], {"x": parts[1], "y": 3})
    assert total.result(timeout=30) == sum(range(1, 6))
    assert named.result(timeout=30) == 6


def test_map_runs_one_task_per_item(client):
    futures = client.map(add, range(10), range(10, 20))
    assert client.gather(futures) == [a + b for a, b in zip(range(10), range(10, 20))]


def test_map_spreads_a_small_batch_over_every_worker(client):
    wait_until_idle(client)
    futures = client.map(slow_inc, range(6), pure=False)
    client.gather(futures)
    pids = client.gather(client.map(pid_of, futures))
    assert len(set(pids)) == 2


def test_gather_keeps_the_shape_of_nested_lists_and_dicts(client):
    a, b = client.submit(inc, 1), client.submit(inc, 2)
    assert client.gather({"a": a, "pair": [a, (b, 5)]}) == {"a": 2, "pair": [2, (3, 5)]}


def test_pure_submits_of_the_same_call_share_a_key(client):
    assert client.submit(inc, 41).key == client.submit(inc, 41).key
    assert client.submit(inc, 41, pure=False).key != client.submit(inc, 41, pure=False).key


def test_result_with_timeout_raises_timeout_error_while_running(client):
    future = client.submit(slow_inc, 1, seconds=2, pure=False)
    with pytest.raises(TimeoutError):
        future.result(timeout=0.1)
    assert future.result(timeout=30) == 2


# -------------------------------------------------------------------------------- futures


def test_done_callbacks_receive_the_future(client):
    called = threading.Event()
    seen = []
    future = client.submit(slow_inc, 5, seconds=0.1, pure=False)

    def callback(fut):
        seen.append(fut)
        called.set()

    future.add_done_callback(callback)
    assert called.wait(30)
    assert seen == [future]
    done_later = threading.Event()
    future.add_done_callback(lambda fut: done_later.set())  # already done: called at once
    assert done_later.wait(30)


def test_cancel_a_pending_future(client):
    blocker = client.submit(slow_inc, 0, seconds=1.0, pure=False)
    waiting = client.submit(slow_inc, blocker, seconds=0.0, pure=False)
    waiting.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        waiting.result(timeout=30)
    assert waiting.cancelled()
    assert blocker.result(timeout=30) == 1


def test_wait_returns_done_and_not_done(client):
    futures = client.map(slow_inc, range(4), seconds=0.05, pure=False)
    done, not_done = lc.wait(futures, timeout=30)
    assert done == set(futures) and not not_done


def test_wait_first_completed(client):
    fast = client.submit(slow_inc, 1, seconds=0.0, pure=False)
    slow = client.submit(slow_inc, 1, seconds=1.0, pure=False)
    done, not_done = lc.wait([fast, slow], timeout=30, return_when="FIRST_COMPLETED")
    assert fast in done and slow in not_done


def test_as_completed_yields_in_finishing_order(client):
    wait_until_idle(client)
    slow = client.submit(slow_inc, 1, seconds=1.5, pure=False)
    fast = client.submit(slow_inc, 2, seconds=0.0, pure=False)
    order = list(lc.as_completed([slow, fast]))
    assert order == [fast, slow]


def test_as_completed_with_results(client):
    futures = client.map(inc, range(3))
    assert sorted(r for _, r in lc.as_completed(futures, with_results=True)) == [1, 2, 3]


def test_futures_can_be_awaited(client):
    async def main():
        return await client.submit(inc, 99)

    assert asyncio.run(main()) == 100


def test_dropping_the_last_future_releases_the_result_on_the_workers(client):
    future = client.submit(lambda: bytes(1000), pure=False)
    future.result(timeout=30)
    key = future.key
    del future
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.scheduler.call(lambda s: key not in s.tasks):
            break
        time.sleep(0.05)
    assert client.scheduler.call(lambda s: key not in s.tasks)
    assert sum(w["n_results"] for w in client.workers()) == client.scheduler.call(
        lambda s: sum(len(w.has_what) for w in s.workers.values())
    )


# ------------------------------------------------------------------ compute / persist


@lc.delayed
def d_inc(x):
    return x + 1


def test_compute_a_delayed_returns_a_future(client):
    total = lc.delayed(sum)([d_inc(i) for i in range(20)])
    future = client.compute(total)
    assert future.result(timeout=30) == sum(range(1, 21))


def test_compute_a_list_returns_a_list_of_futures(client):
    futures = client.compute([d_inc(1), d_inc(2)])
    assert client.gather(futures) == [2, 3]


def test_persist_keeps_the_result_on_the_cluster_and_reuses_it(client):
    calls = client.submit(lambda: 0, pure=False)  # just to have the cluster warm
    calls.result(timeout=30)
    base = lc.delayed(slow_inc, pure=False)(1, seconds=0.5)
    persisted = client.persist(base)
    assert persisted.key == base.key
    lc.wait(client.compute(persisted), timeout=30)
    started = time.monotonic()
    result = client.compute(d_inc(persisted)).result(timeout=30)
    assert result == 3
    assert time.monotonic() - started < 5  # sanity only: not recomputed from scratch
    assert client.scheduler.call(lambda s: s.tasks[base.key].state) == "memory"


def test_persisted_delayed_also_computes_on_the_threads_scheduler(client):
    persisted = client.persist(d_inc(10))
    assert d_inc(persisted).compute(scheduler="threads") == 12


def test_compute_a_dask_collection(client):
    da = pytest.importorskip("dask.array")
    x = da.arange(100, chunks=10)
    assert client.compute(x.sum()).result(timeout=60) == sum(range(100))


def test_persist_a_dask_collection_then_compute_on_the_client(client):
    da = pytest.importorskip("dask.array")
    x = client.persist(da.arange(100, chunks=10) * 2)
    assert client.compute(x.sum()).result(timeout=60) == 2 * sum(range(100))


def test_a_client_is_a_scheduler_for_lc_compute(client):
    assert lc.compute(d_inc(1), d_inc(2), scheduler=client) == (2, 3)


def test_operator_functions_and_lambdas_travel_to_workers(client):
    assert client.submit(operator.mul, 6, 7).result(timeout=30) == 42
    assert client.submit(lambda: "from a lambda").result(timeout=30) == "from a lambda"


def test_asynchronous_client_awaits_gather_and_close():
    async def main():
        async with lc.Client(asynchronous=True, n_workers=1, memory_limit=None) as client:
            futures = client.map(inc, range(3))
            assert await futures[0] == 1
            assert await client.gather(futures) == [1, 2, 3]
            total = client.compute(lc.delayed(sum)([d_inc(1), d_inc(2)]))
            assert await total == 5
        return client

    client = asyncio.run(main())
    assert client.closed


def test_await_client_and_await_close():
    async def main():
        client = await lc.Client(asynchronous=True, n_workers=1, memory_limit=None)
        assert await client.submit(inc, 1) == 2
        await client.close()
        return client

    assert asyncio.run(main()).closed


def test_a_finished_compute_leaves_no_task_state_behind(client):
    def held_keys(scheduler):
        return set(scheduler.tasks)

    before = client.scheduler.call(held_keys)
    total = lc.delayed(sum)([d_inc(i) for i in range(50)])
    assert lc.compute(total, scheduler=client) == (sum(range(1, 51)),)
    deadline = time.monotonic() + 10
    while client.scheduler.call(held_keys) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.scheduler.call(held_keys) - before


def test_computes_on_the_cluster_emit_the_event_stream(client):
    from lazycell.events import ComputeFinished, GraphSubmitted, TaskFinished

    seen = []
    with lc.diagnostics.subscribe(seen.extend):
        total = lc.delayed(sum)([d_inc(i) for i in range(10)])
        assert total.compute(scheduler=client) == sum(range(1, 11))
    submitted = [e for e in seen if isinstance(e, GraphSubmitted)]
    finished = [e for e in seen if isinstance(e, TaskFinished)]
    assert submitted[0].scheduler == "distributed" and submitted[0].n_tasks == 11
    assert len(finished) == 11
    assert {e.worker for e in finished} <= {w["name"] for w in client.workers()}
    assert [e.status for e in seen if isinstance(e, ComputeFinished)] == ["ok"]


def test_a_cancelled_key_can_be_submitted_again(client):
    first = client.submit(slow_inc, 1, seconds=0.5)
    first.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        first.result(timeout=30)
    again = client.submit(slow_inc, 1, seconds=0.5)
    assert again.key == first.key
    assert again.result(timeout=30) == 2
    assert first.cancelled()


def test_cancelling_a_finished_future_makes_it_cancelled(client):
    future = client.submit(inc, 123)
    assert future.result(timeout=30) == 124
    future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=30)


def test_futures_passed_only_inside_a_temporary_list_stay_alive_for_the_task(client):
    # The list from map() is referenced by nothing but submit's arguments.
    total = client.submit(sum, client.map(abs, range(-5, 5)))
    assert total.result(timeout=60) == sum(abs(i) for i in range(-5, 5))
