"""The threads scheduler: a persistent pool of threads that schedule themselves.

::

    calling thread                         workers: pool threads (num_workers at most)
    ──────────────                         ───────────────────────────────────────────
    build GraphRun; start one worker  ───► loop:  with lock: pop_ready()
    per ready task (num_workers at most)          run the task (lock released)
    wait on ThreadRun.finished ◄─────────         with lock: finish_task(), pop next
    return results or raise the error             more than one task became ready: wake
                                                  an idle worker, or start one more

There is no scheduler thread and no queue per task: a pool thread that
finishes a task takes the next one under the same lock acquisition, so a
task costs one lock round-trip. The calling thread only waits, which keeps
it free to receive Ctrl-C / kernel interrupts at once: on interrupt the run is
cancelled (no new task starts; tasks already running finish in the
background, their results dropped) and the pool is retired, so the next
compute gets fresh threads instead of queueing behind those tasks.

Threads start as the graph needs them: a compute starts a worker per ready
task, and a worker that makes more tasks ready than there are idle workers
starts more, never more than ``num_workers`` and never more than the graph
is wide. A pool keeps its threads for the next compute of its size; pools of
the two sizes used last are kept (``pools.SharedPools``), an older size's
threads end once no compute uses them. ``num_workers`` above ``MAX_WORKERS``
is a ValueError raised before any thread starts.

A task that itself calls ``compute`` from a pool thread runs that inner
compute synchronously: waiting on the same pool could deadlock it.

Each worker runs in a copy of the calling thread's ``contextvars`` context,
taken when the compute starts (a copy per worker: one context cannot be
entered by two threads), so a ``ContextVar`` or ``decimal.localcontext()``
set around ``compute()`` holds inside its tasks, as it does with dask.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Executor
from time import perf_counter, thread_time

from lazycell.events import BUS, estimate_nbytes
from lazycell.events.recording import SAMPLE_EVERY, SAMPLE_FIRST
from lazycell.graph.spec import TaskSpec, run_task
from lazycell.schedulers.core import GraphRun, order_and_count_dependents, order_graph
from lazycell.schedulers.errors import annotate_task_error, make_rerun, rerun_locally_and_raise
from lazycell.schedulers.pools import SharedPools, check_num_workers
from lazycell.schedulers.sync import run_in_order

# Each thread reserves a stack (8 MB of address space on Linux) and, with the
# GIL, hundreds of threads already spend more time switching than working;
# tasks that wait on I/O gain nothing past a few hundred. The cap keeps a typo
# (num_workers=10**6) from starting threads until the OS refuses, which would
# break every later compute too.
MAX_WORKERS = 512
# Pool sizes whose threads are kept between computes; older sizes are retired.
KEEP_POOL_SIZES = 2

_in_pool_thread = threading.local()


def in_pool_thread() -> bool:
    return getattr(_in_pool_thread, "value", False)


class ThreadPool:
    """Up to ``n`` daemon threads, started as jobs need them and kept between computes.

    A job goes to an idle thread, else to a new thread while there are fewer
    than ``n``, else waits in the queue for a thread to free up. ``idle``:
    threads waiting for a job no submitted job has claimed yet; ``queued``:
    jobs waiting for a busy thread to free up (that thread takes one instead
    of counting itself idle).
    """

    def __init__(self, n: int):
        self.n = n
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.idle = 0
        self.queued = 0
        self.closed = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self.closed:  # a job late for a retired pool still runs, on a thread of its own
                _start_thread(_mark_pool_thread(job), "lazycell-thread-late")
                return
            if self.idle:
                self.idle -= 1
            elif len(self.threads) < self.n:
                name = f"lazycell-thread-{len(self.threads)}"
                self.threads.append(_start_thread(lambda: self._serve(job), name))
                return
            else:
                self.queued += 1
            self._jobs.put(job)

    def _serve(self, job: Callable[[], None] | None) -> None:
        _in_pool_thread.value = True
        while job is not None:
            job()
            with self._lock:
                if self.queued:
                    self.queued -= 1
                else:
                    self.idle += 1
            job = self._jobs.get()

    def shutdown(self) -> None:
        """Let every thread end once the jobs already queued are done."""
        with self._lock:
            self.closed = True
            n_threads = len(self.threads)
        for _ in range(n_threads):
            self._jobs.put(None)


def _start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


_pools: SharedPools[ThreadPool] = SharedPools(ThreadPool, keep=KEEP_POOL_SIZES)


class ThreadRun:
    """One compute on a pool: a GraphRun plus the lock and signals around it.

    ``idle``: workers waiting for a ready task; ``n_workers``: workers started
    for this run, never more than ``max_workers``; ``start_worker(job)`` hands
    a worker's loop to a thread (the shared pool's, or the user's executor's).
    """

    def __init__(self, graph, order, outputs, recorder, start_worker, max_workers: int):
        self.state = GraphRun(graph, order, outputs)
        self.lock = threading.Lock()
        self.work_available = threading.Condition(self.lock)
        self.finished = threading.Event()
        self.idle = 0
        self.n_workers = 0
        self.max_workers = max_workers
        self.start_worker = start_worker
        self.stopped = False
        self.error: tuple | None = None  # (key, exception, inputs)
        self.recorder = recorder
        self.context = contextvars.copy_context()  # the caller's: tasks run in copies of it

    def start(self) -> None:
        """Start one worker per ready task, ``max_workers`` at most."""
        with self.lock:
            self.add_workers(len(self.state.ready))

    def add_workers(self, count: int) -> None:
        """Start up to ``count`` more workers (lock held), staying within ``max_workers``."""
        for _ in range(min(count, self.max_workers - self.n_workers)):
            try:
                self.start_worker(_bind(self.work, f"thread-{self.n_workers}", self.context))
            except RuntimeError:  # the OS refused a thread: go on with the workers running
                if not self.n_workers:
                    raise
                self.max_workers = self.n_workers
                return
            self.n_workers += 1

    def share_ready_work(self, extra: int) -> None:
        """``extra`` ready tasks beyond the one this worker takes: wake idle workers or add some."""
        if self.idle:
            self.work_available.notify(extra)
            extra -= self.idle
        if extra > 0:
            self.add_workers(extra)

    def cancel(self) -> None:
        with self.lock:
            self.stopped = True
            self.work_available.notify_all()
        self.finished.set()

    def wait(self) -> None:
        """Block until the run ends; an interrupt cancels it (running tasks finish unseen)."""
        try:
            self.finished.wait()
        except BaseException:
            self.cancel()
            raise

    def work(self, worker: str) -> None:
        """Body of one worker for this compute (see the module diagram)."""
        state = self.state
        graph = state.graph
        data = state.data
        ready = state.ready
        lane = None
        n_run = 0
        every = SAMPLE_EVERY - 1
        first = SAMPLE_FIRST  # locals: read once per compute, not per task
        if self.recorder is not None:
            # Columns of this thread's own (see events.WorkerLane): appends, no tuples.
            recorder = self.recorder
            lane = recorder.lane(worker)
            record_key, record_start, record_stop, record_nbytes = lane.writers()
            record_cpu = lane.cpu_samples.append
        lock = self.lock
        lock.acquire()
        try:
            while True:
                if self.stopped:
                    return
                if not ready:
                    if state.all_done:
                        return
                    self.idle += 1
                    self.work_available.wait()
                    self.idle -= 1
                    continue
                key = state.pop_ready()
                spec = graph[key]
                lock.release()
                try:
                    if lane is not None:
                        record_key(key)
                        # A sample also has its CPU time measured (events.is_sampled).
                        sampled = n_run < first or not n_run & every
                        n_run += 1
                        if sampled:
                            cpu_start = thread_time()
                        start = perf_counter()
                        record_start(start)
                    result = run_task(spec, data)
                    if lane is not None:
                        stop = perf_counter()
                        if sampled:
                            record_cpu((key, thread_time() - cpu_start, stop - start))
                        record_stop(stop)
                        record_nbytes(estimate_nbytes(result))
                except BaseException as exc:
                    if lane is not None:
                        recorder.lane_task_erred(lane, key, exc)
                    lock.acquire()
                    self._fail(key, exc)
                    return
                if lane is not None and stop >= recorder.deliver_at:
                    recorder.deliver()  # on this thread, which holds the GIL (see events)
                lock.acquire()
                if self.stopped:
                    return
                state.finish_task(key, result)
                if state.all_done:
                    self.stopped = True
                    self.work_available.notify_all()
                    self.finished.set()
                    return
                if len(ready) > 1 and (self.idle or self.n_workers < self.max_workers):
                    self.share_ready_work(len(ready) - 1)
        finally:
            lock.release()

    def _fail(self, key, exc: BaseException) -> None:
        """First failure wins; stop handing out tasks and wake the caller."""
        if self.error is None and not self.stopped:
            self.error = (key, exc, self.state.inputs_of(key))
        self.stopped = True
        self.work_available.notify_all()
        self.finished.set()


class ThreadsScheduler:
    """Runs tasks on ``num_workers`` threads (or on a user's thread-pool executor)."""

    name = "threads"

    def __init__(self, num_workers: int | None = None, pool: Executor | None = None):
        if pool is not None:  # the user's threads: their executor bounds them
            num_workers = num_workers or getattr(pool, "_max_workers", None) or os.cpu_count()
        else:
            num_workers = num_workers or min(os.cpu_count() or 1, MAX_WORKERS)
            check_num_workers(
                num_workers,
                MAX_WORKERS,
                self.name,
                "threads beyond a few hundred only add memory and switching under the GIL",
            )
        self.n_workers = num_workers or 1
        self.pool = pool

    def __repr__(self) -> str:
        extra = f", pool={self.pool!r}" if self.pool is not None else ""
        return f"ThreadsScheduler(num_workers={self.n_workers}{extra})"

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: Sequence[Hashable],
        *,
        rerun_exceptions_locally: bool = False,
    ) -> dict:
        if in_pool_thread():
            order, n_dependents = order_and_count_dependents(graph, outputs)
            return run_in_order(
                graph, order, outputs, n_dependents, None, "threads (nested, in-thread)"
            )
        order = order_graph(graph, outputs)
        with BUS.recording(order, self.name, self.n_workers, graph) as recorder:
            if self.pool is not None:
                run = self._run_on(_submit_to(self.pool), graph, order, outputs, recorder)
            else:
                with _pools.use(self.n_workers) as pool:
                    try:
                        run = self._run_on(pool.submit, graph, order, outputs, recorder)
                    except BaseException:
                        # Its threads may be busy with this run's tasks for a while.
                        _pools.retire(pool)
                        raise
            if run.error is not None:
                key, exc, inputs = run.error
                spec = graph[key]
                if rerun_exceptions_locally and isinstance(exc, Exception):
                    annotate_task_error(exc, key, spec, self.name)
                    rerun_locally_and_raise(exc, key, spec, inputs, self.name)
                annotate_task_error(exc, key, spec, self.name, make_rerun(spec, inputs))
                raise exc
            return run.state.results()

    def _run_on(self, start_worker, graph, order, outputs, recorder) -> ThreadRun:
        run = ThreadRun(graph, order, outputs, recorder, start_worker, self.n_workers)
        if not run.state.all_done:
            try:
                run.start()
            except BaseException:
                run.cancel()
                raise
            run.wait()
        return run


def _bind(work, worker_name, context: contextvars.Context):
    """A worker's job: ``work(worker_name)`` in its own copy of the caller's context."""
    return lambda: context.copy().run(work, worker_name)


def _submit_to(executor: Executor) -> Callable[[Callable[[], None]], object]:
    return lambda job: executor.submit(_mark_pool_thread(job))


def _mark_pool_thread(job):
    def run_marked():
        _in_pool_thread.value = True
        try:
            job()
        finally:
            _in_pool_thread.value = False

    return run_marked
