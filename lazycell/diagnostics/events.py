"""The event stream every scheduler emits and every view consumes.

::

    scheduler / worker threads                      dispatcher thread (a few Hz)
    ──────────────────────────                      ───────────────────────────
    recorder.buffer.append(("s", key, worker, t))  ─┐
    recorder.buffer.append(("f", key, ...))        ─┼─► drain new tuples, turn them
                                                     │   into Event objects, call
    compute ends: bus.end_compute(recorder) ────────┘   every listener with a batch

- ``EventBus``: the one process-wide bus (``BUS``). Holds the listeners and the
  recorders of computes in flight; owns the dispatcher thread while any
  compute is being recorded.
- ``ComputeRecorder``: one per compute, created only if someone listens. The
  hot path appends plain tuples to ``buffer`` (a list append: tens of
  nanoseconds, thread-safe under the GIL); nothing else happens there.
- Listeners are plain callables taking ``list[Event]``. They run on the
  dispatcher thread, or on the computing thread for the final batch, never two
  at once (``_delivery_lock``), so a view needs no locking of its own.

Why a pull model: views aggregate at their own pace and a slow view never
slows a task. When no one listens, ``start_compute`` returns ``None`` and the
schedulers skip even the appends.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Hashable
from contextlib import contextmanager
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


_BUILTIN_SIZED = frozenset({int, float, str, bytes, bool, type(None), tuple, list, dict, set})


def estimate_nbytes(value) -> int:
    """A cheap size estimate: ``nbytes`` for arrays and frames, else getsizeof."""
    if type(value) in _BUILTIN_SIZED:  # the common case, without an attribute miss
        return sys.getsizeof(value)
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    try:
        return sys.getsizeof(value)
    except Exception:
        return 0


class ComputeRecorder:
    """The buffer of one compute's raw event tuples (see module docstring)."""

    __slots__ = ("compute_id", "buffer", "groups_of", "cursor", "n_done", "closed")

    def __init__(self, compute_id: int, groups_of: dict):
        self.compute_id = compute_id
        self.buffer: list = []
        self.groups_of = groups_of  # key -> group name
        self.cursor = 0  # how far the dispatcher has read buffer
        self.n_done = 0
        self.closed = False

    def started(self, key, worker: str, t: float) -> None:
        self.buffer.append(("s", key, worker, t))

    def finished(self, key, worker: str, start: float, stop: float, result) -> None:
        self.buffer.append(("f", key, worker, start, stop, estimate_nbytes(result)))

    def erred(self, key, worker: str, start: float, stop: float, exc: BaseException) -> None:
        self.buffer.append(("e", key, worker, start, stop, f"{type(exc).__name__}: {exc}"))

    def _take_new_raw(self) -> list:
        """The tuples recorded since the last call (the dispatcher's cursor moves on)."""
        end = len(self.buffer)
        raw = self.buffer[self.cursor : end]
        self.cursor = end
        self.n_done += sum(1 for item in raw if item[0] == "f")
        return raw

    def _events_from_raw(self, raw: list) -> list:
        cid = self.compute_id
        groups_of = self.groups_of
        events: list = []
        append = events.append
        # tuple.__new__ skips the NamedTuple constructor's Python frame: this
        # loop runs for every task, on the GIL the workers also want.
        make = tuple.__new__
        for item in raw:
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
                append(
                    make(TaskErred, (cid, key, groups_of.get(key, "?"), worker, start, stop, error))
                )
            else:  # a ready-made Event
                append(item[1])
        return events


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
        self._ids = itertools.count(1)

    # -- listeners
    def subscribe(self, listener, raw: bool = False) -> Subscription:
        """``listener(events)``; with ``raw=True``, ``listener(recorder, tuples)``.

        Raw tuples are ``("s", key, worker, time)``, ``("f", key, worker,
        start, stop, nbytes)``, ``("e", key, worker, start, stop, error)`` and
        ``("event", GraphSubmitted | ComputeFinished)``; ``recorder.groups_of``
        maps keys to groups and ``recorder.compute_id`` names the compute. Raw
        listeners are also called at every dispatcher wake-up during a compute,
        with an empty list when nothing new was recorded (a clock tick).
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

        group_of = group_of or key_group
        groups_of = {}
        groups: dict = {}
        cache: dict = {}
        for key in keys:
            prefix = key[0] if type(key) is tuple and key else key
            # Keys of one group differ only in a trailing token ("inc-3f2a...",
            # ("sum-9c1e...", 4)): cache the group by what comes before it.
            cache_key = None
            if type(prefix) is str:
                head, sep, tail = prefix.rpartition("-")
                if sep and len(tail) >= 8 and not tail.strip("0123456789abcdef"):
                    cache_key = head
                else:
                    cache_key = prefix
                group = cache.get(cache_key)
            else:
                group = None
            if group is None:
                group = group_of(key)
                if cache_key is not None:
                    cache[cache_key] = group
            groups_of[key] = group
            groups[group] = groups.get(group, 0) + 1
        recorder = ComputeRecorder(next(self._ids), groups_of)
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
            if self._dispatcher is None or not self._dispatcher.is_alive():
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
            raw = recorder._take_new_raw()
            finished = ComputeFinished(recorder.compute_id, time.time(), status, recorder.n_done)
            raw.append(("event", finished))
            recorder.closed = True
            with self._lock:
                if recorder in self._recorders:
                    self._recorders.remove(recorder)
            self._deliver(recorder, raw)

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
        while True:
            time.sleep(self.interval)
            with self._lock:
                recorders = list(self._recorders)
                if not recorders:
                    self._dispatcher = None
                    return
            with self._delivery_lock:
                for recorder in recorders:
                    if not recorder.closed:
                        # Raw listeners hear every wake-up, empty or not: a view
                        # can redraw its clock from here instead of its own thread.
                        self._deliver(recorder, recorder._take_new_raw())

    def _deliver(self, recorder: ComputeRecorder, raw: list) -> None:
        with self._lock:
            listeners = list(self._listeners)
            raw_listeners = list(self._raw_listeners)
        calls = [(listener, (recorder, raw)) for listener in raw_listeners]
        if listeners and raw:
            events = recorder._events_from_raw(raw)
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
