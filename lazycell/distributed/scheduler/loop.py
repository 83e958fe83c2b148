"""The scheduler thread: it owns the state, reads commands and worker messages, sends messages.

One round of :meth:`ClusterScheduler.run`::

    wait() on the wake socket and every worker's control connection
      wake socket   ─► handle_commands: each command from ``commands``
      a connection  ─► handle_worker_message: one message from that worker
                       (end-of-file: membership.remove_worker)
    then, every round:
      check_workers_started_in_time   kill workers that never said "ready"
      adaptive.adapt(self)            scaling.Adaptive, while cluster.adapt() is on
      dispatch                        ready tasks -> the workers' to_compute
      progress_retirements            retiring workers move their results, then stop
      flush_to_workers                each worker's to_release and to_compute, one send each

Commands (a tuple put on ``commands`` by ``submit_command``, or by ``ask``
with a reply queue last): ``update-graph``, ``release``, ``cancel``, ``replicate``,
``interrupt``, ``locate``, ``call`` (run a function with the state, on this
thread), ``worker-call``, ``register-plugin``, ``remove-plugin``, ``scale``,
``adapt``, ``restart``, ``close``, ``coordination`` (a Lock, Event, ...
request of the kernel: ``coordination.py``), ``to-worker`` (a message for a
task's client, from ``task_clients.py``).

Messages from a worker: ``reports`` (items ``finished``, ``erred``,
``missing``, ``seceded``), ``heartbeat``, ``call-result``, ``gathered``, ``broken``,
``ready``, ``paused``, ``restarting``, ``client-request`` (a task's
``get_client()``, Lock, Queue...: answered with ``client-reply``). Messages to a worker: ``compute``
(a batch of tasks, pickled apart from the envelope so that a worker that
cannot unpickle them can still say which batch failed), ``release``,
``call``, ``plugin``, ``remove-plugin``, ``gather-from``, ``stop``.

This module is the I/O: it implements the seams of ``SchedulerState``
(``send_to``, ``launch_worker``, ``end_worker_process``, ``wait_for_exit``,
``worker_exited``) with sockets and processes, and runs the functions,
plugins and calls sent to workers. Every change of a task's state is in
``transitions``, every choice of worker in ``placement``, every change of the
set of workers in ``membership``.

Files: each worker spills to a directory made here when it is launched
(``spill_dirs``, inside ``local_directory`` or the system's temporary
directory). It is removed as soon as the worker has ended, whether it stopped,
was restarted over its memory limit or was killed, and ``close`` removes any
left: a worker that dies cannot clean up after itself, and nothing of the
cluster may stay on disk.

Bad messages: task failures travel as
:class:`~lazycell.distributed.failures.PickledFailure` records, whose
exceptions stay pickled until the client raises them, so one exception that
cannot be unpickled here cannot take a batch of reports down with it. A
message that still cannot be unpickled is reported and dropped; the loop
carries on.
"""

from __future__ import annotations

import itertools
import os
import pickle
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any

from lazycell.distributed.failures import PickledFailure
from lazycell.distributed.protocol import dumps_control, loads_control
from lazycell.distributed.scheduler import membership, transitions
from lazycell.distributed.scheduler.coordination import Coordination
from lazycell.distributed.scheduler.placement import GUESSED_TASK_SECONDS
from lazycell.distributed.scheduler.state import (
    PendingCall,
    SchedulerState,
    WorkerHandle,
    warn_user,
)

# Called for every task: imported by name so the hot loop does no module lookup.
from lazycell.distributed.scheduler.transitions import dispatch, task_erred, task_finished
from lazycell.events.failure import Failure
from lazycell.graph.spec import describe_task
from lazycell.schedulers.errors import describe_exit
from lazycell.schedulers.spawn import spawn_worker

STARTUP_TIMEOUT = 60.0
RECENT_BATCHES = 256  # per worker, to name the tasks of a batch it cannot unpickle


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


def kill_worker(worker: WorkerHandle) -> None:
    if worker.proc is not None and worker.proc.poll() is None:
        try:
            worker.proc.kill()
        except OSError:
            pass


def describe_worker_exit(worker: WorkerHandle) -> str:
    """How a worker ended, for errors: its own reason, or the process's exit."""
    if worker.exit_reason:
        return worker.exit_reason
    if worker.proc is None:
        return "stopped"
    return describe_exit(worker.proc)


class ClusterScheduler(SchedulerState):
    """The scheduler's state and the thread that owns it (see the package docstring)."""

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
        resources: dict | None = None,
    ):
        super().__init__(n_workers, threads_per_worker, allowed_failures)
        self.worker_resources = dict(resources or {})
        self.local_directory = local_directory
        self.socket_dir = socket_dir
        self.spill_dirs: set[str] = set()  # made for workers, removed when each one ends
        self.authkey = authkey
        self.memory_limit = memory_limit
        self.thresholds = thresholds
        self.processes = processes
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.batch_ids = itertools.count()
        self.plugins: dict[str, bytes] = {}  # name -> pickled WorkerPlugin, set up on every worker
        self.adaptive = None  # an Adaptive policy while cluster.adapt() is on
        self.coordination = Coordination()  # lc.Lock, Event, Semaphore, Variable, Queue
        self.clients: list = []  # the open lc.Clients of this cluster, oldest first
        self.task_clients: Any = None  # TaskClients of the kernel's Client: get_client() in tasks
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
            membership.add_worker(self)
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
            for path in list(self.spill_dirs):
                self.remove_spill_dir(path)
            return
        done = threading.Event()
        self.submit_command("close", done)
        if not done.wait(timeout):
            self.stopped = True
            self.stop_all_workers()
        self._thread.join(timeout)
        self.callbacks.put(None)
        for path in list(self.spill_dirs):  # workers that did not end in time
            self.remove_spill_dir(path)

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

    # -- for scaling.Adaptive, which runs on this thread
    def add_worker(self) -> WorkerHandle:
        return membership.add_worker(self)

    def retire(self, worker: WorkerHandle) -> None:
        membership.retire(self, worker)

    def guessed_task_seconds(self) -> float:
        return GUESSED_TASK_SECONDS

    # -- the thread
    def run(self) -> None:
        while not self.stopped:
            conns = [self._wake_r] + [w.control for w in self.workers.values()]
            # Waits with a timeout (lc.Lock(...).acquire(timeout=...)) end within 50 ms;
            # without one there is nothing to expire (a wait asked this round: next round).
            timed_waits = self.coordination.has_deadlines()
            timeout = 0.05 if timed_waits else 0.5
            try:
                for conn in wait(conns, timeout=timeout):
                    if conn is self._wake_r:
                        self.handle_commands()
                    else:
                        self.handle_worker_message(self.worker_of_conn(conn))
                    if self.stopped:
                        return
                self.check_workers_started_in_time()
                if timed_waits:
                    self.coordination.expire(time.monotonic())
                if self.adaptive is not None:
                    self.adaptive.adapt(self)
                dispatch(self)
                membership.progress_retirements(self)
                self.flush_to_workers()
            except BaseException:  # noqa: B036 - a bug here must not silently freeze every future
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
            del callback  # it holds its future: not kept while waiting for the next one

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
                transitions.update_graph(self, *args)
            elif kind == "release":  # keys, and the releasing client's statuses of them
                transitions.release_wanted(self, *args)
            elif kind == "cancel":
                transitions.cancel(self, *args)
            elif kind == "replicate":
                membership.replicate(self, *args)

            elif kind == "interrupt":
                membership.interrupt(self, *args)
            elif kind == "locate":
                keys, reply = args
                reply.put(self.locate(keys))
            elif kind == "coordination":  # from the kernel: answered (ok, value) on reply
                owner, what, what_args, reply = args
                answer = _put_answer(reply) if reply is not None else _no_answer
                self.coordination.handle(owner, what, what_args, answer, time.monotonic())
            elif kind == "to-worker":  # a message for a task's client (task_clients.py)
                name, message = args
                worker = self.worker_named(name)
                if worker is not None:
                    self.send_checked(worker, message)
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
                membership.scale(self, *args)
            elif kind == "adapt":
                self.adaptive = args[0]
            elif kind == "restart":
                (reply,) = args
                membership.restart(self)
                reply.put(None)
            elif kind == "close":
                self.stop_all_workers()
                self.stopped = True
                args[0].set()
                return

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

    # -- messages from workers
    def handle_worker_message(self, worker: WorkerHandle) -> None:
        try:
            payload = worker.control.recv_bytes()
        except (EOFError, OSError):
            membership.remove_worker(self, worker)
            return
        try:
            message = loads_control(payload)
        except Exception as exc:  # the worker checks what it sends; this is a last resort
            print(
                f"lazycell: a message from {worker.name} could not be unpickled and was "
                f"dropped: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return
        kind = message[0]
        if kind == "reports":
            for item in message[1]:
                tag = item[0]
                if tag == "finished":
                    task_finished(self, worker, *item[1:])
                elif tag == "erred":
                    task_erred(self, worker, *item[1:])
                elif tag == "missing":
                    membership.input_missing(self, worker, item[1])
                elif tag == "seceded":
                    transitions.task_seceded(self, worker, item[1])
        elif kind == "client-request":
            _, request_id, what, args = message
            self.client_request(worker, request_id, what, args)
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
            membership.results_moved(self, *message[1:])
        elif kind == "broken":
            self.batch_broken(worker, message[1], message[2])
        elif kind == "ready":
            _, pid, address = message
            if not membership.worker_ready(self, worker, pid, address):
                return
            for name, payload in self.plugins.items():  # before any task reaches it
                self.send_to(worker, ("plugin", None, name, payload))
            with self.n_running_changed:
                self.n_running_changed.notify_all()
        elif kind == "paused":
            _, worker.paused, rss = message
            if worker.paused:
                warn_user(
                    f"{worker.name} uses {rss / 1e6:.0f} MB, over "
                    f"{self.thresholds['pause']:.0%} of its memory limit; it starts no new "
                    "tasks until memory is freed"
                )
        elif kind == "restarting":
            worker.exit_reason = (
                f"used {message[1] / 1e6:.0f} MB, over {self.thresholds['terminate']:.0%} "
                "of its memory limit, and was restarted"
            )
            warn_user(f"{worker.name} {worker.exit_reason}")

    # -- requests of tasks (get_client(), Lock, Event, Semaphore, Variable, Queue)
    def client_request(self, worker: WorkerHandle, request_id, what: str, args: tuple) -> None:
        """A task asked something: the coordination primitives answer here, the rest
        (submit, release, ...) goes to the kernel's client (``task_clients``)."""
        answer = self.answer_to(worker, request_id)
        clients = self.task_clients  # read once: the kernel swaps it when a Client closes
        if what.startswith(COORDINATION_REQUESTS):
            if clients is not None:  # futures in Variables and Queues (task_clients.py)
                try:
                    args = clients.import_value(worker.name, what, args)
                except Exception as exc:
                    answer(False, exc)
                    return
                answer = _exporting(answer, clients, worker.name)
            self.coordination.handle(worker.name, what, args, answer, time.monotonic())
            return
        if clients is None:
            answer(False, RuntimeError("no lazycell Client is connected to this cluster"))
            return
        try:
            value = clients.handle(worker.name, what, args)
        except Exception as exc:
            answer(False, exc)
            return
        answer(True, value)

    def answer_to(self, worker: WorkerHandle, request_id):
        """How to answer a worker's request: ``answer(ok, value or exception)``."""

        def answer(ok: bool, value) -> None:
            if request_id is None:  # told, not asked
                if not ok:
                    print(
                        f"lazycell: a request of {worker.name} failed: {value!r}", file=sys.stderr
                    )
                return
            if not ok:
                value = PickledFailure.from_exception(value)
            self.send_checked(worker, ("client-reply", request_id, ok, value))

        return answer

    def send_checked(self, worker: WorkerHandle, message: tuple) -> None:
        """Send a message that holds user values; one that cannot be pickled becomes an error
        answer (a reply), or is dropped with a note (anything else)."""
        try:
            payload = dumps_control(message)
        except Exception as exc:
            if message[0] != "client-reply":
                print(
                    f"lazycell: could not send {message[0]!r} to {worker.name}: {exc}",
                    file=sys.stderr,
                )
                return
            failure = PickledFailure.of(
                Failure.serialization(f"the answer cannot be sent to {worker.name}: {exc}")
            )
            payload = dumps_control(("client-reply", message[1], False, failure))
        self.send_bytes_to(worker, payload)

    def worker_named(self, name: str) -> WorkerHandle | None:
        for worker in self.workers.values():
            if worker.name == name:
                return worker
        return None

    def worker_left(self, worker: WorkerHandle) -> None:
        self.coordination.owner_gone(worker.name, f"{worker.name} {describe_worker_exit(worker)}")
        if self.task_clients is not None:
            self.task_clients.worker_gone(worker.name)

    # -- messages to workers
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
                self.send_batch(
                    worker, [(key, ts.spec, transitions.addresses_to_fetch(ts, worker))]
                )
                continue
            transitions.stop_processing(ts)
            message = (
                f"{describe_task(key, ts.spec)} cannot be unpickled on the worker ({error}); "
                "define its function in a module the workers can import, or in the notebook"
            )
            failure = PickledFailure.of(Failure.serialization(message))
            transitions.mark_erred(self, ts, (failure, key))

    def fail_unpicklable(self, worker: WorkerHandle, items: list, exc: Exception) -> None:
        for key, spec, where in items:
            ts = self.tasks[key]
            try:
                dumps_control((key, spec, where))
                ok = True
            except Exception:
                ok = False
            transitions.stop_processing(ts)
            if ok:
                ts.state = "released"
                transitions.activate(self, ts)
                continue
            message = (
                f"{describe_task(key, spec)} cannot be sent to a worker: its function or "
                f"arguments cannot be pickled ({exc})"
            )
            failure = PickledFailure.of(Failure.serialization(message))
            transitions.mark_erred(self, ts, (failure, key))

    def send_to(self, worker: WorkerHandle, message: tuple) -> None:
        self.send_bytes_to(worker, dumps_control(message))

    def send_bytes_to(self, worker: WorkerHandle, payload: bytes) -> None:
        try:
            worker.control.send_bytes(payload)
        except (OSError, ValueError):
            pass  # it died; its end-of-file arrives next and remove_worker handles it

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

    # -- worker processes (the seams of SchedulerState)
    def launch_worker(self, index: int) -> WorkerHandle:
        if self.local_directory:
            os.makedirs(self.local_directory, exist_ok=True)
        spill_dir = tempfile.mkdtemp(prefix=f"lazycell-spill-{index}-", dir=self.local_directory)
        self.spill_dirs.add(spill_dir)
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
                "spill_dir": spill_dir,
                "socket_dir": self.socket_dir,
                "name": f"worker-{index}",
            },
        )
        try:
            worker = start_worker(index, self.threads_per_worker, setup, not self.processes)
        except BaseException:
            self.remove_spill_dir(spill_dir)
            raise
        worker.spill_dir = spill_dir
        return worker

    def end_worker_process(self, worker: WorkerHandle) -> str:
        kill_worker(worker)
        if worker.proc is not None:
            try:
                worker.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        worker.control.close()
        self.remove_spill_dir(worker.spill_dir)
        return describe_worker_exit(worker)

    def remove_spill_dir(self, path: str | None) -> None:
        """A worker has ended: its spilled results go (it may have died before it could)."""
        if path is None:
            return
        self.spill_dirs.discard(path)
        shutil.rmtree(path, ignore_errors=True)

    def wait_for_exit(self, workers: list[WorkerHandle]) -> None:
        deadline = time.monotonic() + 3
        for worker in workers:
            if worker.proc is not None:
                try:
                    worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    kill_worker(worker)
                    worker.proc.wait(timeout=5)
            elif worker.thread is not None:
                worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))
            worker.control.close()
            self.remove_spill_dir(worker.spill_dir)

    def worker_exited(self, worker: WorkerHandle) -> bool:
        return worker.proc is not None and worker.proc.poll() is not None

    def check_workers_started_in_time(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.state == "starting" and now - worker.started_at > STARTUP_TIMEOUT:
                kill_worker(worker)

    def stop_all_workers(self) -> None:
        self.coordination.close("the cluster was closed while this waited")
        membership.stop_workers(self, list(self.workers.values()))
        self.workers.clear()
        for holders in self.statuses.values():
            for status in holders:
                if status.status == "pending":
                    status.error = _closed_failure()
                    status.erred_key = status.key
                    status.settle("error", self.callbacks)
        try:
            self._wake_r.close()
            self._wake_w.close()
        except OSError:
            pass


COORDINATION_REQUESTS = ("semaphore-", "event-", "variable-", "queue-", "cancel-acquire")


def _exporting(answer, clients, worker_name: str):
    def answer_with_keys(ok: bool, value) -> None:
        answer(ok, clients.export_value(worker_name, value) if ok else value)

    return answer_with_keys


def _no_answer(ok: bool, value) -> None:
    pass


def _put_answer(reply: queue.SimpleQueue):
    def answer(ok: bool, value) -> None:
        reply.put((ok, value))

    return answer


def _closed_failure() -> PickledFailure:
    message = "the cluster was closed before this result was computed"
    return PickledFailure(Failure.reported(RuntimeError, message))
