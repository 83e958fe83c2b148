"""How a compute is recorded on the hot path: a buffer of tuples and per-thread lanes.

- ``ComputeRecorder``: one per compute, created by the bus only if someone
  listens. Any caller records through ``started`` / ``finished`` / ``erred``,
  which append a plain tuple to ``buffer``. A scheduler that runs tasks on
  threads of its own asks for a ``WorkerLane`` per thread instead
  (``recorder.lane(worker)``).
- ``WorkerLane``: one thread's tasks as columns (see the class), and the
  CPU time of a sample of them (:func:`is_sampled`, for the advisor).
- ``RawBatch``: what one delivery took: the buffer's tuples, each lane's
  finished rows, the lanes' running tasks, and the ComputeFinished at the end.

Who reads them and when is the bus's business (``lazycell.events.bus``); the
recorder only appends, so recording a task costs a list append or two.
"""

from __future__ import annotations

import sys
import threading
from itertools import repeat
from time import perf_counter, process_time
from typing import TYPE_CHECKING, NamedTuple

from lazycell.events.failure import message_of
from lazycell.events.types import (
    ComputeFinished,
    GraphSubmitted,
    TaskErred,
    TaskFinished,
    TaskStarted,
)

if TYPE_CHECKING:  # the bus hands itself to each recorder it makes
    from lazycell.events.bus import EventBus

# Types whose size is sys.getsizeof, tested first on the hot path.
BUILTIN_SIZED = frozenset({int, float, str, bytes, bool, type(None), tuple, list, dict, set})


def estimate_nbytes(value) -> int:
    """A cheap size estimate: ``nbytes`` for arrays and frames, else getsizeof."""
    if type(value) in BUILTIN_SIZED:  # the common case, without an attribute miss
        return sys.getsizeof(value)
    try:
        nbytes = getattr(value, "nbytes", None)
        if isinstance(nbytes, int):
            return nbytes
        return sys.getsizeof(value)
    except Exception:  # a broken property or __sizeof__ must not fail the task
        return 0


class LaneRows(NamedTuple):
    """A lane's tasks finished since the last batch, as columns of equal length."""

    worker: str
    keys: list
    starts: list
    stops: list
    nbytes: list


class RawBatch(NamedTuple):
    """What the dispatcher took from one recorder in one pass (see module docstring).

    ``items``: the buffer's tuples, as documented at :meth:`EventBus.subscribe`;
    ``lanes``: a :class:`LaneRows` per lane that finished tasks; ``running``:
    ``(key, worker, start)`` of each lane's task running now (a snapshot that
    replaces the previous batch's); ``finished``: the ComputeFinished of the
    last batch, else None.
    """

    items: list
    lanes: list
    running: list
    finished: ComputeFinished | None = None

    @property
    def submitted(self) -> GraphSubmitted | None:
        """The compute's GraphSubmitted, in the first item of its first batch; else None."""
        items = self.items
        if items and items[0][0] == "event" and type(items[0][1]) is GraphSubmitted:
            return items[0][1]
        return None


# The size a lane records for a task that failed: the reader drops the row.
ERRED_ROW = -1

# Which of a lane's tasks also get their thread CPU time measured (see is_sampled):
# the first SAMPLE_FIRST, then one in SAMPLE_EVERY (a power of two).
SAMPLE_FIRST = 8
SAMPLE_EVERY = 32


def runqueue_wait(thread_id: int) -> float | None:
    """Seconds thread ``thread_id`` of this process has waited for a CPU, or None.

    Linux's ``schedstat`` (run time, runqueue wait, timeslices, in ns): a few
    microseconds to read, once per lane at its start and once at the end.
    """
    try:
        with open(f"/proc/self/task/{thread_id}/schedstat", "rb") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def is_sampled(index: int) -> bool:
    """Whether a lane's ``index``-th task (from 0) gets its CPU time measured.

    ``time.thread_time()`` is a system call (0.3-1.1 µs, twice per task):
    measuring every one of 10,000 tiny tasks of 5 µs would add a third to
    them, and a sample says as much about a task group (1 in 32: 0.07 µs a task). Schedulers
    inline this test in their loops (``n < SAMPLE_FIRST or not n & (SAMPLE_EVERY - 1)``).
    """
    return index < SAMPLE_FIRST or not index & (SAMPLE_EVERY - 1)


class WorkerLane:
    """One worker thread's record of its tasks, as columns; only that thread writes it.

    Per task, through the list appends :meth:`writers` returns: ``keys`` and
    ``starts`` when it starts, ``stops`` and ``nbytes`` when it ends (``nbytes``
    last, so a reader that counts ``nbytes`` takes only whole rows). A started
    row without a stop is the task running now. A task that fails ends its row
    with ``ERRED_ROW`` for a size (:meth:`ComputeRecorder.lane_task_erred`):
    only appends, so the reader never races the writer.

    ``cpu_samples``: ``(key, thread CPU seconds, wall seconds)`` of the tasks
    :func:`is_sampled` picks, appended as each ends; never taken by a batch
    (the advisor reads them once the compute has ended).
    """

    __slots__ = (
        "worker",
        "keys",
        "starts",
        "stops",
        "nbytes",
        "cpu_samples",
        "thread_id",
        "runqueue_at_start",
    )

    def __init__(self, worker: str, measure_runqueue: bool = False):
        self.worker = worker
        self.keys: list = []
        self.starts: list = []
        self.stops: list = []
        self.nbytes: list = []
        self.cpu_samples: list = []
        # The thread that writes the lane, and the seconds it had waited for a CPU
        # when the lane began (runqueue_wait): the advisor tells time lost to other
        # programs from time lost to the GIL. Read only when asked (20 µs a lane).
        self.thread_id = threading.get_native_id()
        self.runqueue_at_start = runqueue_wait(self.thread_id) if measure_runqueue else None

    def writers(self) -> tuple:
        """``(keys.append, starts.append, stops.append, nbytes.append)`` for the hot loop.

        Bound appends, called inline, cost a quarter of a method call per task.
        """
        return self.keys.append, self.starts.append, self.stops.append, self.nbytes.append

    def _take_rows(self) -> tuple[LaneRows | None, tuple | None]:
        """The rows finished since the last call, removed, and the running task's (key, start)."""
        n = len(self.nbytes)  # appended last: the other columns hold at least n rows
        rows = None
        if n:
            keys, starts, stops, nbytes = (
                self.keys[:n],
                self.starts[:n],
                self.stops[:n],
                self.nbytes[:n],
            )
            # Rows the thread appends meanwhile go to the end, so deleting the head is safe.
            del self.keys[:n], self.starts[:n], self.stops[:n], self.nbytes[:n]
            if ERRED_ROW in nbytes:  # recorded apart, as erred (ComputeRecorder.lane_task_erred)
                kept = [i for i, size in enumerate(nbytes) if size != ERRED_ROW]
                keys, starts, stops, nbytes = (
                    [column[i] for i in kept] for column in (keys, starts, stops, nbytes)
                )
            if keys:
                rows = LaneRows(self.worker, keys, starts, stops, nbytes)
        running = None
        finished = len(self.nbytes)
        if len(self.starts) > finished:  # only appended since: both columns hold that row
            running = (self.keys[finished], self.starts[finished])
        return rows, running


class ComputeRecorder:
    """The raw record of one compute: a buffer of tuples and the workers' lanes."""

    __slots__ = (
        "compute_id",
        "buffer",
        "groups_of",
        "cursor",
        "n_done",
        "closed",
        "lanes",
        "deliver_at",
        "graph",
        "measure_runqueue",
        "cpu_at_start",
        "cpu_at_end",
        "_bus",
        "_announced",
    )

    def __init__(self, compute_id: int, groups_of: dict, bus: EventBus, graph=None):
        self.compute_id = compute_id
        self.buffer: list = []
        self.groups_of = groups_of  # key -> group name
        self.cursor = 0  # how far the dispatcher has read buffer
        self.n_done = 0
        self.closed = False
        self.lanes: list[WorkerLane] = []
        # perf_counter time of the next delivery: a lane's thread that ends a task
        # after it calls deliver() (see EventBus, "Who delivers").
        self.deliver_at = perf_counter() + bus.interval
        # The graph (key -> TaskSpec) when the scheduler gave it: the advisor reads
        # which results each task took. Held only while the compute is recorded.
        self.graph = graph
        # Whether each lane reads its thread's runqueue wait (EventBus.measure_runqueue).
        self.measure_runqueue = bus.measure_runqueue
        # This process's CPU seconds (all threads) at the start and the end.
        self.cpu_at_start = process_time()
        self.cpu_at_end: float | None = None
        self._bus = bus
        self._announced: set = set()  # lane tasks already given a TaskStarted event

    def deliver(self) -> None:
        """Deliver what is new, here; a lane's thread calls it once ``deliver_at`` passed."""
        self._bus._deliver_due(self, blocking=False)

    def started(self, key, worker: str, t: float) -> None:
        self.buffer.append(("s", key, worker, t))

    def finished(self, key, worker: str, start: float, stop: float, result) -> None:
        self.buffer.append(("f", key, worker, start, stop, estimate_nbytes(result)))

    def erred(self, key, worker: str, start: float, stop: float, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {message_of(exc)}"
        self.buffer.append(("e", key, worker, start, stop, error))

    def lane_task_erred(self, lane: WorkerLane, key, exc: BaseException) -> None:
        """``lane``'s running task raised: end its row as erred and record the error."""
        stop = perf_counter()
        start = lane.starts[-1]
        lane.stops.append(stop)
        lane.nbytes.append(ERRED_ROW)
        self.erred(key, lane.worker, start, stop, exc)

    def lane(self, worker: str) -> WorkerLane:
        """A new lane for the calling thread, which records its tasks there.

        Per task: append to its columns (see :class:`WorkerLane`); a task that
        fails: :meth:`lane_task_erred`.
        """
        lane = WorkerLane(worker, self.measure_runqueue)
        self.lanes.append(lane)
        return lane

    def _take_batch(self) -> RawBatch:
        """What was recorded since the last call (the dispatcher's cursor moves on)."""
        end = len(self.buffer)
        items = self.buffer[self.cursor : end]
        self.cursor = end
        n_done = sum(1 for item in items if item[0] == "f")
        lanes = []
        running = []
        for lane in list(self.lanes):
            rows, current = lane._take_rows()
            if rows is not None:
                lanes.append(rows)
                n_done += len(rows.keys)
            if current is not None:
                running.append((current[0], lane.worker, current[1]))
        self.n_done += n_done
        return RawBatch(items, lanes, running)

    def _events_from_batch(self, batch: RawBatch) -> list:
        cid = self.compute_id
        groups_of = self.groups_of
        events: list = []
        append = events.append
        # tuple.__new__ skips the NamedTuple constructor's Python frame: this
        # loop runs for every task, on the GIL the workers also want.
        make = tuple.__new__
        for item in batch.items:
            tag = item[0]
            if tag == "s":
                _, key, worker, t = item
                append(make(TaskStarted, (cid, key, groups_of.get(key, "?"), worker, t)))
            elif tag == "f":
                _, key, worker, start, stop, nbytes = item
                append(
                    make(
                        TaskFinished,
                        (cid, key, groups_of.get(key, "?"), worker, start, stop, nbytes),
                    )
                )
            elif tag == "e":
                _, key, worker, start, stop, error = item
                self._announced.discard(key)
                append(
                    make(TaskErred, (cid, key, groups_of.get(key, "?"), worker, start, stop, error))
                )
            else:  # a ready-made Event
                append(item[1])
        announced = self._announced
        for worker, keys, starts, stops, nbytes in batch.lanes:
            # Built by map and zip, in C: a lane's rows are most of a compute's events.
            groups = list(map(groups_of.get, keys, repeat("?")))
            cids, workers = repeat(cid), repeat(worker)
            started = list(map(make, repeat(TaskStarted), zip(cids, keys, groups, workers, starts)))
            # Tasks a batch saw running were announced then: drop their second start.
            for index in sorted(
                (keys.index(key) for key in announced.intersection(keys)), reverse=True
            ):
                announced.discard(keys[index])
                del started[index]
            events += started
            events += map(
                make, repeat(TaskFinished), zip(cids, keys, groups, workers, starts, stops, nbytes)
            )
        for key, worker, start in batch.running:
            if key not in announced:
                announced.add(key)
                append(make(TaskStarted, (cid, key, groups_of.get(key, "?"), worker, start)))
        if batch.finished is not None:
            append(batch.finished)
        return events
