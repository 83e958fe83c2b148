"""The scheduler advisor in plain Python: what it measures, what it picks, when it speaks.

Workloads are sized so that 2 cores give a clear signal (a pure-Python loop
holds the GIL: 2 threads run it no faster than 1; NumPy ufuncs release it), and
the tests assert decisions and reasoning, never a time.
"""

import io
import threading
import time

import numpy as np
import pytest

import lazycell as lc
from lazycell import config
from lazycell.diagnostics import GraphSubmitted, ProgressBar, advisor
from lazycell.diagnostics.advisor import ADVISOR, advice_for_last_compute, advise
from lazycell.events.recording import is_sampled
from lazycell.schedulers.registry import last_auto_choice

TASK_SECONDS = 0.12  # 8 tasks: about 1 s on one core, well above the hint's 0.5 s


def python_loop(i, n):
    total = 0
    for j in range(n):
        total += (j * j + i) % 7
    return total


def numpy_ufuncs(i, n):
    # In place, as benchmarks/bench_schedulers.py: NumPy releases the GIL inside each
    # ufunc, and no 8 MB temporary per call (whose page faults threads would share).
    a = np.linspace(0, 1 + i, 1_000_000)
    for _ in range(n):
        np.sin(a, out=a)
        np.sqrt(np.abs(a, out=a), out=a)
    return float(a[::1000].sum())


def sleepy(i):
    time.sleep(0.02)
    return i


def inc(i):
    return i + 1


def make_array(i):
    return np.full(1_000_000, float(i))


def total_of(parts):
    return float(sum(float(p.sum()) for p in parts))


def ten_megabytes(i):
    return np.full(1_250_000, float(i))  # written, so every page is resident


def loop_iterations(cpu_seconds: float) -> int:
    """Iterations of python_loop taking about ``cpu_seconds`` of CPU here (sizes the work).

    CPU time, not wall time: other programs on a shared machine do not change it.
    """
    n = 50_000
    start = time.thread_time()
    python_loop(0, n)
    return max(int(n * cpu_seconds / (time.thread_time() - start)), 10_000)


def ufunc_iterations(cpu_seconds: float) -> int:
    start = time.thread_time()
    numpy_ufuncs(0, 4)
    return max(int(cpu_seconds / ((time.thread_time() - start) / 4)), 1)


@pytest.fixture(scope="module")
def loop_n():
    return loop_iterations(TASK_SECONDS)


@pytest.fixture(scope="module")
def ufunc_n():
    return ufunc_iterations(TASK_SECONDS)


@pytest.fixture(autouse=True)
def fresh_advisor():
    """A listening advisor with nothing measured; a warm processes pool (as after one use)."""
    ADVISOR.forget()
    with ADVISOR.listening():
        lc.compute(lc.delayed(inc)(1), scheduler="processes")
        yield
    ADVISOR.forget()


def gil_bound(loop_n):
    return [lc.delayed(python_loop)(i, loop_n) for i in range(8)]


def gil_releasing(ufunc_n):
    # 16: about 1 s on 2 threads, long enough for a hint if one were due.
    return [lc.delayed(numpy_ufuncs)(i, ufunc_n) for i in range(16)]


def test_pure_python_on_threads_gets_a_hint_to_use_processes(loop_n):
    lc.compute(gil_bound(loop_n), scheduler="threads", num_workers=2)
    advice = advice_for_last_compute()
    assert advice.pick == "processes"
    assert advice.hint is not None
    assert "'python_loop' holds the GIL" in advice.hint
    assert "--scheduler processes would take ≈" in advice.hint


def test_numpy_on_threads_gets_no_hint(ufunc_n):
    lc.compute(gil_releasing(ufunc_n), scheduler="threads", num_workers=2)
    advice = advice_for_last_compute()
    assert advice.hint is None
    assert advice.pick == "threads"
    assert advice.groups[0].kind == "releases the GIL"
    assert "No hint: the choice was right." in str(advice)


def test_the_reasoning_names_each_group_with_its_measures_and_estimates(loop_n):
    arrays = [lc.delayed(make_array)(i) for i in range(4)]
    work = [lc.delayed(python_loop)(i, loop_n // 10) for i in range(4)]
    lc.compute(lc.delayed(total_of)(arrays), work, scheduler="threads")
    text = str(advice_for_last_compute())
    for expected in (
        "Task group 'make_array': 4 tasks",
        "Task group 'python_loop': 4 tasks",
        "Task group 'total_of': 1 task",
        "CPU/wall",
        "in 32.0 MB, out 24 B",  # total_of took the four 8 MB arrays
        "out 8.0 MB",
        "sync ≈",
        "threads ≈",
        "processes ≈",
        "Estimated for the whole compute:",
        "Assumptions: 2 cores" if advisor.core_count() == 2 else "Assumptions:",
    ):
        assert expected in text, expected


def test_auto_picks_processes_for_a_gil_bound_function_measured_before(loop_n):
    lc.compute(gil_bound(loop_n), scheduler="threads", num_workers=2)
    submitted = []
    with lc.diagnostics.subscribe(submitted.extend):
        results = lc.compute(gil_bound(loop_n), scheduler="auto")
    assert results == lc.compute(gil_bound(loop_n), scheduler="sync")
    assert last_auto_choice().scheduler == "processes"
    assert "earlier computes of python_loop" in last_auto_choice().reason
    assert [e.scheduler for e in submitted if isinstance(e, GraphSubmitted)] == ["processes"]


def test_auto_runs_functions_it_never_measured_on_threads(loop_n):
    lc.compute(gil_bound(loop_n), scheduler="auto")
    assert last_auto_choice().scheduler == "threads"
    assert "not measured yet" in last_auto_choice().reason


def test_auto_is_a_scheduler_name_for_config_and_get():
    with lc.config.set(scheduler="auto"):
        assert lc.delayed(inc)(1).compute() == 2
    assert lc.get({"x": 1, "y": (inc, "x")}, "y", scheduler="auto") == 2


def test_tiny_tasks_are_advised_to_run_on_sync_and_be_batched():
    lc.compute(lc.delayed(sum)([lc.delayed(inc)(i) for i in range(5000)]), scheduler="threads")
    advice = advice_for_last_compute()
    assert advice.pick == "sync"
    assert any("scheduling costs more than the work; batch them" in n for n in advice.notes)


def test_waiting_tasks_are_advised_more_threads():
    lc.compute([lc.delayed(sleepy)(i) for i in range(20)], scheduler="threads", num_workers=2)
    advice = advice_for_last_compute()
    assert advice.groups[0].kind == "waits (I/O or sleep)"
    assert any("--scheduler threads --workers" in note for note in advice.notes)


def test_only_a_sample_of_tasks_has_its_cpu_time_measured():
    lc.compute(lc.delayed(sum)([lc.delayed(inc)(i) for i in range(3200)]), scheduler="sync")
    group = ADVISOR.computes[-1].groups["inc"]
    assert group.n_tasks == 3200
    # The first few, then one in SAMPLE_EVERY (events.is_sampled).
    expected = sum(map(is_sampled, range(3200)))
    assert group.n_sampled == expected < 3200 // 16


def test_the_text_bar_prints_the_hint_after_the_bar(loop_n):
    out = io.StringIO()
    with ProgressBar(out=out):
        lc.compute(gil_bound(loop_n), scheduler="threads", num_workers=2)
    lines = out.getvalue().splitlines()
    assert "100% Completed" in lines[-2]
    assert lines[-1].startswith("hint: 'python_loop' holds the GIL")


def test_config_advisor_false_silences_the_hint(loop_n):
    out = io.StringIO()
    with lc.config.set(advisor=False), ProgressBar(out=out):
        lc.compute(gil_bound(loop_n), scheduler="threads", num_workers=2)
    assert "100% Completed" in out.getvalue()
    assert "hint:" not in out.getvalue()
    assert advice_for_last_compute().hint is not None  # still there when asked


def test_config_advisor_takes_true_or_false_and_names_a_bad_value(monkeypatch):
    monkeypatch.setenv("LAZYCELL_ADVISOR", "0")
    assert config.get("advisor") is False
    with pytest.raises(config.ConfigError, match="advisor 'sometimes' from lc.config.set"):
        lc.config.set(advisor="sometimes")


def test_advise_before_anything_was_measured_says_so_and_measures_from_then_on():
    ADVISOR.forget()
    try:
        assert lc.advise() == advisor.NOTHING_MEASURED  # the public name
        assert "Run the compute again" in advisor.NOTHING_MEASURED
        with lc.config.set(scheduler="sync"):
            lc.delayed(inc)(1).compute()
        assert "Task group 'inc': 1 task" in str(advise())
    finally:
        ADVISOR.stop()


def test_the_advisor_listens_only_while_asked():
    assert ADVISOR.listening_now  # this module's fixture: ADVISOR.listening()
    with ProgressBar(out=io.StringIO()):
        pass
    assert ADVISOR.listening_now  # the bar let go, the fixture still holds it
    ADVISOR.release()
    try:
        assert not ADVISOR.listening_now
        assert lc.diagnostics.BUS.start_compute(["a"], "sync", 1) is None
    finally:
        ADVISOR.acquire()


def stop_listening_and_listen_again(x):
    ADVISOR.release()
    ADVISOR.acquire()
    return x


def test_a_compute_the_advisor_stopped_hearing_midway_is_not_measured():
    # The first task outlasts a delivery, so the advisor hears the compute begin.
    first = lc.delayed(time.sleep)(2 * lc.diagnostics.BUS.interval)
    lc.compute(first, lc.delayed(stop_listening_and_listen_again)(1), scheduler="sync")
    assert advice_for_last_compute().measure.groups.keys() == {"inc"}  # the fixture's


def test_auto_measures_its_own_computes(loop_n):
    ADVISOR.release()  # nothing listens but auto itself
    try:
        lc.compute(gil_bound(loop_n), scheduler="auto")
    finally:
        ADVISOR.acquire()
    assert ADVISOR.computes[-1].groups["python_loop"].n_tasks == 8


def test_auto_stays_on_threads_when_a_function_cannot_be_pickled(loop_n):
    lock = threading.Lock()

    def python_loop(i, n):  # the same group name, holding what no process can receive
        with lock:
            pass
        total = 0
        for j in range(n):
            total += (j * j + i) % 7
        return total

    lc.compute(gil_bound(loop_n), scheduler="threads", num_workers=2)
    tasks = [lc.delayed(python_loop)(i, loop_n) for i in range(8)]
    assert lc.compute(tasks, scheduler="auto") == lc.compute(gil_bound(loop_n), scheduler="sync")
    assert last_auto_choice().scheduler == "threads"
    assert "python_loop' cannot be pickled to a worker process" in last_auto_choice().reason


@pytest.fixture
def memory_limit_300_mb_above_now(monkeypatch):
    """A memory limit 300 MB above what this process holds now (the machine's cannot be filled)."""
    rss, _ = advisor.kernel_rss(with_children=False)
    monkeypatch.setattr(advisor, "MEMORY_LIMIT", rss + 300_000_000)


def test_a_compute_holding_most_of_the_memory_limit_is_pointed_at_the_cluster_with_spilling(
    memory_limit_300_mb_above_now,
):
    parts = [lc.delayed(ten_megabytes)(i) for i in range(24)]  # all held until total_of ran
    lc.compute(lc.delayed(total_of)(parts), scheduler="threads")
    advice = advice_for_last_compute()
    assert advice.memory.near_limit
    assert advice.memory.held_peak >= 240_000_000
    assert advice.hint.startswith("memory peaked at ≈")
    assert '--scheduler distributed with lc.Client(memory_limit="' in advice.hint
    assert "spills results to disk above 60% of each worker's limit" in advice.hint
    assert "instead of swapping or being killed" in advice.hint
    text = str(advice)
    assert "Memory: this process peaked at ≈" in text
    assert "results held at once ≈ 240.0 MB, by their estimated sizes" in text
    assert "This is about memory, not speed: it may take longer, but it finishes" in text


def test_a_small_compute_gets_no_memory_note_even_when_the_kernel_holds_a_lot(
    memory_limit_300_mb_above_now,
):
    lc.compute([lc.delayed(make_array)(i) for i in range(2)], scheduler="threads")
    advice = advice_for_last_compute()
    assert not advice.memory.near_limit
    assert not any("memory" in note for note in advice.notes)
    assert advice.hint is None or "memory" not in advice.hint
    assert "Memory: this process peaked at ≈" in str(advice)  # still measured and shown


def test_on_processes_the_memory_read_counts_the_worker_processes():
    lc.compute([lc.delayed(inc)(i) for i in range(4)], scheduler="processes")
    advice = advice_for_last_compute()
    assert advice.memory.n_processes > 1  # the pool the fixture started
    assert "Memory: this process and its" in str(advice)
