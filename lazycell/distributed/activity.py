"""What the cluster has been doing, for the dashboard and the client's panel.

The scheduler thread calls :class:`ClusterActivity` as tasks arrive, finish
and fail; views read it through ``snapshot()`` run on the scheduler thread
(``scheduler.call``), so it needs no lock. It covers every task the cluster
runs — ``submit``, ``map``, ``persist`` and ``lc.compute`` alike — unlike the
event bus, which records one compute at a time and only while someone listens.

- ``groups``: task group (function name / key prefix) -> counts of tasks
  added, finished and erred since the cluster started (or was restarted);
- ``stream``: the last ``STREAM_LENGTH`` finished or failed tasks as
  ``(key, group, worker, start, stop, erred)``, times on ``time.perf_counter``'s
  clock, which every process of this machine shares.

Cost on the scheduler's hot path: a dict lookup, two integer additions and
a bounded deque append per task.
"""

from __future__ import annotations

import time
from collections import deque

from lazycell.graph.spec import key_group

STREAM_LENGTH = 2000


class GroupCounts:
    """Tasks of one group: ever added, finished and erred."""

    __slots__ = ("added", "finished", "erred")

    def __init__(self):
        self.added = 0
        self.finished = 0
        self.erred = 0


class ClusterActivity:
    """Counts per task group and the recent task stream (see the module docstring)."""

    def __init__(self):
        self.origin = time.perf_counter()
        self.origin_wall = time.time()
        self.groups: dict[str, GroupCounts] = {}
        self.stream: deque = deque(maxlen=STREAM_LENGTH)

    def _counts(self, group: str) -> GroupCounts:
        counts = self.groups.get(group)
        if counts is None:
            counts = self.groups[group] = GroupCounts()
        return counts

    def tasks_added(self, keys) -> None:
        for key in keys:
            self._counts(key_group(key)).added += 1

    def task_finished(self, key, group: str, worker: str, start: float, stop: float) -> None:
        self._counts(group).finished += 1
        self.stream.append((key, group, worker, start, stop, False))

    def task_erred(self, key, group: str, worker: str, start: float, stop: float) -> None:
        self._counts(group).erred += 1
        self.stream.append((key, group, worker, start, stop, True))

    def task_erred_unrun(self, key) -> None:
        """A task failed without running: an input failed, or it could not be sent."""
        self._counts(key_group(key)).erred += 1

    def task_dropped(self, key) -> None:
        """A task was forgotten before it ran (cancelled, released): out of the totals."""
        self._counts(key_group(key)).added -= 1

    def task_erred_retried(self, key) -> None:
        """A failed task runs again (``client.retry``): out of the failures."""
        self._counts(key_group(key)).erred -= 1

    def task_rerun(self, key) -> None:
        """A finished task runs again (its result was lost or released and is needed)."""
        self._counts(key_group(key)).finished -= 1

    def snapshot(self, scheduler) -> dict:
        """Plain data (JSON-able) of the activity and the scheduler's current task states.

        ``groups[g]`` has ``total`` (tasks added), ``done``, ``erred``,
        ``processing`` (sent to a worker), ``waiting`` (waiting or ready),
        ``in_memory``; ``totals`` sums them; ``task_stream`` lists dicts with
        ``key``, ``group``, ``worker``, ``start``, ``stop`` (seconds since
        the cluster started) and ``erred``.
        """
        now_states: dict[str, dict] = {}
        for ts in scheduler.tasks.values():
            group = ts.group or key_group(ts.key)
            ts.group = group
            states = now_states.setdefault(group, {"processing": 0, "waiting": 0, "in_memory": 0})
            if ts.state == "processing":
                states["processing"] += 1
            elif ts.state in ("waiting", "ready"):
                states["waiting"] += 1
            elif ts.state == "memory":
                states["in_memory"] += 1
        groups = {}
        for name, counts in self.groups.items():
            states = now_states.get(name, {"processing": 0, "waiting": 0, "in_memory": 0})
            groups[name] = {
                "total": counts.added,
                "done": counts.finished,
                "erred": counts.erred,
                **states,
            }
        totals = {
            field: sum(g[field] for g in groups.values())
            for field in ("total", "done", "erred", "processing", "waiting", "in_memory")
        }
        origin = self.origin
        stream = [
            {
                "key": str(key),
                "group": group,
                "worker": worker,
                "start": start - origin,
                "stop": stop - origin,
                "erred": erred,
            }
            for key, group, worker, start, stop, erred in self.stream
        ]
        return {
            "now": time.perf_counter() - origin,
            "started_at": self.origin_wall,
            "groups": groups,
            "totals": totals,
            "task_stream": stream,
        }
