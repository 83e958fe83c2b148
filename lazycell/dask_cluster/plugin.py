"""The scheduler's half of the event feed: a plugin that batches one client's task transitions.

::

    dask scheduler, on its event loop                      the kernel (events.py)
    ─────────────────────────────────                      ──────────────────────
    update_graph(client=ours, tasks, keys):
      watched |= tasks; count the outputs not done yet
    transition(key, ...) of a watched key:
      processing → memory buffer ["f", key, worker, start, stop, nbytes]
      processing → erred  buffer ["e", key, worker, start, stop, repr(exception)]
    every ``interval`` seconds, at once on an error, and
    when a graph's last output is done:
      scheduler.log_event(topic, buffer) ───────────────► client.subscribe_topic(topic, handler)

Why the immediate sends: the scheduler tells the client that an output is in
memory (or erred) on the same ordered stream, *after* the transitions that
caused it, so the batch holding a compute's last tasks reaches the kernel
before the compute's results do: the compute ends with every event in.

Only ends are sent, each with its start: the scheduler never learns when a
worker starts a task (``processing`` means "sent to a worker", maybe queued
there), so a start sent on its own would be a guess.

Times are the scheduler's ``time()`` seconds; a worker's ``startstops`` are
moved onto that clock with the scheduler's estimate of the worker's clock
offset. A message is plain lists of keys, strings and numbers (msgpack:
tuple keys come back as lists).

Shipping. The scheduler of someone else's cluster has dask, not lazycell, so
the plugin's class is built inside :func:`make_event_plugin` and pickled by
value (cloudpickle takes any class it cannot import by name): its methods use
only their closure and dask's own modules, never this module's globals.
"""

from __future__ import annotations

from typing import Any

PLUGIN_PREFIX = "lazycell-events-"


def make_event_plugin(client_id: str, topic: str, interval: float = 0.2):
    """A ``SchedulerPlugin`` that sends the task events of ``client_id``'s graphs to ``topic``.

    >>> client.register_plugin(make_event_plugin(client.id, topic), name=topic)
    """
    import time

    from distributed.diagnostics.plugin import SchedulerPlugin
    from tornado.ioloop import PeriodicCallback

    clock = time.time
    done_states = ("memory", "erred")

    class LazycellEventPlugin(SchedulerPlugin):
        """Batches the transitions of one client's tasks and logs them on one topic."""

        name = topic

        def __init__(self):
            self.scheduler: Any = None  # set by start()
            self.watched: set = set()  # keys of this client's graphs
            self.outputs: dict = {}  # output key -> [remaining outputs of its graph], shared
            self.buffer: list = []
            self.callback: Any = None

        async def start(self, scheduler) -> None:
            self.scheduler = scheduler
            self.callback = PeriodicCallback(self.send_periodically, interval * 1000)
            self.callback.start()

        def send_periodically(self) -> None:
            scheduler = self.scheduler
            if scheduler.plugins.get(self.name) is not self:  # unregistered or replaced
                self.callback.stop()
                return
            self.send()

        def send(self) -> None:
            if self.buffer:
                batch, self.buffer = self.buffer, []
                self.scheduler.log_event(topic, batch)

        def update_graph(self, scheduler, *, client, keys, tasks, **kwargs) -> None:
            if client != client_id:
                return
            self.watched.update(tasks)
            known = scheduler.tasks
            pending = [
                key for key in keys if key not in known or known[key].state not in done_states
            ]
            if pending:
                remaining = [len(pending)]  # one counter, shared by the graph's outputs
                for key in pending:
                    self.outputs.setdefault(key, []).append(remaining)

        def transition(self, key, start, finish, *args, **kwargs) -> None:
            if key not in self.watched:
                return
            if start == "processing" and finish in done_states:
                worker = kwargs.get("worker", "")
                begin, end = self.compute_times(worker, kwargs.get("startstops") or ())
                if finish == "memory":
                    self.buffer.append(["f", key, worker, begin, end, kwargs.get("nbytes", 0)])
                else:
                    error = kwargs.get("exception_text") or "exception"
                    self.buffer.append(["e", key, worker, begin, end, error])
                last_output = self.output_done(key)
                if finish == "erred" or last_output:
                    self.send()
            elif finish == "forgotten":
                self.watched.discard(key)
                self.outputs.pop(key, None)

        def output_done(self, key) -> bool:
            """Count ``key`` off its graphs' outputs; True if it was some graph's last."""
            counters = self.outputs.pop(key, None)
            last = False
            for remaining in counters or ():
                remaining[0] -= 1
                last |= remaining[0] == 0
            return last

        def compute_times(self, worker: str, startstops) -> tuple:
            """The task's compute start and stop, on the scheduler's clock."""
            for span in startstops:
                if span.get("action") == "compute":
                    state = self.scheduler.workers.get(worker)
                    delay = getattr(state, "time_delay", 0) or 0
                    return span["start"] + delay, span["stop"] + delay
            now = clock()
            return now, now

        def remove_client(self, scheduler, client) -> None:
            # The client is gone: so is anyone to send to. Leave no plugin behind.
            if client == client_id and scheduler.plugins.get(self.name) is self:
                scheduler.remove_plugin(name=self.name)
                self.callback.stop()

        def restart(self, scheduler) -> None:
            self.watched.clear()
            self.outputs.clear()
            self.buffer.clear()

    return LazycellEventPlugin()
