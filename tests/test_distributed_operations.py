"""Operating a running local cluster: introspection, client.run, plugins, scale, adapt, restart."""

import concurrent.futures
import os
import time

import pytest

import lazycell as lc

pytestmark = pytest.mark.timeout(180)


def inc(x):
    return x + 1


def pid_of(_=None):
    return os.getpid()


def mark_and_inc(x, directory):
    """inc, leaving one file per execution so a test can count re-runs."""
    with open(os.path.join(directory, f"{x}-{time.monotonic_ns()}-{os.getpid()}"), "w"):
        pass
    return x + 1


def sleep_and_mark(x, directory, seconds):
    time.sleep(seconds)
    return mark_and_inc(x, directory)


def executions(directory) -> int:
    return len(os.listdir(directory))


def poll(condition, timeout=30.0, interval=0.05):
    """Wait until ``condition()`` is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = condition()
    return value


@pytest.fixture(scope="module")
def client():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit="1GB") as c:
        yield c


# ------------------------------------------------------------------------- introspection


def test_scheduler_info_describes_each_worker_and_the_totals(client):
    def info_after_heartbeats():
        info = client.scheduler_info()
        return info if all(w["memory"] > 0 for w in info["workers"].values()) else None

    info = poll(info_after_heartbeats)
    workers = info["workers"]
    assert sorted(workers) == ["worker-0", "worker-1"]
    pids = client.run(os.getpid)
    for name, worker in workers.items():
        assert worker["pid"] == pids[name]
        assert worker["threads"] == 1
        assert worker["memory_limit"] == 1_000_000_000
        assert 10_000_000 < worker["memory"] < 1_000_000_000  # a Python process's RSS
        assert worker["address"]
    assert info["totals"]["workers"] == 2
    assert info["totals"]["threads"] == 2
    assert info["totals"]["memory_limit"] == 2_000_000_000
    assert info["totals"]["memory"] == sum(w["memory"] for w in workers.values())


def test_scheduler_info_counts_the_results_each_worker_holds(client):
    futures = client.map(inc, range(6), workers=["worker-1"])
    client.gather(futures)
    info = client.scheduler_info()
    assert info["workers"]["worker-1"]["n_results"] >= 6
    assert info["workers"]["worker-1"]["managed_bytes"] > 0
    assert info["totals"]["n_results"] >= 6


def test_who_has_names_the_worker_holding_each_future(client):
    on_zero = client.submit(pid_of, "a", workers=["worker-0"])
    on_one = client.submit(pid_of, "b", workers=["worker-1"])
    pids = client.run(os.getpid)
    assert client.gather(on_zero) == pids["worker-0"]
    assert client.who_has([on_zero, on_one]) == {
        on_zero.key: ["worker-0"],
        on_one.key: ["worker-1"],
    }
    assert client.who_has(on_one) == {on_one.key: ["worker-1"]}
    held = client.who_has()
    assert held[on_zero.key] == ["worker-0"]


def test_has_what_lists_keys_per_worker_and_forgets_released_ones(client):
    future = client.submit(inc, 41, workers=["worker-0"], pure=False)
    assert future.result() == 42
    assert future.key in client.has_what()["worker-0"]
    key = future.key
    del future
    assert poll(lambda: key not in client.has_what()["worker-0"], timeout=10)


# ---------------------------------------------------------------------------- client.run


def test_run_returns_one_result_per_worker(client):
    assert client.run(lambda: lc.get_worker().name) == {
        "worker-0": "worker-0",
        "worker-1": "worker-1",
    }
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def test_run_passes_arguments_and_selects_workers(client):
    assert client.run(pow, 2, 10, workers=["worker-1"]) == {"worker-1": 1024}
    assert client.run(divmod, 7, 2, workers="worker-0") == {"worker-0": (3, 1)}


def test_run_raises_the_workers_exception_naming_the_worker(client):
    def fail_on_one():
        if lc.get_worker().name == "worker-1":
            raise KeyError("missing-thing")
        return "fine"

    with pytest.raises(KeyError, match="missing-thing") as info:
        client.run(fail_on_one)
    assert any("worker-1" in note for note in info.value.__notes__)
    assert client.run(lambda: "still works") == {
        "worker-0": "still works",
        "worker-1": "still works",
    }


def test_run_on_an_unknown_worker_says_which_workers_exist(client):
    with pytest.raises(ValueError, match="no running worker named 'worker-9'.*worker-0, worker-1"):
        client.run(os.getpid, workers=["worker-9"])


def test_get_worker_outside_a_worker_says_where_it_works():
    with pytest.raises(ValueError, match="only inside a task"):
        lc.get_worker()


def test_run_rejects_what_cannot_be_sent(client):
    import threading

    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot be pickled"):
        client.run(lambda: lock.locked())
    with pytest.raises(TypeError, match="needs a function"):
        client.run(42)


# ------------------------------------------------------------------------------- plugins


class RecordingPlugin(lc.WorkerPlugin):
    """Opens a per-worker resource in setup; leaves a file per teardown as evidence."""

    name = "recording"

    def __init__(self, directory):
        self.directory = directory

    def setup(self, worker):
        worker.namespace["resource"] = f"opened-on-{worker.name}-{os.getpid()}"

    def teardown(self, worker):
        path = os.path.join(self.directory, f"teardown-{worker.name}")
        with open(path, "w") as f:
            f.write(worker.namespace.pop("resource"))


def read_resource(_=None):
    return lc.get_worker().namespace.get("resource")


def test_plugin_is_set_up_on_every_worker_and_tasks_see_its_resource(tmp_path):
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        assert client.register_plugin(RecordingPlugin(str(tmp_path))) == {
            "worker-0": "OK",
            "worker-1": "OK",
        }
        pids = client.run(os.getpid)
        futures = [client.submit(read_resource, i, workers=[name]) for i, name in enumerate(pids)]
        assert client.gather(futures) == [f"opened-on-{name}-{pids[name]}" for name in pids]
        assert client.scheduler_info()["workers"]["worker-0"]["plugins"] == ["recording"]


def test_plugin_reaches_workers_that_join_later_before_their_first_task(tmp_path):
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        client.register_worker_plugin(RecordingPlugin(str(tmp_path)))  # the dask name
        client.cluster.scale(2)
        first_task = client.submit(read_resource, workers=["worker-1"])
        pid = client.run(os.getpid, workers=["worker-1"])["worker-1"]
        assert first_task.result() == f"opened-on-worker-1-{pid}"


def test_plugin_teardown_runs_when_the_cluster_closes(tmp_path):
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        client.register_plugin(RecordingPlugin(str(tmp_path)))
        pids = client.run(os.getpid)
    for name, pid in pids.items():
        assert (tmp_path / f"teardown-{name}").read_text() == f"opened-on-{name}-{pid}"


def test_unregistering_a_plugin_tears_it_down_and_new_workers_skip_it(tmp_path):
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        client.register_plugin(RecordingPlugin(str(tmp_path)))
        assert client.unregister_worker_plugin("recording") == {"worker-0": "OK"}
        assert (tmp_path / "teardown-worker-0").exists()
        client.cluster.scale(2)
        assert client.run(read_resource) == {"worker-0": None, "worker-1": None}
        with pytest.raises(ValueError, match="no worker plugin named 'recording'"):
            client.unregister_worker_plugin("recording")


def test_a_failing_plugin_setup_raises_naming_the_worker():
    class Broken(lc.WorkerPlugin):
        def setup(self, worker):
            raise ConnectionError(f"database refused {worker.name}")

    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        with pytest.raises(ConnectionError, match="database refused worker-0") as info:
            client.register_plugin(Broken(), name="db")
        assert "raised on worker-0 by plugin 'db' setup" in info.value.__notes__
        assert client.submit(inc, 1).result() == 2  # the worker is still usable


def test_register_plugin_rejects_objects_that_are_not_plugins(client):
    with pytest.raises(TypeError, match="needs a WorkerPlugin"):
        client.register_plugin("not a plugin")


def test_a_replacement_for_a_dead_worker_gets_the_plugin(tmp_path):
    import signal

    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        client.register_plugin(RecordingPlugin(str(tmp_path)))
        old_pid = client.run(os.getpid)["worker-0"]
        os.kill(old_pid, signal.SIGKILL)
        names = poll(lambda: [w["name"] for w in client.workers() if w["pid"] != old_pid])
        assert names == ["worker-1"]
        new_pid = client.run(os.getpid)["worker-1"]
        assert client.submit(read_resource).result() == f"opened-on-worker-1-{new_pid}"


# ------------------------------------------------------------------------------- scaling


def test_scale_up_adds_running_workers():
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        client.cluster.scale(3)
        assert sorted(client.scheduler_info()["workers"]) == ["worker-0", "worker-1", "worker-2"]
        assert client.cluster.n_workers == 3
        assert len(set(client.run(os.getpid).values())) == 3


def test_scale_down_moves_results_to_the_remaining_workers_without_recomputing(tmp_path):
    with lc.Client(n_workers=3, threads_per_worker=1, memory_limit=None) as client:
        futures = [
            client.submit(mark_and_inc, i, str(tmp_path), workers=[f"worker-{i % 3}"])
            for i in range(12)
        ]
        assert client.gather(futures) == list(range(1, 13))
        assert {tuple(v) for v in client.who_has(futures).values()} == {
            ("worker-0",),
            ("worker-1",),
            ("worker-2",),
        }
        client.cluster.scale(1)
        survivors = list(client.scheduler_info()["workers"])
        assert len(survivors) == 1
        assert set(sum(client.who_has(futures).values(), [])) == set(survivors)
        assert client.gather(futures) == list(range(1, 13))
        assert executions(tmp_path) == 12  # moved, not recomputed


def test_adapt_adds_workers_under_a_queue_and_retires_idle_ones_keeping_results(tmp_path):
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        client.cluster.adapt(minimum=1, maximum=3, idle_timeout=1.0, target_duration=0.2)
        futures = client.map(sleep_and_mark, range(40), directory=str(tmp_path), seconds=0.05)
        seen = {1}
        while not all(f.done() for f in futures):
            seen.add(len(client.workers()))
            time.sleep(0.05)
        assert max(seen) > 1  # it grew while tasks queued
        assert max(seen) <= 3
        assert poll(lambda: len(client.scheduler_info()["workers"]) == 1, timeout=30)
        assert client.gather(futures) == list(range(1, 41))
        assert executions(tmp_path) == 40  # nothing recomputed, nothing lost
        assert client.scheduler_info()["adaptive"]["maximum"] == 3


def test_adapt_checks_its_bounds():
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        with pytest.raises(ValueError, match="maximum < minimum"):
            client.cluster.adapt(minimum=3, maximum=2)
        with pytest.raises(ValueError, match="idle_timeout"):
            client.cluster.adapt(idle_timeout=0)
        with pytest.raises(ValueError, match="whole number"):
            client.cluster.scale(-1)


def test_restart_gives_fresh_workers_and_cancels_old_futures(tmp_path):
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        client.register_plugin(RecordingPlugin(str(tmp_path)))
        future = client.submit(inc, 1)
        assert future.result() == 2
        old_pids = set(client.run(os.getpid).values())
        client.restart()
        new_pids = client.run(os.getpid)
        assert len(new_pids) == 2 and not old_pids & set(new_pids.values())
        assert future.status == "cancelled"
        with pytest.raises(concurrent.futures.CancelledError):
            future.result()
        assert client.has_what() == {name: [] for name in new_pids}
        assert client.submit(inc, 1).result() == 2  # the same key computes again
        assert set(client.run(read_resource).values()) == {
            f"opened-on-{name}-{pid}" for name, pid in new_pids.items()
        }


def test_client_cluster_is_the_cluster_it_runs_on(client):
    assert client.cluster.scheduler is client.scheduler


# ------------------------------------------------------------------- performance report


def test_performance_report_covers_a_compute_on_the_cluster(client, tmp_path):
    path = tmp_path / "report.html"
    parts = [lc.delayed(inc)(i) for i in range(20)]
    total = lc.delayed(sum)(parts)
    with lc.performance_report(str(path)):
        assert lc.compute(total, scheduler=client) == (sum(range(1, 21)),)
    html = path.read_text()
    assert "distributed" in html
    assert '"inc"' in html or ">inc<" in html


def test_scale_down_while_tasks_run_lets_them_finish_first(tmp_path):
    with lc.Client(n_workers=3, threads_per_worker=1, memory_limit=None) as client:
        futures = client.map(sleep_and_mark, range(12), directory=str(tmp_path), seconds=0.1)
        time.sleep(0.15)  # some are running on every worker
        client.cluster.scale(1)
        assert client.gather(futures) == list(range(1, 13))
        assert len(client.scheduler_info()["workers"]) == 1
        assert executions(tmp_path) == 12


def test_scale_down_works_with_thread_workers(tmp_path):
    with lc.Client(n_workers=2, threads_per_worker=1, processes=False, memory_limit=None) as client:
        futures = [
            client.submit(mark_and_inc, i, str(tmp_path), workers=[f"worker-{i % 2}"])
            for i in range(6)
        ]
        client.gather(futures)
        client.cluster.scale(1)
        assert client.gather(futures) == list(range(1, 7))
        assert len(client.has_what()) == 1
        assert executions(tmp_path) == 6


# -------------------------------------------------------------------------------- activity


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def test_activity_counts_every_task_by_group_and_keeps_the_task_stream():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        futures = client.map(fail_on_three, range(8))
        total = client.submit(sum, futures)
        lc.wait(futures + [total])
        activity = client.cluster.activity()
        groups = activity["groups"]
        assert groups["fail_on_three"]["total"] == 8
        assert groups["fail_on_three"]["done"] == 7
        assert groups["fail_on_three"]["erred"] == 1
        assert groups["sum"]["erred"] == 1  # failed because an input did
        assert activity["totals"]["total"] == 9
        bars = [bar for bar in activity["task_stream"] if bar["group"] == "fail_on_three"]
        assert len(bars) == 8
        assert sum(bar["erred"] for bar in bars) == 1
        assert {bar["worker"] for bar in bars} <= {"worker-0", "worker-1"}
        assert all(0 <= bar["start"] <= bar["stop"] <= activity["now"] for bar in bars)


def test_activity_drops_tasks_cancelled_before_they_ran():
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit=None) as client:
        blocker = client.submit(time.sleep, 0.5)
        # They wait for the blocker, so none of them can have started when cancelled.
        waiting = [client.submit(lambda _, i: i, blocker, i) for i in range(5)]
        for future in waiting:
            future.cancel()
        blocker.result()
        assert poll(lambda: client.cluster.activity()["totals"]["total"] == 1, timeout=10)
        assert client.cluster.activity()["totals"]["done"] == 1


# ------------------------------------------------------------------------------- profile


def spin_in_profiled_task(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


def test_profile_names_the_function_the_workers_spent_their_time_in(client, tmp_path):
    from lazycell.distributed.profiler import function_table

    start = time.time()
    futures = client.map(spin_in_profiled_task, [1_500_000 + i for i in range(6)])
    client.gather(futures)
    path = tmp_path / "profile.html"
    profile = client.profile(filename=str(path), start=start)
    assert set(profile["workers"]) == {"worker-0", "worker-1"}
    assert all(w["samples"] > 0 for w in profile["workers"].values())  # both worked
    top = function_table(profile)[0]
    assert top["function"] == "spin_in_profiled_task"
    assert top["own_share"] > 0.5
    html = path.read_text()
    assert "spin_in_profiled_task" in html
    assert '<script src="http' not in html


def test_profile_of_a_quiet_window_is_empty(client):
    now = time.time()
    profile = client.profile(start=now + 3600)
    assert profile["samples"] == 0


def test_plugins_without_a_name_get_their_own_names(client):
    class Counter(lc.WorkerPlugin):
        def setup(self, worker):
            worker.namespace["counted"] = worker.namespace.get("counted", 0) + 1

    client.register_plugin(Counter())
    client.register_plugin(Counter())
    assert client.run(lambda: lc.get_worker().namespace["counted"]) == {
        "worker-0": 2,
        "worker-1": 2,
    }
    names = client.scheduler_info()["workers"]["worker-0"]["plugins"]
    assert len([n for n in names if n.startswith("Counter-")]) == 2
