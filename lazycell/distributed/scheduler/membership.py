"""Workers coming and going: start, death, retirement, scaling, restart, interrupts.

A worker's life (``WorkerHandle.state``)::

    add_worker ─► starting ─worker_ready─► running ─retire─► retiring ─stop_retired─┐
                     │                        │                                      ▼
                     └──────── died ──────────┴─────────── remove_worker ─────► closed

Fault recovery: when a worker dies (``remove_worker``), what it held goes
back to ``released`` and is recomputed if something still needs it
(``transitions.recompute_lost``); each task it was running counts one death
(``TaskState.suspicious``); at ``allowed_failures`` deaths the task errs with
:class:`WorkerDiedError` naming it. Calls it had not answered get a
WorkerDiedError answer. A new worker takes the dead one's place, unless the
worker was retired, the cluster is stopping, or ``MAX_STARTUP_FAILURES``
workers in a row died before saying ``ready``.

Retiring (``scale`` down, or ``scaling.Adaptive``): a retiring worker gets
no tasks; once its running tasks finish, ``move_results_away`` asks the
running workers to copy its results (``("gather-from", …)``), the emptiest
taking most; each ``("gathered", …)`` answer moves ``who_has`` to the copy
(``results_moved``); then ``stop_retired`` tells it to stop. Nothing is
recomputed unless a copy failed.

Copies (``replicate``: ``client.replicate``, ``scatter(broadcast=True)``): the
same ``("gather-from", …)`` asks workers to copy results; each answer adds the
receiver to the result's ``replicas`` (``replicated``). When a worker dies, a
result it held whose copy runs elsewhere is promoted there (``promote_copy``),
not recomputed; its own copies just go.

Restart (``restart``): every future is cancelled, every task dropped, every
worker stopped and replaced.

Interrupts: Ctrl-C during ``lc.compute`` on the cluster cancels its keys and
restarts the workers busy with tasks nothing needs any more (``interrupt``;
what else they held is recomputed as above), so the cluster is free at once.

The processes themselves are started, stopped and watched by the loop,
through the seams of :class:`~lazycell.distributed.scheduler.state.SchedulerState`.
"""

from __future__ import annotations

import sys

from lazycell.distributed.activity import ClusterActivity
from lazycell.distributed.failures import PickledFailure
from lazycell.distributed.scheduler.state import (
    SchedulerState,
    TaskState,
    WorkerHandle,
    warn_user,
)
from lazycell.distributed.scheduler.transitions import (
    activate,
    cancel,
    mark_erred,
    recompute_lost,
    stop_processing,
)
from lazycell.events.failure import Failure, WorkerDiedError
from lazycell.graph.spec import describe_task

MAX_STARTUP_FAILURES = 5

# ------------------------------------------------------------------ start and death


def add_worker(state: SchedulerState) -> WorkerHandle:
    """Start one more worker; it gets tasks once it says ``ready`` (``worker_ready``)."""
    worker = state.launch_worker(next(state.worker_indices))
    worker.resources = dict(state.worker_resources)
    worker.resources_free = dict(state.worker_resources)
    state.workers[worker.index] = worker
    return worker


def worker_ready(state: SchedulerState, worker: WorkerHandle, pid: int, address) -> bool:
    """A starting worker is up: it runs tasks from now on. False if it was retired meanwhile."""
    worker.pid = pid
    worker.address = address
    if worker.state != "starting":  # retired or closed while it started
        return False
    worker.state = "running"
    state.startup_failures = 0
    return True


def remove_worker(state: SchedulerState, worker: WorkerHandle) -> None:
    """A worker died or stopped: recompute what it held and ran; start a replacement."""
    if worker.state == "closed":
        return
    was_running = worker.state in ("running", "retiring")
    worker.state = "closed"
    how = state.end_worker_process(worker)
    del state.workers[worker.index]
    if state.root_worker is worker:
        state.root_worker = None
    recover_tasks_of(state, worker, how)
    forget_pending_answers(state, worker, how)
    state.worker_left(worker)
    if needs_replacement(state, worker, was_running):
        add_worker(state)


def recover_tasks_of(state: SchedulerState, worker: WorkerHandle, how: str) -> None:
    """A dead worker's running tasks count a death each; its results and they are recomputed."""
    lost = []
    for ts in list(worker.processing):
        ts.processing_on = None
        ts.suspicious += 1
        if ts.suspicious >= state.allowed_failures:
            message = (
                f"{describe_task(ts.key, ts.spec)} was running on a worker that died "
                f"{ts.suspicious} times (last: {worker.name}, pid {worker.pid}, {how}); "
                "it probably crashes the interpreter or uses too much memory"
            )
            failure = PickledFailure(Failure.reported(WorkerDiedError, message))
            ts.state = "released"
            mark_erred(state, ts, (failure, ts.key))
        else:
            ts.state = "released"
            lost.append(ts)
    for ts in list(worker.replicas):  # its copies are gone; the results stay elsewhere
        if ts.replicas:
            ts.replicas.discard(worker)
    worker.replicas.clear()
    for ts in list(worker.has_what):
        copy = next((w for w in ts.replicas or () if w.state == "running"), None)
        if copy is not None:  # a copy elsewhere becomes the result: nothing to recompute
            promote_copy(state, ts, copy)
            continue
        ts.who_has = None
        ts.state = "released"
        for status in state.statuses.get(ts.key, ()):
            status.reset()
        lost.append(ts)
    worker.processing.clear()
    worker.long_running.clear()
    worker.queued_seconds = 0.0
    worker.has_what.clear()
    recompute_lost(state, lost)


def promote_copy(state: SchedulerState, ts: TaskState, copy: WorkerHandle) -> None:
    """``ts``'s holder is gone or going: its copy on ``copy`` is the result from now on."""
    if ts.replicas:
        ts.replicas.discard(copy)
    copy.replicas.discard(ts)
    ts.who_has = copy
    copy.has_what.add(ts)  # its bytes were counted when the copy was made
    for status in state.statuses.get(ts.key, ()):
        status.address = copy.address
        status.worker_name = copy.name


def needs_replacement(state: SchedulerState, worker: WorkerHandle, was_running: bool) -> bool:
    """Whether a closed worker gets a successor (see the module docstring)."""
    if state.stopped or worker.retired or len(state.live_workers()) >= state.n_workers:
        return False
    if not was_running:
        state.startup_failures += 1
        if state.startup_failures >= MAX_STARTUP_FAILURES:
            print(
                f"lazycell: {MAX_STARTUP_FAILURES} workers in a row failed to start; "
                "not starting more",
                file=sys.stderr,
            )
            return False
    return True


def forget_pending_answers(state: SchedulerState, worker: WorkerHandle, how: str) -> None:
    """A worker died: its answers to calls will never come; moves to or from it are off."""
    message = f"{worker.name} (pid {worker.pid}) {how} before answering"
    failure = PickledFailure(Failure.reported(WorkerDiedError, message))
    for request_id, call in list(state.pending_calls.items()):
        call.answer(worker.name, False, failure)
        if not call.waiting:
            del state.pending_calls[request_id]
    for request_id, (_, receiver) in list(state.moves.items()):
        if worker is receiver:
            results_moved(state, request_id, {}, f"{worker.name} died")
    for request_id, (receiver, _) in list(state.replications.items()):
        if worker is receiver:
            replicated(state, request_id, {}, f"{worker.name} died")


def input_missing(state: SchedulerState, worker: WorkerHandle, key) -> None:
    """A task could not get an input (its holder died): run it again when it is back."""
    ts = state.tasks.get(key)
    if ts is None or ts.state != "processing" or ts.processing_on is not worker:
        return
    stop_processing(ts)
    for dep in ts.deps:
        holder = dep.who_has
        if holder is not None and state.worker_exited(holder):
            remove_worker(state, holder)
    ts.state = "released"
    activate(state, ts)


def interrupt(state: SchedulerState, keys: list, statuses: list | None = None) -> None:
    """Ctrl-C in the kernel: drop ``keys`` and restart workers busy with tasks no one needs.

    Restarting is safe: results those workers held for other futures are
    recomputed like after any worker death. A worker on a thread cannot be
    stopped, so it finishes its tasks.
    """
    cancel(state, keys, statuses)
    for worker in list(state.workers.values()):
        orphaned = [ts for ts in worker.processing if not ts.wanted and not ts.dependents]
        if orphaned and worker.proc is not None:
            for ts in orphaned:
                ts.suspicious -= 1  # not the task's fault
            remove_worker(state, worker)


# ------------------------------------------------------------- scaling and retiring


def scale(state: SchedulerState, n: int) -> None:
    """Have ``n`` workers: start more, or retire the least busy (moving their results)."""
    state.n_workers = n
    live = state.live_workers()
    for _ in range(n - len(live)):
        add_worker(state)
    surplus = len(live) - n
    if surplus > 0:
        # Starting workers first, then those with the least work and data.
        by_cost = sorted(
            live,
            key=lambda w: (w.state == "running", len(w.processing), w.nbytes, -w.index),
        )
        for worker in by_cost[:surplus]:
            retire(state, worker)


def retire(state: SchedulerState, worker: WorkerHandle) -> None:
    """No more tasks for ``worker``; progress_retirements moves its results, then stops it."""
    if worker.state not in ("starting", "running"):
        return
    worker.state = "retiring"
    if state.root_worker is worker:
        state.root_worker = None


def progress_retirements(state: SchedulerState) -> None:
    """Each round: retiring workers whose tasks are done move their results, then stop."""
    for worker in list(state.workers.values()):
        if worker.state != "retiring" or worker.retired:
            continue
        if worker.processing:
            continue  # its running tasks finish first
        if worker.pending_moves is None:
            move_results_away(state, worker)
        if not worker.pending_moves:
            stop_retired(state, worker)


def move_results_away(state: SchedulerState, worker: WorkerHandle) -> None:
    """Ask the running workers to copy ``worker``'s results, the emptiest taking most."""
    worker.pending_moves = set()
    receivers = state.running_workers()
    if not worker.has_what or not receivers or worker.address is None:
        return
    load = {r.name: r.nbytes for r in receivers}
    keys_for: dict = {r.name: [] for r in receivers}
    for ts in sorted(worker.has_what, key=lambda t: -t.nbytes):
        name = min(load, key=load.get)
        keys_for[name].append(ts.key)
        load[name] += ts.nbytes
    for receiver in receivers:
        keys = keys_for[receiver.name]
        if not keys:
            continue
        request_id = next(state.request_ids)
        state.moves[request_id] = (worker, receiver)
        worker.pending_moves.add(request_id)
        state.send_to(receiver, ("gather-from", request_id, {worker.address: keys}))


def results_moved(state: SchedulerState, request_id: int, moved: dict, error: str | None) -> None:
    """A receiver copied a retiring worker's results: the scheduler points at the copies."""
    if request_id in state.replications:
        replicated(state, request_id, moved, error)
        return
    entry = state.moves.pop(request_id, None)
    if entry is None:
        return
    retiring, receiver = entry
    for key in moved:
        ts = state.tasks.get(key)
        if ts is None or ts.state != "memory" or ts.who_has is not retiring:
            receiver.to_release.append(key)  # released meanwhile
            continue
        if receiver.state != "running":
            continue
        retiring.has_what.discard(ts)
        retiring.nbytes -= ts.nbytes
        ts.who_has = receiver
        receiver.has_what.add(ts)
        if ts.replicas and receiver in ts.replicas:  # it had a copy: now the result
            ts.replicas.discard(receiver)
            receiver.replicas.discard(ts)
        else:
            receiver.nbytes += ts.nbytes
        for status in state.statuses.get(key, ()):
            status.address = receiver.address
            status.worker_name = receiver.name
    if error:
        warn_user(
            f"moving results off retiring {retiring.name} failed ({error}); "
            "what did not move is recomputed if it is needed"
        )
    if retiring.pending_moves is not None:
        retiring.pending_moves.discard(request_id)


class Replication:
    """One ``client.replicate``: the copies asked for, and who waits for them to be made."""

    def __init__(self, reply):
        self.pending: set = set()  # request ids not answered yet
        self.reply = reply  # a queue to put None on when all are answered, or None

    def answered(self, request_id: int) -> None:
        self.pending.discard(request_id)
        if not self.pending and self.reply is not None:
            self.reply.put(None)
            self.reply = None


def replicate(
    state: SchedulerState, keys: list, n: int | None, names: list | None = None, reply=None
) -> None:
    """Copy the results of ``keys`` to more running workers (all, or the ``names``d ones;
    ``n`` holders in all if given) with ``("gather-from", …)``; ``reply`` gets None once
    every copy is made or has failed."""
    replication = Replication(reply)
    workers = state.running_workers()
    if names is not None:
        workers = [w for w in workers if w.name in names]
    wanted = len(workers) if n is None else n
    keys_for: dict = {}  # receiver -> {source address: [keys]}
    for key in keys:
        ts = state.tasks.get(key)
        if ts is None or ts.state != "memory" or ts.who_has is None:
            continue
        holders = {ts.who_has} | (ts.replicas or set())
        for receiver in workers:
            if len(holders) >= wanted:
                break
            if receiver in holders:
                continue
            holders.add(receiver)
            by_source = keys_for.setdefault(receiver, {})
            by_source.setdefault(ts.who_has.address, []).append(key)
    for receiver, by_source in keys_for.items():
        request_id = next(state.request_ids)
        state.replications[request_id] = (receiver, replication)
        replication.pending.add(request_id)
        state.send_to(receiver, ("gather-from", request_id, by_source))
    if not replication.pending and reply is not None:
        reply.put(None)


def replicated(state: SchedulerState, request_id: int, moved: dict, error: str | None) -> None:
    """A worker made copies (``replicate``): the scheduler counts them as ``replicas``."""
    receiver, replication = state.replications.pop(request_id)
    for key in moved:
        ts = state.tasks.get(key)
        if (
            ts is None
            or ts.state != "memory"
            or ts.who_has is receiver
            or receiver.state != "running"
        ):
            receiver.to_release.append(key)  # released or moved meanwhile
            continue
        if ts.replicas is None:
            ts.replicas = set()
        if receiver not in ts.replicas:
            ts.replicas.add(receiver)
            receiver.replicas.add(ts)
            receiver.nbytes += ts.nbytes
    if error:
        warn_user(f"copying results to {receiver.name} failed ({error})")
    replication.answered(request_id)


def stop_retired(state: SchedulerState, worker: WorkerHandle) -> None:
    """Tell a retiring worker to stop; what it still holds is recomputed if needed."""
    worker.retired = True
    state.send_to(worker, ("stop",))
    if worker.proc is None:  # a thread: no end-of-file tells us it stopped
        if worker.thread is not None:
            worker.thread.join(timeout=5)
        remove_worker(state, worker)


# --------------------------------------------------------------------------- restart


def restart(state: SchedulerState) -> None:
    """Fresh workers, every result and task dropped; futures become cancelled."""
    for holders in state.statuses.values():
        for status in holders:
            status.settle("cancelled", state.callbacks)
    state.statuses.clear()
    state.tasks.clear()
    state.ready.clear()
    state.moves.clear()
    for _, replication in state.replications.values():
        replication.pending.clear()
        replication.answered(-1)
    state.replications.clear()
    workers = list(state.workers.values())
    stop_workers(state, workers)
    for worker in workers:
        forget_pending_answers(state, worker, "was restarted")
    state.workers.clear()
    state.root_worker = None
    state.activity = ClusterActivity()
    for _ in range(state.n_workers):
        add_worker(state)


def stop_workers(state: SchedulerState, workers: list) -> None:
    """Tell ``workers`` to stop (plugins tear down), wait a little, kill the rest."""
    for worker in workers:
        worker.state = "closed"
        state.send_to(worker, ("stop",))
    state.wait_for_exit(workers)
