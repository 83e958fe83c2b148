"""From what the user asked for (a name, an executor, a get-function) to a scheduler.

A scheduler is any object with ``name``, ``n_workers`` and
``run(graph, outputs, *, rerun_exceptions_locally=False) -> {key: result}``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

from lazycell import config

SCHEDULER_ALIASES = {
    "sync": "sync",
    "synchronous": "sync",
    "single-threaded": "sync",
    "threads": "threads",
    "threading": "threads",
    "processes": "processes",
    "multiprocessing": "processes",
    "distributed": "distributed",
}

WHEN_TO_USE = {
    "sync": "debugging: one task at a time in the calling thread, real frames for pdb",
    "threads": "numeric work that releases the GIL (NumPy, pandas, I/O); the default",
    "processes": "pure-Python CPU work that holds the GIL; inputs and results are pickled",
    "distributed": "the open lc.Client's local cluster: results stay on long-lived workers",
}


def scheduler_names_text() -> str:
    return ", ".join(sorted(SCHEDULER_ALIASES))


def canonical_scheduler_name(name: str) -> str:
    """``"threading"`` -> ``"threads"``; ValueError listing the valid names otherwise."""
    canonical = SCHEDULER_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise ValueError(
            f"unknown scheduler {name!r}; valid names are {scheduler_names_text()}, "
            "or pass a concurrent.futures.Executor or a dask-style get-function"
        )
    return canonical


def resolve_scheduler(scheduler=None, num_workers: int | None = None):
    """The scheduler object for ``scheduler`` (a name, executor, get-function or None)."""
    if scheduler is None:
        scheduler = config.get("scheduler")
    if num_workers is not None:
        num_workers = config.validate("num_workers", num_workers, "num_workers=")
    else:
        num_workers = config.get("num_workers")
    if isinstance(scheduler, str):
        name = canonical_scheduler_name(scheduler)
        if name == "sync":
            from lazycell.schedulers.sync import SyncScheduler

            return SyncScheduler()
        if name == "threads":
            from lazycell.schedulers.threads import ThreadsScheduler

            return ThreadsScheduler(num_workers, pool=config.get("pool"))
        if name == "distributed":
            from lazycell.distributed import current_client

            return current_client().graph_runner()
        from lazycell.schedulers.processes import ProcessesScheduler

        return ProcessesScheduler(num_workers)
    if isinstance(scheduler, ThreadPoolExecutor):
        from lazycell.schedulers.threads import ThreadsScheduler

        return ThreadsScheduler(num_workers, pool=scheduler)
    if isinstance(scheduler, Executor):
        from lazycell.schedulers.executor import ExecutorScheduler

        return ExecutorScheduler(scheduler, num_workers)
    if hasattr(scheduler, "graph_runner"):  # a lazycell Client
        return scheduler.graph_runner()
    if hasattr(scheduler, "run") and hasattr(scheduler, "name"):
        return scheduler
    if callable(scheduler):
        return GetFunctionScheduler(scheduler)
    raise ValueError(
        f"cannot use {scheduler!r} as a scheduler: pass a name ({scheduler_names_text()}), "
        "a concurrent.futures.Executor, or a dask-style get-function"
    )


class GetFunctionScheduler:
    """Runs our graph through a dask-style ``get(dsk, keys)`` callable."""

    name = "get-function"
    n_workers = 1

    def __init__(self, get: Callable):
        self.get = get

    def __repr__(self) -> str:
        return f"GetFunctionScheduler({self.get!r})"

    def run(self, graph, outputs, *, rerun_exceptions_locally: bool = False) -> dict:
        from lazycell.schedulers.core import order_graph

        order = order_graph(graph, outputs)  # culls, and raises on missing keys early
        dsk = {key: (_run_with_values, graph[key], list(graph[key].deps)) for key in order}
        values = self.get(dsk, list(outputs))
        return dict(zip(outputs, values))


def _run_with_values(spec, values):
    from lazycell.graph.spec import run_task

    return run_task(spec, dict(zip(spec.deps, values)))
