"""The task state machine: each function takes the state and changes it one visible way.

::

    update_graph: new tasks are released; activate the ones a wanted key needs
    released   ─activate─► waiting ─(its last input finishes: make_ready)─► ready
    released   ─activate, every input in memory: make_ready─────────────► ready
    ready      ─dispatch: placement chooses the worker, send_task─► processing
    processing ─task_finished─► memory ─release_if_unneeded─► released
    processing ─task_seceded: waits on other tasks, holds no thread─► processing
    processing ─task_erred─► erred, and mark_erred errs the tasks waiting on it
    memory, processing ─worker lost: recompute_lost─► released, activated if needed
    any state  ─no wanted key depends on it: forget_if_unneeded─► forgotten

(The task states and the scheduler state are named in ``state``.)

Releasing: a result leaves memory when it is not wanted and no task that
takes it still has to run (every one is in memory, released or erred). An
erred task does not keep its inputs on the workers: re-running it in the
kernel (``%debug``) asks for them again, and what was released is computed
again then (the task states, with their specs, stay until the failure's
futures are dropped). A task no wanted key depends on any more is forgotten.

What the workers must hear goes to their outboxes: ``send_task`` appends to
``WorkerHandle.to_compute``, a release to ``WorkerHandle.to_release``; the
loop sends both once per round. What futures must hear goes to the
``KeyStatus`` of the key (``report_to_status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from heapq import heappop, heappush

from lazycell.distributed.failures import PickledFailure
from lazycell.distributed.scheduler.placement import (
    choose_worker,
    expected_seconds,
    learn_task_time,
)
from lazycell.distributed.scheduler.state import SchedulerState, TaskState, WorkerHandle
from lazycell.events.failure import Failure, message_of, type_name_of
from lazycell.graph.spec import TaskSpec
from lazycell.schedulers.core import order_graph

# ------------------------------------------------------------------------ wanted keys


def update_graph(
    state: SchedulerState,
    graph: Mapping,
    wanted: list,
    statuses: list,
    recorder,
    restrictions=None,
    options=None,
) -> None:
    """Add a graph's new tasks, mark ``wanted`` keys, and start what they need.

    ``restrictions`` maps keys to the names of the workers they may run on,
    ``options`` keys to their :class:`~lazycell.distributed.scheduler.state.TaskOptions`.
    A task's priority is ``(-user priority, graph generation, place in the
    graph's order)``: lowest first.
    """
    known = state.tasks
    try:
        order = order_graph(_KnownAsLeaves(graph, known), wanted)
    except (KeyError, ValueError) as exc:
        for status in statuses:
            status.error = PickledFailure.of(Failure(exc, "", type_name_of(exc), message_of(exc)))
            status.erred_key = status.key
            status.settle("error", state.callbacks)
        return
    generation = next(state.generations)
    new = []
    for i, key in enumerate(order):
        if key not in known:
            ts = known[key] = TaskState(key, graph[key], (0, generation, i), recorder)
            new.append(ts)
    for key, names in (restrictions or {}).items():
        if key in known and known[key] in new:
            known[key].restrictions = frozenset(names)
    if options:
        apply_options(state, [ts for ts in new if ts.key in options], options)
    state.activity.tasks_added([ts.key for ts in new])
    for ts in new:
        ts.deps = [known[dep] for dep in ts.spec.deps]
        for dep in ts.deps:
            dep.dependents.add(ts)
    for key, status in zip(wanted, statuses):
        ts = known[key]
        ts.wanted = True
        holders = state.statuses.setdefault(key, [])
        if status not in holders:  # one per client that wants the key
            holders.append(status)
        report_to_status(state, ts)
    new_keys = {ts.key for ts in new}
    activate_with_inputs(state, [known[k] for k in order if k not in new_keys])
    for ts in new:  # in priority order: inputs before the tasks that take them
        activate(state, ts)


def apply_options(state: SchedulerState, new: list, options: Mapping) -> None:
    """Set what ``submit(..., retries=, priority=, resources=, allow_other_workers=)`` asked."""
    for ts in new:
        opts = options[ts.key]
        ts.retries = opts.retries
        ts.resources = opts.resources or None
        ts.loose_restrictions = opts.loose_restrictions
        if opts.priority:
            ts.priority = (-opts.priority, *ts.priority[1:])


def release_wanted(state: SchedulerState, keys: list, statuses: list | None = None) -> None:
    """A client dropped its futures of ``keys`` (``statuses``: its KeyStatus of each; None:
    every client's): a key no client wants any more is released, and forgotten if nothing
    needs it."""
    for i, key in enumerate(keys):
        holders = state.statuses.get(key)
        if holders is not None:
            if statuses is None:
                holders.clear()
            elif statuses[i] in holders:
                holders.remove(statuses[i])
            if holders:
                continue  # another client still wants it
            del state.statuses[key]
        ts = state.tasks.get(key)
        if ts is None:
            continue
        ts.wanted = False
        release_if_unneeded(state, ts)
        forget_if_unneeded(state, ts)


def cancel(state: SchedulerState, keys: list, statuses: list | None = None) -> None:
    """A client's futures of ``keys`` become cancelled (every client's if ``statuses`` is
    None), then the keys are released for it."""
    for i, key in enumerate(keys):
        for status in list(state.statuses.get(key, ())):
            if statuses is None or status is statuses[i]:
                status.settle("cancelled", state.callbacks)
    release_wanted(state, keys, statuses)


def retry(state: SchedulerState, keys: list) -> None:
    """``client.retry``: erred tasks behind ``keys`` (theirs or an input's) run again."""
    erred = []
    seen = set()
    stack = [state.tasks[key] for key in keys if key in state.tasks]
    while stack:
        ts = stack.pop()
        if ts in seen or ts.state != "erred":
            continue
        seen.add(ts)
        erred.append(ts)
        stack.extend(ts.deps)
    for ts in erred:
        ts.state = "released"
        ts.error = None
        if ts.counted:
            state.activity.task_erred_retried(ts.key)
            ts.counted = False
        for status in state.statuses.get(ts.key, ()):
            status.reset()
    activate_with_inputs(state, erred)


# ------------------------------------------------------------------- towards memory


def activate(state: SchedulerState, ts: TaskState) -> None:
    """A released task is needed: wait for its inputs, or queue it if they are there."""
    if ts.state != "released":
        return
    if ts.counted:  # ran before (result lost or released): it runs again
        state.activity.task_rerun(ts.key)
        ts.counted = False
    erred = next((dep for dep in ts.deps if dep.state == "erred"), None)
    if erred is not None:
        mark_erred(state, ts, erred.error)
        return
    ts.waiting_on = {dep for dep in ts.deps if dep.state != "memory"}
    if ts.waiting_on:
        ts.state = "waiting"
    else:
        make_ready(state, ts)


def activate_with_inputs(state: SchedulerState, roots: list) -> None:
    """Activate released ``roots`` and the released inputs they need, inputs first."""
    needed = []
    seen = set()
    stack = [ts for ts in roots if ts.state == "released"]
    while stack:
        ts = stack.pop()
        if ts in seen:
            continue
        seen.add(ts)
        needed.append(ts)
        stack.extend(dep for dep in ts.deps if dep.state == "released")
    for ts in sorted(needed, key=lambda t: t.priority):
        activate(state, ts)


def make_ready(state: SchedulerState, ts: TaskState) -> None:
    ts.state = "ready"
    heappush(state.ready, (ts.priority, ts.key))


def dispatch(state: SchedulerState) -> None:
    """Send ready tasks to workers, best placed first, while workers have room."""
    workers = state.running_workers()
    if not workers:
        return
    ready = state.ready
    tasks = state.tasks
    # Runs of siblings short enough that every worker gets a share of a small map.
    state.root_run_length = max(1, -(-len(ready) // len(workers)))
    deferred = []  # restricted tasks whose workers are full or gone
    while ready:
        priority, key = ready[0]
        ts = tasks.get(key)
        if ts is None or ts.state != "ready" or ts.priority != priority:
            heappop(ready)
            continue
        worker = choose_worker(state, ts, workers)
        if worker is None:
            if ts.restrictions is None and ts.resources is None:
                break
            deferred.append(heappop(ready))
            continue
        heappop(ready)
        send_task(state, ts, worker)
    for entry in deferred:
        heappush(ready, entry)


def send_task(state: SchedulerState, ts: TaskState, worker: WorkerHandle) -> None:
    """``ts`` goes into ``worker``'s next batch, with where to fetch its inputs."""
    ts.state = "processing"
    ts.processing_on = worker
    worker.processing.add(ts)
    ts.expected_seconds = expected_seconds(state, ts)
    worker.queued_seconds += ts.expected_seconds
    if ts.resources:
        free = worker.resources_free
        for name, amount in ts.resources.items():
            free[name] -= amount
    worker.to_compute.append((ts.key, ts.spec, addresses_to_fetch(ts, worker)))


def addresses_to_fetch(ts: TaskState, worker: WorkerHandle) -> dict:
    """Data addresses of the inputs of ``ts`` that ``worker`` does not hold."""
    return {
        dep.key: dep.who_has.address
        for dep in ts.deps
        if dep.who_has is not worker and not (dep.replicas and worker in dep.replicas)
    }


def stop_processing(ts: TaskState) -> None:
    """``ts`` is no longer on its worker's queue (finished, failed, lost or sent back)."""
    worker = ts.processing_on
    if worker is not None:
        worker.processing.discard(ts)
        worker.long_running.discard(ts)
        worker.queued_seconds = max(0.0, worker.queued_seconds - ts.expected_seconds)
        if ts.resources:
            free = worker.resources_free
            for name, amount in ts.resources.items():
                free[name] += amount
    ts.processing_on = None


# ---------------------------------------------------------------- a worker reports


def task_finished(
    state: SchedulerState, worker: WorkerHandle, key, nbytes: int, start, stop
) -> None:
    """``worker`` holds ``key``'s result: ready its dependents, release what is not needed."""
    ts = state.tasks.get(key)
    if ts is None or ts.state != "processing" or ts.processing_on is not worker:
        worker.to_release.append(key)  # cancelled or recomputed elsewhere meanwhile
        return
    waited = ts in worker.long_running  # its time says nothing of its group's
    stop_processing(ts)
    ts.state = "memory"
    ts.who_has = worker
    ts.nbytes = nbytes
    worker.has_what.add(ts)
    worker.nbytes += nbytes
    if not waited:
        learn_task_time(state, ts, stop - start)
    state.activity.task_finished(key, ts.group, worker.name, start, stop)
    ts.counted = True
    if ts.recorder is not None:
        ts.recorder.started(key, worker.name, start)
        ts.recorder.finished(key, worker.name, start, stop, _Sized(nbytes))
    for dependent in ts.dependents:
        if dependent.state == "waiting":
            dependent.waiting_on.discard(ts)
            if not dependent.waiting_on:
                make_ready(state, dependent)
    report_to_status(state, ts)
    for dep in ts.deps:
        release_if_unneeded(state, dep)
    release_if_unneeded(state, ts)
    forget_if_unneeded(state, ts)


def task_seceded(state: SchedulerState, worker: WorkerHandle, key) -> None:
    """``key``'s task left its thread to wait on other tasks: it takes no room on ``worker``."""
    ts = state.tasks.get(key)
    if ts is None or ts.state != "processing" or ts.processing_on is not worker:
        return
    worker.long_running.add(ts)
    worker.queued_seconds = max(0.0, worker.queued_seconds - ts.expected_seconds)
    ts.expected_seconds = 0.0


def task_erred(
    state: SchedulerState, worker: WorkerHandle, key, failure: PickledFailure, start, stop
) -> None:
    """``key`` raised on ``worker``: it and what waits on it err with ``failure``."""
    ts = state.tasks.get(key)
    if ts is None or ts.state != "processing" or ts.processing_on is not worker:
        return
    stop_processing(ts)
    if ts.retries > 0:  # submit(..., retries=n): run it again, as if it had not run
        ts.retries -= 1
        ts.state = "released"
        activate(state, ts)
        return
    state.activity.task_erred(key, ts.group, worker.name, start, stop)
    ts.counted = True
    if ts.recorder is not None:
        ts.recorder.erred(key, worker.name, start, stop, failure.label())
    mark_erred(state, ts, (failure, key))


def mark_erred(state: SchedulerState, ts: TaskState, error: tuple) -> None:
    """``ts`` and every task waiting on it fail with ``error``: (failure, failed key).
    Their inputs leave memory unless another task still needs them."""
    stack = [ts]
    while stack:
        ts = stack.pop()
        ts.state = "erred"
        ts.error = error
        if not ts.counted:  # failed because an input did, or never reached a worker
            state.activity.task_erred_unrun(ts.key)
            ts.counted = True
        report_to_status(state, ts)
        for dependent in ts.dependents:
            if dependent.state in ("waiting", "ready"):
                stack.append(dependent)
        for dep in ts.deps:
            release_if_unneeded(state, dep)


def report_to_status(state: SchedulerState, ts: TaskState) -> None:
    """Settle the futures of ``ts`` if it is wanted and has reached memory or failed."""
    holders = state.statuses.get(ts.key)
    if not holders:
        return
    if ts.state == "memory":
        for status in holders:
            status.address = ts.who_has.address
            status.worker_name = ts.who_has.name
            status.settle("finished", state.callbacks)
    elif ts.state == "erred":
        failure, erred_key = ts.error
        erred = state.tasks.get(erred_key)
        for status in holders:
            status.error = failure
            status.erred_key = erred_key
            status.erred_spec = erred.spec if erred is not None else None
            status.settle("error", state.callbacks)


# ----------------------------------------------------------------------- releasing


def is_needed_in_memory(ts: TaskState) -> bool:
    if ts.wanted:
        return True
    return any(d.state in _TO_RUN for d in ts.dependents)


_TO_RUN = frozenset(("waiting", "ready", "processing"))


def release_if_unneeded(state: SchedulerState, ts: TaskState) -> None:
    """Drop a result from its worker once nothing needs it (see the module docstring)."""
    if ts.state != "memory" or is_needed_in_memory(ts):
        return
    worker = ts.who_has
    worker.has_what.discard(ts)
    worker.nbytes -= ts.nbytes
    worker.to_release.append(ts.key)
    ts.who_has = None
    ts.state = "released"
    if ts.replicas:
        drop_replicas(ts)


def drop_replicas(ts: TaskState) -> None:
    """The copies of a result go with it."""
    for worker in ts.replicas or ():
        worker.replicas.discard(ts)
        worker.nbytes -= ts.nbytes
        worker.to_release.append(ts.key)
    ts.replicas = None


def forget_if_unneeded(state: SchedulerState, ts: TaskState) -> None:
    """Forget tasks that no wanted key depends on any more, inputs included."""
    stack = [ts]
    while stack:
        ts = stack.pop()
        if state.tasks.get(ts.key) is not ts or ts.wanted or ts.dependents:
            continue
        if ts.state == "processing":
            continue  # forgotten when it reports back
        if ts.state == "memory":
            ts.who_has.has_what.discard(ts)
            ts.who_has.nbytes -= ts.nbytes
            ts.who_has.to_release.append(ts.key)
            ts.who_has = None
            if ts.replicas:
                drop_replicas(ts)
        if not ts.counted:  # cancelled before it ran: no longer part of the totals
            state.activity.task_dropped(ts.key)
        ts.state = "forgotten"
        del state.tasks[ts.key]
        for dep in ts.deps:
            dep.dependents.discard(ts)
            release_if_unneeded(state, dep)
            stack.append(dep)


# ------------------------------------------------------------------ lost results


def recompute_lost(state: SchedulerState, lost: list) -> None:
    """Put lost results (and released inputs they need) back on the way to memory."""
    for ts in lost:  # tasks that were ready or waiting now wait for it again
        for dependent in ts.dependents:
            if dependent.state == "ready":
                dependent.state = "waiting"
                dependent.waiting_on = {ts}
            elif dependent.state == "waiting":
                dependent.waiting_on.add(ts)
    activate_with_inputs(state, [ts for ts in lost if is_needed_again(state, ts)])
    for ts in lost:
        if ts.state == "released":
            forget_if_unneeded(state, ts)


def is_needed_again(state: SchedulerState, ts: TaskState) -> bool:
    if state.tasks.get(ts.key) is not ts:
        return False
    if ts.wanted:
        return True
    return any(d.state in ("waiting", "ready", "processing") for d in ts.dependents)


# --------------------------------------------------------------------------- helpers


class _Sized:
    """Stands for a result held on a worker when telling the event recorder its size."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes: int):
        self.nbytes = nbytes


_LEAF = TaskSpec(0, None, None, None, ())


class _KnownAsLeaves(Mapping):
    """A new graph where keys the scheduler already knows count as leaves (kept as they are)."""

    def __init__(self, graph: Mapping, known: Mapping):
        self.graph = graph
        self.known = known

    def __getitem__(self, key):
        if key in self.known:
            return _LEAF
        return self.graph[key]

    def __contains__(self, key) -> bool:
        return key in self.known or key in self.graph

    def __iter__(self):
        return iter(self.graph)

    def __len__(self) -> int:
        return len(self.graph)
