"""The threads scheduler: a persistent pool of threads that schedule themselves.

::

    calling thread                         pool threads (num_workers of them)
    ──────────────                         ──────────────────────────────────
    build GraphRun, hand ThreadRun.work ─► loop:  with lock: pop_ready()
    to every pool thread                          run the task (lock released)
    wait on ThreadRun.finished ◄─────────         with lock: finish_task(), pop next
    return results or raise the error             wake an idle thread only if more
                                                  than one task became ready

There is no scheduler thread and no queue per task: a pool thread that
finishes a task takes the next one under the same lock acquisition, so a
task costs one lock round-trip. The calling thread only waits, which keeps
it free to receive Ctrl-C / kernel interrupts at once: on interrupt the run is
cancelled (no new task starts; tasks already running finish in the
background, their results dropped) and the pool is ready for the next compute.

A task that itself calls ``compute`` from a pool thread runs that inner
compute synchronously: waiting on the same pool could deadlock it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Executor
from time import perf_counter

from lazycell.events import BUS, estimate_nbytes
from lazycell.graph.spec import TaskSpec, run_task
from lazycell.schedulers.core import GraphRun, order_and_count_dependents, order_graph
from lazycell.schedulers.errors import annotate_task_error, make_rerun, rerun_locally_and_raise
from lazycell.schedulers.sync import run_in_order

_in_pool_thread = threading.local()


def in_pool_thread() -> bool:
    return getattr(_in_pool_thread, "value", False)


class ThreadPool:
    """``n`` daemon threads that run submitted callables; lives for the process."""

    def __init__(self, n: int):
        self.n = n
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"lazycell-thread-{i}", daemon=True)
            for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _serve(self) -> None:
        _in_pool_thread.value = True
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    def submit(self, job) -> None:
        self._jobs.put(job)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


_pools: dict[int, ThreadPool] = {}
_pools_lock = threading.Lock()


def shared_pool(n: int) -> ThreadPool:
    with _pools_lock:
        pool = _pools.get(n)
        if pool is None:
            pool = _pools[n] = ThreadPool(n)
        return pool


def retire_shared_pool(n: int) -> None:
    """Let the pool's threads end after their current task; the next compute gets fresh ones.

    After an interrupt, tasks already running cannot be stopped; without this
    the next compute would queue behind them.
    """
    with _pools_lock:
        retired = _pools.pop(n, None)
    if retired is not None:
        retired.shutdown()


class ThreadRun:
    """One compute on a pool: a GraphRun plus the lock and signals around it."""

    def __init__(self, graph, order, outputs, recorder):
        self.state = GraphRun(graph, order, outputs)
        self.lock = threading.Lock()
        self.work_available = threading.Condition(self.lock)
        self.finished = threading.Event()
        self.idle = 0
        self.stopped = False
        self.error: tuple | None = None  # (key, exception, inputs)
        self.recorder = recorder

    def cancel(self) -> None:
        with self.lock:
            self.stopped = True
            self.work_available.notify_all()
        self.finished.set()

    def work(self, worker: str) -> None:
        """Body of one pool thread for this compute (see the module diagram)."""
        state = self.state
        graph = state.graph
        data = state.data
        lane = None
        if self.recorder is not None:
            # Columns of this thread's own (see events.WorkerLane): appends, no tuples.
            recorder = self.recorder
            lane = recorder.lane(worker)
            record_key, record_start, record_stop, record_nbytes = lane.writers()
        lock = self.lock
        lock.acquire()
        try:
            while True:
                if self.stopped:
                    return
                if not state.ready:
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
                        record_start(perf_counter())
                    result = run_task(spec, data)
                    if lane is not None:
                        stop = perf_counter()
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
                if self.idle and len(state.ready) > 1:
                    self.work_available.notify(len(state.ready) - 1)
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
        if pool is not None:
            num_workers = num_workers or getattr(pool, "_max_workers", None) or os.cpu_count()
        self.n_workers = num_workers or os.cpu_count() or 1
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
        with BUS.recording(order, self.name, self.n_workers) as recorder:
            run = ThreadRun(graph, order, outputs, recorder)
            if run.state.all_done:
                return {}
            n_threads = min(self.n_workers, len(order))
            for i in range(n_threads):
                job = _bind(run.work, f"thread-{i}")
                if self.pool is not None:
                    self.pool.submit(_mark_pool_thread(job))
                else:
                    shared_pool(self.n_workers).submit(job)
            try:
                run.finished.wait()
            except BaseException:
                run.cancel()
                if self.pool is None:
                    retire_shared_pool(self.n_workers)
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


def _bind(work, worker_name):
    return lambda: work(worker_name)


def _mark_pool_thread(job):
    def run_marked():
        _in_pool_thread.value = True
        try:
            job()
        finally:
            _in_pool_thread.value = False

    return run_marked
