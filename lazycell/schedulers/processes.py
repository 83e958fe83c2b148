"""The processes scheduler: warm worker processes fed batches of tasks.

::

    calling thread (owns the GraphRun)             worker processes (process_worker)
    ──────────────────────────────────             ──────────────────────────────────
    pop ready tasks, group them in batches
    ship (spec, inputs) with cloudpickle  ───► run the batch, task after task
    wait on all worker pipes              ◄─────── ("results", batch, done, items),
    unpickle each result on its own;               each result pickled on its own
    finish_task() for each, which releases         (sent at least every 50 ms)
    inputs and readies dependents

- ``ProcessPool``: ``n`` long-lived workers, kept between computes. Pools
  of the two sizes used last are kept (``pools.SharedPools``); an older
  size's workers are stopped once no compute uses them, and ``atexit`` stops
  the rest (each worker also exits when its parent disappears). A worker is
  a plain ``python -m lazycell.schedulers.process_worker`` over a socket
  pair, so notebook-defined functions work without an ``if __name__`` guard.
  ``num_workers`` above ``MAX_WORKERS`` is a ValueError before any starts.
- ``WorkerProcess.in_flight``: ids of batches sent to it and not fully back,
  oldest first. Each worker gets at most two batches at a time, so one is
  queued while the other runs and the pipe never goes idle. A batch's id
  leaves ``in_flight`` as soon as its last message arrives, before anything
  in it is unpickled or applied, so no failure can keep the slot taken.
- An initializer (dask's ``multiprocessing.initializer`` config, through
  ``ProcessesScheduler.with_initializer``) runs once in each worker, right
  after its set-up and before its first batch; the kernel waits for each
  worker's ``("initialized", ...)`` reply and raises the initializer's own
  exception if it fails there. A pool with an initializer is kept under
  ``(size, initializer)``, apart from the plain pool of that size, so what
  it sets never reaches a compute that did not ask for it; it counts among
  the pools used last like any other.
- Batch size: the ready tasks are split evenly over the workers, capped so a
  batch takes about 20 ms by the measured mean task time (small tasks ride
  together, long tasks go one by one and balance across workers).

Messages (see ``process_worker``): a worker pickles each result on its own,
behind a header the kernel can always read. A result or exception that
cannot be unpickled here fails its own task with an error naming the task,
what did not unpickle and why; the other results are still applied. A batch
the worker cannot unpickle comes back as ``("broken", why)`` for the oldest
batch in flight (a worker handles its batches in order) and fails the
compute naming the task and the value at fault.

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
from collections.abc import Callable, Hashable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import NamedTuple, Protocol

import cloudpickle

from lazycell.events import BUS, Failure, SerializationError, WorkerDiedError
from lazycell.events.failure import message_of, type_name_of
from lazycell.graph.spec import ALIAS, DATA, TaskSpec, describe_task, run_task
from lazycell.schedulers.core import GraphRun, order_graph
from lazycell.schedulers.errors import (
    annotate_task_error,
    describe_exit,
    make_rerun,
    rerun_locally_and_raise,
)
from lazycell.schedulers.pools import SharedPools, check_num_workers
from lazycell.schedulers.process_worker import read_message
from lazycell.schedulers.spawn import spawn_worker

# Each worker is a whole interpreter (some 30-50 MB before any data) that
# takes a fraction of a second to start, and more processes than cores only
# share the same cores: 4 per core leaves room for tasks that wait on I/O,
# and 16 at least lets a small machine try a bigger pool.
MAX_WORKERS = max(16, 4 * (os.cpu_count() or 1))
# Pool sizes whose workers are kept between computes; older sizes are retired.
KEEP_POOL_SIZES = 2
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
        self.in_flight: dict[int, None] = {}  # batch ids, oldest first
        self.is_ready = False
        self.setup_sent: tuple | None = None
        self.initialized = False
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
            message, _ = read_message(self.conn.recv_bytes())
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
    """``n`` warm worker processes (see module docstring), each set up by ``initializer``."""

    def __init__(self, n: int, initializer: Callable[[], object] | None = None):
        self.n = n
        self.initializer = initializer
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
        if self.initializer is not None:
            self.initialize_workers()

    def initialize_workers(self) -> None:
        """Run the initializer in each worker that has not run it; raise its exception if any."""
        fresh = [worker for worker in self.workers if not worker.initialized]
        if not fresh:
            return
        try:
            payload = cloudpickle.dumps(("initialize", self.initializer))
        except Exception as exc:
            raise SerializationError(
                f"dask's multiprocessing.initializer {self.initializer!r} cannot be pickled to "
                f"send it to the worker processes ({exc}); define it in a module or the "
                "notebook, without references to unpicklable objects"
            ) from None
        for worker in fresh:
            worker.send(payload)
        # A worker whose reply is not read here (the wait ended early) is replaced:
        # a late ("initialized", ...) would otherwise be read as a batch's results.
        unanswered = list(fresh)
        try:
            self._read_initialized_replies(fresh, unanswered)
        finally:
            for worker in unanswered:
                self.replace(worker)

    def _read_initialized_replies(self, fresh: list, unanswered: list) -> None:
        for worker in fresh:
            if not worker.conn.poll(STARTUP_TIMEOUT):
                raise WorkerDiedError(
                    f"dask's multiprocessing.initializer {self.initializer!r} did not return in "
                    f"worker {worker.name} within {STARTUP_TIMEOUT:.0f} s"
                )
            try:
                header, message = read_message(worker.conn.recv_bytes())
            except (EOFError, OSError):
                raise WorkerDiedError(
                    f"worker {worker.name} (pid {worker.pid}) {worker.exit_description()} while "
                    f"running dask's multiprocessing.initializer {self.initializer!r}"
                ) from None
            unanswered.remove(worker)
            if header[0] == "broken":
                raise SerializationError(
                    f"dask's multiprocessing.initializer {self.initializer!r} cannot be "
                    f"unpickled in worker {worker.name}: {header[1]}"
                )
            items = header[1]
            if items:  # it raised: the worker's exception, as a task's would be
                _, _, _, end, failure_text = items[0]
                try:
                    exception = pickle.loads(message[:end])
                except Exception:
                    exception = None
                traceback_text, type_name, text = failure_text
                raised = Failure(exception, traceback_text, type_name, text).rebuild()
                _add_note(
                    raised,
                    f"lazycell: raised by dask's multiprocessing.initializer "
                    f"{self.initializer!r} in worker {worker.name} (pid {worker.pid})",
                )
                raise raised
            worker.initialized = True

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


def _make_pool(key) -> ProcessPool:
    """A pool for ``key``: a size, or ``(size, initializer)`` for workers set up by it."""
    return ProcessPool(*key) if isinstance(key, tuple) else ProcessPool(key)


# One cache for plain and initialized pools, so "the pools used last" bounds them all.
_pools: SharedPools[ProcessPool] = SharedPools(_make_pool, keep=KEEP_POOL_SIZES)


def shared_pool(n: int) -> ProcessPool:
    """The interpreter's pool of ``n`` workers, started on first use.

    Starting a new size may stop the workers of the least recently used size
    (see ``pools.SharedPools``); :func:`existing_pool` only looks.
    """
    return _pools.get(n)


def existing_pool(n: int) -> ProcessPool | None:
    """The pool of ``n`` workers if it is running, else None; starts and stops nothing."""
    return _pools.existing(n)


@atexit.register
def shutdown_all_pools() -> None:
    """Stop every worker process this interpreter started."""
    _pools.shutdown_all()


class ProcessesScheduler:
    """Runs tasks in ``num_workers`` warm worker processes (each set up by ``initializer``)."""

    name = "processes"

    def __init__(
        self, num_workers: int | None = None, initializer: Callable[[], object] | None = None
    ):
        self.initializer = initializer
        self.n_workers = check_num_workers(
            num_workers or os.cpu_count() or 1,
            MAX_WORKERS,
            self.name,
            "4 per core, at least 16; each process is a whole interpreter, and more "
            "than the cores only add memory",
        )

    def __repr__(self) -> str:
        extra = f", initializer={self.initializer!r}" if self.initializer is not None else ""
        return f"ProcessesScheduler(num_workers={self.n_workers}{extra})"

    def with_initializer(self, initializer: Callable[[], object]) -> ProcessesScheduler:
        """The same scheduler on workers that each ran ``initializer()`` once before any task."""
        return ProcessesScheduler(self.n_workers, initializer)

    @property
    def pool(self) -> ProcessPool:
        return _pools.get(self._pool_key)

    @property
    def _pool_key(self):
        """Which kept pool this scheduler uses: by size, and initializer if any."""
        if self.initializer is not None:
            return (self.n_workers, self.initializer)
        return self.n_workers

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: Sequence[Hashable],
        *,
        rerun_exceptions_locally: bool = False,
        observer: TaskObserver | None = None,
    ) -> dict:
        """``{output: result}``; ``observer`` hears each task sent and each result back."""
        order = order_graph(graph, outputs)
        with _pools.use(self._pool_key) as pool, pool.lock:
            pool.ensure_ready()
            with BUS.recording(order, self.name, self.n_workers) as recorder:
                run = _ProcessRun(pool, GraphRun(graph, order, outputs), recorder, observer)
                return run.drive(rerun_exceptions_locally)


class TaskObserver(Protocol):
    """Told of each task by the calling thread (dask's callbacks, via ``get_function``)."""

    def pretask(self, key: Hashable) -> None: ...

    def posttask(self, key: Hashable, result: object, worker_id: object) -> None: ...


class TaskFailed(NamedTuple):
    """The first failed task of a message: its key, why, and a note for the user (or None)."""

    key: Hashable
    failure: Failure
    note: str | None


class _ProcessRun:
    """The calling thread's loop for one compute (see the module diagram)."""

    def __init__(self, pool: ProcessPool, state: GraphRun, recorder, observer=None):
        self.pool = pool
        self.state = state
        self.recorder = recorder
        self.observer = observer
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
                    failed = self.receive(worker)
                    if failed is not None:
                        self.raise_failure(failed, rerun_exceptions_locally)
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
            keys = []
            tasks = []
            for _ in range(self.batch_size()):
                if not state.ready:
                    break
                key = state.pop_ready()
                spec = graph[key]
                if spec.kind == DATA or spec.kind == ALIAS:  # nothing to ship
                    if self.observer is not None and spec.kind == ALIAS:
                        self.observer.pretask(key)
                    value = run_task(spec, state.data)
                    state.finish_task(key, value)
                    if self.observer is not None and spec.kind == ALIAS:
                        self.observer.posttask(key, value, None)
                    continue
                if self.observer is not None:
                    self.observer.pretask(key)
                keys.append(key)
                tasks.append((spec, state.inputs_of(key)))
            if tasks:
                self.send_batch(worker, keys, tasks)

    def send_batch(self, worker: WorkerProcess, keys: list, tasks: list) -> None:
        batch_id = next(_batch_ids)
        try:
            payload = cloudpickle.dumps(("tasks", batch_id, tasks))
        except Exception as exc:
            raise self.explain_unpicklable(keys, exc) from None
        worker.send(payload)
        worker.in_flight[batch_id] = None
        self.batches[batch_id] = keys

    def explain_unpicklable(self, keys: list, exc: Exception, in_worker: bool = False):
        """The error for a batch that did not pickle here (or unpickle in a worker).

        Names the first task, and which of its function, inputs and arguments
        fails, trying each on its own (and, for a worker, loading it back here).
        """
        check = _pickle_round_trip if in_worker else cloudpickle.dumps
        problem = "cannot be unpickled in a worker process" if in_worker else "cannot be pickled"
        graph = self.state.graph
        for key in keys:
            spec = graph[key]
            for what, value in _parts_to_send(spec, self.state.inputs_of(key)):
                try:
                    check(value)
                except Exception as inner:
                    kind = type_name_of(type(value))
                    err = SerializationError(
                        f"{describe_task(key, spec)} cannot be sent to a worker process: its "
                        f"{what} of type {kind} {problem} ({inner}). Use the threads "
                        "or sync scheduler for this task, or pass picklable data."
                    )
                    return annotate_task_error(err, key, spec, "processes")
        first = describe_task(keys[0], graph[keys[0]])
        more = f" and {len(keys) - 1} more tasks of its batch" if len(keys) > 1 else ""
        err = SerializationError(
            f"{first}{more} cannot be sent to a worker process: the batch {problem} ({exc}). "
            "Use the threads or sync scheduler for this task, or pass picklable data."
        )
        return annotate_task_error(err, keys[0], graph[keys[0]], "processes")

    # -- receiving
    def receive(self, worker: WorkerProcess) -> TaskFailed | None:
        """Apply one message from ``worker``; returns the first failed task, if any."""
        try:
            header, message = read_message(worker.conn.recv_bytes())
        except (EOFError, OSError):
            return self.worker_died(worker)
        except Exception as exc:  # not a message a worker writes: the worker is in trouble
            return self.worker_died(worker, f"sent a message that cannot be read ({exc})")
        if header[0] == "broken":
            self.batch_broken_in_worker(worker, header[1])
            return None
        _, batch_id, done, items = header
        if done:  # first, so that nothing below can keep the slot taken
            worker.in_flight.pop(batch_id, None)
        keys = self.batches.get(batch_id)
        if keys is None:  # leftovers of an earlier, failed compute
            return None
        if done:
            del self.batches[batch_id]
        state = self.state
        recorder = self.recorder
        loads = pickle.loads
        first_failed: TaskFailed | None = None
        begin = 0
        for index, start, stop, end, failure_text in items:
            key = keys[index]
            failed: TaskFailed | None = None
            try:
                payload = loads(message[begin:end])
            except Exception as exc:
                failed = self.not_unpicklable(key, failure_text, exc)
            else:
                if failure_text is not None:
                    failed = TaskFailed(key, Failure(payload, *failure_text), None)
            begin = end
            if failed is not None:
                if recorder is not None:
                    recorder.erred(key, worker.name, start, stop, failed.failure.label())
                first_failed = first_failed or failed
                continue
            if recorder is not None:
                recorder.started(key, worker.name, start)
                recorder.finished(key, worker.name, start, stop, payload)
            self.task_seconds += stop - start
            self.tasks_timed += 1
            state.finish_task(key, payload)
            if self.observer is not None:
                self.observer.posttask(key, payload, worker.pid)
        return first_failed

    def not_unpicklable(self, key, failure_text: tuple | None, exc: Exception) -> TaskFailed:
        """A task whose result, or exception, came back but cannot be unpickled here."""
        where = describe_task(key, self.state.graph[key])
        why = f"{type_name_of(exc)}: {message_of(exc)}"
        if failure_text is None:
            message = (
                f"the result of {where} came back from its worker process but cannot be "
                f"unpickled in the kernel ({why}); return picklable data (an object whose "
                "pickle loads in any process), or use the threads scheduler for this task"
            )
            return TaskFailed(key, Failure.serialization(message), None)
        failure = Failure(None, *failure_text)
        note = (
            f"lazycell: the {failure.type_name} raised by {where} cannot be unpickled in the "
            f"kernel ({why}), so it is rebuilt from its type and message; make the exception "
            "picklable (pass every __init__ argument on to super().__init__, or define "
            "__reduce__), or use the threads scheduler for this task"
        )
        return TaskFailed(key, failure, note)

    def batch_broken_in_worker(self, worker: WorkerProcess, why: str) -> None:
        """The worker could not unpickle its oldest batch: free the slot, name the culprit."""
        batch_id = next(iter(worker.in_flight), None)
        if batch_id is None:
            raise SerializationError(f"a worker could not unpickle a batch of tasks: {why}")
        del worker.in_flight[batch_id]
        keys = self.batches.pop(batch_id, None)
        if keys is None:  # leftovers of an earlier, failed compute
            return
        raise self.explain_unpicklable(keys, RuntimeError(why), in_worker=True)

    def worker_died(self, worker: WorkerProcess, how: str | None = None):
        lost = [k for b in worker.in_flight if b in self.batches for k in self.batches[b]]
        how = how or worker.exit_description()
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

    def raise_failure(self, failed: TaskFailed, rerun_exceptions_locally: bool):
        state = self.state
        key = failed.key
        spec = state.graph[key]
        inputs = state.inputs_of(key)
        exc = failed.failure.rebuild()
        annotate_task_error(exc, key, spec, "processes", make_rerun(spec, inputs))
        if failed.note is not None:
            _add_note(exc, failed.note)
        if rerun_exceptions_locally:
            rerun_locally_and_raise(exc, key, spec, inputs, "processes")
        raise exc

    def stop_workers_running_this_compute(self) -> None:
        for worker in list(self.pool.workers):
            if any(b in self.batches for b in worker.in_flight):
                self.pool.replace(worker)


def _parts_to_send(spec: TaskSpec, inputs: dict) -> list[tuple[str, object]]:
    """``(what, value)`` for each piece of a task that travels to a worker."""
    parts: list[tuple[str, object]] = [("function", spec.func)]
    parts += [(f"input {dep!r}", value) for dep, value in inputs.items()]
    if spec.func is None:  # a container task: its literal contents
        parts.append(("contents", spec.args))
    else:  # literal arguments, one by one, so the offending type is named
        parts += [(f"argument {i}", arg) for i, arg in enumerate(spec.args)]
        parts += [(f"argument {k}=", v) for k, v in (spec.kwargs or {}).items()]
    return parts


def _pickle_round_trip(value) -> None:
    pickle.loads(cloudpickle.dumps(value))


def _add_note(exc: BaseException, note: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: kept where 3.11's tracebacks would show it
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
