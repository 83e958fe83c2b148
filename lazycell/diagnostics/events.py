"""The event stream every scheduler emits and every view consumes.

::

    scheduler / worker threads                      whoever delivers (a few Hz)
    ──────────────────────────                      ───────────────────────────
    recorder.buffer.append(("s", key, worker, t))  ─┐
    recorder.buffer.append(("f", key, ...))        ─┤
    a pool thread's lane:                           ├─► take what is new (a RawBatch),
      task starts: keys, starts.append              │   call raw listeners with it; turn
      task ends:   stops, nbytes.append             │   it into Event objects for the
                   past deliver_at? deliver here ───┤   others; every listener gets a batch
    dispatcher thread: deliver what lanes did not ──┤
    compute ends: bus.end_compute(recorder) ────────┘

Who delivers. A lane's thread that ends a task after the recorder's
``deliver_at`` delivers, there and then: it holds the GIL already. Any other
thread waking to deliver (the dispatcher) must take the GIL from busy workers,
and on a 10,000-task compute of small pure-Python tasks those hand-offs cost
about 2 % of its time (``benchmarks/bench_panel.py``). The dispatcher thread
delivers for computes without lanes (processes, clusters) every 1.5 intervals,
and stands by for those with: while their lanes deliver it wakes less and less
often (up to ``MAX_STANDBY_SLEEP``), and delivers itself once a delivery is
half an interval late, as when every worker is in a task longer than that.

- ``EventBus``: the one process-wide bus (``BUS``). Holds the listeners and the
  recorders of computes in flight; owns the dispatcher thread while any
  compute is being recorded.
- ``ComputeRecorder``: one per compute, created only if someone listens. Any
  caller records through ``started`` / ``finished`` / ``erred``, which append
  a plain tuple to ``buffer``. A scheduler that runs tasks on threads of its
  own asks for a ``WorkerLane`` per thread instead (``recorder.lane(worker)``).
- ``WorkerLane``: one thread's tasks as columns. A task that starts appends
  its key and start, one that ends its stop and size (``nbytes`` last, so a
  delivery reads only whole rows); a started row without an end is the task
  running now. No object the garbage collector tracks is created per task: a
  compute's tuples, alive until delivered, made the collector run more often
  (every 700 new objects), and every full collection walks the whole heap of
  the kernel.
- ``RawBatch``: what one delivery took: the buffer's tuples, each lane's
  finished rows, the lanes' running tasks, and the ComputeFinished at the end.
- Listeners are plain callables taking ``list[Event]``. They run on whichever
  thread delivers (above), or on the computing thread for the final batch,
  never two at once (``_delivery_lock``), so a view needs no locking of its own.

Why a pull model: views aggregate at their own pace and a slow view never
slows a task. When no one listens, ``start_compute`` returns ``None`` and the
schedulers skip even the appends.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from contextlib import contextmanager
from itertools import repeat
from operator import getitem, itemgetter
from time import perf_counter
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


# The longest the dispatcher sleeps while lanes' threads deliver (see EventBus).
MAX_STANDBY_SLEEP = 0.6

Event = GraphSubmitted | TaskStarted | TaskFinished | TaskErred | ComputeFinished
Listener = Callable[[list], None]


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


class WorkerLane:
    """One worker thread's record of its tasks, as columns; only that thread writes it.

    Per task, through the list appends :meth:`writers` returns: ``keys`` and
    ``starts`` when it starts, ``stops`` and ``nbytes`` when it ends (``nbytes``
    last, so a reader that counts ``nbytes`` takes only whole rows). A started
    row without a stop is the task running now. A task that fails ends its row
    with ``ERRED_ROW`` for a size (:meth:`ComputeRecorder.lane_task_erred`):
    only appends, so the reader never races the writer.
    """

    __slots__ = ("worker", "keys", "starts", "stops", "nbytes")

    def __init__(self, worker: str):
        self.worker = worker
        self.keys: list = []
        self.starts: list = []
        self.stops: list = []
        self.nbytes: list = []

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
        "_bus",
        "_announced",
    )

    def __init__(self, compute_id: int, groups_of: dict, bus: EventBus):
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
        self.buffer.append(("e", key, worker, start, stop, f"{type(exc).__name__}: {exc}"))

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
        lane = WorkerLane(worker)
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


def group_keys(keys, group_of) -> dict:
    """``{key: group_of(key)}``, calling ``group_of`` about once per group, not per key.

    Keys of one group differ only in a trailing token (``"inc-3f2a..."``,
    ``("sum-9c1e...", 4)``): the group is cached by what comes before it.
    """
    keys = list(keys)
    fast = _group_token_keys(keys, group_of)
    if fast is not None:
        return fast
    groups_of: dict = {}
    cache: dict = {}
    hex_digits = "0123456789abcdef"
    for key in keys:
        prefix = key[0] if type(key) is tuple and key else key
        if type(prefix) is str:
            head, sep, tail = prefix.rpartition("-")
            cache_key = head if sep and len(tail) >= 8 and not tail.strip(hex_digits) else prefix
            group = cache.get(cache_key)
            if group is None:
                group = cache[cache_key] = group_of(key)
        else:
            group = group_of(key)
        groups_of[key] = group
    return groups_of


def _group_token_keys(keys: list, group_of) -> dict | None:
    """:func:`group_keys` for the common case, string keys that all end in a token, in C loops.

    ``"inc-3f2a..."``: everything before the last ``-`` names the group when
    every tail is at least 8 hex digits. None when the keys are anything else.
    """
    if not keys or set(map(type, keys)) != {str}:
        return None
    return _group_equal_token_keys(keys, group_of) or _group_mixed_token_keys(keys, group_of)


def _group_equal_token_keys(keys: list, group_of) -> dict | None:
    """Keys whose tokens all have the first key's length (lazycell's and dask's: 32 digits).

    Slices only: no tuple per key, which would cost the garbage collector a pass
    every 700 keys.
    """
    first = keys[0]
    width = len(first) - first.rfind("-")  # the "-" and the token after it
    if not 9 <= width <= len(first):
        return None
    n = len(keys)
    ends = "".join(map(getitem, keys, repeat(slice(-width, None))))
    # Every key long enough, a "-" at the start of each end and nowhere else,
    # the rest hex digits.
    if len(ends) != width * n or ends.count("-") != n or ends[::width].count("-") != n:
        return None
    if not ends.isascii() or ends.encode().translate(None, b"-0123456789abcdef"):
        return None
    heads = list(map(getitem, keys, repeat(slice(None, -width))))
    token = first[-width:]
    group_of_head = {head: group_of(head + token) for head in set(heads)}
    return dict(zip(keys, map(group_of_head.__getitem__, heads)))


def _group_mixed_token_keys(keys: list, group_of) -> dict | None:
    """Keys ending in tokens of different lengths."""
    parts = list(map(str.rpartition, keys, repeat("-")))
    if set(map(itemgetter(1), parts)) != {"-"}:
        return None  # a key without "-": no token to strip
    tails = list(map(itemgetter(2), parts))
    if min(map(len, tails)) < 8:
        return None
    try:
        if "".join(tails).encode("ascii").translate(None, b"0123456789abcdef"):
            return None  # some tail is not a token
    except UnicodeEncodeError:
        return None
    heads = list(map(itemgetter(0), parts))
    one_key_per_head = dict(zip(heads, keys))
    group_of_head = {head: group_of(key) for head, key in one_key_per_head.items()}
    return dict(zip(keys, map(group_of_head.__getitem__, heads)))


class Subscription:
    """Returned by :func:`subscribe`; ``close()`` (or leaving ``with``) stops delivery."""

    def __init__(self, bus: EventBus, listener: Listener):
        self._bus = bus
        self.listener = listener

    def close(self) -> None:
        self._bus._remove(self.listener)
        self._bus._remove_raw(self.listener)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventBus:
    """Process-wide registry of listeners and computes in flight."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self._listeners: list[Listener] = []
        # Raw listeners take (recorder, tuples) as recorded, skipping the event
        # objects: for views that fold every task, on the workers' GIL.
        self._raw_listeners: list = []
        self._recorders: list[ComputeRecorder] = []
        self._lock = threading.Lock()  # guards _listeners, _recorders, _dispatcher
        self._delivery_lock = threading.RLock()  # one delivery at a time
        self._dispatcher: threading.Thread | None = None
        self._compute_started = threading.Event()  # wakes a dispatcher standing by
        self._ids = itertools.count(1)

    # -- listeners
    def subscribe(self, listener, raw: bool = False) -> Subscription:
        """``listener(events)``; with ``raw=True``, ``listener(recorder, batch)``.

        ``batch`` is a :class:`RawBatch`. Its ``items`` are tuples ``("s", key,
        worker, time)``, ``("f", key, worker, start, stop, nbytes)``, ``("e",
        key, worker, start, stop, error)`` and ``("event", GraphSubmitted)``;
        its ``lanes`` the same finished tasks as columns; ``recorder.groups_of``
        maps keys to groups and ``recorder.compute_id`` names the compute. Raw
        listeners hear every delivery during a compute (a few per second), with
        an empty batch when nothing new was recorded (a clock tick).
        """
        with self._lock:
            (self._raw_listeners if raw else self._listeners).append(listener)
        return Subscription(self, listener)

    def _remove(self, listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _remove_raw(self, listener) -> None:
        with self._lock:
            if listener in self._raw_listeners:
                self._raw_listeners.remove(listener)

    @property
    def listening(self) -> bool:
        return bool(self._listeners or self._raw_listeners)

    # -- computes
    def start_compute(
        self, keys, scheduler: str, n_workers: int, group_of=None
    ) -> ComputeRecorder | None:
        """Announce a compute of ``keys``; returns its recorder, or None if no one listens."""
        if not self.listening:
            return None
        from lazycell.graph.spec import key_group

        groups_of = group_keys(keys, group_of or key_group)
        groups = dict(Counter(groups_of.values()))  # in order of first appearance
        recorder = ComputeRecorder(next(self._ids), groups_of, self)
        recorder.buffer.append(
            (
                "event",
                GraphSubmitted(
                    recorder.compute_id, time.time(), len(groups_of), groups, scheduler, n_workers
                ),
            )
        )
        with self._lock:
            self._recorders.append(recorder)
            if self._dispatcher is not None and self._dispatcher.is_alive():
                self._compute_started.set()
            else:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name="lazycell-events", daemon=True
                )
                self._dispatcher.start()
        return recorder

    def end_compute(self, recorder: ComputeRecorder | None, status: str) -> None:
        """Deliver the rest of a compute's events, then its ComputeFinished, synchronously."""
        if recorder is None:
            return
        with self._delivery_lock:
            batch = recorder._take_batch()
            finished = ComputeFinished(recorder.compute_id, time.time(), status, recorder.n_done)
            # The compute is over: whatever a lane still calls running was cut short.
            batch = batch._replace(running=[], finished=finished)
            recorder.closed = True
            with self._lock:
                if recorder in self._recorders:
                    self._recorders.remove(recorder)
            self._deliver(recorder, batch)

    @contextmanager
    def recording(self, keys, scheduler: str, n_workers: int):
        """``with BUS.recording(order, name, n) as recorder:`` around one compute.

        Yields the recorder (None when no one listens) and always closes the
        compute with status "ok", "error" or "cancelled" (KeyboardInterrupt).
        """
        recorder = self.start_compute(keys, scheduler, n_workers)
        status = "error"
        try:
            yield recorder
            status = "ok"
        except KeyboardInterrupt:
            status = "cancelled"
            raise
        finally:
            self.end_compute(recorder, status)

    def _dispatch_loop(self) -> None:
        # Half an interval off the lanes' beat, so that they deliver first.
        sleep = self.interval * 1.5
        while True:
            if self._compute_started.wait(sleep):
                self._compute_started.clear()
                sleep = self.interval * 1.5
                continue
            with self._lock:
                recorders = list(self._recorders)
                if not recorders:
                    self._dispatcher = None
                    return
            standing_by = True
            now = perf_counter()
            for recorder in recorders:
                # Lanes deliver as soon as a task ends past deliver_at: half an
                # interval later without a delivery, every worker is in a long task.
                if recorder.lanes and now < recorder.deliver_at + self.interval / 2:
                    continue
                standing_by = False
                self._deliver_due(recorder, blocking=True)
            sleep = min(sleep * 2, MAX_STANDBY_SLEEP) if standing_by else self.interval * 1.5

    def _deliver_due(self, recorder: ComputeRecorder, blocking: bool) -> None:
        """Deliver ``recorder``'s new batch if its time came and no delivery is under way."""
        if not self._delivery_lock.acquire(blocking=blocking):
            return  # another thread is delivering right now
        try:
            now = perf_counter()
            if recorder.closed or now < recorder.deliver_at:
                return
            recorder.deliver_at = now + self.interval
            # Raw listeners hear every delivery, empty or not: a view can redraw
            # its clock from here instead of its own thread.
            self._deliver(recorder, recorder._take_batch())
        finally:
            self._delivery_lock.release()

    def _deliver(self, recorder: ComputeRecorder, batch: RawBatch) -> None:
        with self._lock:
            listeners = list(self._listeners)
            raw_listeners = list(self._raw_listeners)
        calls = [(listener, (recorder, batch)) for listener in raw_listeners]
        if listeners:
            events = recorder._events_from_batch(batch)
            if events:
                calls += [(listener, (events,)) for listener in listeners]
        for listener, args in calls:
            try:
                listener(*args)
            except Exception as exc:  # a broken view must never break a compute
                print(f"lazycell: event listener {listener!r} failed: {exc!r}", file=sys.stderr)


BUS = EventBus()


def subscribe(listener: Listener) -> Subscription:
    """Call ``listener(events)`` with batches of events from every compute.

    Batches arrive a few times per second from a background thread, and once
    more, with the final :class:`ComputeFinished`, before the compute returns.

    >>> seen = []
    >>> with lc.diagnostics.subscribe(seen.extend):
    ...     lc.delayed(sum)([1, 2]).compute()
    """
    return BUS.subscribe(listener)
