"""The cluster scheduler's state machine, placement and worker bookkeeping, without processes.

Each test builds a ``FakeCluster`` (the scheduler's state whose outside world
is a list of sent messages), adds plain ``WorkerHandle`` records, feeds it
the inputs the scheduler thread would (a graph, a worker's report, a worker's
death, a scale or restart command) and asserts the state it reaches and the
messages it would send.
"""

from __future__ import annotations

import queue

import lazycell as lc
from lazycell.distributed.failures import PickledFailure
from lazycell.distributed.scheduler import membership, transitions
from lazycell.distributed.scheduler.membership import MAX_STARTUP_FAILURES
from lazycell.distributed.scheduler.placement import FIRST_TASKS_PER_THREAD
from lazycell.distributed.scheduler.state import (
    KeyStatus,
    PendingCall,
    SchedulerState,
    WorkerHandle,
)
from lazycell.events import Failure
from lazycell.graph.spec import Ref, call_spec


class FakeCluster(SchedulerState):
    """The scheduler's state with its outside world replaced by lists: no process, no socket."""

    def __init__(self, n_workers: int, threads: int, allowed_failures: int):
        super().__init__(n_workers, threads, allowed_failures)
        self.sent: list = []  # (worker name, message) for each send_to
        self.exited: set = set()  # names of workers whose process has exited

    def send_to(self, worker, message):
        self.sent.append((worker.name, message))

    def launch_worker(self, index):
        return WorkerHandle(index, self.threads_per_worker)

    def end_worker_process(self, worker):
        return "was killed by signal 9 (SIGKILL)"

    def wait_for_exit(self, workers):
        pass

    def worker_exited(self, worker):
        return worker.name in self.exited


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def make_cluster(n_workers: int = 2, threads: int = 1, allowed_failures: int = 3) -> FakeCluster:
    cluster = FakeCluster(n_workers, threads, allowed_failures)
    for _ in range(n_workers):
        join(cluster)
    return cluster


def join(cluster: FakeCluster) -> WorkerHandle:
    """Start a worker and have it say ``ready``, as its process would."""
    worker = membership.add_worker(cluster)
    membership.worker_ready(cluster, worker, 1000 + worker.index, f"/tmp/{worker.name}.sock")
    return worker


def submit(cluster: FakeCluster, graph: dict, wanted: list, restrictions=None) -> dict:
    """``update-graph`` as the client sends it; returns key -> KeyStatus of ``wanted``."""
    statuses = [KeyStatus(key) for key in wanted]
    transitions.update_graph(cluster, graph, wanted, statuses, None, restrictions)
    return dict(zip(wanted, statuses))


def finish(cluster: FakeCluster, key, nbytes: int = 8, seconds: float = 0.001) -> None:
    """The worker ``key`` was sent to reports it finished."""
    worker = cluster.tasks[key].processing_on
    transitions.task_finished(cluster, worker, key, nbytes, 10.0, 10.0 + seconds)


def run_until_done(cluster: FakeCluster) -> None:
    """Dispatch and finish tasks, round after round, until nothing is left to run."""
    while True:
        transitions.dispatch(cluster)
        sent = [key for w in cluster.workers.values() for key, _, _ in w.to_compute]
        if not sent:
            return
        for worker in cluster.workers.values():
            worker.to_compute.clear()
        for key in sent:
            finish(cluster, key)


def chain() -> dict:
    """a -> b -> c"""
    return {
        "a": call_spec(inc, (1,)),
        "b": call_spec(inc, (Ref("a"),)),
        "c": call_spec(inc, (Ref("b"),)),
    }


def states(cluster: FakeCluster) -> dict:
    return {key: ts.state for key, ts in cluster.tasks.items()}


def worker_at(cluster: FakeCluster, index: int) -> WorkerHandle:
    return cluster.workers[index]


# ------------------------------------------------------------------------ transitions


def test_a_new_graph_queues_its_tasks_without_inputs_and_the_others_wait():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    assert states(cluster) == {"a": "ready", "b": "waiting", "c": "waiting"}
    assert cluster.tasks["b"].waiting_on == {cluster.tasks["a"]}


def test_dispatch_puts_a_ready_task_in_its_workers_next_batch_with_its_inputs_addresses():
    cluster = make_cluster()
    graph = {"x": call_spec(inc, (1,)), "y": call_spec(inc, (Ref("x"),))}
    submit(cluster, graph, ["y"], restrictions={"x": ["worker-0"], "y": ["worker-1"]})
    transitions.dispatch(cluster)
    x, y = cluster.tasks["x"], cluster.tasks["y"]
    assert worker_at(cluster, 0).to_compute == [("x", x.spec, {})]
    finish(cluster, "x")
    transitions.dispatch(cluster)
    assert (x.state, y.state) == ("memory", "processing")
    assert worker_at(cluster, 1).to_compute == [("y", y.spec, {"x": worker_at(cluster, 0).address})]


def test_a_finished_input_makes_its_dependent_ready():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    finish(cluster, "a")
    assert states(cluster) == {"a": "memory", "b": "ready", "c": "waiting"}


def test_a_wanted_key_in_memory_settles_its_future_with_the_workers_address():
    cluster = make_cluster()
    statuses = submit(cluster, chain(), ["c"])
    run_until_done(cluster)
    holder = cluster.tasks["c"].who_has
    assert statuses["c"].status == "finished"
    assert (statuses["c"].address, statuses["c"].worker_name) == (holder.address, holder.name)


def test_an_input_is_released_on_its_worker_once_its_dependents_are_in_memory():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    run_until_done(cluster)
    released = [key for w in cluster.workers.values() for key in w.to_release]
    assert sorted(released) == ["a", "b"]
    assert states(cluster) == {"a": "released", "b": "released", "c": "memory"}
    assert [ts.key for w in cluster.workers.values() for ts in w.has_what] == ["c"]


def test_a_failed_task_errs_its_dependents_and_their_futures_name_the_task_that_failed():
    cluster = make_cluster()
    statuses = submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    failure = PickledFailure.from_exception(ZeroDivisionError("boom"))
    transitions.task_erred(cluster, cluster.tasks["a"].processing_on, "a", failure, 1.0, 2.0)
    assert states(cluster) == {"a": "erred", "b": "erred", "c": "erred"}
    assert statuses["c"].status == "error"
    assert (statuses["c"].error, statuses["c"].erred_key) == (failure, "a")
    assert statuses["c"].erred_spec is cluster.tasks["a"].spec


def test_an_erred_task_releases_its_inputs_and_a_rerun_asking_for_them_computes_them_again():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    finish(cluster, "a")
    transitions.dispatch(cluster)
    failure = PickledFailure(Failure(None, "", "builtins.ValueError", "bad"))
    transitions.task_erred(cluster, cluster.tasks["b"].processing_on, "b", failure, 1.0, 2.0)
    assert cluster.tasks["a"].state == "released"
    assert any("a" in w.to_release for w in cluster.workers.values())
    for worker in cluster.workers.values():  # the loop sent them
        worker.to_compute.clear()
    # %debug re-runs "b" in the kernel: the client asks for its inputs by key.
    inputs = submit(cluster, {}, ["a"])
    assert cluster.tasks["a"].state == "ready"
    run_until_done(cluster)
    assert inputs["a"].status == "finished" and cluster.tasks["b"].state == "erred"


def test_dropping_the_last_future_forgets_the_graph_and_releases_its_results_on_the_workers():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    run_until_done(cluster)
    transitions.release_wanted(cluster, ["c"])
    assert cluster.tasks == {}
    assert "c" in cluster.workers[0].to_release + cluster.workers[1].to_release
    assert all(not w.has_what and w.nbytes == 0 for w in cluster.workers.values())


def test_a_report_for_a_task_no_longer_sent_there_only_releases_the_result():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    other = next(w for w in cluster.workers.values() if w is not cluster.tasks["a"].processing_on)
    transitions.task_finished(cluster, other, "a", 8, 1.0, 2.0)
    assert cluster.tasks["a"].state == "processing"
    assert other.to_release == ["a"] and not other.has_what


def test_a_graph_with_a_missing_key_errs_its_futures_at_once():
    cluster = make_cluster()
    statuses = submit(cluster, {"b": call_spec(inc, (Ref("a"),))}, ["b"])
    assert statuses["b"].status == "error"
    assert statuses["b"].error.type_name == "builtins.KeyError"
    assert cluster.tasks == {}


def test_cancelling_settles_the_futures_as_cancelled_and_forgets_tasks_not_started():
    cluster = make_cluster()
    statuses = submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    transitions.cancel(cluster, ["c"])
    assert statuses["c"].status == "cancelled"
    assert states(cluster) == {"a": "processing"}  # forgotten when it reports back
    finish(cluster, "a")
    assert cluster.tasks == {}


# -------------------------------------------------------------------------- placement


def test_a_task_goes_to_the_worker_that_holds_its_large_input_even_if_it_is_busier():
    cluster = make_cluster(n_workers=3)
    graph = {
        "big": call_spec(inc, (1,)),
        "small": call_spec(inc, (2,)),
        "sum": call_spec(add, (Ref("big"), Ref("small"))),
    }
    submit(cluster, graph, ["sum"], restrictions={"big": ["worker-2"], "small": ["worker-0"]})
    transitions.dispatch(cluster)
    finish(cluster, "big", nbytes=50_000_000)
    finish(cluster, "small", nbytes=100)
    worker_at(cluster, 2).queued_seconds = 0.1  # less than moving 50 MB would take
    transitions.dispatch(cluster)
    assert cluster.tasks["sum"].processing_on is worker_at(cluster, 2)
    assert worker_at(cluster, 2).to_compute[-1][2] == {"small": worker_at(cluster, 0).address}


def test_a_task_on_small_inputs_goes_to_a_less_busy_worker():
    cluster = make_cluster()
    graph = {"x": call_spec(inc, (1,)), "y": call_spec(inc, (Ref("x"),))}
    submit(cluster, graph, ["y"], restrictions={"x": ["worker-0"]})
    transitions.dispatch(cluster)
    finish(cluster, "x", nbytes=100)
    worker_at(cluster, 0).queued_seconds = 1.0  # a second of work already waits there
    transitions.dispatch(cluster)
    assert cluster.tasks["y"].processing_on is worker_at(cluster, 1)


def test_a_worker_gets_at_most_its_capacity_and_the_other_tasks_stay_ready():
    cluster = make_cluster(n_workers=2, threads=2)
    graph = {("x", i): call_spec(inc, (i,)) for i in range(100)}
    submit(cluster, graph, list(graph))
    transitions.dispatch(cluster)
    per_worker = 2 * FIRST_TASKS_PER_THREAD
    assert [len(w.processing) for w in cluster.workers.values()] == [per_worker, per_worker]
    assert list(states(cluster).values()).count("ready") == 100 - 2 * per_worker


def test_tasks_without_inputs_go_to_one_worker_in_runs_of_ready_tasks_per_worker():
    cluster = make_cluster(n_workers=2)
    graph = {("x", i): call_spec(inc, (i,)) for i in range(8)}
    submit(cluster, graph, list(graph))
    transitions.dispatch(cluster)
    placed = [cluster.tasks[("x", i)].processing_on.name for i in range(8)]
    first, second = placed[0], placed[4]
    assert first != second
    assert placed == [first] * 4 + [second] * 4


def test_a_paused_worker_gets_no_tasks():
    cluster = make_cluster()
    worker_at(cluster, 0).paused = True
    graph = {("x", i): call_spec(inc, (i,)) for i in range(6)}
    submit(cluster, graph, list(graph))
    transitions.dispatch(cluster)
    assert not worker_at(cluster, 0).processing and len(worker_at(cluster, 1).processing) == 6


def test_a_restricted_task_waits_for_its_worker_without_holding_up_the_others():
    cluster = make_cluster()
    worker_at(cluster, 1).paused = True  # the only allowed worker has no room
    graph = {"only-on-1": call_spec(inc, (1,)), "anywhere": call_spec(inc, (2,))}
    submit(cluster, graph, list(graph), restrictions={"only-on-1": ["worker-1"]})
    transitions.dispatch(cluster)
    assert states(cluster) == {"only-on-1": "ready", "anywhere": "processing"}
    worker_at(cluster, 1).paused = False
    transitions.dispatch(cluster)
    assert cluster.tasks["only-on-1"].processing_on is worker_at(cluster, 1)


# ------------------------------------------------------------------ workers dying


def test_a_dead_workers_results_are_recomputed_when_still_needed():
    cluster = make_cluster()
    submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    holder = cluster.tasks["a"].processing_on
    finish(cluster, "a")
    membership.remove_worker(cluster, holder)
    assert holder.state == "closed" and holder.index not in cluster.workers
    assert states(cluster) == {"a": "ready", "b": "waiting", "c": "waiting"}
    run_until_done(cluster)
    assert cluster.tasks["c"].state == "memory"


def test_a_lost_wanted_result_sends_its_future_back_to_pending_until_recomputed():
    cluster = make_cluster()
    statuses = submit(cluster, chain(), ["c"])
    run_until_done(cluster)
    membership.remove_worker(cluster, cluster.tasks["c"].who_has)
    assert statuses["c"].status == "pending"
    assert states(cluster) == {"a": "ready", "b": "waiting", "c": "waiting"}
    run_until_done(cluster)
    assert statuses["c"].status == "finished"


def test_a_task_that_kills_allowed_failures_workers_errs_with_worker_died_error():
    cluster = make_cluster(n_workers=2, allowed_failures=2)
    statuses = submit(cluster, {"crash": call_spec(inc, (1,))}, ["crash"])
    for _ in range(2):
        transitions.dispatch(cluster)
        membership.remove_worker(cluster, cluster.tasks["crash"].processing_on)
        for started in list(cluster.workers.values()):  # the replacement comes up
            if started.state == "starting":
                membership.worker_ready(cluster, started, 0, f"/tmp/{started.name}.sock")
    assert cluster.tasks["crash"].state == "erred"
    error = statuses["crash"].error
    assert isinstance(error.rebuild(), lc.WorkerDiedError)
    message = error.message
    assert "'crash'" in message and "died 2 times" in message and "SIGKILL" in message


def test_a_dead_worker_is_replaced_by_a_new_one():
    cluster = make_cluster(n_workers=2)
    membership.remove_worker(cluster, worker_at(cluster, 0))
    assert sorted(w.name for w in cluster.workers.values()) == ["worker-1", "worker-2"]
    assert worker_at(cluster, 2).state == "starting"


def test_workers_that_die_while_starting_are_replaced_only_a_few_times_in_a_row(capsys):
    cluster = FakeCluster(n_workers=1, threads=1, allowed_failures=3)
    membership.add_worker(cluster)
    for _ in range(MAX_STARTUP_FAILURES):
        (starting,) = cluster.workers.values()
        membership.remove_worker(cluster, starting)
    assert cluster.workers == {}
    assert "failed to start" in capsys.readouterr().err


def test_a_call_a_dead_worker_had_not_answered_gets_a_worker_died_answer():
    cluster = make_cluster()
    replies: queue.SimpleQueue = queue.SimpleQueue()
    cluster.pending_calls[7] = PendingCall({"worker-0", "worker-1"}, replies)
    cluster.pending_calls[7].answer("worker-1", True, 42)
    membership.remove_worker(cluster, worker_at(cluster, 0))
    results = replies.get_nowait()
    assert results["worker-1"] == (True, 42)
    ok, failure = results["worker-0"]
    assert not ok and isinstance(failure.rebuild(), lc.WorkerDiedError)
    assert cluster.pending_calls == {}


def test_a_task_whose_input_holder_died_waits_for_the_input_to_be_recomputed():
    cluster = make_cluster()
    graph = {"x": call_spec(inc, (1,)), "y": call_spec(inc, (Ref("x"),))}
    submit(cluster, graph, ["y"], restrictions={"x": ["worker-0"], "y": ["worker-1"]})
    transitions.dispatch(cluster)
    finish(cluster, "x")
    transitions.dispatch(cluster)
    cluster.exited.add("worker-0")  # its end-of-file has not arrived yet
    membership.input_missing(cluster, worker_at(cluster, 1), "y")
    assert 0 not in cluster.workers
    assert states(cluster) == {"x": "ready", "y": "waiting"}


# ------------------------------------------------------- scaling, retiring, restart


def test_retiring_moves_results_to_the_remaining_worker_then_stops_it_without_recomputing():
    cluster = make_cluster(n_workers=2)
    graph = {"small": call_spec(inc, (1,)), "large": call_spec(inc, (2,))}
    statuses = submit(cluster, graph, list(graph), {"small": ["worker-0"], "large": ["worker-1"]})
    transitions.dispatch(cluster)
    finish(cluster, "small", nbytes=100)
    finish(cluster, "large", nbytes=10_000)
    retiring, staying = worker_at(cluster, 0), worker_at(cluster, 1)

    membership.scale(cluster, 1)  # the worker with the least data goes
    membership.progress_retirements(cluster)
    ((name, (kind, request_id, wanted)),) = cluster.sent
    assert (name, kind, wanted) == ("worker-1", "gather-from", {retiring.address: ["small"]})
    assert retiring.state == "retiring"

    membership.results_moved(cluster, request_id, {"small": 100}, None)
    membership.progress_retirements(cluster)
    assert cluster.sent[-1] == ("worker-0", ("stop",))
    assert list(cluster.workers.values()) == [staying]  # stopped, and not replaced
    assert cluster.tasks["small"].who_has is staying and cluster.tasks["small"].state == "memory"
    assert statuses["small"].address == staying.address


def test_restart_cancels_every_future_and_replaces_every_worker():
    cluster = make_cluster(n_workers=2)
    statuses = submit(cluster, chain(), ["c"])
    transitions.dispatch(cluster)
    old = list(cluster.workers.values())
    membership.restart(cluster)
    assert statuses["c"].status == "cancelled"
    assert cluster.tasks == {} and cluster.ready == [] and cluster.statuses == {}
    assert [w.state for w in old] == ["closed", "closed"]
    assert sorted(cluster.sent) == [("worker-0", ("stop",)), ("worker-1", ("stop",))]
    assert sorted(w.name for w in cluster.workers.values()) == ["worker-2", "worker-3"]


# ------------------------------------------------------------------------ copies (replicate)


def copy_everywhere(cluster: FakeCluster, key) -> list:
    """``client.replicate``: the copy requests sent, then every receiver's answer."""
    cluster.sent.clear()
    replies = queue.SimpleQueue()
    membership.replicate(cluster, [key], None, None, replies)
    requests = [(name, msg) for name, msg in cluster.sent if msg[0] == "gather-from"]
    for _, (_, request_id, _) in requests:
        membership.results_moved(cluster, request_id, {key: 8}, None)
    assert replies.get_nowait() is None  # answered once every copy is made
    return requests


def test_replicate_asks_every_other_worker_for_a_copy_and_counts_it():
    cluster = make_cluster(n_workers=3)
    submit(cluster, {"x": call_spec(inc, (1,))}, ["x"])
    run_until_done(cluster)
    ts = cluster.tasks["x"]
    requests = copy_everywhere(cluster, "x")
    assert sorted(name for name, _ in requests) == sorted(
        w.name for w in cluster.workers.values() if w is not ts.who_has
    )
    assert {w.name for w in ts.replicas} == {name for name, _ in requests}
    copy = next(iter(ts.replicas))
    assert transitions.addresses_to_fetch(_dependent_of(cluster, "x"), copy) == {}


def _dependent_of(cluster: FakeCluster, key):
    submit(cluster, {"y": call_spec(inc, (Ref(key),))}, ["y"])
    return cluster.tasks["y"]


def test_a_copy_takes_over_a_dead_holders_result_instead_of_a_recompute():
    cluster = make_cluster(n_workers=2)
    statuses = submit(cluster, {"x": call_spec(inc, (1,))}, ["x"])
    run_until_done(cluster)
    ts = cluster.tasks["x"]
    holder = ts.who_has
    copy_everywhere(cluster, "x")
    (copy,) = ts.replicas
    membership.remove_worker(cluster, holder)
    assert ts.state == "memory" and ts.who_has is copy and not ts.replicas
    assert statuses["x"].status == "finished" and statuses["x"].address == copy.address


def test_releasing_a_result_releases_its_copies():
    cluster = make_cluster(n_workers=2)
    statuses = submit(cluster, {"x": call_spec(inc, (1,))}, ["x"])
    run_until_done(cluster)
    copy_everywhere(cluster, "x")
    (copy,) = cluster.tasks["x"].replicas
    transitions.release_wanted(cluster, ["x"], [statuses["x"]])
    assert "x" not in cluster.tasks
    assert "x" in copy.to_release and not copy.replicas and copy.nbytes == 0
