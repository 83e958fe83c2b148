"""The kernel's half of the event feed: a dask cluster's task events, on lazycell's bus.

::

    dask scheduler                       client's event loop thread           the computing thread
    ──────────────                       ──────────────────────────           ────────────────────
    push (plugin.py, the usual way):
      log_event(topic, batch) ─────────► handle_event(batch) ─► deliver(items)
    poll (the cluster refused the plugin):
      task stream ◄──── get_task_stream(start_index) ◄────────────────────── catch_up(watch)
                                                                │
                          deliver(items): for the ComputeWatch whose graph holds the key:
                            "f" → recorder.started and .finished
                            "e" → watch.failures (the computing thread names the failure
                                  and records it, with the real exception)

- ``TaskEventFeed``: one per :class:`DaskClusterClient`. Registers the plugin
  and subscribes to its topic once; keeps the computes in flight (``watches``).
- ``ComputeWatch``: one compute: its dask graph (to recognise its keys), its
  recorder (None when no one listens: failures are still collected, they
  name the task that failed), the failures seen, and the offset from the
  scheduler's clock (``time.time()``) to lazycell's (``time.perf_counter()``).

Items are the plugin's lists: ``["f", key, worker, start, stop, nbytes]`` and
``["e", key, worker, start, stop, error]``. Keys come through msgpack, which
turns tuples into lists; :func:`key_from_message` turns them back.

Why push: the scheduler knows each task's end the moment it happens, and one
message a few times a second costs the kernel nothing while tasks run.
Polling the task stream is the fallback for clusters that refuse to
unpickle plugins: it costs a round trip to the scheduler every
``POLL_INTERVAL`` while a compute waits.
"""

from __future__ import annotations

import time
import uuid
import warnings
from time import perf_counter
from typing import NamedTuple

from lazycell.dask_cluster.convert import DaskGraph
from lazycell.dask_cluster.plugin import PLUGIN_PREFIX, make_event_plugin
from lazycell.events import BUS, ComputeRecorder

POLL_INTERVAL = 0.5  # seconds between task-stream polls (fallback only)


class TaskFailure(NamedTuple):
    """A task that failed on the cluster, as the event feed saw it."""

    key: object  # lazycell's key
    worker: str
    start: float  # perf_counter seconds
    stop: float
    error: str  # repr of the exception, from the worker


class _Sized:
    """A stand-in result for ``recorder.finished``: only its size crossed the network."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes: int):
        self.nbytes = nbytes


class ComputeWatch:
    """One compute whose task events the feed hands to its recorder."""

    def __init__(self, graph: DaskGraph, recorder: ComputeRecorder | None):
        self.graph = graph
        self.tasks = graph.tasks  # dask key -> node: "is this key ours?"
        self.recorder = recorder
        self.failures: list[TaskFailure] = []
        # Scheduler wall-clock seconds minus this, lazycell's perf_counter seconds
        # (the kernel's and the cluster's clocks are assumed in step, as dask does).
        self.clock_offset = time.time() - perf_counter()


class TaskEventFeed:
    """Task events of one dask client's computes, pushed by the plugin (or polled)."""

    def __init__(self, dask_client, interval: float = BUS.interval, mode: str = "push"):
        self.client = dask_client
        self.interval = interval
        self.watches: list[ComputeWatch] = []
        # One topic (and plugin) per feed: two feeds on one dask client must not
        # replace each other's plugin or subscription.
        self.topic = f"{PLUGIN_PREFIX}{dask_client.id}-{uuid.uuid4().hex[:8]}"
        self.mode = mode  # "push" or "poll"
        self._cursor = 0  # poll: the task stream's index read up to
        self._polled_at = 0.0

    def start(self) -> None:
        """Register the plugin and subscribe; fall back to polling, saying so, if refused."""
        if self.mode == "push":
            try:
                plugin = make_event_plugin(self.client.id, self.topic, self.interval)
                self.client.register_plugin(plugin, name=self.topic)
            except Exception as exc:
                warnings.warn(
                    f"lazycell: the dask scheduler at {self.client.scheduler.address} refused "
                    f"lazycell's event plugin ({type(exc).__name__}: {exc}); live progress "
                    f"comes from polling its task stream every {POLL_INTERVAL} s instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.mode = "poll"
            else:
                self.client.subscribe_topic(self.topic, self.handle_event)
                return
        # Reading the index sets the scheduler's task-stream plugin up from now on.
        self._cursor = self.client.sync(self.client.scheduler.get_task_stream_index)

    def close(self) -> None:
        """Stop the plugin and the subscription (the cluster keeps serving)."""
        if self.mode != "push" or self.client.status != "running":
            return
        try:
            self.client.unsubscribe_topic(self.topic)
            self.client.unregister_scheduler_plugin(self.topic)
        except Exception:  # the scheduler went away: the plugin went with it
            pass

    # -- computes
    def watch(self, graph: DaskGraph, recorder: ComputeRecorder | None) -> ComputeWatch:
        """Start handing the task events of ``graph`` to ``recorder`` (before submitting it)."""
        watch = ComputeWatch(graph, recorder)
        self.watches = [*self.watches, watch]  # replaced, not changed: the handler iterates it
        return watch

    def unwatch(self, watch: ComputeWatch) -> None:
        self.watches = [w for w in self.watches if w is not watch]

    def catch_up(self, watch: ComputeWatch, final: bool = False) -> None:
        """Polling only: read what the task stream has, at most every POLL_INTERVAL.

        ``final``: now, whatever the interval (a failure to name, a compute ending).
        Without a recorder only a failure needs the stream.
        """
        if self.mode != "poll" or (watch.recorder is None and not final):
            return
        now = perf_counter()
        if not final and now - self._polled_at < POLL_INTERVAL:
            return
        self._polled_at = now
        records = self.client.sync(self.client.scheduler.get_task_stream, start_index=self._cursor)
        self._cursor += len(records)
        self.deliver([item_from_task_stream(record) for record in records])

    # -- delivery (the client's event loop thread, or the computing thread when polling)
    def handle_event(self, event) -> None:
        """``subscribe_topic`` handler: ``event`` is ``(scheduler time, batch of items)``."""
        self.deliver(event[1])

    def deliver(self, items: list) -> None:
        watches = self.watches
        if not watches:
            return
        for item in items:
            key = item[1]
            if type(key) is list:
                key = key_from_message(key)
            for watch in watches:
                if key in watch.tasks:
                    _record(watch, item, key)
                    break


def _record(watch: ComputeWatch, item: list, dask_key) -> None:
    recorder = watch.recorder
    tag = item[0]
    offset = watch.clock_offset
    key = watch.graph.lazycell_key(dask_key)
    if tag == "f":
        if recorder is not None:
            _, _, worker, start, stop, nbytes = item
            start -= offset
            stop -= offset
            recorder.started(key, worker, start)
            recorder.finished(key, worker, start, stop, _Sized(nbytes))
    elif tag == "e":
        _, _, worker, start, stop, error = item
        watch.failures.append(TaskFailure(key, worker, start - offset, stop - offset, error))


def key_from_message(key):
    """A key as it was before msgpack turned its tuples into lists."""
    if type(key) is list:
        return tuple(key_from_message(part) for part in key)
    return key


def item_from_task_stream(record: dict) -> list:
    """A task-stream record (the fallback) as the plugin's item."""
    start = stop = time.time()
    for span in record.get("startstops", ()):
        if span.get("action") == "compute":
            start, stop = span["start"], span["stop"]
    if record.get("status") == "error":
        error = record.get("exception_text") or "exception"
        return ["e", record["key"], record.get("worker", ""), start, stop, error]
    return ["f", record["key"], record.get("worker", ""), start, stop, record.get("nbytes", 0)]
