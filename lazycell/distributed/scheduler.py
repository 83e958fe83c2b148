"""The local cluster's scheduler: one thread in the kernel that places tasks next to their data.

::

    client (user's threads)            scheduler thread                      worker processes
    ───────────────────────            ────────────────                      ────────────────
    commands.put(("update-graph", …)) ─► handle_command: new TaskStates,
      + one byte on the wake socket      activate() the needed ones
                                         dispatch(): ready tasks, best
                                         worker by input bytes  ───────────► ("compute", items)
                                                                ◄─────────── ("reports", items)
    KeyStatus.event / callbacks    ◄──── task_finished(): memory, ready
                                         the dependents, release inputs
    gather: fetch straight from the                                          data servers ◄─┐
    workers' data servers (DataFetcher) ───────────────────────────────────────────────────┘

The scheduler thread owns every piece of state below; other threads talk to
it only through ``commands`` (and read ``KeyStatus`` objects it updates).

State of a task (``TaskState.state``), as in dask's scheduler:

- ``released``    known (its spec is kept) but not in memory and not queued;
- ``waiting``     needed; ``waiting_on`` holds the inputs not in memory yet;
- ``ready``       all inputs in memory; on the ``ready`` heap by ``priority``;
- ``processing``  sent to ``processing_on``;
- ``memory``      result held by worker ``who_has`` (``nbytes`` big);
- ``erred``       failed, or an input failed (``error`` names the task that did);
- ``forgotten``   dropped from ``tasks``: no wanted key depends on it any more.

Scheduler state:

- ``tasks``      key -> TaskState, for every key some wanted key depends on
                 (``TaskState.wanted``: the client holds futures for it);
- ``ready``      heap of ``(priority, key)``; stale entries are skipped;
- ``workers``    id -> WorkerHandle, with ``processing`` and ``has_what`` sets;
- ``statuses``   key -> KeyStatus of the wanted keys, what futures wait on.

Placement: a ready task goes to the worker where it would start soonest:
the queue there (tasks sent and not done, times the mean task time) plus
the time to fetch the input bytes it does not hold (``TRANSFER_BYTES_PER_SECOND``
and ``TRANSFER_LATENCY``). So big inputs pull tasks to their worker, while
tasks on small inputs spread out. Each worker gets at most ``capacity``
tasks at a time, sized so its queue holds about ``QUEUE_SECONDS`` of work;
a task whose best worker is full waits for it, unless another worker is
idle (idle workers take work from busy ones). Tasks without inputs go to one worker in runs of
up to (ready tasks / workers), so siblings of a reduction land together and
their sum needs no transfer, while a small ``map`` still uses every worker.
``TaskState.restrictions`` (``submit(..., workers=[...])``) limit the choice.
A worker paused by its memory monitor gets no tasks.

Releasing: a result leaves memory when it is not wanted and every task that
takes it is in memory; an erred task keeps its inputs so it can be re-run in
the kernel. A task no wanted key depends on any more is forgotten.

Fault recovery: when a worker dies, what it held goes back to ``released``
and is recomputed if something still needs it; each task it was running
counts one death (``suspicious``); at ``allowed_failures`` deaths the task
errs with :class:`WorkerDiedError` naming it. A new worker takes the dead
one's place.

Interrupts: Ctrl-C during ``lc.compute`` on the cluster cancels its keys and
restarts the workers busy with tasks nothing needs any more (what else they
held is recomputed as above), so the cluster is free at once.
"""

from __future__ import annotations

import itertools
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from heapq import heappop, heappush
from multiprocessing.connection import Connection, wait

from lazycell.distributed.activity import ClusterActivity
from lazycell.distributed.protocol import dumps_control, loads_control
from lazycell.graph.spec import TaskSpec, describe_task, key_group
from lazycell.schedulers.core import order_graph
from lazycell.schedulers.errors import describe_exit
from lazycell.schedulers.spawn import spawn_worker

QUEUE_SECONDS = 0.05
MIN_TASKS_PER_THREAD, MAX_TASKS_PER_THREAD, FIRST_TASKS_PER_THREAD = 2, 512, 16
TRANSFER_BYTES_PER_SECOND = 1e8  # conservative: a move costs memory and CPU on both ends
TRANSFER_LATENCY = 2e-3  # seconds a task thread waits on a fetch from a peer, at least
TASK_OVERHEAD_SECONDS = 5e-5  # a worker's own cost per task, beyond the task's run time
GUESSED_TASK_SECONDS = 0.01  # for a task group none of whose tasks has finished yet
STARTUP_TIMEOUT = 60.0
MAX_STARTUP_FAILURES = 5
RECENT_BATCHES = 256  # per worker, to name the tasks of a batch it cannot unpickle


# --------------------------------------------------------------------------- state objects


class TaskState:
    """One key's place in the cluster (see the module docstring for ``state``)."""

    __slots__ = (
        "key",
        "spec",
        "state",
        "priority",
        "deps",
        "dependents",
        "waiting_on",
        "processing_on",
        "who_has",
        "nbytes",
        "wanted",
        "suspicious",
        "error",
        "recorder",
        "restrictions",
        "group",
        "expected_seconds",
        "counted",
    )

    def __init__(self, key: Hashable, spec: TaskSpec, priority: tuple, recorder):
        self.key = key
        self.spec = spec
        self.state = "released"
        self.priority = priority
        self.deps: list[TaskState] = []
        self.dependents: set[TaskState] = set()
        self.waiting_on: set[TaskState] = set()
        self.processing_on: WorkerHandle | None = None
        self.who_has: WorkerHandle | None = None
        self.nbytes = 0
        self.wanted = False
        self.suspicious = 0
        self.error: tuple | None = None  # (failure payload, key of the failed task)
        self.recorder = recorder
        self.restrictions: frozenset | None = None  # names of the workers it may run on
        self.group: str | None = None  # key_group(key), set when first sent
        self.expected_seconds = 0.0  # its share of its worker's queued_seconds
        self.counted = False  # its finish or failure is in the activity counts

    def __repr__(self) -> str:
        return f"<TaskState {self.key!r} {self.state}>"


class KeyStatus:
    """What the futures of one key wait on; written by the scheduler thread only.

    ``status`` is ``"pending"``, ``"finished"`` (``address`` says which worker
    holds it), ``"error"`` (``error`` is the failure payload, ``erred_key`` /
    ``erred_spec`` the task that failed) or ``"cancelled"``.
    """

    def __init__(self, key: Hashable):
        self.key = key
        self.status = "pending"
        self.address: tuple | None = None
        self.worker_name: str | None = None
        self.error: tuple | None = None
        self.erred_key: Hashable = None
        self.erred_spec: TaskSpec | None = None
        self.event = threading.Event()
        self.callbacks: list = []
        self.lock = threading.Lock()

    def settle(self, status: str, callback_queue: queue.SimpleQueue) -> None:
        with self.lock:
            if self.status == "cancelled":  # final, whatever the scheduler learns later
                return
            self.status = status
            self.event.set()
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback_queue.put(callback)

    def reset(self) -> None:
        with self.lock:
            if self.status == "cancelled":
                return
            self.status = "pending"
            self.address = None
            self.event.clear()


class _Sized:
    """Stands for a result held on a worker when telling the event recorder its size."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes: int):
        self.nbytes = nbytes


# ------------------------------------------------------------------------------ workers


class WorkerHandle:
    """The scheduler's view of one worker: its control connection and what it holds."""

    def __init__(self, index: int, threads: int):
        self.index = index
        self.name = f"worker-{index}"
        self.threads = threads
        self.state = "starting"  # -> "running" -> "closed"
        self.started_at = time.monotonic()
        self.pid: int | None = None
        self.address: tuple | None = None
        self.control: Connection | None = None
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None
        self.processing: set[TaskState] = set()
        self.has_what: set[TaskState] = set()
        self.nbytes = 0
        self.queued_seconds = 0.0  # expected run time of the tasks in processing
        self.paused = False
        self.exit_reason: str | None = None
        self.to_compute: list = []
        self.to_release: list = []
        self.recent_batches: OrderedDict = OrderedDict()  # batch id -> keys
        self.metrics: dict = {}  # its last heartbeat: rss, cpu, managed, spilled, time
        self.pending_moves: set | None = None  # retiring: moves of its results not done yet
        self.retired = False  # told to stop by scale/adapt: no replacement, not a failure

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.name} pid={self.pid} {self.state}>"

    def exit_description(self) -> str:
        if self.exit_reason:
            return self.exit_reason
        if self.proc is None:
            return "stopped"
        return describe_exit(self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass


class PendingCall:
    """A function, plugin setup or teardown sent to some workers, waiting for their answers."""

    def __init__(self, worker_names: set, reply: queue.SimpleQueue):
        self.waiting = set(worker_names)
        self.results: dict = {}  # worker name -> (ok, value or failure payload)
        self.reply = reply

    def answer(self, worker_name: str, ok: bool, value) -> None:
        if worker_name not in self.waiting:
            return
        self.waiting.discard(worker_name)
        self.results[worker_name] = (ok, value)
        if not self.waiting:
            self.reply.put(self.results)


def start_worker(index: int, threads: int, setup: tuple, in_process: bool) -> WorkerHandle:
    """Start worker ``index`` (a process, or a thread with ``in_process``) and send its setup."""
    handle = WorkerHandle(index, threads)
    parent_sock, child_sock = socket.socketpair()
    if in_process:
        from lazycell.distributed.worker import Worker

        worker = Worker(Connection(child_sock.detach()), in_process=True)
        handle.thread = threading.Thread(
            target=worker.serve, name=f"lazycell-{handle.name}", daemon=True
        )
        handle.thread.start()
    else:
        child_fd = child_sock.fileno()
        handle.proc = spawn_worker("lazycell.distributed.worker", child_fd)
        handle.pid = handle.proc.pid
        child_sock.close()
    handle.control = Connection(parent_sock.detach())
    handle.control.send_bytes(dumps_control(setup))
    return handle


# ---------------------------------------------------------------------------- scheduler


class ClusterScheduler:
    """State and thread of the scheduler (see the module docstring)."""

    def __init__(
        self,
        n_workers: int,
        threads_per_worker: int,
        authkey: bytes,
        memory_limit: int | None,
        thresholds: dict,
        processes: bool,
        allowed_failures: int,
        local_directory: str | None = None,
        socket_dir: str | None = None,
    ):
        self.local_directory = local_directory
        self.socket_dir = socket_dir
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.authkey = authkey
        self.memory_limit = memory_limit
        self.thresholds = thresholds
        self.processes = processes
        self.allowed_failures = allowed_failures
        self.tasks: dict[Hashable, TaskState] = {}
        self.ready: list = []
        self.workers: dict[int, WorkerHandle] = {}
        self.statuses: dict[Hashable, KeyStatus] = {}
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.callbacks: queue.SimpleQueue = queue.SimpleQueue()
        self.worker_indices = itertools.count()
        self.generations = itertools.count()
        self.batch_ids = itertools.count()
        self.mean_task_seconds: float | None = None
        self.group_seconds: dict[str, float] = {}  # task group -> mean duration
        self.root_worker: WorkerHandle | None = None
        self.root_run = 0
        self.root_run_length = 1
        self.startup_failures = 0
        self.stopped = False
        self.activity = ClusterActivity()
        self.plugins: dict[str, bytes] = {}  # name -> pickled WorkerPlugin, set up on every worker
        self.request_ids = itertools.count()
        self.pending_calls: dict[int, PendingCall] = {}
        self.moves: dict[int, tuple] = {}  # request id -> (retiring worker, receiving worker)
        self.adaptive = None  # an Adaptive policy while cluster.adapt() is on
        self.n_running_changed = threading.Condition()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self.run, name="lazycell-scheduler", daemon=True)
        self._callback_thread = threading.Thread(
            target=self.run_callbacks, name="lazycell-callbacks", daemon=True
        )

    # -- starting and stopping (called from the client's thread)
    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        for _ in range(self.n_workers):
            self.add_worker()
        self._thread.start()
        self._callback_thread.start()
        self.wait_for_workers(self.n_workers, timeout)

    def wait_for_workers(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.n_running_changed:
            while len(self.running_workers()) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.stopped:
                    raise RuntimeError(
                        f"lazycell: only {len(self.running_workers())} of {n} workers started "
                        f"within {timeout:.0f} s; see the workers' output above"
                    )
                self.n_running_changed.wait(min(left, 0.5))

    def submit_command(self, *command) -> None:
        self.commands.put(command)
        try:
            self._wake_w.send(b"x")
        except OSError:  # closed: the scheduler has stopped
            pass

    def close(self, timeout: float = 5.0) -> None:
        if self.stopped or not self._thread.is_alive():
            self.stop_all_workers()
            self.stopped = True
            return
        done = threading.Event()
        self.submit_command("close", done)
        if not done.wait(timeout):
            self.stopped = True
            self.stop_all_workers()
        self._thread.join(timeout)
        self.callbacks.put(None)

    def call(self, func, timeout: float = 30.0):
        """Run ``func(scheduler)`` on the scheduler thread and return its result."""
        return self.ask("call", func, timeout=timeout)

    def ask(self, *command, timeout: float | None = 30.0):
        """Send ``command`` with a reply queue as its last argument and wait for the answer.

        An exception put on the queue is raised here; so is RuntimeError if the
        scheduler stops first, TimeoutError after ``timeout`` seconds (None: no limit).
        """
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self.submit_command(*command, reply)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                result = reply.get(timeout=0.1)
                break
            except queue.Empty:
                if self.stopped or not self._thread.is_alive():
                    raise RuntimeError("the cluster's scheduler has stopped") from None
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the cluster did not answer {command[0]!r} within {timeout} s"
                    ) from None
        if isinstance(result, Exception):
            raise result
        return result

    def running_workers(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.state == "running"]

    def live_workers(self) -> list[WorkerHandle]:
        """Workers starting or running: the ones that count towards the cluster's size."""
        return [w for w in self.workers.values() if w.state in ("starting", "running")]

    # -- the thread
    def run(self) -> None:
        while not self.stopped:
            conns = [self._wake_r] + [w.control for w in self.workers.values()]
            try:
                for conn in wait(conns, timeout=0.5):
                    if conn is self._wake_r:
                        self.handle_commands()
                    else:
                        self.handle_worker_message(self.worker_of_conn(conn))
                    if self.stopped:
                        return
                self.check_workers_started_in_time()
                if self.adaptive is not None:
                    self.adaptive.adapt(self)
                self.dispatch()
                self.progress_retirements()
                self.flush_to_workers()
            except Exception:  # a bug here must not silently freeze every future
                print("lazycell: error in the cluster scheduler:", file=sys.stderr)
                traceback.print_exc()

    def worker_of_conn(self, conn) -> WorkerHandle:
        for worker in self.workers.values():
            if worker.control is conn:
                return worker
        raise LookupError(conn)

    def run_callbacks(self) -> None:
        while True:
            callback = self.callbacks.get()
            if callback is None:
                return
            try:
                callback()
            except Exception:
                print("lazycell: a future's done-callback failed:", file=sys.stderr)
                traceback.print_exc()

    # -- commands from the client
    def handle_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            kind, *args = command
            if kind == "update-graph":
                self.update_graph(*args)
            elif kind == "release":
                self.release_wanted(*args)
            elif kind == "cancel":
                self.cancel(*args)
            elif kind == "interrupt":
                self.interrupt(*args)
            elif kind == "locate":
                keys, reply = args
                reply.put(self.locate(keys))
            elif kind == "call":  # run a function with the state (introspection, tests)
                func, reply = args
                try:
                    reply.put(func(self))
                except Exception as exc:
                    reply.put(exc)
            elif kind == "worker-call":
                self.call_workers(*args)
            elif kind == "register-plugin":
                self.register_plugin(*args)
            elif kind == "remove-plugin":
                self.remove_plugin(*args)
            elif kind == "scale":
                self.adaptive = None
                self.scale(*args)
            elif kind == "adapt":
                self.adaptive = args[0]
            elif kind == "restart":
                self.restart(*args)
            elif kind == "close":
                self.stop_all_workers()
                self.stopped = True
                args[0].set()
                return

    def update_graph(
        self, graph: Mapping, wanted: list, statuses: list, recorder, restrictions=None
    ) -> None:
        """Add a graph's new tasks, mark ``wanted`` keys, and start what they need.

        ``restrictions`` maps keys to the names of the workers they may run on.
        """
        known = self.tasks
        try:
            order = order_graph(_KnownAsLeaves(graph, known), wanted)
        except (KeyError, ValueError) as exc:
            for status in statuses:
                status.error = (exc, "", f"builtins.{type(exc).__name__}", str(exc))
                status.erred_key = status.key
                status.settle("error", self.callbacks)
            return
        generation = next(self.generations)
        new = []
        for i, key in enumerate(order):
            if key not in known:
                ts = known[key] = TaskState(key, graph[key], (generation, i), recorder)
                new.append(ts)
        for key, names in (restrictions or {}).items():
            if key in known and known[key] in new:
                known[key].restrictions = frozenset(names)
        self.activity.tasks_added([ts.key for ts in new])
        for ts in new:
            ts.deps = [known[dep] for dep in ts.spec.deps]
            for dep in ts.deps:
                dep.dependents.add(ts)
        for key, status in zip(wanted, statuses):
            ts = known[key]
            ts.wanted = True
            self.statuses[key] = status
            self.report_to_status(ts)
        new_keys = {ts.key for ts in new}
        self.activate_with_inputs([known[k] for k in order if k not in new_keys])
        for ts in new:  # in priority order: inputs before the tasks that take them
            self.activate(ts)

    def release_wanted(self, keys: list) -> None:
        for key in keys:
            self.statuses.pop(key, None)
            ts = self.tasks.get(key)
            if ts is None:
                continue
            ts.wanted = False
            self.release_if_unneeded(ts)
            self.forget_if_unneeded(ts)

    def cancel(self, keys: list) -> None:
        for key in keys:
            status = self.statuses.get(key)
            if status is not None:
                status.settle("cancelled", self.callbacks)
        self.release_wanted(keys)

    def interrupt(self, keys: list) -> None:
        """Ctrl-C in the kernel: drop ``keys`` and restart workers busy with tasks no one needs.

        Restarting is safe: results those workers held for other futures are
        recomputed like after any worker death.
        """
        self.cancel(keys)
        for worker in list(self.workers.values()):
            orphaned = [ts for ts in worker.processing if not ts.wanted and not ts.dependents]
            if orphaned and worker.proc is not None:
                for ts in orphaned:
                    ts.suspicious -= 1  # not the task's fault
                self.remove_worker(worker)

    def locate(self, keys: list) -> dict:
        """key -> (address, worker name) for keys in memory, None for the others."""
        out = {}
        for key in keys:
            ts = self.tasks.get(key)
            if ts is not None and ts.state == "memory":
                out[key] = (ts.who_has.address, ts.who_has.name)
            else:
                out[key] = None
        return out

    # -- transitions
    def activate(self, ts: TaskState) -> None:
        """A released task is needed: wait for its inputs, or queue it if they are there."""
        if ts.state != "released":
            return
        if ts.counted:  # ran before (result lost or released): it runs again
            self.activity.task_rerun(ts.key)
            ts.counted = False
        erred = next((dep for dep in ts.deps if dep.state == "erred"), None)
        if erred is not None:
            self.mark_erred(ts, erred.error)
            return
        ts.waiting_on = {dep for dep in ts.deps if dep.state != "memory"}
        if ts.waiting_on:
            ts.state = "waiting"
        else:
            self.make_ready(ts)

    def make_ready(self, ts: TaskState) -> None:
        ts.state = "ready"
        heappush(self.ready, (ts.priority, ts.key))

    def task_finished(self, worker: WorkerHandle, key, nbytes: int, start, stop) -> None:
        ts = self.tasks.get(key)
        if ts is None or ts.state != "processing" or ts.processing_on is not worker:
            worker.to_release.append(key)  # cancelled or recomputed elsewhere meanwhile
            return
        self.stop_processing(ts)
        ts.state = "memory"
        ts.who_has = worker
        ts.nbytes = nbytes
        worker.has_what.add(ts)
        worker.nbytes += nbytes
        self.learn_task_time(ts, stop - start)
        self.activity.task_finished(key, ts.group, worker.name, start, stop)
        ts.counted = True
        if ts.recorder is not None:
            ts.recorder.started(key, worker.name, start)
            ts.recorder.finished(key, worker.name, start, stop, _Sized(nbytes))
        for dependent in ts.dependents:
            if dependent.state == "waiting":
                dependent.waiting_on.discard(ts)
                if not dependent.waiting_on:
                    self.make_ready(dependent)
        self.report_to_status(ts)
        for dep in ts.deps:
            self.release_if_unneeded(dep)
        self.release_if_unneeded(ts)
        self.forget_if_unneeded(ts)

    def task_erred(self, worker: WorkerHandle, key, failure: tuple, start, stop) -> None:
        ts = self.tasks.get(key)
        if ts is None or ts.state != "processing" or ts.processing_on is not worker:
            return
        self.stop_processing(ts)
        self.activity.task_erred(key, ts.group, worker.name, start, stop)
        ts.counted = True
        if ts.recorder is not None:
            ts.recorder.erred(key, worker.name, start, stop, _failure_label(failure))
        self.mark_erred(ts, (failure, key))

    def mark_erred(self, ts: TaskState, error: tuple) -> None:
        """``ts`` and every task waiting on it fail with ``error``."""
        stack = [ts]
        while stack:
            ts = stack.pop()
            ts.state = "erred"
            ts.error = error
            if not ts.counted:  # failed because an input did, or never reached a worker
                self.activity.task_erred_unrun(ts.key)
                ts.counted = True
            self.report_to_status(ts)
            for dependent in ts.dependents:
                if dependent.state in ("waiting", "ready"):
                    stack.append(dependent)

    def input_missing(self, worker: WorkerHandle, key) -> None:
        """A task could not get an input (its holder died): run it again when it is back."""
        ts = self.tasks.get(key)
        if ts is None or ts.state != "processing" or ts.processing_on is not worker:
            return
        self.stop_processing(ts)
        for dep in ts.deps:
            holder = dep.who_has
            if holder is not None and holder.proc is not None and holder.proc.poll() is not None:
                self.remove_worker(holder)
        ts.state = "released"
        self.activate(ts)

    def report_to_status(self, ts: TaskState) -> None:
        status = self.statuses.get(ts.key)
        if status is None:
            return
        if ts.state == "memory":
            status.address = ts.who_has.address
            status.worker_name = ts.who_has.name
            status.settle("finished", self.callbacks)
        elif ts.state == "erred":
            failure, erred_key = ts.error
            status.error = failure
            status.erred_key = erred_key
            erred = self.tasks.get(erred_key)
            status.erred_spec = erred.spec if erred is not None else None
            status.settle("error", self.callbacks)

    def is_needed_in_memory(self, ts: TaskState) -> bool:
        if ts.wanted:
            return True
        return any(d.state not in ("memory", "released") for d in ts.dependents)

    def release_if_unneeded(self, ts: TaskState) -> None:
        """Drop a result from its worker once nothing needs it (see the module docstring)."""
        if ts.state != "memory" or self.is_needed_in_memory(ts):
            return
        worker = ts.who_has
        worker.has_what.discard(ts)
        worker.nbytes -= ts.nbytes
        worker.to_release.append(ts.key)
        ts.who_has = None
        ts.state = "released"

    def forget_if_unneeded(self, ts: TaskState) -> None:
        """Forget tasks that no wanted key depends on any more, inputs included."""
        stack = [ts]
        while stack:
            ts = stack.pop()
            if self.tasks.get(ts.key) is not ts or ts.wanted or ts.dependents:
                continue
            if ts.state == "processing":
                continue  # forgotten when it reports back
            if ts.state == "memory":
                ts.who_has.has_what.discard(ts)
                ts.who_has.nbytes -= ts.nbytes
                ts.who_has.to_release.append(ts.key)
                ts.who_has = None
            if not ts.counted:  # cancelled before it ran: no longer part of the totals
                self.activity.task_dropped(ts.key)
            ts.state = "forgotten"
            del self.tasks[ts.key]
            for dep in ts.deps:
                dep.dependents.discard(ts)
                self.release_if_unneeded(dep)
                stack.append(dep)

    def stop_processing(self, ts: TaskState) -> None:
        worker = ts.processing_on
        if worker is not None:
            worker.processing.discard(ts)
            worker.queued_seconds = max(0.0, worker.queued_seconds - ts.expected_seconds)
        ts.processing_on = None

    def learn_task_time(self, ts: TaskState, seconds: float) -> None:
        """Running means of task durations: overall (queue sizes) and per task group."""
        if self.mean_task_seconds is None:
            self.mean_task_seconds = seconds
        else:
            self.mean_task_seconds = 0.9 * self.mean_task_seconds + 0.1 * seconds
        mean = self.group_seconds.get(ts.group)
        self.group_seconds[ts.group] = seconds if mean is None else 0.8 * mean + 0.2 * seconds

    def expected_seconds(self, ts: TaskState) -> float:
        if ts.group is None:
            ts.group = key_group(ts.key)
        return self.group_seconds.get(ts.group, GUESSED_TASK_SECONDS) + TASK_OVERHEAD_SECONDS

    # -- placement
    def capacity(self, worker: WorkerHandle) -> int:
        if worker.paused:
            return 0
        mean = self.mean_task_seconds
        if mean is None:
            per_thread = FIRST_TASKS_PER_THREAD
        elif mean <= 0:
            per_thread = MAX_TASKS_PER_THREAD
        else:
            per_thread = int(QUEUE_SECONDS / mean)
            per_thread = max(MIN_TASKS_PER_THREAD, min(MAX_TASKS_PER_THREAD, per_thread))
        return worker.threads * per_thread

    def dispatch(self) -> None:
        """Send ready tasks to workers, best placed first, while workers have room."""
        workers = self.running_workers()
        if not workers:
            return
        ready = self.ready
        tasks = self.tasks
        # Runs of siblings short enough that every worker gets a share of a small map.
        self.root_run_length = max(1, -(-len(ready) // len(workers)))
        deferred = []  # restricted tasks whose workers are full or gone
        while ready:
            priority, key = ready[0]
            ts = tasks.get(key)
            if ts is None or ts.state != "ready" or ts.priority != priority:
                heappop(ready)
                continue
            worker = self.choose_worker(ts, workers)
            if worker is None:
                if ts.restrictions is None:
                    break
                deferred.append(heappop(ready))
                continue
            heappop(ready)
            self.send_task(ts, worker)
        for entry in deferred:
            heappush(ready, entry)

    def choose_worker(self, ts: TaskState, workers: list) -> WorkerHandle | None:
        if ts.restrictions is not None:
            return self.choose_allowed_worker(ts, workers)
        if not ts.deps:
            return self.choose_root_worker(workers)
        bytes_on: dict = {}
        deps_on: dict = {}
        for dep in ts.deps:
            holder = dep.who_has
            bytes_on[holder] = bytes_on.get(holder, 0) + dep.nbytes
            deps_on[holder] = deps_on.get(holder, 0) + 1
        total = sum(bytes_on.values())

        def estimated_start(w: WorkerHandle) -> tuple:
            moved = total - bytes_on.get(w, 0)
            fetch = moved / TRANSFER_BYTES_PER_SECOND
            if deps_on.get(w, 0) < len(ts.deps):
                fetch += TRANSFER_LATENCY
            return (self.queue_seconds(w) + fetch, -bytes_on.get(w, 0))

        best = min(workers, key=estimated_start)
        if len(best.processing) < self.capacity(best):
            return best
        # The best worker is full: wait for it, unless a worker has nothing to do.
        idle = [w for w in workers if not w.processing and self.capacity(w)]
        return min(idle, key=estimated_start) if idle else None

    def queue_seconds(self, worker: WorkerHandle) -> float:
        """How long a task sent to ``worker`` now waits before it starts (an estimate)."""
        return worker.queued_seconds / worker.threads

    def choose_allowed_worker(self, ts: TaskState, workers: list) -> WorkerHandle | None:
        allowed = [
            w for w in workers if w.name in ts.restrictions and len(w.processing) < self.capacity(w)
        ]
        if not allowed:
            return None
        local = {w: sum(d.nbytes for d in ts.deps if d.who_has is w) for w in allowed}
        return max(allowed, key=lambda w: (local[w], -len(w.processing)))

    def choose_root_worker(self, workers: list) -> WorkerHandle | None:
        """Tasks without inputs go to one worker in runs of ``root_run_length`` siblings."""
        sticky = self.root_worker
        if sticky is not None and sticky.state == "running":
            if self.root_run < self.root_run_length and len(sticky.processing) < self.capacity(
                sticky
            ):
                self.root_run += 1
                return sticky
        roomiest = min(workers, key=lambda w: (len(w.processing) - self.capacity(w), w is sticky))
        if len(roomiest.processing) >= self.capacity(roomiest):
            return None
        self.root_worker = roomiest
        self.root_run = 1
        return roomiest

    def send_task(self, ts: TaskState, worker: WorkerHandle) -> None:
        ts.state = "processing"
        ts.processing_on = worker
        worker.processing.add(ts)
        ts.expected_seconds = self.expected_seconds(ts)
        worker.queued_seconds += ts.expected_seconds
        worker.to_compute.append((ts.key, ts.spec, _where(ts, worker)))

    def flush_to_workers(self) -> None:
        for worker in list(self.workers.values()):
            if worker.to_release and worker.state == "running":
                keys, worker.to_release = worker.to_release, []
                self.send_to(worker, ("release", keys))
            if worker.to_compute:
                items, worker.to_compute = worker.to_compute, []
                self.send_batch(worker, items)

    def send_batch(self, worker: WorkerHandle, items: list) -> None:
        """Send tasks; the items are pickled apart from the envelope so that a
        worker that cannot unpickle them can still say which batch failed."""
        try:
            batch = dumps_control(items)
        except Exception as exc:
            self.fail_unpicklable(worker, items, exc)
            return
        batch_id = next(self.batch_ids)
        worker.recent_batches[batch_id] = [key for key, _, _ in items]
        while len(worker.recent_batches) > RECENT_BATCHES:
            worker.recent_batches.popitem(last=False)
        self.send_bytes_to(worker, pickle.dumps(("compute", batch_id, batch)))

    def batch_broken(self, worker: WorkerHandle, batch_id: int, error: str) -> None:
        """A worker could not unpickle a batch: resend its tasks one by one, so
        only a task that cannot be unpickled there fails, with an error naming it."""
        keys = worker.recent_batches.pop(batch_id, [])
        for key in keys:
            ts = self.tasks.get(key)
            if ts is None or ts.state != "processing" or ts.processing_on is not worker:
                continue
            if len(keys) > 1:
                self.send_batch(worker, [(key, ts.spec, _where(ts, worker))])
                continue
            self.stop_processing(ts)
            message = (
                f"{describe_task(key, ts.spec)} cannot be unpickled on the worker ({error}); "
                "define its function in a module the workers can import, or in the notebook"
            )
            self.mark_erred(ts, ((None, "", "lazycell.SerializationError", message), key))

    def send_to(self, worker: WorkerHandle, message) -> None:
        self.send_bytes_to(worker, dumps_control(message))

    def send_bytes_to(self, worker: WorkerHandle, payload: bytes) -> None:
        try:
            worker.control.send_bytes(payload)
        except (OSError, ValueError):
            pass  # it died; its end-of-file arrives next and remove_worker handles it

    def fail_unpicklable(self, worker: WorkerHandle, items: list, exc: Exception) -> None:
        for key, spec, where in items:
            ts = self.tasks[key]
            try:
                dumps_control((key, spec, where))
                ok = True
            except Exception:
                ok = False
            self.stop_processing(ts)
            if ok:
                ts.state = "released"
                self.activate(ts)
                continue
            message = (
                f"{describe_task(key, spec)} cannot be sent to a worker: its function or "
                f"arguments cannot be pickled ({exc})"
            )
            self.mark_erred(ts, ((None, "", "lazycell.SerializationError", message), key))

    # -- messages from workers
    def handle_worker_message(self, worker: WorkerHandle) -> None:
        try:
            message = loads_control(worker.control.recv_bytes())
        except (EOFError, OSError):
            self.remove_worker(worker)
            return
        kind = message[0]
        if kind == "reports":
            for item in message[1]:
                tag = item[0]
                if tag == "finished":
                    self.task_finished(worker, *item[1:])
                elif tag == "erred":
                    self.task_erred(worker, *item[1:])
                elif tag == "missing":
                    self.input_missing(worker, item[1])
        elif kind == "heartbeat":
            worker.metrics = message[1]
        elif kind == "call-result":
            _, request_id, ok, value = message
            call = self.pending_calls.get(request_id)
            if call is not None:
                call.answer(worker.name, ok, value)
                if not call.waiting:
                    del self.pending_calls[request_id]
        elif kind == "gathered":
            self.results_moved(*message[1:])
        elif kind == "broken":
            self.batch_broken(worker, message[1], message[2])
        elif kind == "ready":
            _, worker.pid, worker.address = message
            if worker.state != "starting":  # retired or closed while it started
                return
            worker.state = "running"
            for name, payload in self.plugins.items():  # before any task reaches it
                self.send_to(worker, ("plugin", None, name, payload))
            self.startup_failures = 0
            with self.n_running_changed:
                self.n_running_changed.notify_all()
        elif kind == "paused":
            _, worker.paused, rss = message
            if worker.paused:
                warnings.warn(
                    f"lazycell: {worker.name} uses {rss / 1e6:.0f} MB, over "
                    f"{self.thresholds['pause']:.0%} of its memory limit; it starts no new "
                    "tasks until memory is freed",
                    RuntimeWarning,
                    stacklevel=1,
                )
        elif kind == "restarting":
            worker.exit_reason = (
                f"used {message[1] / 1e6:.0f} MB, over {self.thresholds['terminate']:.0%} "
                "of its memory limit, and was restarted"
            )
            warnings.warn(f"lazycell: {worker.name} {worker.exit_reason}", RuntimeWarning, 1)

    # -- workers coming and going
    def add_worker(self) -> WorkerHandle:
        index = next(self.worker_indices)
        setup = (
            "setup",
            list(sys.path),
            os.getcwd(),
            self.authkey,
            {
                "threads": self.threads_per_worker,
                "memory_limit": self.memory_limit,
                "thresholds": self.thresholds,
                "local_directory": self.local_directory,
                "socket_dir": self.socket_dir,
                "name": f"worker-{index}",
            },
        )
        worker = start_worker(index, self.threads_per_worker, setup, in_process=not self.processes)
        self.workers[worker.index] = worker
        return worker

    def check_workers_started_in_time(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.state == "starting" and now - worker.started_at > STARTUP_TIMEOUT:
                worker.kill()

    def remove_worker(self, worker: WorkerHandle) -> None:
        """A worker died: recompute what it held and ran; start a replacement."""
        if worker.state == "closed":
            return
        was_running = worker.state in ("running", "retiring")
        worker.state = "closed"
        worker.kill()
        if worker.proc is not None:
            try:
                worker.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        worker.control.close()
        del self.workers[worker.index]
        if self.root_worker is worker:
            self.root_worker = None
        how = worker.exit_description()
        lost = []
        for ts in list(worker.processing):
            ts.processing_on = None
            ts.suspicious += 1
            if ts.suspicious >= self.allowed_failures:
                message = (
                    f"{describe_task(ts.key, ts.spec)} was running on a worker that died "
                    f"{ts.suspicious} times (last: {worker.name}, pid {worker.pid}, {how}); "
                    "it probably crashes the interpreter or uses too much memory"
                )
                failure = (None, "", "lazycell.WorkerDiedError", message)
                ts.state = "released"
                self.mark_erred(ts, (failure, ts.key))
            else:
                ts.state = "released"
                lost.append(ts)
        for ts in list(worker.has_what):
            ts.who_has = None
            ts.state = "released"
            status = self.statuses.get(ts.key)
            if status is not None:
                status.reset()
            lost.append(ts)
        worker.processing.clear()
        worker.queued_seconds = 0.0
        worker.has_what.clear()
        self.recompute_lost(lost)
        self.forget_pending_answers(worker, how)
        if self.stopped or worker.retired or len(self.live_workers()) >= self.n_workers:
            return
        if not was_running:
            self.startup_failures += 1
            if self.startup_failures >= MAX_STARTUP_FAILURES:
                print(
                    f"lazycell: {MAX_STARTUP_FAILURES} workers in a row failed to start; "
                    "not starting more",
                    file=sys.stderr,
                )
                return
        self.add_worker()

    def recompute_lost(self, lost: list) -> None:
        """Put lost results (and released inputs they need) back on the way to memory."""
        for ts in lost:  # tasks that were ready or waiting now wait for it again
            for dependent in ts.dependents:
                if dependent.state == "ready":
                    dependent.state = "waiting"
                    dependent.waiting_on = {ts}
                elif dependent.state == "waiting":
                    dependent.waiting_on.add(ts)
        self.activate_with_inputs([ts for ts in lost if self.is_needed_again(ts)])
        for ts in lost:
            if ts.state == "released":
                self.forget_if_unneeded(ts)

    def activate_with_inputs(self, roots: list) -> None:
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
            self.activate(ts)

    def is_needed_again(self, ts: TaskState) -> bool:
        if self.tasks.get(ts.key) is not ts:
            return False
        if ts.wanted:
            return True
        return any(d.state in ("waiting", "ready", "processing") for d in ts.dependents)

    # -- calls and plugins on workers (client.run, register_plugin, profile)
    def call_workers(self, payload: bytes, names, reply: queue.SimpleQueue) -> None:
        """Send ``("call", id, payload)`` to the named running workers (all if None)."""
        running = {w.name: w for w in self.running_workers()}
        if names is None:
            targets = list(running.values())
        else:
            unknown = [name for name in names if name not in running]
            if unknown:
                reply.put(
                    ValueError(
                        f"no running worker named {', '.join(map(repr, unknown))}; "
                        f"running: {', '.join(sorted(running)) or 'none'}"
                    )
                )
                return
            targets = [running[name] for name in names]
        self.send_call(targets, lambda rid: ("call", rid, payload), reply)

    def send_call(self, targets: list, message_for, reply: queue.SimpleQueue) -> None:
        if not targets:
            reply.put({})
            return
        request_id = next(self.request_ids)
        self.pending_calls[request_id] = PendingCall({w.name for w in targets}, reply)
        for worker in targets:
            self.send_to(worker, message_for(request_id))

    def register_plugin(self, name: str, payload: bytes, reply: queue.SimpleQueue) -> None:
        """Keep the plugin for workers that start later; set it up on the running ones."""
        self.plugins.pop(name, None)  # re-registered: moves to the end of the order
        self.plugins[name] = payload
        self.send_call(self.running_workers(), lambda rid: ("plugin", rid, name, payload), reply)

    def remove_plugin(self, name: str, reply: queue.SimpleQueue) -> None:
        if self.plugins.pop(name, None) is None:
            reply.put(
                ValueError(f"no worker plugin named {name!r}; registered: {sorted(self.plugins)}")
            )
            return
        self.send_call(self.running_workers(), lambda rid: ("remove-plugin", rid, name), reply)

    def forget_pending_answers(self, worker: WorkerHandle, how: str) -> None:
        """A worker died: its answers to calls will never come; moves to or from it are off."""
        failure = (
            None,
            "",
            "lazycell.WorkerDiedError",
            f"{worker.name} (pid {worker.pid}) {how} before answering",
        )
        for request_id, call in list(self.pending_calls.items()):
            call.answer(worker.name, False, failure)
            if not call.waiting:
                del self.pending_calls[request_id]
        for request_id, (_, receiver) in list(self.moves.items()):
            if worker is receiver:
                self.results_moved(request_id, {}, f"{worker.name} died")

    # -- scaling (see scaling.py for the adaptive policy)
    def guessed_task_seconds(self) -> float:
        return GUESSED_TASK_SECONDS

    def scale(self, n: int) -> None:
        """Have ``n`` workers: start more, or retire the least busy (moving their results)."""
        self.n_workers = n
        live = self.live_workers()
        for _ in range(n - len(live)):
            self.add_worker()
        surplus = len(live) - n
        if surplus > 0:
            # Starting workers first, then those with the least work and data.
            by_cost = sorted(
                live,
                key=lambda w: (w.state == "running", len(w.processing), w.nbytes, -w.index),
            )
            for worker in by_cost[:surplus]:
                self.retire(worker)

    def retire(self, worker: WorkerHandle) -> None:
        """No more tasks for ``worker``; progress_retirements moves its results, then stops it."""
        if worker.state not in ("starting", "running"):
            return
        worker.state = "retiring"
        if self.root_worker is worker:
            self.root_worker = None

    def progress_retirements(self) -> None:
        for worker in list(self.workers.values()):
            if worker.state != "retiring" or worker.retired:
                continue
            if worker.processing:
                continue  # its running tasks finish first
            if worker.pending_moves is None:
                self.move_results_away(worker)
            if not worker.pending_moves:
                self.stop_retired(worker)

    def move_results_away(self, worker: WorkerHandle) -> None:
        """Ask the running workers to copy ``worker``'s results, the emptiest taking most."""
        worker.pending_moves = set()
        receivers = self.running_workers()
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
            request_id = next(self.request_ids)
            self.moves[request_id] = (worker, receiver)
            worker.pending_moves.add(request_id)
            self.send_to(receiver, ("gather-from", request_id, {worker.address: keys}))

    def results_moved(self, request_id: int, moved: dict, error: str | None) -> None:
        """A receiver copied a retiring worker's results: the scheduler points at the copies."""
        entry = self.moves.pop(request_id, None)
        if entry is None:
            return
        retiring, receiver = entry
        for key in moved:
            ts = self.tasks.get(key)
            if ts is None or ts.state != "memory" or ts.who_has is not retiring:
                receiver.to_release.append(key)  # released meanwhile
                continue
            if receiver.state != "running":
                continue
            retiring.has_what.discard(ts)
            retiring.nbytes -= ts.nbytes
            ts.who_has = receiver
            receiver.has_what.add(ts)
            receiver.nbytes += ts.nbytes
            status = self.statuses.get(key)
            if status is not None:
                status.address = receiver.address
                status.worker_name = receiver.name
        if error:
            warnings.warn(
                f"lazycell: moving results off retiring {retiring.name} failed ({error}); "
                "what did not move is recomputed if it is needed",
                RuntimeWarning,
                stacklevel=1,
            )
        if retiring.pending_moves is not None:
            retiring.pending_moves.discard(request_id)

    def stop_retired(self, worker: WorkerHandle) -> None:
        """Tell a retiring worker to stop; what it still holds is recomputed if needed."""
        worker.retired = True
        self.send_to(worker, ("stop",))
        if worker.proc is None:  # a thread: no end-of-file tells us it stopped
            if worker.thread is not None:
                worker.thread.join(timeout=5)
            self.remove_worker(worker)

    def restart(self, reply: queue.SimpleQueue) -> None:
        """Fresh workers, every result and task dropped; futures become cancelled."""
        for status in self.statuses.values():
            status.settle("cancelled", self.callbacks)
        self.statuses.clear()
        self.tasks.clear()
        self.ready.clear()
        self.moves.clear()
        workers = list(self.workers.values())
        self.stop_workers(workers)
        for worker in workers:
            self.forget_pending_answers(worker, "was restarted")
        self.workers.clear()
        self.root_worker = None
        self.activity = ClusterActivity()
        for _ in range(self.n_workers):
            self.add_worker()
        reply.put(None)

    def stop_workers(self, workers: list) -> None:
        """Tell ``workers`` to stop (plugins tear down), wait a little, kill the rest."""
        for worker in workers:
            worker.state = "closed"
            self.send_to(worker, ("stop",))
        deadline = time.monotonic() + 3
        for worker in workers:
            if worker.proc is not None:
                try:
                    worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.proc.wait(timeout=5)
            elif worker.thread is not None:
                worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))
            worker.control.close()

    def stop_all_workers(self) -> None:
        self.stop_workers(list(self.workers.values()))
        self.workers.clear()
        for status in self.statuses.values():
            if status.status == "pending":
                status.error = _closed_failure()
                status.erred_key = status.key
                status.settle("error", self.callbacks)
        try:
            self._wake_r.close()
            self._wake_w.close()
        except OSError:
            pass


def _where(ts: TaskState, worker: WorkerHandle) -> dict:
    """Data addresses of the inputs of ``ts`` that ``worker`` does not hold."""
    return {dep.key: dep.who_has.address for dep in ts.deps if dep.who_has is not worker}


def _closed_failure() -> tuple:
    message = "the cluster was closed before this result was computed"
    return (None, "", "builtins.RuntimeError", message)


def _failure_label(failure: tuple) -> BaseException:
    exc, _, type_name, message = failure
    return exc if exc is not None else RuntimeError(f"{type_name}: {message}")


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
