"""Behaviour every local scheduler shares: results, big graphs, errors, release of results."""

import contextvars
import decimal
import os
import threading
import time
import weakref
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial

import pytest

import lazycell as lc
from lazycell.events import RemoteTraceback


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def fail_on(x, bad):
    if x == bad:
        return 1 / 0
    return x


def tree_graph(n, fan_in=8):
    dsk = {("leaf", i): (inc, i) for i in range(n)}
    level, keys = 0, [("leaf", i) for i in range(n)]
    while len(keys) > 1:
        level += 1
        parents = []
        for j in range(0, len(keys), fan_in):
            parent = ("sum", level, j)
            dsk[parent] = (sum, keys[j : j + fan_in])
            parents.append(parent)
        keys = parents
    return dsk, keys[0]


def test_results_and_nested_outputs(scheduler):
    a, b = lc.delayed(inc)(1), lc.delayed(add)(2, 3)
    assert lc.compute(a, [b, {"c": a}], scheduler=scheduler) == (2, [5, {"c": 2}])


def test_graph_of_100_000_tasks_is_correct(scheduler):
    dsk, root = tree_graph(90_000)
    assert len(dsk) > 100_000
    assert lc.get(dsk, root, scheduler=scheduler) == sum(range(1, 90_001))


def test_10_000_deep_chain(scheduler):
    dsk = {f"x{i + 1}": (inc, f"x{i}") for i in range(10_000)}
    dsk["x0"] = 0
    assert lc.get(dsk, "x10000", scheduler=scheduler) == 10_000


def test_only_tasks_needed_for_the_requested_keys_run(scheduler):
    dsk = {"a": 1, "b": (inc, "a"), "boom": (fail_on, 1, 1)}
    assert lc.get(dsk, "b", scheduler=scheduler) == 2


def test_error_keeps_the_users_type_and_names_the_task(scheduler):
    lazy = lc.delayed(fail_on, name="risky")(3, 3)
    with pytest.raises(ZeroDivisionError) as info:
        lazy.compute(scheduler=scheduler)
    exc = info.value
    assert exc.lazycell_task_key == lazy.key
    assert exc.lazycell_function == "fail_on"
    notes = "\n".join(getattr(exc, "__notes__", []))
    assert repr(lazy.key) in notes and "function fail_on" in notes


@pytest.mark.parametrize("scheduler", ["sync", "threads"])  # processes: see pool test below
def test_first_failure_stops_scheduling_new_work(scheduler):
    started = []

    def slow(i):
        started.append(i)
        time.sleep(0.02)
        return i

    dsk = {("slow", i): (slow, i) for i in range(60)}
    dsk["bad"] = (fail_on, 0, 0)
    dsk["all"] = (sum, ["bad", *[("slow", i) for i in range(60)]])
    with pytest.raises(ZeroDivisionError):
        lc.get(dsk, "all", scheduler=scheduler)
    time.sleep(0.2)  # let tasks already running finish
    assert len(started) < 60


def test_remote_failure_shows_the_worker_traceback_with_the_users_line():
    with pytest.raises(ZeroDivisionError) as info:
        lc.delayed(fail_on)(5, 5).compute(scheduler="processes")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "test_schedulers.py" in cause.text
    assert "return 1 / 0" in cause.text
    assert "process_worker" not in cause.text  # scheduler internals are trimmed


class Unpicklable:
    def __reduce__(self):
        raise TypeError("Unpicklable objects refuse to be pickled")


def make_lock():
    return threading.Lock()


def test_unpicklable_argument_names_the_task_and_the_type():
    lazy = lc.delayed(repr, name="show")(Unpicklable())
    with pytest.raises(TypeError) as info:
        lazy.compute(scheduler="processes")
    message = str(info.value)
    assert repr(lazy.key) in message and "Unpicklable" in message
    assert "argument 0 of type test_schedulers.Unpicklable" in message
    assert isinstance(info.value, lc.SerializationError)


def test_unpicklable_result_names_the_task_and_the_type():
    lazy = lc.delayed(make_lock)()
    with pytest.raises(TypeError) as info:
        lazy.compute(scheduler="processes")
    message = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert "lock" in message and "make_lock" in message


def test_the_processes_pool_stays_usable_after_errors():
    with pytest.raises(ZeroDivisionError):
        lc.delayed(fail_on)(1, 1).compute(scheduler="processes")
    assert lc.delayed(inc)(1).compute(scheduler="processes") == 2


def seek_frame(tb, function_name):
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function_name:
            return tb.tb_frame
        tb = tb.tb_next
    return None


def test_rerun_exceptions_locally_gives_real_frames_with_real_inputs(scheduler):
    upstream = lc.delayed(add)(40, 2)
    lazy = lc.delayed(fail_on)(upstream, 42)
    with pytest.raises(ZeroDivisionError) as info:
        lazy.compute(scheduler=scheduler, rerun_exceptions_locally=True)
    frame = seek_frame(info.value.__traceback__, "fail_on")
    assert frame is not None, "the user's frame is in the traceback"
    assert frame.f_locals["x"] == 42
    assert frame.f_locals["bad"] == 42


def test_failed_task_carries_a_rerun_with_its_real_inputs(scheduler):
    lazy = lc.delayed(fail_on)(lc.delayed(add)(1, 2), 3)
    with pytest.raises(ZeroDivisionError) as info:
        lazy.compute(scheduler=scheduler)
    with pytest.raises(ZeroDivisionError) as again:
        info.value.lazycell_rerun()
    frame = seek_frame(again.value.__traceback__, "fail_on")
    assert frame.f_locals["x"] == 3
    assert frame.f_globals is fail_on.__globals__  # ran here, in this process


def process_pid(_=None):
    return os.getpid()


def thread_name(_=None):
    time.sleep(0.01)
    return threading.current_thread().name


def test_sync_runs_in_the_calling_thread():
    assert lc.delayed(thread_name)().compute(scheduler="sync") == threading.current_thread().name


def test_threads_scheduler_uses_up_to_num_workers_threads():
    names = lc.compute(
        [lc.delayed(thread_name)(i) for i in range(40)], scheduler="threads", num_workers=2
    )[0]
    assert 1 <= len(set(names)) <= 2
    assert threading.current_thread().name not in names


def test_processes_run_in_other_processes_that_persist_between_computes():
    first = set(
        lc.compute(
            [lc.delayed(process_pid)(i) for i in range(8)], scheduler="processes", num_workers=2
        )[0]
    )
    second = set(
        lc.compute(
            [lc.delayed(process_pid)(i) for i in range(8)], scheduler="processes", num_workers=2
        )[0]
    )
    assert os.getpid() not in first
    assert first | second <= set(lc.schedulers.processes.shared_pool(2).pids)


def test_an_executor_instance_is_a_scheduler():
    with ThreadPoolExecutor(3, thread_name_prefix="user-pool") as pool:
        names = lc.compute([lc.delayed(thread_name)(i) for i in range(10)], scheduler=pool)[0]
    assert all(name.startswith("user-pool") for name in names)
    with ProcessPoolExecutor(2) as pool:
        pids = lc.compute([lc.delayed(process_pid)(i) for i in range(4)], scheduler=pool)[0]
        assert lc.get({"a": 1, "b": (inc, "a")}, "b", scheduler=pool) == 2
    assert os.getpid() not in pids


def test_a_get_function_is_a_scheduler():
    sync_get = partial(lc.get, scheduler="sync")
    assert lc.delayed(add)(lc.delayed(inc)(1), 3).compute(scheduler=sync_get) == 5


def test_unknown_scheduler_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid names are .*processes.*threads"):
        lc.delayed(inc)(1).compute(scheduler="warp-drive")


class Probe:
    """An intermediate result whose lifetime the test can watch."""

    def __init__(self, i):
        self.i = i


def make_probe(i):
    return Probe(i)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])  # processes: the test below
def test_intermediates_are_released_before_the_compute_ends(scheduler):
    alive = weakref.WeakSet()
    peak_alive = [0]

    def produce(i):
        probe = Probe(i)
        alive.add(probe)
        peak_alive[0] = max(peak_alive[0], len(alive))
        return probe

    def consume(probe):
        return probe.i

    dsk = {}
    for i in range(200):
        dsk[("p", i)] = (produce, i)
        dsk[("c", i)] = (consume, ("p", i))
    dsk["total"] = (sum, [("c", i) for i in range(200)])
    assert lc.get(dsk, "total", scheduler=scheduler, num_workers=2) == sum(range(200))
    # Depth-first order and release after the last use: only a handful alive at once.
    assert peak_alive[0] <= 8


_unpickled_alive = weakref.WeakSet()
_unpickled_peak = [0]


def _register_unpickled(i):
    probe = Probe(i)
    _unpickled_alive.add(probe)
    _unpickled_peak[0] = max(_unpickled_peak[0], len(_unpickled_alive))
    return probe


class TrackedProbe(Probe):
    def __reduce__(self):
        return (_register_unpickled, (self.i,))


def make_tracked(i):
    return TrackedProbe(i)


def probe_value(probe):
    return probe.i


def test_processes_release_intermediates_held_in_the_calling_process():
    _unpickled_peak[0] = 0
    dsk = {}
    for i in range(200):
        dsk[("p", i)] = (make_tracked, i)
        dsk[("c", i)] = (probe_value, ("p", i))
    dsk["total"] = (sum, [("c", i) for i in range(200)])
    assert lc.get(dsk, "total", scheduler="processes", num_workers=2) == sum(range(200))
    assert _unpickled_peak[0] > 0, "the probe saw results arrive in this process"
    assert _unpickled_peak[0] < 200
    assert len(_unpickled_alive) == 0


ANSWER = contextvars.ContextVar("ANSWER", default=42)


def read_answer(_):
    return ANSWER.get()


def divide_in_context(x):
    return decimal.Decimal(x) / decimal.Decimal(3)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_tasks_see_the_context_variables_set_around_the_compute(scheduler):
    token = ANSWER.set(43)
    try:
        results = lc.compute([lc.delayed(read_answer)(i) for i in range(8)], scheduler=scheduler)
    finally:
        ANSWER.reset(token)
    assert results == ([43] * 8,)
    assert lc.delayed(read_answer)(0).compute(scheduler=scheduler) == 42


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_decimal_local_context_holds_inside_tasks(scheduler):
    with decimal.localcontext(prec=5):
        (third,) = lc.compute(lc.delayed(divide_in_context)(1), scheduler=scheduler)
    assert str(third) == "0.33333"
