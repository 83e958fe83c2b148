"""Where a ready task runs: the choice of worker, each worker's room, and the time estimates.

A ready task goes to the worker where it would start soonest: the queue
there (``queue_seconds``: the expected run time of the tasks sent and not
done, per thread) plus the time to fetch the input bytes it does not hold
(``TRANSFER_BYTES_PER_SECOND`` and ``TRANSFER_LATENCY``). So big inputs pull
tasks to their worker, while tasks on small inputs spread out. Each worker
gets at most ``capacity`` tasks at a time, sized so its queue holds about
``QUEUE_SECONDS`` of work; a task whose best worker is full waits for it,
unless another worker is idle (idle workers take work from busy ones).
Tasks without inputs go to one worker in runs of up to ``root_run_length``
(ready tasks / workers), so siblings of a reduction land together and their
sum needs no transfer, while a small ``map`` still uses every worker.
``TaskState.restrictions`` (``submit(..., workers=[...])``) limit the choice,
and so do ``TaskState.resources`` (``submit(..., resources={"GPU": 1})``): a
worker runs at once only as many such tasks as its resources allow.
A worker paused by its memory monitor gets no tasks. A task that seceded
(``lc.secede()``, ``worker_client()``: it waits on tasks it submitted) holds
no thread: it is in ``long_running`` and takes no room.

Run times are learnt as tasks finish (``learn_task_time``): a running mean
over all tasks sizes the queues, one per task group (``key_group``) predicts
a task's share of its worker's queue (``expected_seconds``).

These functions only read the state and return a decision, except that
``learn_task_time`` updates the estimates and ``choose_root_worker`` keeps
its current run (``root_worker``, ``root_run``). ``transitions.dispatch``
acts on the decisions.
"""

from __future__ import annotations

from lazycell.distributed.scheduler.state import SchedulerState, TaskState, WorkerHandle
from lazycell.graph.spec import key_group

QUEUE_SECONDS = 0.05
MIN_TASKS_PER_THREAD, MAX_TASKS_PER_THREAD, FIRST_TASKS_PER_THREAD = 2, 512, 16
TRANSFER_BYTES_PER_SECOND = 1e8  # conservative: a move costs memory and CPU on both ends
TRANSFER_LATENCY = 2e-3  # seconds a task thread waits on a fetch from a peer, at least
TASK_OVERHEAD_SECONDS = 5e-5  # a worker's own cost per task, beyond the task's run time
GUESSED_TASK_SECONDS = 0.01  # for a task group none of whose tasks has finished yet


# ------------------------------------------------------------------------------ estimates


def learn_task_time(state: SchedulerState, ts: TaskState, seconds: float) -> None:
    """Running means of task durations: overall (queue sizes) and per task group."""
    if state.mean_task_seconds is None:
        state.mean_task_seconds = seconds
    else:
        state.mean_task_seconds = 0.9 * state.mean_task_seconds + 0.1 * seconds
    mean = state.group_seconds.get(ts.group)
    state.group_seconds[ts.group] = seconds if mean is None else 0.8 * mean + 0.2 * seconds


def expected_seconds(state: SchedulerState, ts: TaskState) -> float:
    """How long ``ts`` will keep a worker thread busy: its group's mean, plus overhead."""
    if ts.group is None:
        ts.group = key_group(ts.key)
    return state.group_seconds.get(ts.group, GUESSED_TASK_SECONDS) + TASK_OVERHEAD_SECONDS


def capacity(state: SchedulerState, worker: WorkerHandle) -> int:
    """How many tasks ``worker`` may have sent and not done: ``QUEUE_SECONDS`` of work."""
    if worker.paused:
        return 0
    mean = state.mean_task_seconds
    if mean is None:
        per_thread = FIRST_TASKS_PER_THREAD
    elif mean <= 0:
        per_thread = MAX_TASKS_PER_THREAD
    else:
        per_thread = int(QUEUE_SECONDS / mean)
        per_thread = max(MIN_TASKS_PER_THREAD, min(MAX_TASKS_PER_THREAD, per_thread))
    return worker.threads * per_thread


def busy(worker: WorkerHandle) -> int:
    """Tasks sent to ``worker`` that hold one of its threads (not seceded ones: they wait)."""
    return len(worker.processing) - len(worker.long_running)


def queue_seconds(worker: WorkerHandle) -> float:
    """How long a task sent to ``worker`` now waits before it starts (an estimate)."""
    return worker.queued_seconds / worker.threads


# ------------------------------------------------------------------------------ choices


def choose_worker(state: SchedulerState, ts: TaskState, workers: list) -> WorkerHandle | None:
    """The running worker where ``ts`` would start soonest, or None: wait for room."""
    if ts.restrictions is not None or ts.resources is not None:
        return choose_allowed_worker(state, ts, workers)
    if not ts.deps:
        return choose_root_worker(state, workers)
    bytes_on: dict = {}
    deps_on: dict = {}
    total = 0
    for dep in ts.deps:
        holder = dep.who_has
        total += dep.nbytes
        bytes_on[holder] = bytes_on.get(holder, 0) + dep.nbytes
        deps_on[holder] = deps_on.get(holder, 0) + 1
        if dep.replicas:  # copies count where they are (client.replicate)
            for copy in dep.replicas:
                bytes_on[copy] = bytes_on.get(copy, 0) + dep.nbytes
                deps_on[copy] = deps_on.get(copy, 0) + 1

    def estimated_start(w: WorkerHandle) -> tuple:
        moved = total - bytes_on.get(w, 0)
        fetch = moved / TRANSFER_BYTES_PER_SECOND
        if deps_on.get(w, 0) < len(ts.deps):
            fetch += TRANSFER_LATENCY
        return (queue_seconds(w) + fetch, -bytes_on.get(w, 0))

    best = min(workers, key=estimated_start)
    if busy(best) < capacity(state, best):
        return best
    # The best worker is full: wait for it, unless a worker has nothing to do.
    idle = [w for w in workers if not busy(w) and capacity(state, w)]
    return min(idle, key=estimated_start) if idle else None


def choose_allowed_worker(
    state: SchedulerState, ts: TaskState, workers: list
) -> WorkerHandle | None:
    """Of the workers ``ts.restrictions`` allows that have room (and the resources ``ts``
    holds while it runs, free): most local bytes, least busy. Loose restrictions
    (``allow_other_workers``) allow any worker while none of the named ones runs."""
    if ts.restrictions is not None:
        named = [w for w in workers if w.name in ts.restrictions]
        if named or not ts.loose_restrictions:
            workers = named
    allowed = [w for w in workers if busy(w) < capacity(state, w)]
    if ts.resources:
        allowed = [w for w in allowed if has_free_resources(w, ts.resources)]
    if not allowed:
        return None
    local = {
        w: sum(d.nbytes for d in ts.deps if d.who_has is w or (d.replicas and w in d.replicas))
        for w in allowed
    }
    return max(allowed, key=lambda w: (local[w], -busy(w)))


def has_free_resources(worker: WorkerHandle, needed: dict) -> bool:
    free = worker.resources_free
    return all(free.get(name, 0) >= amount for name, amount in needed.items())


def choose_root_worker(state: SchedulerState, workers: list) -> WorkerHandle | None:
    """Tasks without inputs go to one worker in runs of ``root_run_length`` siblings."""
    sticky = state.root_worker
    if sticky is not None and sticky.state == "running":
        if state.root_run < state.root_run_length and busy(sticky) < capacity(state, sticky):
            state.root_run += 1
            return sticky
    roomiest = min(workers, key=lambda w: (busy(w) - capacity(state, w), w is sticky))
    if busy(roomiest) >= capacity(state, roomiest):
        return None
    state.root_worker = roomiest
    state.root_run = 1
    return roomiest
