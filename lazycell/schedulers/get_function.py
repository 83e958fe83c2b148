"""Running a lazycell graph through a dask-style ``get(dsk, keys)`` callable."""

from __future__ import annotations

from collections.abc import Callable

from lazycell.graph.spec import run_task
from lazycell.schedulers.core import order_graph


class GetFunctionScheduler:
    """Runs our graph through a dask-style ``get(dsk, keys)`` callable."""

    name = "get-function"
    n_workers = 1

    def __init__(self, get: Callable):
        self.get = get

    def __repr__(self) -> str:
        return f"GetFunctionScheduler({self.get!r})"

    def run(self, graph, outputs, *, rerun_exceptions_locally: bool = False) -> dict:
        order = order_graph(graph, outputs)  # culls, and raises on missing keys early
        dsk = {key: (_run_with_values, graph[key], list(graph[key].deps)) for key in order}
        values = self.get(dsk, list(outputs))
        return dict(zip(outputs, values))


def _run_with_values(spec, values):
    return run_task(spec, dict(zip(spec.deps, values)))
