"""Run a graph on any ``concurrent.futures.Executor`` the user hands us.

::

    calling thread (owns the GraphRun)          the user's executor
    ──────────────────────────────────          ───────────────────
    submit(run_task, spec, inputs) per task ──► runs it (thread, process, ...)
    take finished futures from a queue  ◄────── done-callback puts (key, future)
    finish_task(), submit newly ready tasks

A thread-pool executor is driven like our own pool (see ``threads``); this
generic path is for everything else, e.g. a ``ProcessPoolExecutor`` or an
executor from another library. At most ``max_workers`` tasks are submitted at
a time so the executor's queue stays short and priorities keep their meaning.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Executor
from functools import partial
from time import perf_counter

from lazycell.events import BUS
from lazycell.graph.spec import ALIAS, DATA, TaskSpec, run_task
from lazycell.schedulers.core import GraphRun, order_graph
from lazycell.schedulers.errors import annotate_task_error, make_rerun, rerun_locally_and_raise


class ExecutorScheduler:
    """Submits each task to a ``concurrent.futures.Executor``."""

    name = "executor"

    def __init__(self, executor: Executor, num_workers: int | None = None):
        self.executor = executor
        self.n_workers = (
            num_workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
        )

    def __repr__(self) -> str:
        return f"ExecutorScheduler({self.executor!r})"

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: Sequence[Hashable],
        *,
        rerun_exceptions_locally: bool = False,
        observer=None,
    ) -> dict:
        """``{output: result}``; ``observer`` (``pretask(key)``, ``posttask(key, result,
        worker)``) hears each task submitted and each result taken, in this thread."""
        order = order_graph(graph, outputs)
        state = GraphRun(graph, order, outputs)
        completed: queue.SimpleQueue = queue.SimpleQueue()
        futures: dict = {}
        with BUS.recording(order, self.name, self.n_workers) as recorder:
            try:
                self._drive(state, recorder, completed, futures, rerun_exceptions_locally, observer)
            finally:
                for future in futures.values():
                    future.cancel()
            return state.results()

    def _drive(
        self, state, recorder, completed, futures, rerun_exceptions_locally, observer
    ) -> None:
        """Submit ready tasks, take finished ones, until the graph is done."""
        graph = state.graph
        while not state.all_done:
            while state.ready and state.running < self.n_workers:
                key = state.pop_ready()
                spec = graph[key]
                if spec.kind == DATA or spec.kind == ALIAS:
                    if observer is not None and spec.kind == ALIAS:
                        observer.pretask(key)
                    value = run_task(spec, state.data)
                    state.finish_task(key, value)
                    if observer is not None and spec.kind == ALIAS:
                        observer.posttask(key, value, None)
                    continue
                if observer is not None:
                    observer.pretask(key)
                future = self.executor.submit(_timed_run_task, spec, state.inputs_of(key))
                futures[key] = future
                future.add_done_callback(partial(_put_done, completed, key))
            if state.all_done:
                break
            key, future = completed.get()
            del futures[key]
            exc = future.exception()
            if exc is not None:
                if recorder is not None:
                    now = perf_counter()
                    recorder.erred(key, "executor", now, now, exc)
                spec = graph[key]
                inputs = state.inputs_of(key)
                annotate_task_error(exc, key, spec, self.name, make_rerun(spec, inputs))
                if rerun_exceptions_locally and isinstance(exc, Exception):
                    rerun_locally_and_raise(exc, key, spec, inputs, self.name)
                raise exc
            result, start, stop, worker = future.result()
            if recorder is not None:
                recorder.started(key, worker, start)
                recorder.finished(key, worker, start, stop, result)
            state.finish_task(key, result)
            if observer is not None:
                observer.posttask(key, result, worker)


def _timed_run_task(spec: TaskSpec, inputs: dict):
    start = perf_counter()
    result = run_task(spec, inputs)
    return result, start, perf_counter(), f"pid-{os.getpid()}"


def _put_done(completed: queue.SimpleQueue, key, future) -> None:
    """A future's done-callback: hand ``(key, future)`` to the driving thread."""
    completed.put((key, future))
