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
from collections.abc import Callable
from contextlib import contextmanager
from time import perf_counter

from lazycell.events.groups import group_keys
from lazycell.events.recording import ComputeRecorder, RawBatch
from lazycell.events.types import ComputeFinished, GraphSubmitted, Listener
from lazycell.graph.spec import key_group

# The longest the dispatcher sleeps while lanes' threads deliver (see EventBus).
MAX_STANDBY_SLEEP = 0.6


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
        # Whether new computes' lanes read their threads' runqueue wait (for the advisor).
        self.measure_runqueue = False
        self._ids = itertools.count(1)

    # -- listeners
    def subscribe(self, listener, raw: bool = False, first: bool = False) -> Subscription:
        """``listener(events)``; with ``raw=True``, ``listener(recorder, batch)``.

        ``first=True`` puts a raw listener before those already there: one that
        other views ask about a batch (the advisor) folds it before they see it.

        ``batch`` is a :class:`RawBatch`. Its ``items`` are tuples ``("s", key,
        worker, time)``, ``("f", key, worker, start, stop, nbytes)``, ``("e",
        key, worker, start, stop, error)`` and ``("event", GraphSubmitted)``;
        its ``lanes`` the same finished tasks as columns; ``recorder.groups_of``
        maps keys to groups and ``recorder.compute_id`` names the compute. Raw
        listeners hear every delivery during a compute (a few per second), with
        an empty batch when nothing new was recorded (a clock tick).
        """
        with self._lock:
            listeners = self._raw_listeners if raw else self._listeners
            if first:
                listeners.insert(0, listener)
            else:
                listeners.append(listener)
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
        self, keys, scheduler: str, n_workers: int, group_of=None, graph=None
    ) -> ComputeRecorder | None:
        """Announce a compute of ``keys``; returns its recorder, or None if no one listens.

        ``graph`` (key -> TaskSpec), if given, is kept on the recorder while the
        compute is recorded, for listeners that look at which task took what.
        """
        if not self.listening:
            return None
        groups_of = group_keys(keys, group_of or key_group)
        groups = dict(Counter(groups_of.values()))  # in order of first appearance
        recorder = ComputeRecorder(next(self._ids), groups_of, self, graph)
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
        recorder.cpu_at_end = time.process_time()
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
            recorder.graph = None  # the results it could reach are the caller's now

    @contextmanager
    def recording(self, keys, scheduler: str, n_workers: int, graph=None):
        """``with BUS.recording(order, name, n) as recorder:`` around one compute.

        Yields the recorder (None when no one listens) and always closes the
        compute with status "ok", "error" or "cancelled" (KeyboardInterrupt).
        ``graph``: see :meth:`start_compute`.
        """
        recorder = self.start_compute(keys, scheduler, n_workers, graph=graph)
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
        calls: list[tuple[Callable, tuple]] = [
            (listener, (recorder, batch)) for listener in raw_listeners
        ]
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
