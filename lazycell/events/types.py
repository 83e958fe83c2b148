"""The events every scheduler emits and every view consumes.

A compute announces itself (:class:`GraphSubmitted`), each task starts and
then finishes or errs (:class:`TaskStarted`, :class:`TaskFinished`,
:class:`TaskErred`), and the compute ends (:class:`ComputeFinished`). Times
are ``time.perf_counter()`` seconds for tasks and ``time.time()`` for the
compute's start and end. Listeners get them in batches (``lazycell.events.bus``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import NamedTuple


class GraphSubmitted(NamedTuple):
    """A compute started: how many tasks, in which groups, where it runs."""

    compute_id: int
    time: float
    n_tasks: int
    groups: dict  # group name -> number of tasks
    scheduler: str
    n_workers: int


class TaskStarted(NamedTuple):
    compute_id: int
    key: Hashable
    group: str
    worker: str
    time: float


class TaskFinished(NamedTuple):
    compute_id: int
    key: Hashable
    group: str
    worker: str
    start: float
    stop: float
    nbytes: int  # estimate of the result's size


class TaskErred(NamedTuple):
    compute_id: int
    key: Hashable
    group: str
    worker: str
    start: float
    stop: float
    error: str  # "ZeroDivisionError: division by zero"


class ComputeFinished(NamedTuple):
    compute_id: int
    time: float
    status: str  # "ok", "error" or "cancelled"
    n_done: int


Event = GraphSubmitted | TaskStarted | TaskFinished | TaskErred | ComputeFinished
Listener = Callable[[list], None]
