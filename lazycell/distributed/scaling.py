"""How many workers the cluster should have: ``cluster.adapt`` and retiring workers.

::

    scheduler thread, every ADAPT_INTERVAL                       workers
    ──────────────────────────────────────                       ───────
    Adaptive.decide(scheduler) ─► desired number of workers
      more than live:  add_worker() ...                  ──────► new processes
      fewer, and a worker idle for idle_timeout:
        retire(worker): state "retiring", gets no tasks
          its running tasks finish, then its results
          are copied to the others: ("gather-from", …) ────────► peers fetch them
          ("gathered", …): who_has moves to the copy  ◄────────
          then ("stop",): the plugins' teardown runs  ─────────► exits

Policy (``Adaptive``): the queued work is the expected run time of every
ready task plus what workers already hold in their queues; the cluster wants
one worker per ``target_duration`` seconds of it (so work that would take
longer than that on the current workers gets more of them), never fewer
workers than are busy, and between ``minimum`` and ``maximum``. It grows at
once; it shrinks only by workers idle for ``idle_timeout`` seconds, so a
pause between two cells does not throw workers (and their start-up time)
away. Retiring never loses a result: each is copied to a remaining worker
first and the scheduler points at the copy; nothing is recomputed.
"""

from __future__ import annotations

import math
import time

ADAPT_INTERVAL = 0.25


def check_worker_count(value, call: str) -> None:
    """A number of workers must be a whole number >= 0 (``call`` names the argument)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{call}: the number of workers must be a whole number >= 0")


class Adaptive:
    """The adaptive policy's settings and the idle clocks it keeps."""

    def __init__(
        self, minimum: int, maximum: int | None, idle_timeout: float, target_duration: float
    ):
        # The defaults are LocalCluster.adapt's, the one caller.
        if maximum is None:
            maximum = 2**31
        for name, value in (("minimum", minimum), ("maximum", maximum)):
            check_worker_count(value, f"adapt({name}={value!r})")
        if maximum < minimum:
            raise ValueError(f"adapt(minimum={minimum}, maximum={maximum}): maximum < minimum")
        if maximum == 0:
            raise ValueError("adapt(maximum=0) could never run a task; use a maximum of 1 or more")
        for name, value in (("idle_timeout", idle_timeout), ("target_duration", target_duration)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"adapt({name}={value!r}): must be a positive number of seconds")
        self.options = {
            "minimum": minimum,
            "maximum": maximum if maximum < 2**31 else None,
            "idle_timeout": float(idle_timeout),
            "target_duration": float(target_duration),
        }
        self.minimum = minimum
        self.maximum = maximum
        self.idle_timeout = float(idle_timeout)
        self.target_duration = float(target_duration)
        self.idle_since: dict = {}  # worker name -> monotonic time it last had no tasks
        self.last_check = 0.0

    def due(self, now: float) -> bool:
        if now - self.last_check < ADAPT_INTERVAL:
            return False
        self.last_check = now
        return True

    def desired_workers(self, scheduler) -> int:
        """How many workers the queued work calls for (see the module docstring)."""
        live = scheduler.live_workers()
        ready_seconds = len(scheduler.ready) * (
            scheduler.mean_task_seconds or scheduler.guessed_task_seconds()
        )
        queued = ready_seconds + sum(w.queued_seconds for w in live)
        wanted = math.ceil(queued / self.target_duration) if queued > 0 else 0
        busy = sum(1 for w in live if w.processing)
        return max(self.minimum, min(self.maximum, max(wanted, busy)))

    def idle_workers(self, scheduler, now: float) -> list:
        """Workers with no task for ``idle_timeout`` seconds, longest idle first."""
        idle = []
        seen = set()
        for worker in scheduler.live_workers():
            seen.add(worker.name)
            if worker.processing or worker.state != "running":
                self.idle_since.pop(worker.name, None)
                continue
            since = self.idle_since.setdefault(worker.name, now)
            if now - since >= self.idle_timeout:
                idle.append((since, worker))
        for name in list(self.idle_since):
            if name not in seen:
                del self.idle_since[name]
        return [worker for _, worker in sorted(idle, key=lambda pair: pair[0])]

    def adapt(self, scheduler) -> None:
        """One step: start workers the queue calls for, retire long-idle ones."""
        now = time.monotonic()
        if not self.due(now):
            return
        desired = self.desired_workers(scheduler)
        live = len(scheduler.live_workers())
        if desired > live:
            for _ in range(desired - live):
                scheduler.add_worker()
            scheduler.n_workers = desired
            return
        surplus = live - max(desired, self.minimum)
        if surplus <= 0:
            return
        retiring = self.idle_workers(scheduler, now)[:surplus]
        if len(retiring) == live and any(w.has_what for w in retiring):
            retiring.pop()  # the last worker keeps the results: nowhere to move them
        for worker in retiring:
            scheduler.retire(worker)
        scheduler.n_workers = live - len(retiring)
