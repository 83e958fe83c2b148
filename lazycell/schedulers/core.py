"""The execution core shared by every local scheduler.

Task-selection policy. The graph is first put in *depth-first post-order*
starting from the requested keys: the order a recursive, one-at-a-time
evaluation would run the tasks. A task's index in that order is its
priority. The synchronous scheduler simply runs the order; the parallel ones
always start the ready task with the lowest index. Finishing one branch before
starting the next keeps few intermediate results alive at once (the same goal
as ``dask.order``, at a fraction of the cost), and only tasks reachable from
the requested keys run (culling comes for free).

State of one compute (:class:`GraphRun`), named as in ``dask.local``:

- ``order``         keys in post-order; ``priority[key]`` is the index.
- ``dependents``    key -> keys whose tasks take its result.
- ``waiting``       key -> number of its dependencies not finished yet.
- ``ready``         heap of priorities of tasks whose dependencies are done.
- ``running``       number of tasks handed to a worker and not back yet.
- ``data``          key -> result, kept while some dependent still needs it.
- ``waiting_data``  key -> number of dependents that have not run yet; at zero
                    the result is released (unless it is an output).
- ``outputs``       the keys the caller asked for; never released.

Each change of state is one small method: :meth:`GraphRun.pop_ready`,
:meth:`GraphRun.finish_task`, :meth:`GraphRun.release_unneeded_results`.
The executors (``sync``, ``threads``, ``processes``, ``executor``) only decide
*where* a popped task runs.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from heapq import heappop, heappush

from lazycell.graph.spec import TaskSpec


def order_graph(graph: Mapping[Hashable, TaskSpec], outputs: Sequence[Hashable]) -> list:
    """Keys reachable from ``outputs`` in depth-first post-order (dependencies first).

    Raises ``KeyError`` for a requested or depended-on key missing from the graph
    and ``ValueError`` for a cycle. Iterative, so 100,000-deep chains are fine.
    """
    return order_and_count_dependents(graph, outputs)[0]


def order_and_count_dependents(
    graph: Mapping[Hashable, TaskSpec], outputs: Sequence[Hashable]
) -> tuple[list, dict]:
    """``order_graph`` plus, in the same walk, key -> number of dependents (the refcount)."""
    ENTERED, DONE = 1, 2
    state: dict = {}
    n_dependents: dict = {}
    order: list = []
    stack: list = []
    for out in reversed(outputs):
        if out not in graph:
            raise KeyError(f"key {out!r} is not in the graph")
        stack.append(out)
    while stack:
        key = stack[-1]
        s = state.get(key)
        if s is None:
            state[key] = ENTERED
            deps = graph[key].deps
            if deps:
                for dep in reversed(deps):
                    n_dependents[dep] = n_dependents.get(dep, 0) + 1
                    ds = state.get(dep)
                    if ds is None:
                        if dep not in graph:
                            raise KeyError(
                                f"key {dep!r}, needed by task {key!r}, is not in the graph"
                            )
                        stack.append(dep)
                    elif ds == ENTERED:
                        raise ValueError(f"the graph has a cycle through key {dep!r}")
        else:
            stack.pop()
            if s == ENTERED:
                state[key] = DONE
                order.append(key)
    return order, n_dependents


class GraphRun:
    """State of one parallel compute; see the module docstring for each name."""

    def __init__(self, graph: Mapping[Hashable, TaskSpec], order: list, outputs: Sequence):
        self.graph = graph
        self.order = order
        self.outputs = set(outputs)
        self.priority = {key: i for i, key in enumerate(order)}
        self.dependents: dict = {key: [] for key in order}
        self.waiting: dict = {}
        self.waiting_data: dict = dict.fromkeys(order, 0)
        self.ready: list = []
        self.running = 0
        self.data: dict = {}
        self.n_done = 0
        self.n_tasks = len(order)
        dependents = self.dependents
        waiting_data = self.waiting_data
        for i, key in enumerate(order):
            deps = graph[key].deps
            if deps:
                self.waiting[key] = len(deps)
                for dep in deps:
                    dependents[dep].append(key)
                    waiting_data[dep] += 1
            else:
                self.ready.append(i)  # ascending, so already a valid heap

    @property
    def all_done(self) -> bool:
        return self.n_done == self.n_tasks

    def pop_ready(self) -> Hashable:
        """Take the highest-priority ready task and count it as running."""
        self.running += 1
        return self.order[heappop(self.ready)]

    def finish_task(self, key: Hashable, result) -> None:
        """Store a result, make dependents whose inputs are complete ready, release inputs."""
        self.running -= 1
        self.n_done += 1
        self.data[key] = result
        waiting = self.waiting
        for dependent in self.dependents[key]:
            n = waiting[dependent] - 1
            waiting[dependent] = n
            if not n:
                heappush(self.ready, self.priority[dependent])
        self.release_unneeded_results(self.graph[key].deps)

    def release_unneeded_results(self, deps) -> None:
        """Drop each dependency's result once its last dependent has run."""
        waiting_data = self.waiting_data
        for dep in deps:
            n = waiting_data[dep] - 1
            waiting_data[dep] = n
            if not n and dep not in self.outputs:
                self.data.pop(dep, None)

    def inputs_of(self, key: Hashable) -> dict:
        """The results a task takes (still held: released only after it runs)."""
        return {dep: self.data[dep] for dep in self.graph[key].deps}

    def results(self) -> dict:
        return {key: self.data[key] for key in self.outputs}
