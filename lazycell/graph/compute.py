"""Running graphs: ``compute``, ``persist``, ``get``, ``graph_of``, ``get_scheduler``.

Everything funnels into :func:`run_graph` — specs in, ``{key: result}`` out, on
the scheduler chosen by the per-call argument or ``lc.config``. Dask objects
are converted at this boundary (and only here is dask imported, when the user
hands us a dask object).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from lazycell.graph.delayed import Delayed, _is_dask_collection
from lazycell.graph.spec import TaskSpec, data_spec, specs_from_dask
from lazycell.schedulers.select import resolve_scheduler

RUN_OPTIONS = ("num_workers", "rerun_exceptions_locally")


def _check_options(options: dict, where: str) -> None:
    unknown = sorted(k for k in options if k not in RUN_OPTIONS)
    if unknown:
        raise TypeError(
            f"{where} got unknown option(s) {', '.join(unknown)}; "
            f"known options are scheduler, optimize_graph, {', '.join(RUN_OPTIONS)}"
        )


def run_graph(graph: Mapping[Hashable, TaskSpec], outputs: list, scheduler=None, **options) -> dict:
    """Run ``graph`` for ``outputs`` on ``scheduler``; returns ``{key: result}``."""
    _check_options(options, "compute")
    chosen = resolve_scheduler(scheduler, options.get("num_workers"))
    return chosen.run(
        graph, outputs, rerun_exceptions_locally=bool(options.get("rerun_exceptions_locally"))
    )


# ---------------------------------------------------------------- finding lazy objects


def _find_lazy(obj, lazy: list, dask_colls: list) -> None:
    """Collect the lazy objects in ``obj`` (nested in lists, tuples, dicts, sets)."""
    if isinstance(obj, Delayed):
        lazy.append(obj)
    elif _is_dask_collection(obj):
        dask_colls.append(obj)
    elif type(obj) in (list, tuple, set, frozenset):
        for item in obj:
            _find_lazy(item, lazy, dask_colls)
    elif type(obj) is dict:
        for item in obj.values():
            _find_lazy(item, lazy, dask_colls)


def _repack(obj, results_by_id: dict):
    if id(obj) in results_by_id and (isinstance(obj, Delayed) or _is_dask_collection(obj)):
        return results_by_id[id(obj)]
    t = type(obj)
    if t in (list, tuple, set, frozenset):
        return t(_repack(item, results_by_id) for item in obj)
    if t is dict:
        return {k: _repack(v, results_by_id) for k, v in obj.items()}
    return obj


def graph_of(*objs) -> dict:
    """The task graph behind lazy objects: ``{key: TaskSpec}``.

    >>> g = lc.graph_of(inc(inc(1)))
    >>> len(g)
    2
    """
    lazy: list = []
    dask_colls: list = []
    for obj in objs:
        _find_lazy(obj, lazy, dask_colls)
    graph = collect_graph(lazy)
    if dask_colls:
        dask_graph, _ = _dask_graph_and_keys(dask_colls, optimize_graph=True)
        graph.update(dask_graph)
    return graph


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


def _dask_graph_and_keys(collections: list, optimize_graph: bool) -> tuple[dict, list]:
    """Convert dask collections to specs; one output key per collection (finalized)."""
    from dask._expr import FinalizeCompute
    from dask.base import collections_to_expr
    from dask.core import flatten

    expr = FinalizeCompute(collections_to_expr(list(collections), optimize_graph)).optimize()
    keys = list(flatten(expr.__dask_keys__()))
    if len(keys) != len(collections):
        raise RuntimeError(
            f"lazycell: expected one finalized key per dask collection, got {len(keys)} "
            f"for {len(collections)}; please report this with your dask version"
        )
    return specs_from_dask(expr.__dask_graph__()), keys


def delayed_from_dask(collection) -> Delayed:
    """A lazycell ``Delayed`` for the finalized value of a dask collection."""
    graph, (key,) = _dask_graph_and_keys([collection], optimize_graph=True)
    return _GraphDelayed(key, graph)


class _GraphDelayed(Delayed):
    """A Delayed standing for the output ``key`` of an already-converted graph."""

    __slots__ = ("_graph",)

    def __init__(self, key, graph: dict):
        super().__init__(key, graph[key], ())
        object.__setattr__(self, "_graph", graph)


def _graph_with_foreign(lazy: list) -> dict:
    graph = collect_graph(lazy)
    # Delayed objects built from dask collections carry their whole sub-graph.
    stack = list(lazy)
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, _GraphDelayed):
            for k, v in node._graph.items():
                graph.setdefault(k, v)
        stack.extend(node._dependencies)
    return graph


# ------------------------------------------------------------------------ public API


def compute(*args, scheduler=None, optimize_graph: bool = True, **options) -> tuple:
    """Compute lazy objects together; returns a tuple with one result per argument.

    Arguments may be ``Delayed`` objects, dask collections (delayed, array,
    dataframe, bag), or lists / tuples / dicts / sets holding them; anything
    else is passed through. All of them run as one graph, so shared inputs
    are computed once.

    Options: ``scheduler`` (a name — ``"sync"``, ``"threads"``, ``"processes"`` —
    a ``concurrent.futures.Executor`` or a dask-style get-function; default from
    ``lc.config``), ``num_workers``, ``rerun_exceptions_locally`` (re-run a
    failed task in this thread with its real inputs, so pdb sees real frames),
    ``optimize_graph`` (for dask collections).

    >>> a, b = lc.compute(inc(1), inc(2), scheduler="sync")
    """
    _check_options(options, "compute")
    lazy: list = []
    dask_colls: list = []
    for obj in args:
        _find_lazy(obj, lazy, dask_colls)
    if not lazy and not dask_colls:
        return args
    graph = _graph_with_foreign(lazy)
    outputs = list(dict.fromkeys(obj._lazycell_key for obj in lazy))
    dask_keys: list = []
    if dask_colls:
        dask_graph, dask_keys = _dask_graph_and_keys(dask_colls, optimize_graph)
        graph.update(dask_graph)
        outputs.extend(k for k in dask_keys if k not in outputs)
    results = run_graph(graph, outputs, scheduler, **options)
    by_id = {id(obj): results[obj._lazycell_key] for obj in lazy}
    for coll, key in zip(dask_colls, dask_keys):
        by_id[id(coll)] = results[key]
    return tuple(_repack(obj, by_id) for obj in args)


def persist(*args, scheduler=None, **options) -> tuple:
    """Compute lazy objects now and return lazy objects that hold the results.

    The returned objects have the same keys; building on them never recomputes
    what they hold. Dask collections are persisted by dask with our scheduler.
    """
    _check_options(options, "persist")
    lazy = [obj for obj in args if isinstance(obj, Delayed)]
    values = compute(*lazy, scheduler=scheduler, **options) if lazy else ()
    held = {id(obj): value for obj, value in zip(lazy, values)}
    out = []
    for obj in args:
        if isinstance(obj, Delayed):
            out.append(Delayed(obj.key, data_spec(held[id(obj)]), (), obj._length))
        elif _is_dask_collection(obj):
            import dask

            (persisted,) = dask.persist(obj, scheduler=get_scheduler(scheduler, **options))
            out.append(persisted)
        else:
            out.append(obj)
    return tuple(out)


def _flatten_keys(keys, out: list) -> None:
    if isinstance(keys, list):
        for k in keys:
            _flatten_keys(k, out)
    else:
        out.append(keys)


def _nest_results(keys, results: dict):
    if isinstance(keys, list):
        return tuple(_nest_results(k, results) for k in keys)
    return results[keys]


def get(dsk, keys, scheduler=None, **options) -> Any:
    """Run a dask-style graph: ``lc.get({"x": 1, "y": (inc, "x")}, "y") == 2``.

    ``dsk`` may use legacy tuple tasks, dask ``_task_spec`` nodes, a
    ``HighLevelGraph``, or be a dask expression (``__dask_graph__``). ``keys``
    is one key or a (nested) list of keys; lists give (nested) tuples.
    A key missing from the graph raises ``KeyError``.
    """
    if not isinstance(dsk, Mapping) and hasattr(dsk, "__dask_graph__"):
        dsk = dsk.__dask_graph__()
    graph = specs_from_dask(dsk)
    flat: list = []
    _flatten_keys(keys, flat)
    for key in flat:
        if key not in graph:
            raise KeyError(f"key {key!r} is not in the graph")
    results = run_graph(graph, list(dict.fromkeys(flat)), scheduler, **options)
    return _nest_results(keys, results)


def get_scheduler(scheduler=None, **defaults):
    """A get-function for dask's own ``scheduler=`` argument.

    >>> x.sum().compute(scheduler=lc.get_scheduler("threads"))
    """
    resolve_scheduler(scheduler, defaults.get("num_workers"))  # fail now on a bad name
    _check_options(defaults, "get_scheduler")

    def lazycell_get(dsk, keys, **options):
        merged = {**defaults, **{k: v for k, v in options.items() if k in RUN_OPTIONS}}
        return get(dsk, keys, scheduler=scheduler, **merged)

    lazycell_get.__name__ = f"lazycell_get_{scheduler or 'default'}"
    return lazycell_get
