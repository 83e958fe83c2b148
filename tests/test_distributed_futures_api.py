"""dask's names on lc.Client: submit / map options, scatter, cancel, retry, tracebacks,
the task stream, as_completed as an object and wait's checks, on a real local cluster."""

import asyncio
import concurrent.futures
import os
import signal
import threading
import time
import traceback

import pytest
from kernel_helpers_tasks import fail_until

import lazycell as lc

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client():
    with lc.Client(
        n_workers=2,
        threads_per_worker=1,
        memory_limit=None,
        dashboard_address=None,
        resources={"GPU": 1},
    ) as c:
        yield c


def inc(x):
    return x + 1


def slow_inc(x, seconds=0.3):
    time.sleep(seconds)
    return x + 1


def takes_everything(*args, **kwargs):
    return args, kwargs


def raise_in_user_code(x):
    return helper_that_raises(x)


def helper_that_raises(x):
    raise KeyError(x)


def hold_gpu(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def now(_=None):
    return time.time()


# ------------------------------------------------------------------ submit / map options


def test_submit_options_never_reach_the_function(client):
    future = client.submit(
        takes_everything,
        1,
        retries=2,
        priority=5,
        fifo_timeout="10ms",
        allow_other_workers=True,
        workers=["worker-0"],
        resources={"GPU": 1},
        pure=False,
        user_keyword="kept",
    )
    assert future.result(timeout=30) == ((1,), {"user_keyword": "kept"})


def test_retries_rerun_a_failing_task_until_it_succeeds(client, tmp_path):
    future = client.submit(fail_until, str(tmp_path / "calls"), 2, retries=2)
    assert future.result(timeout=30) == 2


def test_retries_exhausted_raise_the_last_failure(client, tmp_path):
    future = client.submit(fail_until, str(tmp_path / "calls"), 5, retries=1)
    with pytest.raises(ValueError, match="call 1 fails"):
        future.result(timeout=30)


def test_priority_runs_the_higher_first_among_waiting_tasks(client):
    # Both become ready when the blocker ends; without priorities the first submitted runs first.
    blocker = client.submit(slow_inc, 0, 0.2, workers=["worker-0"], pure=False)
    low = client.submit(now, blocker, workers=["worker-0"], priority=-10, pure=False)
    high = client.submit(now, blocker, workers=["worker-0"], priority=10, pure=False)
    assert high.result(timeout=30) < low.result(timeout=30)


def overlapping(spans: list) -> int:
    """The most spans running at one moment."""
    return max(sum(1 for s, e in spans if s < end and e > start) for start, end in spans)


def test_resources_limit_how_many_such_tasks_run_at_once_per_worker():
    # One worker with two threads and one GPU: GPU tasks run one at a time, others two.
    cluster = lc.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        memory_limit=None,
        dashboard_address=None,
        resources={"GPU": 1},
    )
    with lc.Client(cluster, set_as_default=False) as c:
        free = c.gather(c.map(hold_gpu, [0.3, 0.3], pure=False))
        gpu = c.gather(c.map(hold_gpu, [0.3, 0.3], resources={"GPU": 1}, pure=False))
    cluster.close()
    assert overlapping(free) == 2
    assert overlapping(gpu) == 1


def test_unknown_resources_are_refused_with_what_the_workers_offer(client):
    with pytest.raises(ValueError, match=r"TPU=1.*each worker offers: GPU=1"):
        client.submit(inc, 1, resources={"TPU": 1})
    with pytest.raises(ValueError, match="GPU=2"):
        client.map(inc, [1], resources={"GPU": 2})


def test_allow_other_workers_runs_elsewhere_when_the_named_worker_is_absent(client):
    assert (
        client.submit(inc, 41, workers=["worker-99"], allow_other_workers=True).result(timeout=30)
        == 42
    )


def test_map_takes_a_list_of_keys_and_batch_size(client):
    futures = client.map(inc, [1, 2, 3], key=["one", "two", "three"], batch_size=2)
    assert [f.key for f in futures] == ["one", "two", "three"]
    assert client.gather(futures) == [2, 3, 4]


def test_map_with_a_key_prefix_names_every_key_after_it(client):
    futures = client.map(inc, [1, 2], key="prefix")
    assert all(str(f.key).startswith("prefix") for f in futures)


def test_map_with_too_few_keys_says_so(client):
    with pytest.raises(ValueError, match="one key per item"):
        client.map(inc, [1, 2, 3], key=["a", "b"])


def test_bad_option_values_are_refused(client):
    with pytest.raises(ValueError, match="retries"):
        client.submit(inc, 1, retries=-1)
    with pytest.raises(ValueError, match="batch_size"):
        client.map(inc, [1], batch_size=0)
    with pytest.raises(NotImplementedError, match="actors"):
        client.submit(inc, 1, actor=True)
    with pytest.raises(TypeError, match="must be a function"):
        client.submit(42)


def test_futures_inside_sets_are_replaced_by_their_values(client):
    a, b = client.submit(inc, 1), client.submit(inc, 10)
    assert client.submit(sorted, {a, b}).result(timeout=30) == [2, 11]


# ------------------------------------------------------------------------------ scatter


def test_scatter_a_list_gives_a_list_of_futures(client):
    futures = client.scatter([1, 2, 3])
    assert isinstance(futures, list) and all(isinstance(f, lc.Future) for f in futures)
    assert client.gather(futures) == [1, 2, 3]
    assert client.submit(sum, futures).result(timeout=30) == 6


def test_scatter_a_dict_keys_the_futures_by_its_keys(client):
    futures = client.scatter({"x": 10, "y": 20})
    assert sorted(futures) == ["x", "y"]
    assert futures["x"].key == "x"
    assert client.submit(lambda a, b: a * b, futures["x"], futures["y"]).result(timeout=30) == 200


def test_scatter_one_value_gives_one_future(client):
    future = client.scatter({"not", "a", "list"} and frozenset({1, 2}) and [[1, 2]])[0]
    assert future.result(timeout=30) == [1, 2]
    single = client.scatter(12345)
    assert isinstance(single, lc.Future) and single.result(timeout=30) == 12345


def test_scatter_hashes_equal_values_to_one_key_unless_told_not_to(client):
    assert client.scatter([7])[0].key == client.scatter([7])[0].key
    assert client.scatter([7], hash=False)[0].key != client.scatter([7], hash=False)[0].key


def test_scatter_to_named_workers_keeps_the_data_there(client):
    future = client.scatter([b"payload"], workers=["worker-1"])[0]
    future.result(timeout=30)
    assert client.who_has(future)[future.key] == ["worker-1"]


def test_scatter_with_broadcast_puts_a_copy_on_every_worker(client):
    [shared] = client.scatter([100], broadcast=True)
    assert sorted(client.who_has(shared)[shared.key]) == ["worker-0", "worker-1"]
    on_each = [
        client.submit(inc, shared, workers=[w], pure=False) for w in ("worker-0", "worker-1")
    ]
    assert client.gather(on_each) == [101, 101]


# ------------------------------------------------------------------ cancel, retry, release


def test_client_cancel_cancels_a_list_of_futures(client):
    futures = client.map(slow_inc, [1, 2, 3], [1, 1, 1], pure=False)
    client.cancel(futures)
    assert all(f.cancelled() for f in futures)
    with pytest.raises(concurrent.futures.CancelledError):
        futures[0].result(timeout=5)


def test_retry_runs_a_failed_task_again(client, tmp_path):
    future = client.submit(fail_until, str(tmp_path / "calls"), 1)
    with pytest.raises(ValueError):
        future.result(timeout=30)
    future.retry()
    assert future.result(timeout=30) == 1
    assert future.status == "finished"


def test_client_retry_reruns_the_failed_input_of_a_dependent(client, tmp_path):
    failing = client.submit(fail_until, str(tmp_path / "calls"), 1)
    dependent = client.submit(inc, failing)
    with pytest.raises(ValueError):
        dependent.result(timeout=30)
    client.retry([dependent])
    assert dependent.result(timeout=30) == 2


def test_release_drops_the_result_from_the_workers(client):
    future = client.submit(inc, 1000, pure=False)
    future.result(timeout=30)
    key = future.key
    future.release()
    deadline = time.monotonic() + 10
    while any(key in keys for keys in client.has_what().values()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(RuntimeError, match="released"):
        future.client  # noqa: B018


def test_a_released_future_says_so_when_asked_for_its_result(client):
    future = client.submit(inc, 1001, pure=False)
    future.release()
    with pytest.raises(RuntimeError, match="released"):
        future.result(timeout=30)
    with pytest.raises(RuntimeError, match="released"):
        future.exception(timeout=30)


# --------------------------------------------------------------------- exceptions, traceback


def test_traceback_is_a_traceback_object_of_the_workers_frames(client):
    future = client.submit(raise_in_user_code, "k")
    tb = future.traceback(timeout=30)
    text = "".join(traceback.format_tb(tb))
    assert "helper_that_raises" in text and "raise_in_user_code" in text
    assert client.submit(inc, 1).traceback(timeout=30) is None


def test_exception_with_a_timeout_raises_timeout_error(client):
    future = client.submit(slow_inc, 1, 1, pure=False)
    with pytest.raises(TimeoutError):
        future.exception(timeout=0.05)
    client.cancel(future)


def test_exception_returns_the_task_exception(client):
    exc = client.submit(raise_in_user_code, "z").exception(timeout=30)
    assert isinstance(exc, KeyError)


# ---------------------------------------------------------------------------- task stream


def test_get_task_stream_lists_the_tasks_run_with_dask_fields(client):
    start = time.time()
    client.gather(client.map(inc, range(5), key=[f"stream-{i}" for i in range(5)]))
    client.submit(raise_in_user_code, "stream").exception(timeout=30)
    records = client.get_task_stream(start=start)
    keys = {r["key"]: r for r in records}
    assert {f"stream-{i}" for i in range(5)} <= set(keys)
    record = keys["stream-0"]
    assert record["status"] == "OK" and record["worker"].startswith("worker-")
    (span,) = record["startstops"]
    assert span["action"] == "compute" and start - 1 <= span["start"] <= span["stop"]
    assert any(r["status"] == "error" for r in records)
    assert len(client.get_task_stream(count=2)) == 2
    with pytest.raises(ValueError, match="not a time"):
        client.get_task_stream(start="yesterday")


def test_get_task_stream_context_manager_collects_what_ran_inside(client):
    with lc.get_task_stream(client) as ts:
        client.gather(client.map(inc, [1, 2], key=["ts-a", "ts-b"]))
    assert {"ts-a", "ts-b"} <= {r["key"] for r in ts.data}


# ----------------------------------------------------------------- as_completed, wait


def test_as_completed_takes_futures_added_while_iterating(client):
    ac = lc.as_completed([client.submit(inc, 1)])
    seen = []
    for future in ac:
        value = future.result()
        seen.append(value)
        if value < 4:
            ac.add(client.submit(inc, value))
    assert seen == [2, 3, 4]
    assert ac.count() == 0 and ac.is_empty()


def test_as_completed_count_counts_running_and_unyielded(client):
    futures = client.map(slow_inc, [1, 2], [0.2, 0.2], pure=False)
    ac = lc.as_completed(futures)
    assert ac.count() == 2
    next(ac)
    assert ac.count() == 1
    next(ac)
    assert ac.count() == 0


def test_as_completed_batches_yield_lists_until_all_are_done(client):
    futures = client.map(inc, range(6))
    batches = list(lc.as_completed(futures).batches())
    assert all(isinstance(b, list) and b for b in batches)
    assert sorted(f.result() for batch in batches for f in batch) == list(range(1, 7))


def test_as_completed_with_results_raises_errors_unless_told_not_to(client):
    failing = client.submit(raise_in_user_code, "ac")
    with pytest.raises(KeyError):
        list(lc.as_completed([failing], with_results=True))
    [(future, (typ, exc, tb))] = list(
        lc.as_completed([failing], with_results=True, raise_errors=False)
    )
    assert future is failing and typ is KeyError and isinstance(exc, KeyError)
    assert "helper_that_raises" in "".join(traceback.format_tb(tb))


def test_as_completed_with_results_yields_pairs(client):
    pairs = list(lc.as_completed(client.map(inc, [1, 2]), with_results=True))
    assert sorted(result for _, result in pairs) == [2, 3]


def test_as_completed_timeout_raises_timeout_error(client):
    ac = lc.as_completed([client.submit(slow_inc, 1, 0.5, pure=False)], timeout=0.1)
    with pytest.raises(TimeoutError):
        next(ac)


def test_as_completed_can_be_fed_from_another_thread(client):
    ac = lc.as_completed()
    feeder = threading.Thread(target=lambda: ac.update(client.map(inc, [5, 6])))
    feeder.start()
    feeder.join()
    assert sorted(f.result() for f in ac) == [6, 7]


def test_wait_rejects_an_unknown_return_when(client):
    with pytest.raises(NotImplementedError, match="FIRST_COMPLETED"):
        lc.wait([client.submit(inc, 1)], return_when="ANY")


# ------------------------------------------------------------------- a few more of dask's


def test_wait_for_workers_and_nthreads(client):
    client.wait_for_workers(2, timeout=30)
    assert client.nthreads() == {"worker-0": 1, "worker-1": 1}
    assert client.ncores(["worker-1"]) == {"worker-1": 1}
    with pytest.raises(TimeoutError):
        client.wait_for_workers(3, timeout=0.2)


def test_futures_of_finds_futures_in_containers_and_persisted_objects(client):
    a, b = client.submit(inc, 1), client.submit(inc, 2)
    assert {f.key for f in lc.futures_of({"x": [a, (b, a)]})} == {a.key, b.key}
    persisted = client.persist(lc.delayed(inc)(5))
    assert [f.result() for f in lc.futures_of(persisted)] == [6]


def test_futures_of_a_persisted_dask_collection(client):
    da = pytest.importorskip("dask.array")
    y = client.persist(da.ones(6, chunks=2))
    assert len(lc.futures_of(y)) == 3


def test_shutdown_closes_a_cluster_the_client_did_not_start():
    cluster = lc.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    c = lc.Client(cluster, set_as_default=False)
    c.shutdown()
    assert c.closed and cluster.closed


def test_two_clients_of_one_cluster_keep_their_own_futures_of_a_key():
    cluster = lc.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    first = lc.Client(cluster, set_as_default=False)
    second = lc.Client(cluster, set_as_default=False)
    try:
        a, b = first.submit(slow_inc, 1, 0.2), second.submit(slow_inc, 1, 0.2)
        assert a.key == b.key
        assert a.result(timeout=30) == 2 and b.result(timeout=30) == 2
        del b  # the second client lets go: the first still has its result
        time.sleep(0.3)
        assert first.who_has(a)[a.key] and a.result(timeout=30) == 2
        c, d = first.submit(slow_inc, 5, 0.3), second.submit(slow_inc, 5, 0.3)
        second.cancel(d)  # cancels the second client's future only
        assert c.result(timeout=30) == 6 and d.cancelled()
    finally:
        second.close()
        first.close()
        cluster.close()


def test_an_asynchronous_client_awaits_scatter_cancel_retry_and_get():
    async def main():
        cluster = lc.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
        async with lc.Client(cluster, asynchronous=True, set_as_default=False) as c:
            [x] = await c.scatter([20])
            assert await c.gather(c.submit(inc, x)) == 21
            assert await c.get({"a": (inc, 1)}, "a") == 2
            slow = c.submit(slow_inc, 1, 5, pure=False)
            await c.cancel([slow])
            assert slow.cancelled()
            await c.wait_for_workers(1, timeout=10)
        cluster.close()

    asyncio.run(main())


def test_futures_inside_lazycell_delayed_calls_are_their_values(client):
    # (conftest resets lc.config for each test: the client is named, not the default)
    future = client.submit(inc, 1)
    assert lc.delayed(inc)(future).compute(scheduler=client) == 3
    assert lc.compute(lc.delayed(sum)([future, future]), scheduler=client)[0] == 4
    assert lc.delayed(lambda d: d["k"] * 10)({"k": future}).compute(scheduler=client) == 20
    assert client.compute(lc.delayed(inc)(future)).result(timeout=30) == 3
    assert lc.delayed(future).compute(scheduler=client) == 2


def count_call(path, x):
    with open(path, "a") as f:
        f.write("x")
    return x + 1


def test_a_copy_takes_over_when_the_worker_holding_a_result_dies(tmp_path):
    calls = str(tmp_path / "calls")
    with lc.Client(
        n_workers=2, threads_per_worker=1, memory_limit=None, dashboard_address=None
    ) as c:
        future = c.submit(count_call, calls, 1)
        assert future.result(timeout=30) == 2
        c.replicate(future)
        holder, copy = c.who_has(future)[future.key]
        os.kill(c.run(os.getpid)[holder], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while c.who_has(future)[future.key] != [copy]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert future.result(timeout=30) == 2
        assert open(calls).read() == "x"  # not computed again


def test_released_results_take_their_copies_with_them(client):
    future = client.submit(inc, 777, pure=False)
    future.result(timeout=30)
    client.replicate(future, n=2)
    key = future.key
    assert len(client.who_has(future)[key]) == 2
    del future
    deadline = time.monotonic() + 10
    while any(key in keys for keys in client.has_what().values()):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_replicate_refuses_a_bad_count(client):
    with pytest.raises(ValueError, match="holders"):
        client.replicate(client.submit(inc, 1), n=0)
