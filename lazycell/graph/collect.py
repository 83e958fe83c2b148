"""Finding the lazy objects in what the user passed, and the one graph behind them.

``lc.compute``, ``lc.persist``, ``lc.graph_of`` and the cluster ``Client``
all start the same way: walk the arguments (lists, tuples, dicts and sets
nested), pick out lazycell ``Delayed`` objects and dask collections, and
build one graph with one output key per object found. :func:`collect` does
that once for all of them; :func:`repack` puts results back in the
arguments' shape.
"""

from __future__ import annotations

from typing import NamedTuple

from lazycell.graph.dask_collections import dask_graph_and_keys, is_dask_collection
from lazycell.graph.delayed import Delayed, GraphDelayed


class Collected(NamedTuple):
    """The lazy objects found in some arguments and the graph that computes them."""

    graph: dict  # key -> TaskSpec, every task any of them needs
    found: list  # the Delayed objects, then the dask collections, in the order found
    keys: list  # the output key of each object in ``found``

    def outputs(self) -> list:
        """The output keys without repeats, for a scheduler's ``run``."""
        return list(dict.fromkeys(self.keys))

    def results_by_id(self, results: dict) -> dict:
        """``{id(obj): result}`` of each found object, for :func:`repack`."""
        return {id(obj): results[key] for obj, key in zip(self.found, self.keys)}


def collect(objs, optimize_graph: bool = True) -> Collected:
    """The lazy objects in ``objs`` (nested in lists, tuples, dicts, sets) and their graph."""
    lazy: list = []
    dask_colls: list = []
    for obj in objs:
        find_lazy(obj, lazy, dask_colls)
    graph = graph_of_delayed(lazy)
    keys = [obj._lazycell_key for obj in lazy]
    if dask_colls:
        dask_graph, dask_keys = dask_graph_and_keys(dask_colls, optimize_graph)
        graph.update(dask_graph)
        keys += dask_keys
    return Collected(graph, lazy + dask_colls, keys)


def find_lazy(obj, lazy: list, dask_colls: list) -> None:
    """Append the lazy objects in ``obj`` to ``lazy`` (Delayed) or ``dask_colls``."""
    if isinstance(obj, Delayed):
        lazy.append(obj)
    elif is_dask_collection(obj):
        dask_colls.append(obj)
    elif type(obj) in (list, tuple, set, frozenset):
        for item in obj:
            find_lazy(item, lazy, dask_colls)
    elif type(obj) is dict:
        for item in obj.values():
            find_lazy(item, lazy, dask_colls)


def repack(obj, results_by_id: dict):
    """``obj`` with each lazy object in it replaced by its result."""
    if id(obj) in results_by_id and (isinstance(obj, Delayed) or is_dask_collection(obj)):
        return results_by_id[id(obj)]
    t = type(obj)
    if t in (list, tuple, set, frozenset):
        return t(repack(item, results_by_id) for item in obj)
    if t is dict:
        return {k: repack(v, results_by_id) for k, v in obj.items()}
    return obj


def collect_graph(roots: list) -> dict:
    """Walk ``Delayed`` dependencies once (iteratively) into ``{key: spec}``."""
    graph: dict = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        key = node._lazycell_key
        if key in graph:
            continue
        graph[key] = node._spec
        for dep in node._dependencies:
            if dep._lazycell_key not in graph:
                stack.append(dep)
    return graph


def graph_of_delayed(lazy: list) -> dict:
    """:func:`collect_graph`, plus the graphs that dask collections inside them carry."""
    graph = collect_graph(lazy)
    stack = list(lazy)
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, GraphDelayed):
            for k, v in node._graph.items():
                graph.setdefault(k, v)
        stack.extend(node._dependencies)
    return graph
