"""Task errors on the local cluster, dead workers, and recovery."""

import os
import signal
import threading
import time

import pytest

import lazycell as lc
from lazycell.events import RemoteTraceback

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as c:
        yield c


def make_items(n):
    return list(range(n))


def fails_on_long_input(items):
    if len(items) > 3:
        raise ValueError(f"too many items: {len(items)}")
    return items


def inc(x):
    return x + 1


def kill_my_worker():
    os.kill(os.getpid(), signal.SIGKILL)


def slow_square(x):
    time.sleep(0.05)
    return x * x


def slow_sum(values):
    time.sleep(0.05)
    return sum(values)


class Unpicklable(Exception):
    def __init__(self, message, handle):
        super().__init__(message)
        self.handle = handle

    def __reduce__(self):
        raise TypeError("no pickling")


def raises_unpicklable():
    raise Unpicklable("custom failure", threading.Lock())


# ----------------------------------------------------------------------------- errors


def test_a_failing_task_raises_the_users_exception_type_naming_the_task(client):
    items = client.submit(make_items, 10)
    failing = client.submit(fails_on_long_input, items)
    with pytest.raises(ValueError, match="too many items: 10") as info:
        failing.result(timeout=30)
    exc = info.value
    assert exc.lazycell_task_key == failing.key
    assert exc.lazycell_function == "fails_on_long_input"
    assert any("fails_on_long_input" in note for note in exc.__notes__)


def test_the_remote_traceback_is_the_cause_and_shows_the_users_line(client):
    failing = client.submit(fails_on_long_input, list(range(5)))
    with pytest.raises(ValueError) as info:
        failing.result(timeout=30)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert 'raise ValueError(f"too many items: {len(items)}")' in cause.text
    assert "lazycell/distributed" not in cause.text


def test_rerun_runs_the_failed_task_here_with_its_real_inputs_from_the_workers(client):
    items = client.submit(make_items, 7)
    failing = client.submit(fails_on_long_input, items)
    with pytest.raises(ValueError) as info:
        failing.result(timeout=30)
    with pytest.raises(ValueError, match="too many items: 7") as rerun_info:
        info.value.lazycell_rerun()
    assert rerun_info.value.__traceback__ is not None
    frames = []
    tb = rerun_info.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "fails_on_long_input"  # the user's frame, for %debug


def test_dependents_of_a_failed_task_raise_its_error(client):
    failing = client.submit(fails_on_long_input, list(range(5)))
    downstream = client.submit(len, failing)
    with pytest.raises(ValueError) as info:
        downstream.result(timeout=30)
    assert info.value.lazycell_task_key == failing.key


def test_an_unpicklable_exception_comes_back_as_its_type_from_its_message(client):
    with pytest.raises(Exception, match="custom failure") as info:
        client.submit(raises_unpicklable).result(timeout=30)
    assert "Unpicklable" in type(info.value).__name__ or "Unpicklable" in str(info.value)


def test_lc_compute_on_the_cluster_raises_like_every_scheduler(client):
    @lc.delayed
    def boom(x):
        return 1 / x

    with pytest.raises(ZeroDivisionError) as info:
        lc.compute(boom(0), scheduler="distributed")
    assert info.value.lazycell_scheduler == "distributed"
    assert callable(info.value.lazycell_rerun)


def test_rerun_exceptions_locally_raises_from_a_run_in_this_thread(client):
    items = lc.delayed(make_items)(9)
    with pytest.raises(ValueError, match="too many items: 9") as info:
        lc.delayed(fails_on_long_input)(items).compute(
            scheduler="distributed", rerun_exceptions_locally=True
        )
    assert "re-run locally" in " ".join(info.value.__notes__)


def test_the_cluster_is_usable_after_a_task_error(client):
    with pytest.raises(ValueError):
        client.submit(fails_on_long_input, list(range(5))).result(timeout=30)
    assert client.submit(inc, 1).result(timeout=30) == 2


# ----------------------------------------------------------------------------- faults


@pytest.mark.slow
def test_a_worker_killed_mid_compute_loses_nothing(client):
    squares = [lc.delayed(slow_square)(i) for i in range(40)]
    groups = [lc.delayed(slow_sum)(squares[i : i + 5]) for i in range(0, 40, 5)]
    total = lc.delayed(sum)(groups)
    future = client.compute(total)
    deadline = time.monotonic() + 30
    while not all(w["n_results"] for w in client.workers()):  # both workers hold results
        assert time.monotonic() < deadline
        time.sleep(0.01)
    victim = client.workers()[0]
    os.kill(victim["pid"], signal.SIGKILL)
    assert future.result(timeout=60) == sum(i * i for i in range(40))


@pytest.mark.slow
def test_a_dead_worker_is_replaced(client):
    before = {w["pid"] for w in client.workers()}
    os.kill(next(iter(before)), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        pids = {w["pid"] for w in client.workers()}
        if len(pids) == 2 and pids != before:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.submit(inc, 1).result(timeout=30) == 2


@pytest.mark.slow
def test_results_held_by_a_killed_worker_are_recomputed_for_their_futures(client):
    futures = client.map(inc, range(8))
    assert client.gather(futures) == list(range(1, 9))
    os.kill(client.workers()[0]["pid"], signal.SIGKILL)
    time.sleep(0.2)
    assert client.gather(futures) == list(range(1, 9))


@pytest.mark.slow
def test_a_task_that_kills_every_worker_fails_naming_it_and_the_cluster_stays_usable(client):
    killer = client.submit(kill_my_worker)
    with pytest.raises(lc.WorkerDiedError) as info:
        killer.result(timeout=90)
    message = str(info.value)
    assert "kill_my_worker" in message and "3 times" in message
    assert info.value.lazycell_task_key == killer.key
    assert client.submit(inc, 41).result(timeout=60) == 42
    deadline = time.monotonic() + 30
    while len(client.workers()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_allowed_failures_is_configurable():
    cluster = lc.LocalCluster(n_workers=1, memory_limit=None, allowed_failures=1)
    with cluster, lc.Client(cluster) as client:
        with pytest.raises(lc.WorkerDiedError, match="1 times"):
            client.submit(kill_my_worker).result(timeout=60)


def test_a_task_the_workers_cannot_unpickle_fails_alone_naming_it(client):
    import sys
    import types

    module = types.ModuleType("lazycell_kernel_only_module")  # importable here, not on workers
    exec("def only_here(x):\n    return x\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        innocent = [client.submit(inc, i) for i in range(3)]
        doomed = client.submit(module.only_here, 1)
        with pytest.raises(lc.SerializationError, match="only_here") as info:
            doomed.result(timeout=30)
        assert "cannot be unpickled on the worker" in str(info.value)
        assert client.gather(innocent) == [1, 2, 3]
        # In one batch with others: they still run, only it fails.
        mixed = [lc.delayed(inc)(10 + i) for i in range(4)] + [lc.delayed(module.only_here)(2)]
        futures = client.compute(mixed)
        assert client.gather(futures[:4]) == [11, 12, 13, 14]
        with pytest.raises(lc.SerializationError, match="only_here"):
            futures[4].result(timeout=30)
    finally:
        del sys.modules[module.__name__]
