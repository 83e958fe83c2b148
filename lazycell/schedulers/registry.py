"""Every scheduler's name, aliases and maker, in one place.

A scheduler is any object with the :class:`Scheduler` shape: ``name``,
``n_workers`` and ``run(graph, outputs, *, rerun_exceptions_locally=False)``
returning ``{key: result}``. The registry maps names a user may type
(``"threads"``, ``"threading"``...) to one canonical name, and a canonical
name to an :class:`SchedulerEntry` that says when to use it and how to make
it. Config, ``lc.compute``, the magics and ``%scheduler --list`` all ask
here; none keeps a list of its own.

The local schedulers register below; schedulers from higher layers (the
local cluster, ``"distributed"``) register from the package's top, where a
lazy maker imports them only when first used::

    register_scheduler("distributed", make_cluster_scheduler,
                       aliases=("cluster",), when_to_use="...")

``"auto"`` is registered here too: an :class:`AutoScheduler` asks the chooser
a higher layer plugged in (:func:`set_auto_chooser`; the advisor, from what
earlier computes of the same task groups measured) which local scheduler to
run each graph on, and runs it there; with no chooser, on threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from lazycell.graph.spec import TaskSpec
from lazycell.schedulers.sync import SyncScheduler
from lazycell.schedulers.threads import ThreadsScheduler


class Scheduler(Protocol):
    """What ``lc.compute`` needs of a scheduler."""

    name: str
    n_workers: int

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: list,
        *,
        rerun_exceptions_locally: bool = False,
    ) -> dict: ...


# ``make(num_workers, pool)``: num_workers is None for "one per core"; pool is
# the configured Executor (threads only), else None.
SchedulerMaker = Callable[[int | None, Executor | None], Scheduler]


@dataclass(frozen=True)
class SchedulerEntry:
    """One registered scheduler."""

    name: str  # canonical
    aliases: tuple[str, ...]
    when_to_use: str  # one line for %scheduler --list
    takes_workers: bool  # whether num_workers / --workers sizes it
    make: SchedulerMaker


_entries: dict[str, SchedulerEntry] = {}
_aliases: dict[str, str] = {}
_lock = threading.Lock()


def register_scheduler(
    name: str,
    make: SchedulerMaker,
    *,
    aliases: tuple[str, ...] = (),
    when_to_use: str = "",
    takes_workers: bool = False,
) -> SchedulerEntry:
    """Make ``name`` (and its aliases) a scheduler users can choose; returns its entry.

    Registering a name again replaces its entry; an alias already taken by
    another scheduler is a ValueError.
    """
    entry = SchedulerEntry(name, tuple(aliases), when_to_use, takes_workers, make)
    with _lock:
        for alias in (name, *aliases):
            owner = _aliases.get(alias.lower())
            if owner is not None and owner != name:
                raise ValueError(f"scheduler name {alias!r} is taken by {owner!r}")
        _entries[name] = entry
        for alias in (name, *aliases):
            _aliases[alias.lower()] = name
    return entry


# Objects of other engines a user may pass as ``scheduler=`` (a distributed.Client):
# ``(accepts(obj) -> bool, make(obj) -> Scheduler)``, asked in the order registered.
_object_adapters: list[tuple[Callable[[object], bool], Callable[[object], Scheduler]]] = []


def register_scheduler_object(
    accepts: Callable[[object], bool], make: Callable[[object], Scheduler]
) -> None:
    """Let ``scheduler=obj`` take objects ``accepts(obj)`` says yes to, run by ``make(obj)``."""
    with _lock:
        _object_adapters.append((accepts, make))


def scheduler_for_object(obj) -> Scheduler | None:
    """The scheduler a registered adapter makes of ``obj``, or None if none accepts it."""
    with _lock:
        adapters = list(_object_adapters)
    for accepts, make in adapters:
        if accepts(obj):
            return make(obj)
    return None


def scheduler_entries() -> list[SchedulerEntry]:
    """Every registered scheduler, in the order registered."""
    with _lock:
        return list(_entries.values())


def scheduler_entry(name: str) -> SchedulerEntry:
    """The entry of a name or alias; ValueError listing the valid names otherwise."""
    return _entries[canonical_scheduler_name(name)]


def scheduler_names_text() -> str:
    """Every name a user may type, for error messages: ``"distributed, processes, ..."``."""
    with _lock:
        return ", ".join(sorted(_aliases))


def canonical_scheduler_name(name: str) -> str:
    """``"threading"`` -> ``"threads"``; ValueError listing the valid names otherwise."""
    canonical = _aliases.get(name.strip().lower())
    if canonical is None:
        raise ValueError(
            f"unknown scheduler {name!r}; valid names are {scheduler_names_text()}, "
            "or pass a concurrent.futures.Executor or a dask-style get-function"
        )
    return canonical


# ------------------------------------------------------------------ the local schedulers


def _make_sync(num_workers: int | None, pool: Executor | None) -> Scheduler:
    return SyncScheduler()


def _make_threads(num_workers: int | None, pool: Executor | None) -> Scheduler:
    return ThreadsScheduler(num_workers, pool=pool)


def _make_processes(num_workers: int | None, pool: Executor | None) -> Scheduler:
    # Imported on first use: cloudpickle and the pool's machinery are not part
    # of ``import lazycell`` (every worker process imports lazycell too).
    from lazycell.schedulers.processes import ProcessesScheduler

    return ProcessesScheduler(num_workers)


register_scheduler(
    "sync",
    _make_sync,
    aliases=("synchronous", "single-threaded"),
    when_to_use="debugging: one task at a time in the calling thread, real frames for pdb",
)
register_scheduler(
    "threads",
    _make_threads,
    aliases=("threading",),
    when_to_use="numeric work that releases the GIL (NumPy, pandas, I/O); the default",
    takes_workers=True,
)
register_scheduler(
    "processes",
    _make_processes,
    aliases=("multiprocessing",),
    when_to_use="pure-Python CPU work that holds the GIL; inputs and results are pickled",
    takes_workers=True,
)


# ------------------------------------------------------------------ "auto"


class AutoChoice(NamedTuple):
    """Where ``scheduler="auto"`` ran a graph, and why (one line)."""

    scheduler: str  # a canonical name: "sync", "threads" or "processes"
    reason: str


# ``choose(graph, outputs, num_workers) -> AutoChoice``, plugged in from above.
AutoChooser = Callable[[Mapping[Hashable, TaskSpec], list, "int | None"], AutoChoice]
# ``measuring()``: a context manager around each auto compute, so that it is measured.
_auto_chooser: list[tuple[AutoChooser, Callable[[], AbstractContextManager]]] = []
_last_auto_choice: list[AutoChoice] = []


def set_auto_chooser(
    choose: AutoChooser | None, measuring: Callable[[], AbstractContextManager] = nullcontext
) -> None:
    """Let ``choose`` pick the scheduler of every ``scheduler="auto"`` compute (None: threads).

    Each auto compute then runs inside ``measuring()``, so the chooser learns from it.
    """
    with _lock:
        _auto_chooser[:] = [] if choose is None else [(choose, measuring)]


def last_auto_choice() -> AutoChoice | None:
    """The choice of the last ``scheduler="auto"`` compute, or None before the first."""
    with _lock:
        return _last_auto_choice[0] if _last_auto_choice else None


class AutoScheduler:
    """Runs each graph where the chooser (see :func:`set_auto_chooser`) says; else on threads.

    The choice is made per compute, before it starts: work is not moved
    between schedulers while a compute runs.
    """

    name = "auto"

    def __init__(self, num_workers: int | None = None, pool: Executor | None = None):
        self.num_workers = num_workers
        self.pool = pool
        self.n_workers = num_workers or _make_threads(num_workers, pool).n_workers

    def __repr__(self) -> str:
        return f"AutoScheduler(num_workers={self.num_workers})"

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: list,
        *,
        rerun_exceptions_locally: bool = False,
    ) -> dict:
        with self.chosen(graph, outputs) as delegate:
            return delegate.run(graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally)

    @contextmanager
    def chosen(self, graph: Mapping[Hashable, TaskSpec], outputs: list) -> Iterator[Scheduler]:
        """The scheduler to run ``graph`` on, for a ``with`` block that runs it (measured).

        Apart from :meth:`run` for a caller that runs the graph its own way on
        the scheduler chosen (dask's callbacks, in ``get_function``).
        """
        with _lock:
            choose, measuring = _auto_chooser[0] if _auto_chooser else (None, nullcontext)
        with measuring():
            if choose is None:
                choice = AutoChoice("threads", "no advisor to ask: threads, the default")
            else:
                choice = choose(graph, outputs, self.num_workers)
            with _lock:
                _last_auto_choice[:] = [choice]
            entry = scheduler_entry(choice.scheduler)
            yield entry.make(
                self.num_workers if entry.takes_workers else None,
                self.pool if entry.name == "threads" else None,
            )


register_scheduler(
    "auto",
    AutoScheduler,
    when_to_use="let lazycell pick sync, threads or processes from what earlier computes "
    "of the same functions measured (threads until something was measured)",
    takes_workers=True,
)
