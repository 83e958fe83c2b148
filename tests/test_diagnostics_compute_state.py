"""ComputeTracker / ComputeState: the event stream folded into what views show."""

import time

import pytest

import lazycell as lc
from lazycell.diagnostics.compute_state import ComputeTracker, TaskBar, ThinnedStream


def inc(x):
    return x + 1


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def nap(x, seconds=0.02):
    time.sleep(seconds)
    return x


def tree(n_leaves=20):
    leaves = [lc.delayed(inc, name="leaf")(i) for i in range(n_leaves)]
    return lc.delayed(sum, name="total")(leaves)


def track(compute):
    with ComputeTracker() as tracker:
        compute()
    return tracker.latest


def test_totals_and_groups_match_the_graph(scheduler):
    state = track(lambda: tree().compute(scheduler=scheduler))
    assert state.n_tasks == 21
    assert {name: g.total for name, g in state.groups.items()} == {"leaf": 20, "total": 1}
    assert {name: g.done for name, g in state.groups.items()} == {"leaf": 20, "total": 1}
    assert state.done == 21 and state.erred == 0 and state.running == 0
    assert state.status == "ok" and state.finished


def test_scheduler_and_worker_count_are_those_of_the_compute(scheduler):
    state = track(lambda: tree().compute(scheduler=scheduler, num_workers=2))
    assert state.scheduler == scheduler
    assert state.n_workers == (1 if scheduler == "sync" else 2)


def test_tasks_per_worker_add_up_to_the_tasks_done(scheduler):
    state = track(lambda: tree().compute(scheduler=scheduler, num_workers=2))
    assert sum(state.tasks_per_worker.values()) == 21
    expected_prefix = {"sync": "main-thread", "threads": "thread-", "processes": "process-"}
    assert all(w.startswith(expected_prefix[scheduler]) for w in state.tasks_per_worker)


def test_a_failure_is_counted_as_erred_in_its_group(scheduler):
    parts = [lc.delayed(fail_on_three, name="check")(i) for i in range(6)]
    total = lc.delayed(sum, name="total")(parts)
    with ComputeTracker() as tracker:
        with pytest.raises(ValueError):
            total.compute(scheduler=scheduler)
    state = tracker.latest
    assert state.status == "error"
    assert state.groups["check"].erred == 1 and state.erred == 1
    assert state.groups["total"].done == 0
    assert state.errors == ["check: ValueError: three"]
    assert any(bar.erred for bar in state.task_stream)


def test_task_stream_has_one_bar_per_task_with_its_worker_and_group(scheduler):
    state = track(lambda: tree().compute(scheduler=scheduler))
    bars = state.task_stream
    assert len(bars) == 21
    assert sorted(bar.group for bar in bars) == ["leaf"] * 20 + ["total"]
    assert {bar.worker for bar in bars} == set(state.tasks_per_worker)
    assert all(0 <= bar.start <= bar.stop <= state.elapsed() + 0.01 for bar in bars)


def test_task_stream_of_a_large_graph_is_thinned_to_its_limit():
    with ComputeTracker(stream_limit=100) as tracker:
        tree(2000).compute(scheduler="threads")
    state = tracker.latest
    assert state.done == 2001
    assert 50 <= len(state.task_stream) < 100


def test_thinned_stream_keeps_evenly_spaced_items():
    stream = ThinnedStream(limit=8)
    for i in range(64):
        stream.add(i)
    assert len(stream.bars) < 8
    gaps = {b - a for a, b in zip(stream.bars, stream.bars[1:])}
    assert stream.bars[0] == 0
    assert len(gaps) == 1  # evenly spaced
    assert stream.bars[-1] >= 64 - gaps.pop()  # reaches the end


def test_elapsed_is_fixed_and_eta_is_gone_once_finished():
    state = track(
        lambda: lc.delayed(sum)([lc.delayed(nap)(i) for i in range(5)]).compute(scheduler="sync")
    )
    assert state.elapsed() >= 0.1
    assert state.elapsed() == state.elapsed(time.perf_counter() + 100)
    assert state.eta() is None


def test_eta_while_running_is_positive_and_progress_rises():
    estimates = []
    with ComputeTracker(on_change=lambda s: estimates.append((s.done, s.eta()))) as tracker:
        lc.delayed(sum)([lc.delayed(nap)(i) for i in range(40)]).compute(scheduler="sync")
    running = [(done, eta) for done, eta in estimates if eta is not None]
    assert running and all(eta > 0 for _, eta in running)
    timeline = tracker.latest.progress_timeline
    assert [done for _, done in timeline] == sorted(done for _, done in timeline)
    assert timeline[-1][1] == 41


def test_summary_names_tasks_scheduler_and_workers():
    state = track(lambda: tree().compute(scheduler="threads", num_workers=2))
    summary = state.summary()
    assert summary.startswith("✔ 21 tasks in ")
    assert summary.endswith("· threads · 2 workers")


def fail_on_29(x):
    if x == 29:
        raise ValueError("29")
    return x


def test_a_failed_computes_summary_counts_failed_done_and_not_run_apart():
    # sync runs the leaves in order: 29 finish, the 30th fails, the last leaf
    # and the total never run.
    leaves = [lc.delayed(fail_on_29, name="check")(i) for i in range(31)]
    total = lc.delayed(sum, name="total")(leaves)
    state = track(lambda: pytest.raises(ValueError, total.compute, scheduler="sync"))
    summary = state.summary()
    assert summary.startswith("✖ 1 of 32 tasks failed (check) · 29 done · 2 not run · ")
    assert summary.endswith(" · sync · 1 worker")


def test_summary_says_one_worker_and_one_task_in_the_singular():
    state = track(lambda: lc.delayed(inc)(1).compute(scheduler="sync"))
    assert state.summary().startswith("✔ 1 task in ")
    assert state.summary().endswith("· sync · 1 worker")


def test_each_compute_in_the_block_has_its_own_state():
    with ComputeTracker() as tracker:
        tree(3).compute(scheduler="sync")
        tree(5).compute(scheduler="threads")
    assert [s.n_tasks for s in tracker.states.values()] == [4, 6]
    assert tracker.latest.scheduler == "threads"


def test_computes_after_the_block_are_not_tracked():
    with ComputeTracker() as tracker:
        pass
    tree().compute(scheduler="sync")
    assert tracker.latest is None


def test_thinned_stream_keeps_the_same_bars_whether_fed_one_by_one_or_in_rows():
    starts = [float(i) for i in range(100)]
    stops = [start + 0.5 for start in starts]
    one_by_one, in_rows = ThinnedStream(limit=8), ThinnedStream(limit=8)
    for start, stop in zip(starts, stops):
        one_by_one.add(TaskBar("w", start - 10, stop - 10, "g", False))
    cuts = [0, 1, 4, 11, 24, 25, 57, 100]
    for a, b in zip(cuts, cuts[1:]):
        in_rows.add_rows("w", starts[a:b], stops[a:b], ["g"] * (b - a), origin=10.0)
    assert in_rows.bars == one_by_one.bars
    assert (in_rows.stride, in_rows.seen) == (one_by_one.stride, one_by_one.seen)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_running_tasks_are_counted_while_they_run_never_beyond_the_workers(scheduler):
    seen = []

    def on_change(state):
        seen.append((state.finished, state.running, state.groups["nap"].running))

    tasks = [lc.delayed(nap, name="nap")(i) for i in range(30)]  # 0.3-0.6 s
    if scheduler == "sync":
        # Its one thread delivers between tasks, when none runs: a task is seen
        # running only by the dispatcher, in a task longer than its standby.
        tasks.append(lc.delayed(nap, name="nap")(0, seconds=1.2))
    with ComputeTracker(on_change=on_change):
        lc.compute(tasks, scheduler=scheduler, num_workers=2)
    workers = 1 if scheduler == "sync" else 2
    during = [(running, in_group) for finished, running, in_group in seen if not finished]
    assert any(running > 0 for running, _ in during)
    assert all(0 <= running <= workers and in_group == running for running, in_group in during)
    assert seen[-1] == (True, 0, 0)


def test_thinned_stream_told_how_many_to_expect_keeps_them_evenly_under_its_limit():
    stream = ThinnedStream(limit=8, expect=64)
    for i in range(64):
        stream.add(i)
    assert 4 <= len(stream.bars) < 8
    assert stream.bars == list(range(0, 64, stream.stride))  # evenly spaced, from the start
