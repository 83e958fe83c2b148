"""The same calls on dask.distributed and on lc.Client give the same results and errors.

One ``distributed.LocalCluster`` (threads in this process: 2 workers x 1 thread)
and one lazycell cluster (2 worker processes x 1 thread) serve the whole module.
Each scenario takes a ``System`` — the client and the module of names
(``distributed`` or ``lazycell``) — and returns plain data, or the kind of
error it raised; the test asserts both systems return the same. Scenarios
cover issue 16's items 6-11: dask collections on the open client, scatter /
cancel / retry / traceback / release / task stream, submit and map options,
tasks that submit tasks, as_completed and wait, and the coordination
primitives.

Where lazycell differs on purpose it is not compared here: a second
``Semaphore`` of the same name with another ``max_leases`` raises ValueError
at once in lazycell (dask.distributed logs the error on its event loop and
returns); see tests/test_distributed_tasks_and_primitives.py.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
import traceback
from dataclasses import dataclass

import pytest
from kernel_helpers_tasks import fail_until

import lazycell as lc

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@dataclass
class System:
    name: str  # "dask" or "lazycell"
    client: object
    cluster: object
    api: object  # the module with as_completed, wait, Lock, get_client, ...

    def new_client(self):
        """Another client on the same cluster, the default while it is open."""
        if self.name == "dask":
            return distributed.Client(self.cluster)
        return lc.Client(self.cluster)


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    d_cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address="127.0.0.1:0",  # loopback, a free port (8787 may be taken)
        resources={"GPU": 1},
    )
    d_client = distributed.Client(d_cluster)
    l_client = lc.Client(
        n_workers=2,
        threads_per_worker=1,
        memory_limit=None,
        dashboard_address=None,
        resources={"GPU": 1},
    )
    yield {
        "dask": System("dask", d_client, d_cluster, distributed),
        "lazycell": System("lazycell", l_client, l_client.cluster, lc),
    }
    l_client.close()
    d_client.close()
    d_cluster.close()


def outcome(scenario, system: System, tmp_path):
    """What the scenario returned, or ``("raised", kind)`` for the error it raised."""
    try:
        return scenario(system, tmp_path / system.name)
    except Exception as exc:
        return ("raised", error_kind(exc))


def error_kind(exc: BaseException) -> str:
    """The error's standard type: distributed and lazycell subclass them differently."""
    if isinstance(exc, concurrent.futures.CancelledError):
        return "CancelledError"
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return type(exc).__name__


# ------------------------------------------------------------------ functions for tasks


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def slow_inc(x, seconds=0.3):
    time.sleep(seconds)
    return x + 1


def raise_key_error(x):
    return helper_raising(x)


def helper_raising(x):
    raise KeyError(x)


def echo(*args, **kwargs):
    return list(args), sorted(kwargs)


def now(_=None):
    return time.time()


def module_of(system_name: str):
    return distributed if system_name == "dask" else lc


def submit_inside(system_name, n):
    api = module_of(system_name)
    client = api.get_client()
    futures = client.map(inc, range(n))
    with api.worker_client() as c:
        return sum(c.gather(futures))


def secede_and_wait(system_name):
    api = module_of(system_name)
    future = api.get_client().submit(inc, 41)
    api.secede()
    value = future.result()
    api.rejoin()
    return value


def inner_failure(system_name):
    api = module_of(system_name)
    future = api.get_client().submit(raise_key_error, "inner")
    with api.worker_client():
        exc = future.exception()
    return type(exc).__name__


def write_after(path, seconds):
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("done")


def use_lock(system_name, name):
    lock = module_of(system_name).Lock(name)
    got = lock.acquire(timeout=0.2)
    if got:
        lock.release()
    return got


def wait_event(system_name, name, timeout):
    return module_of(system_name).Event(name).wait(timeout=timeout)


def put_square(system_name, name, i):
    module_of(system_name).Queue(name).put(i * i)


def put_new_future(system_name, name):
    api = module_of(system_name)
    api.Queue(name).put(api.get_client().submit(pow, 2, 10, pure=False))


def result_of_queued_future(system_name, name):
    api = module_of(system_name)
    future = api.Queue(name).get(timeout=30)
    with api.worker_client():
        return future.result(timeout=30)


def get_variable(system_name, name):
    return module_of(system_name).Variable(name).get(timeout=10)


def take_lease(system_name, name):
    sem = module_of(system_name).Semaphore(max_leases=1, name=name)
    got = sem.acquire(timeout=0.2)
    if got:
        sem.release()
    return got


def wait_until(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def unique(system: System, prefix: str) -> str:
    return f"{prefix}-{system.name}-{time.monotonic_ns()}"


# ------------------------------------------------------ 6. the open client is dask's scheduler


def open_client_computes_dask_collections(system, tmp):
    before = dask.config.get("scheduler", None)
    with system.new_client():
        total = int(da.arange(10, chunks=3).sum().compute())
        pids = {dask.delayed(os.getpid)().compute() for _ in range(1)}
    after = dask.config.get("scheduler", None)
    on_cluster = system.name == "dask" or pids.isdisjoint({os.getpid()})
    return total, after is before, on_cluster


def scheduler_is_client(system, tmp):
    x = da.ones(6, chunks=2)
    return int(x.sum().compute(scheduler=system.client)), dask.compute(
        x.sum(), scheduler=system.client
    )[0].item()


def client_get_keeps_the_shape(system, tmp):
    dsk = {"a": 1, "b": (inc, "a"), "c": (add, "a", "b")}
    return system.client.get(dsk, ["c", ["a", "b"]]), system.client.get(dsk, "b")


def persisted_collection_computes(system, tmp):
    y = system.client.persist(da.arange(12, chunks=4) * 2)
    return int(y.sum().compute(scheduler=system.client)), int(
        (y + 1).sum().compute(scheduler=system.client)
    )


def futures_inside_delayed(system, tmp):
    f = system.client.submit(pow, 2, 5)
    return (
        dask.delayed(inc)(f).compute(scheduler=system.client),
        dask.delayed(sum)([f, f]).compute(scheduler=system.client),
    )


# --------------------------------------- 7. scatter, cancel, retry, traceback, release, stream


def scatter_shapes(system, tmp):
    c = system.client
    as_list = c.scatter([1, 2, 3])
    as_dict = c.scatter({"sx": 10, "sy": 20})
    single = c.scatter(99)
    [shared] = c.scatter([5], broadcast=True)
    return (
        type(as_list).__name__,
        c.gather(as_list),
        sorted(as_dict),
        as_dict["sx"].key,
        c.gather(as_dict),
        single.result(),
        c.submit(add, shared, 1).result(),
        len(c.who_has(shared)[shared.key]),
        c.scatter([7])[0].key == c.scatter([7])[0].key,
    )


def cancel_futures(system, tmp):
    c = system.client
    futures = c.map(slow_inc, [1, 2], [1, 1], pure=False)
    c.cancel(futures)
    wait_until(lambda: all(f.cancelled() for f in futures))
    statuses = [f.status for f in futures]
    futures[0].result(timeout=5)
    return statuses


def retry_a_failed_task(system, tmp):
    tmp.mkdir(exist_ok=True)
    future = system.client.submit(fail_until, str(tmp / "retry"), 1)
    first = type(future.exception(timeout=30)).__name__
    future.retry()
    return first, future.result(timeout=30)


def client_retry_reruns_failed_inputs(system, tmp):
    tmp.mkdir(exist_ok=True)
    failing = system.client.submit(fail_until, str(tmp / "client-retry"), 1)
    dependent = system.client.submit(inc, failing)
    first = type(dependent.exception(timeout=30)).__name__
    system.client.retry([dependent])
    return first, dependent.result(timeout=30)


def traceback_of_a_failure(system, tmp):
    future = system.client.submit(raise_key_error, "tb")
    text = "".join(traceback.format_tb(future.traceback(timeout=30)))
    ok = system.client.submit(inc, 1)
    ok.result()
    return "helper_raising" in text, ok.traceback() is None


def replicate_a_result(system, tmp):
    c = system.client
    future = c.submit(inc, 4321, pure=False)
    future.result()
    c.replicate([future])
    copies = len(c.who_has(future)[future.key])
    return copies, c.submit(inc, future, pure=False).result()


def release_a_future(system, tmp):
    future = system.client.submit(inc, 5000, pure=False)
    future.result()
    key = future.key
    future.release()
    return wait_until(lambda: key not in system.client.who_has())


def task_stream(system, tmp):
    with system.api.get_task_stream() as ts:
        system.client.gather(system.client.map(inc, [100, 101], key=["ts-x", "ts-y"]))
    records = {r["key"]: r for r in ts.data}
    return (
        {"ts-x", "ts-y"} <= set(records),
        "compute" in {s["action"] for s in records["ts-x"]["startstops"]},
    )


# --------------------------------------------------------- 8. submit / map options


def options_never_reach_the_function(system, tmp):
    c = system.client
    return c.submit(
        echo,
        1,
        retries=1,
        priority=3,
        resources={"GPU": 1},
        allow_other_workers=True,
        workers=list(c.scheduler_info()["workers"])[:1],
        pure=False,
        kept=True,
    ).result(timeout=30)


def retries_rerun_until_success(system, tmp):
    tmp.mkdir(exist_ok=True)
    return system.client.submit(fail_until, str(tmp / "retries"), 2, retries=2).result(timeout=30)


def retries_exhausted(system, tmp):
    tmp.mkdir(exist_ok=True)
    return system.client.submit(fail_until, str(tmp / "exhausted"), 5, retries=1).result(timeout=30)


def map_with_key_list_and_batch_size(system, tmp):
    prefix = unique(system, "k")
    keys = [f"{prefix}-{i}" for i in range(3)]
    futures = system.client.map(inc, [1, 2, 3], key=keys, batch_size=2)
    return [f.key for f in futures] == keys, system.client.gather(futures)


def priority_orders_waiting_tasks(system, tmp):
    c = system.client
    worker = list(c.scheduler_info()["workers"])[:1]
    blocker = c.submit(slow_inc, 0, 0.3, workers=worker, pure=False)
    low = c.submit(now, blocker, workers=worker, priority=-10, pure=False)
    high = c.submit(now, blocker, workers=worker, priority=10, pure=False)
    return high.result(timeout=30) <= low.result(timeout=30)


def futures_in_sets(system, tmp):
    a, b = system.client.submit(inc, 1), system.client.submit(inc, 2)
    return system.client.submit(sorted, {a, b}).result(timeout=30)


# ------------------------------------------------------------- 9. tasks that submit tasks


def get_client_inside_a_task(system, tmp):
    return system.client.submit(submit_inside, system.name, 5).result(timeout=60)


def secede_inside_a_task(system, tmp):
    return system.client.submit(secede_and_wait, system.name).result(timeout=60)


def inner_failure_keeps_its_type(system, tmp):
    return system.client.submit(inner_failure, system.name).result(timeout=60)


def fire_and_forget_runs_to_the_end(system, tmp):
    tmp.mkdir(exist_ok=True)
    path = str(tmp / "fired")
    future = system.client.submit(write_after, path, 0.2, pure=False)
    system.api.fire_and_forget(future)
    del future
    return wait_until(lambda: os.path.exists(path))


# ---------------------------------------------------------- 10. as_completed and wait


def as_completed_add_and_count(system, tmp):
    c = system.client
    ac = system.api.as_completed([c.submit(inc, 1)])
    seen = []
    for future in ac:
        value = future.result()
        seen.append(value)
        if value < 3:
            ac.add(c.submit(inc, value))
    return seen, ac.count(), ac.is_empty()


def as_completed_batches(system, tmp):
    futures = system.client.map(inc, range(5))
    batches = list(system.api.as_completed(futures).batches())
    return all(isinstance(b, list) for b in batches), sorted(f.result() for b in batches for f in b)


def as_completed_with_results(system, tmp):
    pairs = list(system.api.as_completed(system.client.map(inc, [1, 2]), with_results=True))
    return sorted(r for _, r in pairs)


def as_completed_raises_errors(system, tmp):
    failing = system.client.submit(raise_key_error, "ac")
    return list(system.api.as_completed([failing], with_results=True))


def as_completed_without_raising(system, tmp):
    failing = system.client.submit(raise_key_error, "ac2")
    [(future, (typ, exc, tb))] = list(
        system.api.as_completed([failing], with_results=True, raise_errors=False)
    )
    return typ.__name__, type(exc).__name__, future is failing


def wait_rejects_unknown_return_when(system, tmp):
    return system.api.wait([system.client.submit(inc, 1)], return_when="ANY")


def wait_first_completed(system, tmp):
    c = system.client
    fast, slow = c.submit(inc, 1), c.submit(slow_inc, 1, 1.0, pure=False)
    done, not_done = system.api.wait([fast, slow], return_when="FIRST_COMPLETED")
    return fast in done, len(done) + len(not_done)


def exception_with_timeout(system, tmp):
    future = system.client.submit(slow_inc, 1, 1.0, pure=False)
    return future.exception(timeout=0.05)


def exception_of_a_failure(system, tmp):
    return type(system.client.submit(raise_key_error, "e").exception(timeout=30)).__name__


# ------------------------------------------------------------------ 11. primitives


def lock_from_kernel_and_tasks(system, tmp):
    name = unique(system, "lock")
    lock = system.api.Lock(name)
    held = lock.acquire()
    from_task = system.client.submit(use_lock, system.name, name, pure=False).result(timeout=30)
    again = system.api.Lock(name).acquire(blocking=False)
    lock.release()
    after = system.client.submit(use_lock, system.name, name, pure=False).result(timeout=30)
    return held, from_task, again, after


def lock_released_too_often(system, tmp):
    system.api.Lock(unique(system, "lock")).release()


def lock_non_blocking_with_timeout(system, tmp):
    system.api.Lock(unique(system, "lock")).acquire(blocking=False, timeout=1)


def semaphore_leases(system, tmp):
    name = unique(system, "sem")
    sem = system.api.Semaphore(max_leases=2, name=name)
    first, second = sem.acquire(), sem.acquire()
    third = system.api.Semaphore(max_leases=2, name=name).acquire(timeout=0.1)
    value = sem.get_value()
    sem.release()
    sem.release()
    return first, second, third, value


def semaphore_in_a_task(system, tmp):
    name = unique(system, "sem")
    sem = system.api.Semaphore(max_leases=1, name=name)
    with sem:
        busy = system.client.submit(take_lease, system.name, name, pure=False).result(timeout=30)
    free = system.client.submit(take_lease, system.name, name, pure=False).result(timeout=30)
    return busy, free


def event_between_kernel_and_task(system, tmp):
    name = unique(system, "event")
    event = system.api.Event(name)
    timed_out = event.wait(timeout=0.1)
    waiting = system.client.submit(wait_event, system.name, name, 30, pure=False)
    time.sleep(0.2)
    pending = not waiting.done()
    event.set()
    got = waiting.result(timeout=30)
    is_set = event.is_set()
    event.clear()
    return timed_out, pending, got, is_set, event.is_set()


def variable_between_kernel_and_task(system, tmp):
    name = unique(system, "var")
    var = system.api.Variable(name)
    reader = system.client.submit(get_variable, system.name, name, pure=False)
    time.sleep(0.1)
    var.set({"threshold": 0.5})
    return reader.result(timeout=30), var.get()


def variable_get_times_out(system, tmp):
    system.api.Variable(unique(system, "var")).get(timeout=0.1)


def variable_holds_a_future(system, tmp):
    var = system.api.Variable(unique(system, "var"))
    future = system.client.submit(pow, 3, 3, pure=False)
    var.set(future)
    del future
    return var.get().result(timeout=30)


def queue_between_tasks_and_kernel(system, tmp):
    name = unique(system, "queue")
    queue = system.api.Queue(name)
    system.client.gather(
        [system.client.submit(put_square, system.name, name, i, pure=False) for i in range(3)]
    )
    return queue.qsize(), sorted(queue.get(batch=True)), queue.qsize()


def futures_through_a_queue(system, tmp):
    name = unique(system, "queue")
    queue = system.api.Queue(name)
    c = system.client
    c.submit(put_new_future, system.name, name, pure=False).result(timeout=30)
    in_kernel = queue.get(timeout=10).result(timeout=30)
    c.submit(put_new_future, system.name, name, pure=False).result(timeout=30)
    in_task = c.submit(result_of_queued_future, system.name, name, pure=False).result(timeout=30)
    return in_kernel, in_task


def queue_get_times_out(system, tmp):
    system.api.Queue(unique(system, "queue")).get(timeout=0.1)


def queue_batch_with_timeout(system, tmp):
    system.api.Queue(unique(system, "queue")).get(timeout=1, batch=2)


def queue_batch_of_n(system, tmp):
    queue = system.api.Queue(unique(system, "queue"))
    for i in range(3):
        queue.put(i)
    return queue.get(batch=2), queue.get()


SCENARIOS = [
    open_client_computes_dask_collections,
    scheduler_is_client,
    client_get_keeps_the_shape,
    persisted_collection_computes,
    futures_inside_delayed,
    scatter_shapes,
    cancel_futures,
    retry_a_failed_task,
    client_retry_reruns_failed_inputs,
    traceback_of_a_failure,
    replicate_a_result,
    release_a_future,
    task_stream,
    options_never_reach_the_function,
    retries_rerun_until_success,
    retries_exhausted,
    map_with_key_list_and_batch_size,
    priority_orders_waiting_tasks,
    futures_in_sets,
    get_client_inside_a_task,
    secede_inside_a_task,
    inner_failure_keeps_its_type,
    fire_and_forget_runs_to_the_end,
    as_completed_add_and_count,
    as_completed_batches,
    as_completed_with_results,
    as_completed_raises_errors,
    as_completed_without_raising,
    wait_rejects_unknown_return_when,
    wait_first_completed,
    exception_with_timeout,
    exception_of_a_failure,
    lock_from_kernel_and_tasks,
    lock_released_too_often,
    lock_non_blocking_with_timeout,
    semaphore_leases,
    semaphore_in_a_task,
    event_between_kernel_and_task,
    variable_between_kernel_and_task,
    variable_get_times_out,
    variable_holds_a_future,
    queue_between_tasks_and_kernel,
    futures_through_a_queue,
    queue_get_times_out,
    queue_batch_with_timeout,
    queue_batch_of_n,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_lazycell_does_what_dask_distributed_does(scenario, systems, tmp_path):
    expected = outcome(scenario, systems["dask"], tmp_path)
    got = outcome(scenario, systems["lazycell"], tmp_path)
    assert got == expected
