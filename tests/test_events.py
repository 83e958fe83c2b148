"""The event stream every scheduler emits, and the text progress bar built on it."""

import io
import time
from types import SimpleNamespace

import pytest

import lazycell as lc
from lazycell.diagnostics import (
    ComputeFinished,
    GraphSubmitted,
    TaskErred,
    TaskFinished,
    TaskStarted,
)
from lazycell.events import RawBatch


def inc(x):
    return x + 1


def fail(x):
    raise ValueError(f"bad {x}")


def nap(x):
    time.sleep(0.05)
    return x


def collect(compute):
    events = []
    with lc.diagnostics.subscribe(events.extend):
        compute()
    return events


def test_a_compute_emits_submitted_started_finished_and_compute_finished(scheduler):
    leaves = [lc.delayed(inc, name="leaf")(i) for i in range(20)]
    total = lc.delayed(sum, name="total")(leaves)
    events = collect(lambda: total.compute(scheduler=scheduler))

    submitted = [e for e in events if isinstance(e, GraphSubmitted)]
    assert len(submitted) == 1
    assert submitted[0].n_tasks == 21
    assert submitted[0].groups == {"leaf": 20, "total": 1}
    assert submitted[0].scheduler == scheduler

    finished = [e for e in events if isinstance(e, TaskFinished)]
    started = [e for e in events if isinstance(e, TaskStarted)]
    assert {e.key for e in finished} == {total.key, *(leaf.key for leaf in leaves)}
    assert {e.key for e in started} == {e.key for e in finished}
    assert all(e.stop >= e.start for e in finished)
    assert all(e.nbytes > 0 for e in finished)

    assert isinstance(events[-1], ComputeFinished)
    assert events[-1].status == "ok" and events[-1].n_done == 21


def test_worker_ids_name_the_thread_or_process_that_ran_the_task(scheduler):
    tasks = [lc.delayed(nap)(i) for i in range(8)]
    events = collect(lambda: lc.compute(tasks, scheduler=scheduler, num_workers=2))
    workers = {e.worker for e in events if isinstance(e, TaskFinished)}
    expected = {
        "sync": {"main-thread"},
        "threads": {"thread-0", "thread-1"},
        "processes": {"process-0", "process-1"},
    }[scheduler]
    assert workers <= expected
    if scheduler != "sync":
        assert len(workers) == 2, "both workers took tasks"


def test_a_failure_emits_task_erred_and_an_error_status(scheduler):
    bad = lc.delayed(fail)(7)
    events = []
    with lc.diagnostics.subscribe(events.extend):
        with pytest.raises(ValueError):
            bad.compute(scheduler=scheduler)
    erred = [e for e in events if isinstance(e, TaskErred)]
    assert [e.key for e in erred] == [bad.key]
    assert erred[0].error == "ValueError: bad 7"
    assert events[-1].status == "error"


def test_a_lane_hands_over_finished_rows_drops_erred_ones_and_names_the_running_task():
    from lazycell.events import BUS

    with BUS.subscribe(lambda recorder, batch: None, raw=True):
        recorder = BUS.start_compute(["a-1", "b-2", "c-3"], "threads", 1)
        lane = recorder.lane("thread-0")
        key, start, stop, nbytes = lane.writers()
        key("a-1"), start(1.0), stop(2.0), nbytes(28)  # finished
        key("b-2"), start(2.0)
        recorder.lane_task_erred(lane, "b-2", ValueError("b"))  # failed
        key("c-3"), start(3.0)  # running
        rows, running = lane._take_rows()
        assert (rows.keys, rows.starts, rows.stops, rows.nbytes) == (["a-1"], [1.0], [2.0], [28])
        assert running == ("c-3", 3.0)
        assert [item[:2] for item in recorder.buffer[1:]] == [("e", "b-2")]
        stop(4.0), nbytes(28)
        rows, running = lane._take_rows()
        assert rows.keys == ["c-3"] and running is None
        assert lane._take_rows() == (None, None)
        BUS.end_compute(recorder, "ok")


def test_events_arrive_while_the_compute_is_still_running():
    arrival = []

    def listener(events):
        arrival.extend((time.monotonic(), e) for e in events)

    tasks = [lc.delayed(nap)(i) for i in range(30)]  # ~0.75 s on 2 threads
    with lc.diagnostics.subscribe(listener):
        lc.compute(tasks, scheduler="threads", num_workers=2)
        end = time.monotonic()
    early = [e for t, e in arrival if isinstance(e, TaskFinished) and t < end - 0.1]
    assert early, "some task events were delivered before the compute returned"


def test_no_listener_means_no_recording():
    assert lc.diagnostics.BUS.start_compute(["a"], "sync", 1) is None


def test_a_broken_listener_does_not_break_the_compute(capsys):
    def broken(events):
        raise RuntimeError("view bug")

    with lc.diagnostics.subscribe(broken):
        assert lc.delayed(inc)(1).compute(scheduler="sync") == 2
    assert "view bug" in capsys.readouterr().err


def test_progress_bar_shows_the_finished_total(scheduler):
    out = io.StringIO()
    tasks = [lc.delayed(inc)(i) for i in range(50)]
    with lc.diagnostics.ProgressBar(out=out):
        lc.compute(tasks, scheduler=scheduler)
    final = out.getvalue().rstrip("\n").split("\r")[-1]
    assert "100% Completed" in final and "50/50 tasks" in final


def test_progress_bar_redraws_during_a_long_compute():
    out = io.StringIO()
    tasks = [lc.delayed(nap)(i) for i in range(30)]  # ~0.75 s: redrawn at 3-4 deliveries
    with lc.diagnostics.ProgressBar(out=out, dt=0.05):
        lc.compute(tasks, scheduler="threads", num_workers=2)
    frames = [f for f in out.getvalue().split("\r") if f.strip()]
    assert len(frames) >= 3
    assert any("/30 tasks" in f and "30/30" not in f for f in frames), "a partial frame"


def test_progress_bar_with_a_minimum_times_a_compute_by_its_events_not_their_delivery():
    # A busy machine can hand a compute's first and last events to the bar in
    # one delivery, after the compute ended: 0.7 s of work must still show,
    # 0.2 s must not.
    for seconds, shown in [(0.7, True), (0.2, False)]:
        out = io.StringIO()
        bar = lc.diagnostics.ProgressBar(minimum=0.5, out=out)
        start = time.time()
        recorder = SimpleNamespace(compute_id=1, groups_of={})
        submitted = GraphSubmitted(1, start, 2, {"slow": 2}, "threads", 2)
        finished_tasks = [("f", ("slow", i), "thread-0", 0.0, seconds, 28) for i in range(2)]
        end = ComputeFinished(1, start + seconds, "ok", 2)
        batch = RawBatch([("event", submitted), *finished_tasks], [], [], end)
        bar.tracker.on_raw(recorder, batch)  # what the bus calls with the batch
        assert ("100% Completed" in out.getvalue()) is shown, (seconds, out.getvalue())
        if shown:
            assert "| 0.7s" in out.getvalue()


def test_progress_bar_says_failed_on_error():
    out = io.StringIO()
    with lc.diagnostics.ProgressBar(out=out):
        with pytest.raises(ValueError):
            lc.delayed(fail)(1).compute(scheduler="sync")
    assert "Failed" in out.getvalue()


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_task_still_running_at_a_batch_is_announced_then_and_finished_once_later(scheduler):
    batches = []
    # A delivery falls mid-task: between tasks from a lane's thread, and in the
    # long one (past the dispatcher's longest standby sleep) from the dispatcher
    tasks = [lc.delayed(nap)(i) for i in range(12)] + [lc.delayed(time.sleep)(1.2)]
    with lc.diagnostics.subscribe(batches.append):
        lc.compute(tasks, scheduler=scheduler, num_workers=2)
    started, finished = {}, {}
    for index, batch in enumerate(batches):
        for event in batch:
            if isinstance(event, TaskStarted):
                assert event.key not in started, "announced twice"
                started[event.key] = (index, event.time)
            elif isinstance(event, TaskFinished):
                assert event.key not in finished, "finished twice"
                finished[event.key] = (index, event.start)
    assert set(started) == set(finished) == {t.key for t in tasks}
    assert all(started[key][0] <= finished[key][0] for key in finished)
    assert all(started[key][1] == finished[key][1] for key in finished), "same start time"
    assert any(started[key][0] < finished[key][0] for key in finished), "seen while running"


def test_pool_threads_deliver_between_short_tasks_and_the_dispatcher_during_long_ones():
    import threading

    from lazycell.events import BUS

    deliveries = []  # (thread name, compute id, finished?)

    def listener(recorder, batch):
        deliveries.append(
            (threading.current_thread().name, recorder.compute_id, batch.finished is not None)
        )

    with BUS.subscribe(listener, raw=True):
        short = lc.compute([lc.delayed(nap)(i) for i in range(40)], scheduler="threads")
        long = lc.delayed(time.sleep)(1.5).compute(scheduler="threads")
    assert len(short[0]) == 40 and long is None
    short_id, long_id = sorted({compute_id for _, compute_id, _ in deliveries})
    during_short = [name for name, cid, end in deliveries if cid == short_id and not end]
    during_long = [name for name, cid, end in deliveries if cid == long_id and not end]
    # 40 naps of 50 ms on 2 threads: ~1 s, delivered every 0.2 s by the pool's threads
    # (the dispatcher, standing by, would step in only if they stopped)
    by_pool = [name for name in during_short if name.startswith("lazycell-thread")]
    assert len(by_pool) >= 3 and len(by_pool) > len(during_short) / 2, during_short
    # One task of 1.5 s: no task ends meanwhile, so the dispatcher delivers, ~4 times
    assert during_long.count("lazycell-events") >= 3, during_long


def test_group_keys_names_groups_as_key_group_does_for_every_kind_of_key():
    from lazycell.events import group_keys
    from lazycell.graph.spec import key_group

    token_keys = [f"inc-{i:032x}" for i in range(50)] + [f"load-data-{i:016x}" for i in range(5)]
    odd_keys = [
        "abcdef0123456789",  # a bare token: no prefix to share
        "x-1",
        "x-foo",
        ("sum-0123456789abcdef", 3),
        "a-b-c0ffee0012",
        "é-0123456789",
        42,
    ]
    same_width = [f"inc-{i:032x}" for i in range(50)] + [f"a-b-{i:032x}" for i in range(5)]
    # Keys that pass some of the checks for tokens of one width, not all of them.
    near_misses = [
        f"inc-{'0' * 15}-{'1' * 16}",  # a "-" inside the token's width
        f"inc-{'0' * 31}g",  # not hex
        f"inc-{'0' * 31}é",  # not ascii
        "inc-0123",  # shorter than the width
        f"{'0' * 33}",  # no "-"
    ]
    cases = [token_keys, token_keys + odd_keys, odd_keys, same_width]
    cases += [same_width + [miss] for miss in near_misses]
    cases += [[f"inc-{i:032x}" for i in range(3)] + [miss] for miss in near_misses]
    for keys in cases:
        assert group_keys(keys, key_group) == {key: key_group(key) for key in keys}
    assert set(group_keys(token_keys, key_group).values()) == {"inc", "load-data"}


class BrokenStr(Exception):
    def __str__(self):
        raise RuntimeError("no text")


class ExitingStr(Exception):
    def __str__(self):
        raise SystemExit("a __str__ that exits")


def raise_broken_str(x):
    raise BrokenStr()


def raise_exiting_str(x):
    raise ExitingStr()


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
@pytest.mark.parametrize(
    "task, error, why",
    [(raise_broken_str, BrokenStr, "RuntimeError"), (raise_exiting_str, ExitingStr, "SystemExit")],
)
def test_an_exception_whose_str_raises_still_fails_its_task_with_its_own_type(
    scheduler, task, error, why
):
    seen = []
    with lc.diagnostics.subscribe(seen.extend):
        with pytest.raises(error):
            lc.delayed(task)(1).compute(scheduler=scheduler)
    (erred,) = [e for e in seen if isinstance(e, TaskErred)]
    assert erred.error == f"{error.__name__}: <str() of the exception failed: {why}>"
