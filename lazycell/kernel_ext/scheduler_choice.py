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
from lazycell.api import get_scheduler, resolve_scheduler
from lazycell.distributed.client import (
    describe_shape,
    local_cluster_client,
    open_client_of_shape,
)
from lazycell.distributed.store import parse_memory_limit
from lazycell.schedulers.registry import (
    canonical_scheduler_name,
    scheduler_entries,
    scheduler_entry,
    scheduler_names_text,
)

# The scheduler that --threads-per-worker and --memory-limit shape (a local cluster).
CLUSTER = "distributed"
# The scheduler of an existing dask.distributed cluster, named by its address.
DASK = "dask"
# Seconds to reach a dask scheduler named in a magic (dask's own default is 30).
CONNECT_TIMEOUT = 10
# ``tcp://10.0.0.5:8786``, ``tls://...``, ``10.0.0.5:8786``, ``scheduler-host:8786``
CLUSTER_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://\S+|[\w.-]+:\d+)$", re.IGNORECASE)


class SchedulerOptionError(ValueError):
    """An option that does not fit the chosen scheduler; the message says what does."""


@dataclass(frozen=True)
class SchedulerChoice:
    """What a cell asked for: a scheduler and its shape, or ``None`` for the session's.

    Build it with :meth:`from_options`, which checks every option against the
    scheduler it applies to. For the local cluster (``distributed``) the
    options are the cluster's shape: the open client is used when it has that
    shape, else a new one starts when the choice is applied.
    """

    scheduler: str | None = None
    num_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None

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
        which = f"the {effective} scheduler" if name else f"this session's {effective} scheduler"
        for option, value in (
            ("--threads-per-worker", threads_per_worker),
            ("--memory-limit", memory_limit),
        ):
            if value is not None and effective != CLUSTER:
                raise SchedulerOptionError(
                    f"{option} applies only to a local cluster (--scheduler {CLUSTER}), "
                    f"not to {which}"
                )
        for option, value in (("--workers", workers), ("--threads-per-worker", threads_per_worker)):
            if value is not None and value < 1:
                raise SchedulerOptionError(
                    f"{option} must be a positive whole number such as 4, not {value}"
                )
        if memory_limit is not None:
            try:
                parse_memory_limit(memory_limit, workers or 1)
            except ValueError as exc:
                raise SchedulerOptionError(f"--memory-limit: {exc}") from None
        if workers is not None and not takes_workers(name):
            why = " (it runs every task in the kernel's main thread)" if effective == "sync" else ""
            sized = [entry.name for entry in scheduler_entries() if entry.takes_workers]
            raise SchedulerOptionError(
                f"--workers does not apply to {which}{why}; it applies to "
                f"{', '.join(sized)} and {CLUSTER}"
            )
        if effective == CLUSTER:
            try:  # an open client of another shape: say so now, before the cell runs
                open_client_of_shape(workers, threads_per_worker, memory_limit)
            except ValueError as exc:
                raise SchedulerOptionError(str(exc)) from None
        elif name is not None:
            check_scheduler_can_run(name, workers)
        return cls(name, workers, threads_per_worker, memory_limit)

    @property
    def is_cluster(self) -> bool:
        """Whether the cell runs on the local cluster (chosen here or for the session)."""
        return (self.scheduler or session_scheduler_label()) == CLUSTER

    def config_settings(self) -> dict:
        """The ``lc.config.set`` keywords for what was chosen (nothing else)."""
        settings: dict = {}
        if self.scheduler is not None:
            settings["scheduler"] = self.scheduler
        if self.num_workers is not None and not self.is_cluster:
            settings["num_workers"] = self.num_workers
        return settings

    def cluster_client(self):
        """The open client of the shape asked for, or a new one (see ``local_cluster_client``)."""
        try:
            client = local_cluster_client(
                self.num_workers, self.threads_per_worker, self.memory_limit
            )
        except ValueError as exc:
            raise SchedulerOptionError(str(exc)) from None
        return client

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block every ``.compute()`` and ``lc.compute()`` uses this choice.

        When dask is already imported, dask collections' own ``.compute()``
        calls go through lazycell too (dask is never imported here).
        """
        with ExitStack() as stack:
            stack.enter_context(config.set(**self.config_settings()))
            if self.is_cluster:
                # Started inside the block: a client made default here stops
                # being the default when the block ends, yet stays open for reuse.
                self.cluster_client()
            dask = sys.modules.get("dask")
            if dask is not None and hasattr(dask, "config"):
                stack.enter_context(dask.config.set(scheduler=get_scheduler()))
            yield

    def make_session_default(self) -> str:
        """``%scheduler NAME``: set scheduler and pool size for the rest of the session.

        Settings not given return to their defaults, so ``%scheduler processes``
        after ``%scheduler threads -n 8`` uses one worker per core again. For
        the local cluster, its client (reused or started) becomes the default.
        Returns a line saying what was done.
        """
        if self.scheduler == CLUSTER:
            client = self.cluster_client()
            config.set(scheduler=CLUSTER, num_workers=None)
            shape = describe_shape(client.cluster)
            return f"lazycell scheduler for this session: {CLUSTER} ({shape})"
        config.set(scheduler=self.scheduler, num_workers=self.num_workers)
        return describe_session_scheduler().splitlines()[0]


def scheduler_name_or_error(name: str) -> str:
    """The canonical scheduler name, or a SchedulerOptionError that says what fits."""
    text = name.strip()
    try:
        return canonical_scheduler_name(text)
    except ValueError:
        pass
    if CLUSTER_ADDRESS.match(text):
        return connect_to_dask_cluster(text)
    raise SchedulerOptionError(
        f"unknown scheduler {name!r}; valid names are {scheduler_names_text()} "
        "(see %scheduler --list)"
    )


def connect_to_dask_cluster(address: str) -> str:
    """``--scheduler tcp://host:8786``: connect (once per address) and return ``"dask"``.

    The connection is reused by every later cell naming the same address, and
    becomes the one ``"dask"`` means. One that cannot be made is a usage error.
    """
    from lazycell.dask_cluster import connect  # dask loads only when an address is named

    try:
        connect(address, timeout=CONNECT_TIMEOUT)
    except ImportError as exc:
        raise SchedulerOptionError(str(exc)) from None
    except (OSError, TimeoutError) as exc:
        raise SchedulerOptionError(
            f"cannot reach a dask scheduler at {address!r}: {exc}; check that it runs "
            "(dask scheduler) and that this address is the one it printed"
        ) from None
    return DASK


def check_scheduler_can_run(name: str, workers: int | None) -> None:
    """Fail now, before the cell runs, if the scheduler cannot be set up (no pool starts)."""
    try:
        resolve_scheduler(name, workers)
    except ValueError as exc:
        raise SchedulerOptionError(str(exc)) from None


def takes_workers(name: str | None) -> bool:
    """Whether ``--workers`` applies to ``name`` (``None``: the session's scheduler)."""
    current = name if name is not None else config.get("scheduler")
    if isinstance(current, str):
        entry = scheduler_entry(current)
        return entry.takes_workers or entry.name == CLUSTER
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
        elif scheduler.name == "auto":
            where = f"sync, threads or processes picked per compute, {n} workers"
        else:
            where = f"{n} worker{'s' if n != 1 else ''}"
        entry = scheduler_entry_or_none(scheduler.name)
        if entry is not None and entry.takes_workers and config.get("num_workers") is None:
            where += ", one per core"
    return (
        f"lazycell scheduler for this session: {label} ({where})\n"
        "  change it:    %scheduler NAME [--workers N]   (or lc.config.set(scheduler=...))\n"
        "  for one cell: %%compute --scheduler NAME\n"
        "  the choices:  %scheduler --list"
    )


def scheduler_entry_or_none(name: str):
    """The registry's entry for ``name``, or None for a scheduler object of the user's."""
    try:
        return scheduler_entry(name)
    except ValueError:
        return None


def scheduler_guide_text() -> str:
    """What ``%scheduler --list`` prints: each scheduler and when to use it."""
    rows = [(entry.name, entry.when_to_use) for entry in scheduler_entries()]
    rows.append(("ADDRESS", f"a dask scheduler's address such as tcp://10.0.0.5:8786: {DASK}"))
    width = max(len(name) for name, _ in rows)
    lines = ["Schedulers for %%compute --scheduler NAME and %scheduler NAME:"]
    lines += [f"  {name:<{width}}  {when}" for name, when in rows]
    return "\n".join(lines)
