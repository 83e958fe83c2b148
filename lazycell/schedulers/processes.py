"""The processes scheduler: warm worker processes fed batches of tasks.

::

    calling thread (owns the GraphRun)             worker processes (process_worker)
    ──────────────────────────────────             ──────────────────────────────────
    pop ready tasks, group them in batches
    ship (key, spec, inputs) with cloudpickle ───► run the batch, task after task
    wait on all worker pipes              ◄─────── ("results", batch, done, items)
    finish_task() for each result, which           (sent at least every 50 ms)
    releases inputs and readies dependents

- ``ProcessPool``: ``n`` long-lived workers, started once per size and kept
  for the life of the interpreter (``atexit`` stops them; each worker also
  exits when its parent disappears). A worker is a plain
  ``python -m lazycell.schedulers.process_worker`` over a socket pair, so
  notebook-defined functions work without an ``if __name__`` guard.
- ``WorkerProcess.in_flight``: ids of batches sent to it and not fully back.
  Each worker gets at most two batches at a time, so one is queued while the
  other runs and the pipe never goes idle.
- Batch size: the ready tasks are split evenly over the workers, capped so a
  batch takes about 20 ms by the measured mean task time (small tasks ride
  together, long tasks go one by one and balance across workers).

Results come back to the calling process, which keeps every input a task
needs until the task is done; that is what lets a failed task be re-run here
with its real inputs (``rerun_exceptions_locally``, and ``%debug``).

Interrupts: Ctrl-C while waiting kills the workers that were running tasks of
this compute and starts fresh ones, so nothing keeps running and the pool is
usable for the next compute.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from multiprocessing.connection import Connection, wait

import cloudpickle

from lazycell.events import BUS, SerializationError, WorkerDiedError
from lazycell.graph.spec import ALIAS, DATA, TaskSpec, describe_task, run_task
from lazycell.schedulers.core import GraphRun, order_graph
from lazycell.schedulers.errors import (
    annotate_task_error,
    describe_exit,
    make_rerun,
    rerun_locally_and_raise,
)
from lazycell.schedulers.spawn import spawn_worker

BATCHES_IN_FLIGHT_PER_WORKER = 2
TARGET_BATCH_SECONDS = 0.02
FIRST_BATCH_CAP = 16
STARTUP_TIMEOUT = 60.0

_batch_ids = itertools.count(1)


class WorkerProcess:
    """One worker: its process, the pipe to it, and the batches it holds."""

    def __init__(self, index: int):
        self.index = index
        self.name = f"process-{index}"
        parent_sock, child_sock = socket.socketpair()
        child_fd = child_sock.fileno()
        self.proc = spawn_worker("lazycell.schedulers.process_worker", child_fd)
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.pid = self.proc.pid
        self.in_flight: set = set()
        self.is_ready = False
        self.setup_sent: tuple | None = None
        # Writes go through a thread of their own: if the calling thread wrote
        # a large batch while the worker wrote large results, both would block.
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_outbox, name=f"lazycell-{self.name}-writer", daemon=True
        )
        self._writer.start()

    def _write_outbox(self) -> None:
        while True:
            payload = self._outbox.get()
            if payload is None:
                return
            try:
                self.conn.send_bytes(payload)
            except (OSError, ValueError):  # the worker is gone; receive() reports it
                return

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        if self.is_ready:
            return
        if not self.conn.poll(timeout):
            raise WorkerDiedError(f"worker {self.name} did not start within {timeout:.0f} s")
        try:
            message = pickle.loads(self.conn.recv_bytes())
        except EOFError:
            raise WorkerDiedError(
                f"worker {self.name} (pid {self.pid}) exited at start-up with code "
                f"{self.proc.wait()}; see its output above"
            ) from None
        assert message[0] == "ready", message
        self.is_ready = True

    def send(self, payload: bytes) -> None:
        self._outbox.put(payload)

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._outbox.put(None)
        self._writer.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        self._outbox.put(pickle.dumps(("stop",)))
        self._outbox.put(None)

    def exit_description(self) -> str:
        return describe_exit(self.proc)


class ProcessPool:
    """``n`` warm worker processes (see module docstring)."""

    def __init__(self, n: int):
        self.n = n
        self.lock = threading.Lock()  # one compute at a time drives a pool
        self.workers = [WorkerProcess(i) for i in range(n)]

    def ensure_ready(self) -> None:
        for i, worker in enumerate(self.workers):
            if worker.proc.poll() is not None:
                worker.kill()
                worker = self.workers[i] = WorkerProcess(i)
            worker.wait_ready()
        setup = (list(sys.path), os.getcwd())
        for worker in self.workers:
            if worker.setup_sent != setup:
                worker.send(pickle.dumps(("setup", *setup)))
                worker.setup_sent = setup

    def replace(self, worker: WorkerProcess) -> None:
        """Kill ``worker`` and start a fresh one in its place (ready check deferred)."""
        worker.kill()
        self.workers[worker.index] = WorkerProcess(worker.index)

    def shutdown(self) -> None:
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + 2
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
            worker._writer.join(timeout=1)
            worker.conn.close()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]


_pools: dict[int, ProcessPool] = {}
_pools_lock = threading.Lock()


def shared_pool(n: int) -> ProcessPool:
    """The interpreter's pool of ``n`` workers, started on first use."""
    with _pools_lock:
        pool = _pools.get(n)
        if pool is None:
            pool = _pools[n] = ProcessPool(n)
        return pool


@atexit.register
def shutdown_all_pools() -> None:
    """Stop every worker process this interpreter started."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()


class ProcessesScheduler:
    """Runs tasks in ``num_workers`` warm worker processes."""

    name = "processes"

    def __init__(self, num_workers: int | None = None):
        self.n_workers = num_workers or os.cpu_count() or 1

    def __repr__(self) -> str:
        return f"ProcessesScheduler(num_workers={self.n_workers})"

    @property
    def pool(self) -> ProcessPool:
        return shared_pool(self.n_workers)

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: Sequence[Hashable],
        *,
        rerun_exceptions_locally: bool = False,
    ) -> dict:
        order = order_graph(graph, outputs)
        pool = self.pool
        with pool.lock:
            pool.ensure_ready()
            with BUS.recording(order, self.name, self.n_workers) as recorder:
                run = _ProcessRun(pool, GraphRun(graph, order, outputs), recorder)
                return run.drive(rerun_exceptions_locally)


class _ProcessRun:
    """The calling thread's loop for one compute (see the module diagram)."""

    def __init__(self, pool: ProcessPool, state: GraphRun, recorder):
        self.pool = pool
        self.state = state
        self.recorder = recorder
        self.batches: dict[int, list] = {}  # batch id -> keys, for this compute only
        self.task_seconds = 0.0
        self.tasks_timed = 0

    def drive(self, rerun_exceptions_locally: bool) -> dict:
        state = self.state
        try:
            while not state.all_done:
                self.dispatch_ready_tasks()
                if state.all_done:
                    break
                busy = [w for w in self.pool.workers if w.in_flight]
                if not busy:  # cannot happen with a valid graph; never hang on it
                    raise RuntimeError("lazycell: no task is ready or running, yet some remain")
                for conn in wait([w.conn for w in busy], timeout=1.0):
                    worker = next(w for w in busy if w.conn is conn)
                    failure = self.receive(worker)
                    if failure is not None:
                        failed_key, payload = failure
                        self.raise_failure(failed_key, payload, rerun_exceptions_locally)
        except KeyboardInterrupt:
            self.stop_workers_running_this_compute()
            raise
        return state.results()

    # -- sending
    def batch_size(self) -> int:
        share = -(-len(self.state.ready) // (self.pool.n * BATCHES_IN_FLIGHT_PER_WORKER))
        if self.tasks_timed:
            mean = self.task_seconds / self.tasks_timed
            cap = max(1, int(TARGET_BATCH_SECONDS / mean)) if mean > 0 else 1024
        else:
            cap = FIRST_BATCH_CAP
        return max(1, min(share, cap))

    def dispatch_ready_tasks(self) -> None:
        state = self.state
        graph = state.graph
        while state.ready:
            worker = min(self.pool.workers, key=lambda w: len(w.in_flight))
            if len(worker.in_flight) >= BATCHES_IN_FLIGHT_PER_WORKER:
                return
            tasks = []
            for _ in range(self.batch_size()):
                if not state.ready:
                    break
                key = state.pop_ready()
                spec = graph[key]
                if spec.kind == DATA or spec.kind == ALIAS:  # nothing to ship
                    state.finish_task(key, run_task(spec, state.data))
                    continue
                tasks.append((key, spec, state.inputs_of(key)))
            if tasks:
                self.send_batch(worker, tasks)

    def send_batch(self, worker: WorkerProcess, tasks: list) -> None:
        batch_id = next(_batch_ids)
        try:
            payload = cloudpickle.dumps(("tasks", batch_id, tasks))
        except Exception as exc:
            raise self.explain_unpicklable(tasks, exc) from None
        worker.send(payload)
        worker.in_flight.add(batch_id)
        self.batches[batch_id] = [key for key, _, _ in tasks]

    def explain_unpicklable(self, tasks: list, exc: Exception) -> SerializationError:
        for key, spec, inputs in tasks:
            culprits = [("function", spec.func)] + [
                (f"input {dep!r}", value) for dep, value in inputs.items()
            ]
            if spec.func is None:  # a container task: its literal contents
                culprits.append(("contents", spec.args))
            else:  # literal arguments, one by one, so the offending type is named
                culprits += [(f"argument {i}", arg) for i, arg in enumerate(spec.args)]
                culprits += [(f"argument {k}=", v) for k, v in (spec.kwargs or {}).items()]
            for what, value in culprits:
                try:
                    cloudpickle.dumps(value)
                except Exception as inner:
                    kind = f"{type(value).__module__}.{type(value).__qualname__}"
                    err = SerializationError(
                        f"{describe_task(key, spec)} cannot be sent to a worker process: its "
                        f"{what} of type {kind} cannot be pickled ({inner}). Use the threads "
                        "or sync scheduler for this task, or pass picklable data."
                    )
                    return annotate_task_error(err, key, spec, "processes")
        return SerializationError(f"a batch of tasks could not be pickled: {exc}")

    # -- receiving
    def receive(self, worker: WorkerProcess):
        """Apply one message from ``worker``; returns ``(key, payload)`` on a task failure."""
        try:
            message = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            return self.worker_died(worker)
        kind, *rest = message
        if kind == "broken":
            raise SerializationError(f"a worker could not unpickle a batch of tasks: {rest[0]}")
        batch_id, done, items = rest
        if done:
            worker.in_flight.discard(batch_id)
        if batch_id not in self.batches:  # leftovers of an earlier, failed compute
            return None
        if done:
            del self.batches[batch_id]
        state = self.state
        recorder = self.recorder
        for key, ok, payload, start, stop in items:
            if not ok:
                if recorder is not None:
                    recorder.erred(key, worker.name, start, stop, payload.label())
                return key, payload
            if recorder is not None:
                recorder.started(key, worker.name, start)
                recorder.finished(key, worker.name, start, stop, payload)
            self.task_seconds += stop - start
            self.tasks_timed += 1
            state.finish_task(key, payload)
        return None

    def worker_died(self, worker: WorkerProcess):
        lost = [k for b in worker.in_flight if b in self.batches for k in self.batches[b]]
        how = worker.exit_description()
        self.pool.replace(worker)
        graph = self.state.graph
        what = ", ".join(describe_task(k, graph[k]) for k in lost[:3]) or "no task of this compute"
        if len(lost) > 3:
            what += f" and {len(lost) - 3} more"
        raise WorkerDiedError(
            f"worker {worker.name} (pid {worker.pid}) {how} while running {what}. "
            "The compute was stopped and a fresh worker started; run it again. "
            "If it dies again, the task may use too much memory or crash the interpreter."
        )

    def raise_failure(self, key, payload, rerun_exceptions_locally: bool):
        state = self.state
        spec = state.graph[key]
        inputs = state.inputs_of(key)
        exc = payload.rebuild()
        annotate_task_error(exc, key, spec, "processes", make_rerun(spec, inputs))
        if rerun_exceptions_locally:
            rerun_locally_and_raise(exc, key, spec, inputs, "processes")
        raise exc

    def stop_workers_running_this_compute(self) -> None:
        for worker in list(self.pool.workers):
            if any(b in self.batches for b in worker.in_flight):
                self.pool.replace(worker)
