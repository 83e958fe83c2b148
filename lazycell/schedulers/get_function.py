"""Get-functions both ways: dask's ``get(dsk, keys)`` as our scheduler, ours as dask's.

- :class:`GetFunctionScheduler`: runs a lazycell graph through any dask-style
  ``get(dsk, keys)`` callable (``scheduler=dask.threaded.get``).
- :func:`run_for_dask`: what ``lc.get_scheduler(...)``'s get-function does
  with what dask hands it besides the graph: the keywords (:func:`take_dask_keywords`),
  dask's ``multiprocessing.*`` config for the processes scheduler, and dask's
  callbacks (``dask.diagnostics.ProgressBar``, ``Profiler``, any
  ``dask.callbacks.Callback``), which dask's own local schedulers call from
  ``dask.local.get_async`` and nothing else would.

How callbacks are called::

    get-function (calling thread)               where the tasks run
    ─────────────────────────────               ───────────────────
    start(dsk) for each callback
    specs; state as in dask.local:
      ready / running / waiting / finished
    start_state(dsk, state)
    run on the scheduler ──────────────────────► sync, threads: each task runs as an
                                                 ObservedTask, which calls pretask
                                                 before and posttask after it, in the
                                                 worker thread, under one lock
                                                 processes, an executor: the calling
                                                 thread calls pretask when it sends a
                                                 task and posttask when its result is
                                                 back (as dask's get_async does)
                                                 a cluster: no per-task hooks (the
                                                 tasks run in other processes)
    finish(dsk, state, errored) for every callback whose start ran, whatever happened

Only when some callback is active: with none, a get-function call costs a few
look-ups more than ``lc.get`` (about 2 µs) and nothing per task, and
``dask.callbacks`` is not even imported unless dask imported it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable, Mapping

from lazycell.graph.spec import DATA, FOREIGN, TaskSpec, run_task
from lazycell.schedulers.core import order_graph
from lazycell.schedulers.registry import AutoScheduler

# What dask's local get_async takes that a lazycell run cannot honour, and why.
_REFUSED_WITH_REASON = {
    "cache": (
        "cache= is dask's local schedulers' store of intermediate results; lazycell keeps "
        "its own and releases each result once its dependents ran. Drop cache=, and "
        "persist() what you want to keep (or use dask.cache.Cache: callbacks are called)"
    ),
}


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


# ------------------------------------------------------------ our get-function for dask


def take_dask_keywords(options: dict, run_options: tuple) -> list:
    """Take dask's keywords out of ``options``; returns the callbacks asked for.

    ``callbacks=`` (``Callback`` objects or dask's 5-tuples) is honoured;
    ``cache=`` and anything not in ``run_options`` is a TypeError that says why.
    """
    if not options:  # what dask passes from a plain .compute()
        return []
    callbacks = options.pop("callbacks", None)
    for name, why in _REFUSED_WITH_REASON.items():
        if options.get(name) is not None:
            raise TypeError(f"lazycell's get-function cannot honour {why}")
        options.pop(name, None)
    unknown = sorted(k for k in options if k not in run_options)
    if unknown:
        raise TypeError(
            f"lazycell's get-function got {', '.join(unknown)}, which it cannot honour; "
            f"it takes {', '.join(run_options)}, pool (a concurrent.futures.Executor) "
            "and callbacks (dask callbacks)"
        )
    if not callbacks:
        return []
    from dask.callbacks import normalize_callback

    return [normalize_callback(cb) for cb in callbacks]


def run_for_dask(
    get: Callable, resolve: Callable, dsk, keys, scheduler, options: dict, callbacks: list
) -> object:
    """Run ``dsk`` for ``keys`` with ``get`` (``lc.get``) on ``scheduler``, as dask would.

    ``scheduler`` is what ``get`` takes (a name, an Executor, None);
    ``resolve(scheduler, num_workers)`` makes the scheduler object, which is
    needed only when dask's ``multiprocessing.*`` config is set (a processes
    scheduler takes it) or when dask's active callbacks (or ``callbacks``)
    are to be called around the run. Otherwise this is ``get`` itself.
    """
    dask_callbacks = sys.modules.get("dask.callbacks")
    observe = callbacks or (dask_callbacks is not None and dask_callbacks.Callback.active)
    if observe or _dask_multiprocessing_config():
        scheduler = _with_dask_multiprocessing_config(
            resolve(scheduler, options.get("num_workers"))
        )
    if not observe:
        if isinstance(scheduler, AutoScheduler):  # dask's config goes to the one it picks
            scheduler = ObservedScheduler(scheduler, None)
        return get(dsk, keys, scheduler=scheduler, **options)
    from dask.callbacks import local_callbacks  # dask called us: it is imported

    # As dask.local.get_async: the callbacks of this run are taken out of the
    # active set for its duration, so a compute nested in a task does not fire them.
    with local_callbacks(callbacks or None) as active:
        if not isinstance(dsk, Mapping) and hasattr(dsk, "__dask_graph__"):
            dsk = dsk.__dask_graph__()
        # A mutable copy: a start callback may replace tasks (dask.cache.Cache does).
        dsk = dsk.to_dict() if hasattr(dsk, "to_dict") and not isinstance(dsk, dict) else dict(dsk)
        run = CallbackRun(dsk, list(active))
        try:
            run.start()
            results = get(dsk, keys, scheduler=ObservedScheduler(scheduler, run), **options)
        except BaseException:
            run.finish(errored=True)
            raise
        run.finish(errored=False)
        return results


class CallbackRun:
    """One compute's dask callbacks and the dask-style ``state`` they read.

    ``state`` holds dask.local's names for the tasks that run (data keys are
    not tasks, as in dask): ``dependencies`` / ``dependents`` (key -> set),
    ``waiting`` (key -> dependencies not finished), ``ready`` (a set here, a
    list in dask), ``running``, ``finished``, ``released`` (always empty) and
    ``cache`` (the data keys' values; results are not kept in it, so they are
    released as lazycell releases them). Every change and every callback
    happens under ``lock``, so callbacks never run two at a time, as in dask.
    """

    def __init__(self, dsk: dict, callbacks: list):
        self.dsk = dsk
        self.callbacks = callbacks  # dask's tuples (start, start_state, pretask, posttask, finish)
        self.started: list = []
        self.state: dict = {}
        self.lock = threading.RLock()
        self.pretasks = [cb[2] for cb in callbacks if cb[2]]
        self.posttasks = [cb[3] for cb in callbacks if cb[3]]

    def start(self) -> None:
        for callback in self.callbacks:
            if callback[0]:
                callback[0](self.dsk)
            self.started.append(callback)

    def start_state(self, graph: Mapping[Hashable, TaskSpec], order: list) -> None:
        """Build ``state`` from the graph about to run, then call ``start_state``."""
        tasks = [key for key in order if graph[key].kind != DATA]
        is_task = set(tasks)
        dependencies = {key: set(graph[key].deps) for key in tasks}
        dependents: dict = {key: set() for key in tasks}
        waiting = {}
        ready = set()
        for key in tasks:
            for dep in dependencies[key]:
                if dep in is_task:
                    dependents[dep].add(key)
            unfinished = {dep for dep in dependencies[key] if dep in is_task}
            if unfinished:
                waiting[key] = unfinished
            else:
                ready.add(key)
        self.state = {
            "dependencies": dependencies,
            "dependents": dependents,
            "waiting": waiting,
            "waiting_data": {},
            "cache": {key: graph[key].args for key in order if graph[key].kind == DATA},
            "ready": ready,
            "running": set(),
            "finished": set(),
            "released": set(),
        }
        with self.lock:
            for callback in self.callbacks:
                if callback[1]:
                    callback[1](self.dsk, self.state)

    def pretask(self, key) -> None:
        state = self.state
        with self.lock:
            state["ready"].discard(key)
            state["running"].add(key)
            for pretask in self.pretasks:
                pretask(key, self.dsk, state)

    def posttask(self, key, result, worker_id) -> None:
        state = self.state
        with self.lock:
            state["running"].discard(key)
            state["finished"].add(key)
            waiting = state["waiting"]
            for dependent in state["dependents"].get(key, ()):
                unfinished = waiting.get(dependent)
                if unfinished is not None:
                    unfinished.discard(key)
                    if not unfinished:
                        del waiting[dependent]
                        state["ready"].add(dependent)
            for posttask in self.posttasks:
                posttask(key, result, self.dsk, state, worker_id)

    def finish(self, errored: bool) -> None:
        with self.lock:
            for callback in self.started:
                if callback[4]:
                    callback[4](self.dsk, self.state, errored)


class ObservedScheduler:
    """``scheduler`` with a :class:`CallbackRun` told of each task (see the module picture).

    Under ``"auto"``, the scheduler it picks is observed, with dask's
    ``multiprocessing.*`` config applied, as if it had been asked for by name
    (``run`` may be None: the config only).
    """

    def __init__(self, scheduler, run: CallbackRun | None):
        self.scheduler = scheduler
        self.callback_run = run
        self.name = scheduler.name
        self.n_workers = scheduler.n_workers

    def __repr__(self) -> str:
        return f"ObservedScheduler({self.scheduler!r})"

    def run(self, graph, outputs, *, rerun_exceptions_locally: bool = False) -> dict:
        run = self.callback_run
        if run is not None:
            run.start_state(graph, order_graph(graph, outputs))
        if not isinstance(self.scheduler, AutoScheduler):
            return _run_observed(self.scheduler, graph, outputs, run, rerun_exceptions_locally)
        with self.scheduler.chosen(graph, outputs) as scheduler:
            scheduler = _with_dask_multiprocessing_config(scheduler)
            return _run_observed(scheduler, graph, outputs, run, rerun_exceptions_locally)


def _run_observed(
    scheduler, graph, outputs, run: CallbackRun | None, rerun_exceptions_locally: bool
):
    """``scheduler.run(...)`` with ``run`` told of each task where it can be (see the picture)."""
    if run is None:
        return scheduler.run(graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally)
    if scheduler.name in ("sync", "threads"):  # tasks run in this process's threads
        graph = {
            key: spec if spec.kind == DATA else _observed_spec(key, spec, run)
            for key, spec in graph.items()
        }
        return scheduler.run(graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally)
    if scheduler.name in ("processes", "executor"):  # the calling thread sees each task
        return scheduler.run(
            graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally, observer=run
        )
    # Elsewhere (a cluster) tasks run in other processes: start and finish only.
    return scheduler.run(graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally)


def _observed_spec(key, spec: TaskSpec, run: CallbackRun) -> TaskSpec:
    return TaskSpec(FOREIGN, ObservedTask(key, spec, run), None, None, spec.deps)


class ObservedTask:
    """A task that tells the callbacks when it starts and ends, in the thread running it.

    Run as a foreign node (called with its dependencies' values); ``func``
    names the user's function, so errors and panels still name it.
    """

    __slots__ = ("key", "spec", "callback_run", "func")

    def __init__(self, key, spec: TaskSpec, run: CallbackRun):
        self.key = key
        self.spec = spec
        self.callback_run = run
        self.func = spec.func if spec.kind != FOREIGN else getattr(spec.func, "func", spec.func)

    def __call__(self, values: dict):
        run = self.callback_run
        run.pretask(self.key)
        result = run_task(self.spec, values)
        run.posttask(self.key, result, threading.get_ident())
        return result

    def __repr__(self) -> str:
        return f"ObservedTask({self.key!r}, {self.spec!r})"


# --------------------------------------------------- dask's multiprocessing.* config


# multiprocessing start methods lazycell's workers can stand for: each worker is
# a fresh interpreter that inherits nothing from the kernel, which is what both
# promise; "fork" promises a copy of the kernel's memory, which they cannot give.
HONOURED_CONTEXTS = ("spawn", "forkserver")


def _dask_multiprocessing_config() -> dict:
    """dask's ``multiprocessing`` settings that ask something of lazycell's workers, if any."""
    dask_config = sys.modules.get("dask.config")
    if dask_config is None:  # dask did not call us, so it set nothing
        return {}
    # The config dict itself (dask.config.set changes it in place): two look-ups
    # instead of dask.config.get's path walk, on every get-function call.
    settings = dask_config.config.get("multiprocessing") or {}
    return {
        name: value
        for name, value in settings.items()
        if (name == "initializer" and value is not None)
        or (name == "context" and value not in (None, "spawn"))
    }


def _with_dask_multiprocessing_config(scheduler):
    """``scheduler``, or for processes one that honours dask's ``multiprocessing.*`` config."""
    if getattr(scheduler, "name", None) != "processes":
        return scheduler
    settings = _dask_multiprocessing_config()
    context = settings.get("context", "spawn")
    if context not in HONOURED_CONTEXTS:
        raise ValueError(
            f"dask's config sets multiprocessing.context={context!r}, which lazycell's processes "
            "scheduler cannot honour: its workers are fresh interpreters that inherit nothing "
            f"from this process (as with {' or '.join(map(repr, HONOURED_CONTEXTS))}). Set "
            "dask.config.set({'multiprocessing.context': 'spawn'}), or use dask's own "
            "processes scheduler for a forked pool"
        )
    initializer = settings.get("initializer")
    if initializer is None:
        return scheduler
    if not callable(initializer):
        raise ValueError(
            f"dask's config sets multiprocessing.initializer={initializer!r}, which is not "
            "callable; set it to a function of no arguments (run once in each worker process)"
        )
    return scheduler.with_initializer(initializer)
