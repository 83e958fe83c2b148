"""No fault or bad input may hang a compute or leak workers: the local schedulers' pools.

Each compute that could hang runs under a guard (:func:`within`) that fails
the test instead of waiting forever.
"""

import importlib
import threading
import time

import psutil
import pytest

import lazycell as lc
from lazycell.schedulers import processes, threads
from lazycell.schedulers.pools import SharedPools

GUARD_SECONDS = 60
N_WORKERS = 2


def within(seconds, compute, *args, **kwargs):
    """``compute(*args, **kwargs)`` in a helper thread; a failed test if it takes longer."""
    outcome = {}

    def run():
        try:
            outcome["value"] = compute(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    helper = threading.Thread(target=run, name="test-compute-guard", daemon=True)
    helper.start()
    helper.join(seconds)
    if helper.is_alive():
        pytest.fail(f"the compute hung: no result or error after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def inc(x):
    return x + 1


def _raise_on_load():
    raise RuntimeError("this object refuses to be unpickled")


class LoadsNowhere:
    """Pickles fine; unpickling it raises, in any process."""

    def __reduce__(self):
        return (_raise_on_load, ())


def make_loads_nowhere(_=None):
    return LoadsNowhere()


def result_or_loads_nowhere(i, bad):
    return LoadsNowhere() if i == bad else i


class ErrorWithCode(Exception):
    """The classic pickling bug: an ``__init__`` argument not passed on to ``super()``."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def raise_error_with_code(_=None):
    raise ErrorWithCode("disk quota exceeded", 122)


def full_text(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def assert_no_batch_in_flight():
    pool = processes.shared_pool(N_WORKERS)
    held = [list(w.in_flight) for w in pool.workers]
    assert not any(held), f"workers still hold batches {held} of a finished compute"


def assert_the_pool_still_computes():
    lazy = [lc.delayed(inc)(i) for i in range(8)]
    (results,) = within(
        GUARD_SECONDS, lc.compute, lazy, scheduler="processes", num_workers=N_WORKERS
    )
    assert results == [i + 1 for i in range(8)]


# ------------------------------------------------ processes: what cannot be unpickled


@pytest.mark.timeout(300)
def test_an_unpicklable_result_fails_its_task_by_name_and_the_pool_stays_usable():
    lazy = lc.delayed(make_loads_nowhere)()
    for _ in range(2 * N_WORKERS + 1):
        with pytest.raises(lc.SerializationError) as info:
            within(GUARD_SECONDS, lazy.compute, scheduler="processes", num_workers=N_WORKERS)
        message = str(info.value)
        assert repr(lazy.key) in message and "make_loads_nowhere" in message
        assert "cannot be unpickled in the kernel" in message
        assert "this object refuses to be unpickled" in message
        assert "threads scheduler" in message and "picklable data" in message
        assert_no_batch_in_flight()
    assert_the_pool_still_computes()


@pytest.mark.timeout(300)
def test_an_exception_that_cannot_be_unpickled_fails_its_task_by_name_and_the_pool_stays_usable():
    lazy = lc.delayed(raise_error_with_code)()
    for _ in range(2 * N_WORKERS + 1):
        with pytest.raises(lc.TaskError) as info:
            within(GUARD_SECONDS, lazy.compute, scheduler="processes", num_workers=N_WORKERS)
        text = full_text(info.value)
        assert repr(lazy.key) in text and "raise_error_with_code" in text
        assert "test_schedulers_faults.ErrorWithCode: disk quota exceeded" in text
        assert "cannot be unpickled in the kernel" in text and "missing" in text
        assert "threads scheduler" in text
        assert info.value.lazycell_task_key == lazy.key
        assert_no_batch_in_flight()
    assert_the_pool_still_computes()


@pytest.mark.timeout(300)
def test_an_argument_that_cannot_be_unpickled_in_a_worker_fails_by_name_and_the_pool_stays_usable():
    lazy = lc.delayed(repr, name="show")(LoadsNowhere())
    for _ in range(2 * N_WORKERS + 1):
        with pytest.raises(lc.SerializationError) as info:
            within(GUARD_SECONDS, lazy.compute, scheduler="processes", num_workers=N_WORKERS)
        message = str(info.value)
        assert repr(lazy.key) in message
        assert "argument 0 of type test_schedulers_faults.LoadsNowhere" in message
        assert "cannot be unpickled in a worker process" in message
        assert "this object refuses to be unpickled" in message
        assert_no_batch_in_flight()
    assert_the_pool_still_computes()


@pytest.mark.timeout(120)
def test_a_result_that_cannot_be_unpickled_fails_its_own_task_not_its_batch():
    tasks = [lc.delayed(result_or_loads_nowhere)(i, 5) for i in range(8)]
    with pytest.raises(lc.SerializationError) as info:
        within(GUARD_SECONDS, lc.compute, tasks, scheduler="processes", num_workers=N_WORKERS)
    assert info.value.lazycell_task_key == tasks[5].key
    assert repr(tasks[5].key) in str(info.value)
    assert_the_pool_still_computes()


# ------------------------------------------------ how many threads and processes run


def lazycell_pool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lazycell-thread")]


def lazycell_worker_pids() -> set[int]:
    pids = set()
    for child in psutil.Process().children():
        try:
            if "lazycell.schedulers.process_worker" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def wait_until(condition, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_threads_start_only_as_many_threads_as_the_graph_is_wide():
    many = threads.MAX_WORKERS
    before = threading.active_count()
    assert within(GUARD_SECONDS, lc.delayed(inc)(1).compute, scheduler="threads", num_workers=many)
    assert threading.active_count() - before <= 1
    four_wide = [lc.delayed(time.sleep)(0.05) for _ in range(4)]
    within(GUARD_SECONDS, lc.compute, four_wide, scheduler="threads", num_workers=many)
    assert threading.active_count() - before <= 4


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_an_absurd_num_workers_is_a_clear_error_and_starts_nothing(scheduler):
    absurd = 10**6
    maximum = importlib.import_module(f"lazycell.schedulers.{scheduler}").MAX_WORKERS
    assert absurd > maximum
    threads_before, workers_before = threading.active_count(), lazycell_worker_pids()
    with pytest.raises(ValueError) as info:
        within(GUARD_SECONDS, lc.delayed(inc)(1).compute, scheduler=scheduler, num_workers=absurd)
    message = str(info.value)
    assert f"num_workers={absurd} is more than lazycell allows" in message
    assert f"MAX_WORKERS={maximum}" in message
    assert threading.active_count() == threads_before
    assert lazycell_worker_pids() == workers_before


@pytest.mark.timeout(300)
def test_pools_of_sizes_no_longer_used_are_retired():
    sizes = [1, 2, 3, 4, 5]
    for n in sizes:
        assert within(
            GUARD_SECONDS, lc.delayed(inc)(n).compute, scheduler="processes", num_workers=n
        )
    kept = sizes[-processes.KEEP_POOL_SIZES :]
    assert lazycell_worker_pids() == {
        pid for n in kept for pid in processes.existing_pool(n).pids
    }, "only the workers of the sizes used last are alive"
    assert len(lazycell_worker_pids()) <= sum(kept)


def test_thread_pools_of_sizes_no_longer_used_are_retired():
    sizes = [3, 4, 5, 6, 7]
    for n in sizes:
        wide = [lc.delayed(time.sleep)(0.05) for _ in range(n)]
        within(GUARD_SECONDS, lc.compute, wide, scheduler="threads", num_workers=n)
    kept = sizes[-threads.KEEP_POOL_SIZES :]
    assert wait_until(lambda: len(lazycell_pool_threads()) <= sum(kept)), (
        f"{len(lazycell_pool_threads())} pool threads alive; the pools of {kept} have "
        f"{sum(kept)} at most"
    )


# ------------------------------------------------ the cache of pools, without processes


class FakePool:
    def __init__(self, n):
        self.n = n
        self.is_shut_down = False

    def shutdown(self):
        self.is_shut_down = True


def test_a_pool_pushed_out_of_the_cache_while_in_use_stops_when_its_compute_ends():
    pools = SharedPools(FakePool, keep=2)
    with pools.use(1) as first:
        with pools.use(2), pools.use(3):  # size 1 leaves the cache meanwhile
            pass
        assert not first.is_shut_down
        assert pools.existing(1) is None
    assert first.is_shut_down
    assert not pools.existing(2).is_shut_down and not pools.existing(3).is_shut_down


def test_a_pool_pushed_out_of_the_cache_while_idle_stops_at_once():
    pools = SharedPools(FakePool, keep=2)
    first, second = pools.get(1), pools.get(2)
    pools.get(1)  # used again: now size 2 is the least recently used
    pools.get(3)
    assert second.is_shut_down and not first.is_shut_down
    assert pools.existing(2) is None and pools.existing(1) is first


def test_looking_up_a_pool_starts_nothing():
    pools = SharedPools(FakePool, keep=2)
    assert pools.existing(4) is None
    assert pools.by_size == {}
    assert processes.existing_pool(processes.MAX_WORKERS) is None
