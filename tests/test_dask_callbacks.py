"""dask's callbacks and multiprocessing config when lazycell's get-function runs dask's graph.

dask's own local schedulers call the active ``dask.callbacks.Callback`` hooks
(start / start_state / pretask / posttask / finish) from ``dask.local.get_async``;
``lc.get_scheduler(...)``'s get-function calls them too, on sync, threads and
processes, so ``ProgressBar``, ``Profiler`` and ``ResourceProfiler`` work as
with dask. dask's ``multiprocessing.initializer`` runs in each process worker;
``multiprocessing.context`` is honoured where lazycell's workers can be what it
asks, else refused. Each test compares with dask's own scheduler where dask
defines the answer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import time

import dask
import dask.array as da
import pytest
from dask.callbacks import Callback
from dask.diagnostics import Profiler, ProgressBar, ResourceProfiler

import lazycell as lc

SCHEDULERS = ["sync", "threads", "processes"]
INIT_VARIABLE = "LAZYCELL_TEST_INITIALIZED"


def get_function(scheduler):
    # Two workers: the processes tests share one warm pool of that size.
    if scheduler == "sync":
        return lc.get_scheduler("sync")
    return lc.get_scheduler(scheduler, num_workers=2)


class Recorder(Callback):
    """Every hook call, in order, with what a callback can see of the state."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _start(self, dsk):
        self.calls.append(("start",))

    def _start_state(self, dsk, state):
        self.calls.append(("start_state", task_count(state)))

    def _pretask(self, key, dsk, state):
        assert key in dsk
        self.calls.append(("pretask", key))

    def _posttask(self, key, result, dsk, state, worker_id):
        self.calls.append(("posttask", key, len(state["finished"]), task_count(state)))

    def _finish(self, dsk, state, errored):
        self.calls.append(("finish", errored))

    def keys(self, hook):
        return [call[1] for call in self.calls if call[0] == hook]


def task_count(state) -> int:
    """How many tasks dask's ProgressBar counts in ``state``."""
    return sum(len(state[k]) for k in ("ready", "waiting", "running")) + len(state["finished"])


def array_sum():
    return da.arange(400, chunks=25).reshape(20, 20).sum()


def dask_task_keys(collection) -> set:
    """The keys dask's own sync scheduler calls pretask for (see ``stable``)."""
    seen = Recorder()
    with seen:
        collection.compute(scheduler="sync")
    return stable(seen.keys("pretask"))


def stable(keys) -> set:
    """Keys without the token dask gives each compute's finalize task anew."""
    return {key.split("hlgfinalizecompute-")[0] if isinstance(key, str) else key for key in keys}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_progress_bar_prints_100_percent_for_a_lazycell_run_graph(scheduler):
    out = io.StringIO()
    with ProgressBar(out=out):
        assert array_sum().compute(scheduler=get_function(scheduler)) == sum(range(400))
    assert "100% Completed" in out.getvalue()


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_progress_bar_moves_through_the_compute_not_only_at_the_end(scheduler):
    @dask.delayed
    def slow(i):
        time.sleep(0.05)
        return i

    total = dask.delayed(sum)([slow(i) for i in range(16)])
    out = io.StringIO()
    with ProgressBar(dt=0.02, out=out):
        assert total.compute(scheduler=get_function(scheduler)) == sum(range(16))
    drawn = {part.split("|")[1].strip() for part in out.getvalue().split("\r") if "|" in part}
    assert drawn - {"0% Completed", "100% Completed"}, drawn


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_callback_sees_every_task_in_pretask_and_posttask(scheduler):
    x = array_sum()
    seen = Recorder()
    with seen:
        x.compute(scheduler=get_function(scheduler))
    expected = dask_task_keys(x)
    assert stable(seen.keys("pretask")) == expected
    assert stable(seen.keys("posttask")) == expected
    assert len(seen.keys("posttask")) == len(expected)  # once each
    assert seen.calls[0] == ("start",)
    assert seen.calls[1] == ("start_state", len(expected))
    assert seen.calls[-1] == ("finish", False)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_callback_state_counts_each_finished_task_and_ends_complete(scheduler):
    seen = Recorder()
    with seen:
        array_sum().compute(scheduler=get_function(scheduler))
    posts = [call for call in seen.calls if call[0] == "posttask"]
    finished_counts = [n_finished for _, _, n_finished, _ in posts]
    assert finished_counts == list(range(1, len(posts) + 1))
    assert {total for _, _, _, total in posts} == {len(posts)}  # as ProgressBar counts


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_pretask_comes_before_posttask_for_each_key(scheduler):
    seen = Recorder()
    with seen:
        array_sum().compute(scheduler=get_function(scheduler))
    position = {}
    for index, call in enumerate(seen.calls):
        if call[0] in ("pretask", "posttask"):
            position[call[0], call[1]] = index
    for key in seen.keys("posttask"):
        assert position["pretask", key] < position["posttask", key]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_profiler_has_one_record_per_task_with_its_real_start_and_end(scheduler):
    @dask.delayed(pure=True)
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    naps = [nap(0.05 + i / 1000) for i in range(4)]
    total = dask.delayed(sum)(naps)
    with Profiler() as profile:
        total.compute(scheduler=get_function(scheduler))
    records = {record.key: record for record in profile.results}
    assert stable(records) == dask_task_keys(total)
    assert len(profile.results) == len(records)
    for one in naps:
        record = records[one.key]
        assert record.end_time - record.start_time >= 0.05  # it spans the task's sleep
    summed = records[total.key]
    assert summed.start_time >= max(records[n.key].end_time for n in naps)


def test_resource_profiler_records_while_lazycell_runs_the_graph():
    @dask.delayed
    def busy(i):
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        return i

    with ResourceProfiler(dt=0.02) as resources:
        dask.delayed(sum)([busy(i) for i in range(2)]).compute(scheduler=get_function("threads"))
    assert len(resources.results) >= 2
    assert all(sample.mem > 0 for sample in resources.results)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_failing_task_still_calls_finish_with_errored_true(scheduler):
    @dask.delayed
    def fail(x):
        raise ZeroDivisionError(f"no {x}")

    seen = Recorder()
    with seen, pytest.raises(ZeroDivisionError, match="no 1"):
        dask.delayed(sum)([fail(1), dask.delayed(abs)(-2)]).compute(
            scheduler=get_function(scheduler)
        )
    assert seen.calls[0] == ("start",)
    assert seen.calls[-1] == ("finish", True)
    assert "fail" in str(seen.keys("pretask"))


def test_a_failing_start_callback_still_finishes_those_already_started():
    first, second = Recorder(), Callback(start=lambda dsk: 1 / 0)
    with first, second, pytest.raises(ZeroDivisionError):
        array_sum().compute(scheduler=get_function("sync"))
    # Callback.active is a set: the failing start may come before or after the recorder's.
    assert first.calls in ([("start",), ("finish", True)], [])


def test_callbacks_passed_to_compute_are_used_and_active_ones_are_not():
    passed, active = Recorder(), Recorder()
    with active:
        array_sum().compute(scheduler=get_function("threads"), callbacks=[passed])
    assert passed.keys("pretask") and passed.calls[-1] == ("finish", False)
    assert active.calls == []  # as dask.local.get_async: given callbacks replace active ones


def test_a_compute_nested_in_a_task_does_not_fire_the_outer_callbacks():
    @dask.delayed
    def inner_compute(n):
        return dask.delayed(sum)(list(range(n))).compute(scheduler=get_function("sync"))

    seen = Recorder()
    outer = inner_compute(5)
    with seen:
        assert outer.compute(scheduler=get_function("threads")) == 10
    assert seen.keys("pretask") == [outer.key]
    assert Callback.active == set()


def test_tasks_run_unwrapped_unless_a_callback_is_active():
    import inspect

    @dask.delayed
    def wrapped_by_callbacks(x):
        return any(frame.filename.endswith("get_function.py") for frame in inspect.stack())

    assert wrapped_by_callbacks(1).compute(scheduler=get_function("threads")) is False
    with Recorder():
        assert wrapped_by_callbacks(1).compute(scheduler=get_function("threads")) is True


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_start_callback_may_put_cached_values_in_the_graph_as_dask_cache_does(scheduler):
    calls = []

    @dask.delayed(pure=True)
    def expensive(x):
        calls.append(x)
        return x * 10

    part = expensive(1)
    total = dask.delayed(sum)([part, expensive(2)])

    def use_cached(dsk):  # what dask.cache.Cache._start does with the values it holds
        dsk[part.key] = 999

    with Callback(start=use_cached):
        expected = total.compute(scheduler="sync")
    calls.clear()
    with Callback(start=use_cached):
        assert total.compute(scheduler=get_function(scheduler)) == expected == 999 + 20
    if scheduler != "processes":  # a processes task appends in its worker
        assert calls == [2]


@pytest.mark.parametrize("executor", ["ThreadPoolExecutor", "ProcessPoolExecutor"])
def test_callbacks_fire_when_the_graph_runs_on_a_users_pool(executor):
    import concurrent.futures

    x = array_sum()
    seen = Recorder()
    with getattr(concurrent.futures, executor)(2) as pool, seen:
        assert x.compute(scheduler=get_function("sync"), pool=pool) == sum(range(400))
    assert stable(seen.keys("posttask")) == dask_task_keys(x)
    assert seen.calls[-1] == ("finish", False)


def test_callbacks_see_each_task_under_auto_on_the_scheduler_it_picks():
    x = dask.delayed(sum)([dask.delayed(abs)(i) for i in range(4)])
    seen = Recorder()
    with seen:
        assert x.compute(scheduler=lc.get_scheduler("auto")) == 6
    assert stable(seen.keys("posttask")) == dask_task_keys(x)
    assert seen.calls[-1] == ("finish", False)


# ----------------------------------------------------- dask's multiprocessing config


def mark_worker():
    os.environ[INIT_VARIABLE] = f"initialized in {os.getpid()}"


def read_mark(_):
    return os.environ.get(INIT_VARIABLE), os.getpid()


def marks_of_tasks(n=6):
    return dask.delayed(list)([dask.delayed(read_mark)(i) for i in range(n)])


def test_dask_initializer_runs_in_each_process_worker_before_its_tasks():
    with dask.config.set({"multiprocessing.initializer": mark_worker}):
        marks = marks_of_tasks().compute(scheduler=get_function("processes"))
    assert all(mark == f"initialized in {pid}" for mark, pid in marks)
    assert os.environ.get(INIT_VARIABLE) is None  # it ran in the workers, not here


def test_a_compute_without_the_initializer_never_sees_what_it_set():
    with dask.config.set({"multiprocessing.initializer": mark_worker}):
        marks_of_tasks().compute(scheduler=get_function("processes"))
    marks = marks_of_tasks().compute(scheduler=get_function("processes"))
    assert {mark for mark, _ in marks} == {None}


def test_an_initializer_that_raises_fails_the_compute_with_its_own_exception():
    def broken_initializer():
        raise LookupError("no database at startup")

    with dask.config.set({"multiprocessing.initializer": broken_initializer}):
        with pytest.raises(LookupError, match="no database at startup") as caught:
            marks_of_tasks().compute(scheduler=get_function("processes"))
    assert "multiprocessing.initializer" in "\n".join(caught.value.__notes__)


def fail_while_flag_exists(flag):
    if os.path.exists(flag):
        raise LookupError("no database yet")


def test_after_an_initializer_failed_the_next_compute_runs_it_afresh(tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    initializer = functools.partial(fail_while_flag_exists, str(flag))
    with dask.config.set({"multiprocessing.initializer": initializer}):
        with pytest.raises(LookupError):
            marks_of_tasks().compute(scheduler=get_function("processes"))
        flag.unlink()
        # Every worker's reply to the failed round was read or its worker replaced,
        # so none is taken for this round's answer.
        assert len(marks_of_tasks().compute(scheduler=get_function("processes"))) == 6


@pytest.fixture
def auto_picks_processes():
    from lazycell.diagnostics.advisor import ADVISOR
    from lazycell.schedulers.registry import AutoChoice, set_auto_chooser

    set_auto_chooser(lambda graph, outputs, n: AutoChoice("processes", "as the test asks"))
    yield
    set_auto_chooser(ADVISOR.choose_for_graph, ADVISOR.listening)


@pytest.mark.parametrize("with_callback", [False, True])
def test_the_initializer_runs_where_auto_picks_processes(auto_picks_processes, with_callback):
    with dask.config.set({"multiprocessing.initializer": mark_worker}):
        with Recorder() if with_callback else contextlib.nullcontext():
            marks = marks_of_tasks().compute(scheduler=lc.get_scheduler("auto", num_workers=2))
    assert all(mark == f"initialized in {pid}" for mark, pid in marks)


def test_an_initializer_that_is_not_callable_is_a_clear_error():
    with dask.config.set({"multiprocessing.initializer": "setup_db"}):
        with pytest.raises(ValueError, match="not callable"):
            marks_of_tasks().compute(scheduler=get_function("processes"))


def test_the_initializer_is_for_processes_only_as_in_dask():
    with dask.config.set({"multiprocessing.initializer": mark_worker}):
        marks = marks_of_tasks(2).compute(scheduler=get_function("threads"))
    assert {mark for mark, _ in marks} == {None}


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_a_fresh_interpreter_context_is_honoured(context):
    global_in_kernel = "set in the kernel only"  # noqa: F841 - a fresh worker cannot see it
    with dask.config.set({"multiprocessing.context": context}):
        marks = marks_of_tasks(2).compute(scheduler=get_function("processes"))
    assert {pid for _, pid in marks}.isdisjoint({os.getpid()})


def test_a_fork_context_is_refused_saying_why_and_what_to_do():
    with dask.config.set({"multiprocessing.context": "fork"}):
        with pytest.raises(ValueError, match="multiprocessing.context='fork'.*'spawn'"):
            marks_of_tasks(2).compute(scheduler=get_function("processes"))


def test_the_context_does_not_matter_to_threads():
    with dask.config.set({"multiprocessing.context": "fork"}):
        assert marks_of_tasks(2).compute(scheduler=get_function("threads"))[0][1] == os.getpid()


# ------------------------------------------------------------------ keywords


def test_cache_is_refused_saying_why_and_what_to_do():
    with pytest.raises(TypeError, match="cache= is dask's local schedulers' store.*persist"):
        array_sum().compute(scheduler=get_function("threads"), cache={})


def test_cache_none_is_what_dask_passes_by_default_and_is_accepted():
    assert array_sum().compute(scheduler=get_function("threads"), cache=None) == sum(range(400))


def test_other_get_async_keywords_are_refused_not_dropped():
    with pytest.raises(TypeError, match="got chunksize, which it cannot honour"):
        array_sum().compute(scheduler=get_function("threads"), chunksize=4)
