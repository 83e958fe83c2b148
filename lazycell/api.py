"""Running graphs: ``compute``, ``persist``, ``get``, ``graph_of``, ``get_scheduler``.

Everything funnels into :func:`run_graph` — specs in, ``{key: result}`` out, on
the scheduler chosen by the per-call argument or ``lc.config`` and made by
the scheduler registry (:func:`resolve_scheduler`). Dask objects are
converted at this boundary (``lazycell.graph.collect``), and dask is
imported only when the user hands us a dask object.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from lazycell import config
from lazycell.graph.collect import collect, repack
from lazycell.graph.dask_collections import is_dask_collection
from lazycell.graph.delayed import Delayed
from lazycell.graph.spec import TaskSpec, data_spec, flatten_keys, nest_values, specs_from_dask
from lazycell.schedulers.executor import ExecutorScheduler
from lazycell.schedulers.get_function import GetFunctionScheduler, run_for_dask, take_dask_keywords
from lazycell.schedulers.registry import (
    Scheduler,
    scheduler_entry,
    scheduler_for_object,
    scheduler_names_text,
)
from lazycell.schedulers.threads import ThreadsScheduler

RUN_OPTIONS = ("num_workers", "rerun_exceptions_locally")


def _check_options(options: dict, where: str) -> None:
    unknown = sorted(k for k in options if k not in RUN_OPTIONS)
    if unknown:
        raise TypeError(
            f"{where} got unknown option(s) {', '.join(unknown)}; "
            f"known options are scheduler, optimize_graph, {', '.join(RUN_OPTIONS)}"
        )


def resolve_scheduler(scheduler=None, num_workers: int | None = None) -> Scheduler:
    """The scheduler object for ``scheduler`` (a name, executor, get-function or None).

    Making one starts nothing: pools and workers start when it first runs.
    A name no scheduler has, or one that cannot run now (``"distributed"``
    without an open client), is a ValueError that says what fits.
    """
    if scheduler is None:
        scheduler = config.get("scheduler")
    if num_workers is not None:
        num_workers = config.validate("num_workers", num_workers, "num_workers=")
    else:
        num_workers = config.get("num_workers")
    if isinstance(scheduler, str):
        return scheduler_entry(scheduler).make(num_workers, config.get("pool"))
    adapted = scheduler_for_object(scheduler)  # another engine's object (a distributed.Client)
    if adapted is not None:
        return adapted
    if isinstance(scheduler, ThreadPoolExecutor):
        return ThreadsScheduler(num_workers, pool=scheduler)
    if isinstance(scheduler, Executor):
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


def run_graph(graph: Mapping[Hashable, TaskSpec], outputs: list, scheduler=None, **options) -> dict:
    """Run ``graph`` for ``outputs`` on ``scheduler``; returns ``{key: result}``."""
    _check_options(options, "compute")
    chosen = resolve_scheduler(scheduler, options.get("num_workers"))
    return chosen.run(
        graph, outputs, rerun_exceptions_locally=bool(options.get("rerun_exceptions_locally"))
    )


def graph_of(*objs) -> dict:
    """The task graph behind lazy objects: ``{key: TaskSpec}``.

    >>> g = lc.graph_of(inc(inc(1)))
    >>> len(g)
    2
    """
    return collect(objs, optimize_graph=True).graph


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
    collected = collect(args, optimize_graph)
    if not collected.found:
        return args
    results = run_graph(collected.graph, collected.outputs(), scheduler, **options)
    by_id = collected.results_by_id(results)
    return tuple(repack(obj, by_id) for obj in args)


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
        elif is_dask_collection(obj):
            import dask

            (persisted,) = dask.persist(obj, scheduler=get_scheduler(scheduler, **options))
            out.append(persisted)
        else:
            out.append(obj)
    return tuple(out)


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
    flat = flatten_keys(keys)
    for key in flat:
        if key not in graph:
            raise KeyError(f"key {key!r} is not in the graph")
    results = run_graph(graph, list(dict.fromkeys(flat)), scheduler, **options)
    return nest_values(keys, results)


def get_scheduler(scheduler=None, **defaults):
    """A get-function for dask's own ``scheduler=`` argument.

    >>> x.sum().compute(scheduler=lc.get_scheduler("threads"))

    The keywords dask passes on from ``.compute(...)`` are honoured or refused,
    never dropped: ``num_workers`` and ``rerun_exceptions_locally`` as in
    :func:`compute`; ``pool=`` (a ``concurrent.futures.Executor``) runs the
    graph on that pool instead; ``callbacks=`` as dask's; anything else is a
    TypeError that says so. dask's callbacks (``ProgressBar``, ``Profiler``...)
    and its ``multiprocessing.initializer`` / ``.context`` config apply as with
    dask's own schedulers (see ``lazycell.schedulers.get_function``).
    """
    resolve_scheduler(scheduler, defaults.get("num_workers"))  # fail now on a bad name
    _check_options(defaults, "get_scheduler")

    def lazycell_get(dsk, keys, pool=None, **options):
        callbacks = take_dask_keywords(options, RUN_OPTIONS)
        pool = config.validate("pool", pool, "pool=")  # an Executor, or None
        chosen = pool if pool is not None else scheduler
        options = {**defaults, **options}
        return run_for_dask(get, resolve_scheduler, dsk, keys, chosen, options, callbacks)

    lazycell_get.__name__ = f"lazycell_get_{scheduler or 'default'}"
    return lazycell_get
