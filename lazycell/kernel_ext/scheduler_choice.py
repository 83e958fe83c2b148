"""Which scheduler a cell or the session uses, checked before anything runs.

``%%compute`` and ``%scheduler`` take the same options. This module turns
them into a :class:`SchedulerChoice` — or a :class:`SchedulerOptionError`
saying which option does not fit which scheduler — and applies a choice
around a block of code as ``lc.config`` settings. It knows nothing of
IPython, so the same checks serve scripts and tests.

>>> choice = SchedulerChoice.from_options(scheduler="processes", workers=2)
>>> with choice.applied():
...     total.compute()          # on 2 worker processes
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from lazycell import config
from lazycell.schedulers.select import (
    WHEN_TO_USE,
    canonical_scheduler_name,
    resolve_scheduler,
    scheduler_names_text,
)

# Local schedulers that run tasks on a pool whose size ``--workers`` sets.
TAKE_WORKERS = ("threads", "processes")
LOCAL_CLUSTER_NAMES = ("distributed", "local-cluster", "localcluster", "cluster")
# ``tcp://10.0.0.5:8786``, ``tls://...``, ``10.0.0.5:8786``, ``scheduler-host:8786``
CLUSTER_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://\S+|[\w.-]+:\d+)$", re.IGNORECASE)

# Shown as "(coming)" by %scheduler --list until lazycell.schedulers.select knows them.
COMING_SCHEDULERS = {
    "distributed": "a dashboard, or big data on one machine: a local cluster",
    "ADDRESS": "beyond one machine: a cluster at an address such as tcp://10.0.0.5:8786",
}


class SchedulerOptionError(ValueError):
    """An option that does not fit the chosen scheduler; the message says what does."""


@dataclass(frozen=True)
class SchedulerChoice:
    """What a cell asked for: a scheduler name and pool size, or ``None`` for the session's.

    Build it with :meth:`from_options`, which checks every option against the
    scheduler it applies to.
    """

    scheduler: str | None = None
    num_workers: int | None = None

    @classmethod
    def from_options(
        cls,
        scheduler: str | None = None,
        workers: int | None = None,
        threads_per_worker: int | None = None,
        memory_limit: str | None = None,
    ) -> SchedulerChoice:
        """Check the options of ``%%compute`` / ``%scheduler``; raise SchedulerOptionError."""
        name = None if scheduler is None else scheduler_name_or_error(scheduler)
        effective = name if name is not None else session_scheduler_label()
        for option, value in (
            ("--threads-per-worker", threads_per_worker),
            ("--memory-limit", memory_limit),
        ):
            if value is not None:
                raise SchedulerOptionError(cluster_option_message(option))
        if workers is not None:
            if workers < 1:
                raise SchedulerOptionError(
                    f"--workers must be a positive whole number such as 4, not {workers}"
                )
            if not takes_workers(name):
                which = f"the {effective} scheduler" if name else f"this session's {effective}"
                why = (
                    " (it runs every task in the kernel's main thread)"
                    if effective == "sync"
                    else ""
                )
                raise SchedulerOptionError(
                    f"--workers does not apply to {which}{why}; it applies to "
                    f"{' and '.join(TAKE_WORKERS)}"
                )
        if name is not None:
            check_scheduler_can_run(name, workers)
        return cls(scheduler=name, num_workers=workers)

    def config_settings(self) -> dict:
        """The ``lc.config.set`` keywords for what was chosen (nothing else)."""
        settings = {}
        if self.scheduler is not None:
            settings["scheduler"] = self.scheduler
        if self.num_workers is not None:
            settings["num_workers"] = self.num_workers
        return settings

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block every ``.compute()`` and ``lc.compute()`` uses this choice.

        When dask is already imported, dask collections' own ``.compute()``
        calls go through lazycell too (dask is never imported here).
        """
        with ExitStack() as stack:
            stack.enter_context(config.set(**self.config_settings()))
            dask = sys.modules.get("dask")
            if dask is not None and hasattr(dask, "config"):
                from lazycell.graph.compute import get_scheduler

                stack.enter_context(dask.config.set(scheduler=get_scheduler()))
            yield

    def make_session_default(self) -> None:
        """``%scheduler NAME``: set scheduler and pool size for the rest of the session.

        Settings not given return to their defaults, so ``%scheduler processes``
        after ``%scheduler threads -n 8`` uses one worker per core again.
        """
        config.set(scheduler=self.scheduler, num_workers=self.num_workers)


def scheduler_name_or_error(name: str) -> str:
    """The canonical scheduler name, or a SchedulerOptionError that says what fits."""
    text = name.strip()
    try:
        return canonical_scheduler_name(text)
    except ValueError:
        pass
    if text.lower() in LOCAL_CLUSTER_NAMES:
        raise SchedulerOptionError(
            f"the {text!r} scheduler (a local cluster with a dashboard) is not available "
            "yet; it is coming in a later release. Use threads or processes for now "
            "(see %scheduler --list)"
        )
    if CLUSTER_ADDRESS.match(text):
        raise SchedulerOptionError(
            f"connecting to a cluster at {text!r} is not available yet; it is coming in "
            "a later release. Use threads or processes on this machine for now "
            "(see %scheduler --list)"
        )
    raise SchedulerOptionError(
        f"unknown scheduler {name!r}; valid names are {scheduler_names_text()} "
        "(see %scheduler --list)"
    )


def check_scheduler_can_run(name: str, workers: int | None) -> None:
    """Fail now, before the cell runs, if the scheduler cannot be set up (no pool starts)."""
    try:
        resolve_scheduler(name, workers)
    except ValueError as exc:  # e.g. 'distributed' with no open lc.Client
        raise SchedulerOptionError(str(exc)) from None


def local_cluster_available() -> bool:
    """Whether this lazycell has the local cluster scheduler (``distributed``)."""
    try:
        canonical_scheduler_name("distributed")
    except ValueError:
        return False
    return True


def cluster_option_message(option: str) -> str:
    """Why ``--threads-per-worker`` / ``--memory-limit`` cannot apply to a cell's scheduler."""
    if local_cluster_available():
        keyword = option.lstrip("-").replace("-", "_")
        return (
            f"{option} applies only to a local cluster, and is set when the cluster starts: "
            f"lc.Client({keyword}=...); sync, threads and processes do not take it"
        )
    return (
        f"{option} applies only to the local cluster scheduler (distributed), which is "
        "not available yet; sync, threads and processes do not take it"
    )


def takes_workers(name: str | None) -> bool:
    """Whether ``--workers`` applies to ``name`` (``None``: the session's scheduler)."""
    if name is not None:
        return name in TAKE_WORKERS
    current = config.get("scheduler")
    if isinstance(current, str):
        return current in TAKE_WORKERS
    return isinstance(current, Executor)  # a get-function has no pool we size


def session_scheduler_label() -> str:
    """The session's scheduler as a short word: a name, or the type of the object set."""
    current = config.get("scheduler")
    if isinstance(current, str):
        return current
    return type(current).__name__


def describe_session_scheduler() -> str:
    """What ``%scheduler`` prints: the session's scheduler and its settings."""
    current = config.get("scheduler")
    label = current if isinstance(current, str) else repr(current)
    try:
        scheduler = resolve_scheduler()  # a description object: no pool starts here
    except ValueError as exc:
        where = f"cannot run now: {exc}"
    else:
        n = scheduler.n_workers
        if scheduler.name == "sync":
            where = "every task in the kernel's main thread"
        elif scheduler.name == "threads":
            where = f"{n} thread{'s' if n != 1 else ''}"
        elif scheduler.name == "processes":
            where = f"{n} worker process{'es' if n != 1 else ''}"
        else:
            where = f"{n} worker{'s' if n != 1 else ''}"
        if scheduler.name in TAKE_WORKERS and config.get("num_workers") is None:
            where += ", one per core"
    return (
        f"lazycell scheduler for this session: {label} ({where})\n"
        "  change it:    %scheduler NAME [--workers N]   (or lc.config.set(scheduler=...))\n"
        "  for one cell: %%compute --scheduler NAME\n"
        "  the choices:  %scheduler --list"
    )


def scheduler_guide_text() -> str:
    """What ``%scheduler --list`` prints: each scheduler and when to use it."""
    rows = list(WHEN_TO_USE.items())
    rows += [
        (name, f"(coming) {when}")
        for name, when in COMING_SCHEDULERS.items()
        if name not in WHEN_TO_USE
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["Schedulers for %%compute --scheduler NAME and %scheduler NAME:"]
    lines += [f"  {name:<{width}}  {when}" for name, when in rows]
    return "\n".join(lines)
