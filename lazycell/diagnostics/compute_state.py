"""What a view needs to know about a compute, folded from the event stream.

::

    delivering thread (a few Hz, see events.py) / computing thread (final batch)
    ────────────────────────────────────────────────────────────────────────────
    raw batch ──► ComputeTracker.on_raw ──► ComputeState.apply_batch(batch, groups_of)
                                     └─► on_change(state)

This is the one fold of the stream: the notebook panel, the text bar and the
performance report all read a ``ComputeState``. It takes a batch in the two
shapes the recorder writes (``lazycell.events.recording``): tuples, one per
task, folded by ``apply_raw``; and a lane's columns, folded a column at a
time by ``_lane_rows_finished``.

- ``ComputeState``: one compute. ``groups`` (name -> :class:`GroupProgress`),
  ``tasks_per_worker`` (worker -> tasks finished there), ``task_stream``
  (:class:`TaskBar` rows, thinned), ``progress_timeline`` ((seconds, done)
  after each batch), ``errors``, and when it started, stopped and how it ended.
- ``ComputeTracker``: subscribes to the bus and keeps the states of the
  computes it saw, oldest first. Views read them; only the bus writes them, one
  batch at a time, so readers on other threads see whole numbers, at worst a
  batch old.

Clocks: task times come from ``time.perf_counter`` (system-wide monotonic, so
comparable across the kernel and its worker processes); a state's times are
seconds since its ``GraphSubmitted``, converted to that clock once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from math import fsum
from operator import sub
from typing import NamedTuple

from lazycell.events import (
    BUS,
    ComputeFinished,
    GraphSubmitted,
)

# A Gantt chart of more bars than this stays readable and the browser stays fast.
MAX_TASK_STREAM_BARS = 5000


@dataclass
class GroupProgress:
    """Progress of one task group (function name / key prefix)."""

    total: int
    done: int = 0
    running: int = 0
    erred: int = 0
    seconds: float = 0.0  # summed run time of its finished and erred tasks

    @property
    def fraction_done(self) -> float:
        return self.done / self.total if self.total else 1.0


class TaskBar(NamedTuple):
    """One task on the task stream: seconds since the compute started."""

    worker: str
    start: float
    stop: float
    group: str
    erred: bool


class ThinnedStream:
    """Keeps at most ``limit`` bars spread evenly over a compute of any size.

    When full, every other bar is dropped and from then on only every
    ``stride``-th new bar is kept (the stride doubles each time), so the
    chart keeps the shape of the whole compute at a bounded cost. Given the
    number of bars to ``expect``, it starts at the stride that fits them
    under the limit, and builds no bar only to drop it later.
    """

    def __init__(self, limit: int = MAX_TASK_STREAM_BARS, expect: int = 0):
        self.limit = limit
        self.bars: list[TaskBar] = []
        self.stride = max(1, -(-expect // max(limit - 1, 1)))
        self.seen = 0

    def add(self, bar: TaskBar) -> None:
        index = self.seen  # kept bars are those whose index is a multiple of stride
        self.seen += 1
        if index % self.stride:
            return
        self.keep(bar)

    def add_rows(self, worker: str, starts: list, stops: list, groups: list, origin: float) -> None:
        """``add`` for a lane's rows (see ``events.LaneRows``): only the kept bars are built."""
        seen = self.seen
        end = seen + len(starts)
        stride = self.stride
        index = -(-seen // stride) * stride  # the first index >= seen that is kept
        bars = self.bars
        make = tuple.__new__  # skips the NamedTuple constructor's Python frame
        while index < end:
            i = index - seen
            bars.append(
                make(TaskBar, (worker, starts[i] - origin, stops[i] - origin, groups[i], False))
            )
            if len(bars) >= self.limit:  # thin out, as keep does
                bars = self.bars = bars[::2]
                stride = self.stride = stride * 2
            index = (index // stride + 1) * stride
        self.seen = end

    def keep(self, bar: TaskBar) -> None:
        """Append a bar that passed the stride test; thin out when full."""
        self.bars.append(bar)
        if len(self.bars) >= self.limit:
            self.bars = self.bars[::2]
            self.stride *= 2


@dataclass
class ComputeState:
    """One compute's progress, as every view sees it (see module docstring)."""

    compute_id: int
    scheduler: str
    n_workers: int
    n_tasks: int
    groups: dict[str, GroupProgress]
    started_at: float  # perf_counter clock
    wall_started_at: float  # time.time clock, for reports
    stopped_at: float | None = None
    status: str = "running"  # then "ok", "error" or "cancelled"
    tasks_per_worker: dict[str, int] = field(default_factory=dict)
    stream: ThinnedStream = field(default_factory=ThinnedStream)
    progress_timeline: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: int = 0
    running: int = 0
    erred: int = 0
    # group -> tasks the lanes said were running at the last batch (see apply_batch)
    lanes_running: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_submitted(cls, event: GraphSubmitted, stream_limit: int = MAX_TASK_STREAM_BARS):
        clock_offset = time.time() - time.perf_counter()
        return cls(
            compute_id=event.compute_id,
            scheduler=event.scheduler,
            n_workers=event.n_workers,
            n_tasks=event.n_tasks,
            groups={name: GroupProgress(total) for name, total in event.groups.items()},
            started_at=event.time - clock_offset,
            wall_started_at=event.time,
            stream=ThinnedStream(stream_limit, expect=event.n_tasks),
            progress_timeline=[(0.0, 0)],
        )

    # -- folding a batch in

    def apply_batch(self, batch, groups_of: dict) -> None:
        """Fold one ``events.RawBatch`` of this compute (what ``ComputeTracker.on_raw`` gets)."""
        # The lanes' running tasks are a snapshot: take back the last one first,
        # so a task that erred since is not ended twice.
        self._count_lanes_running({})
        if batch.items:
            self.apply_raw(batch.items, groups_of)
        for rows in batch.lanes:
            self._lane_rows_finished(rows, groups_of)
        if batch.finished is not None:
            self._compute_finished(batch.finished)
        elif batch.running:
            running: dict[str, int] = {}
            for key, _worker, _start in batch.running:
                name = groups_of.get(key, "?")
                running[name] = running.get(name, 0) + 1
            self._count_lanes_running(running)

    def _count_lanes_running(self, running: dict[str, int]) -> None:
        """Replace the lanes' running counts of the last batch by ``running``."""
        for name, n in self.lanes_running.items():
            group = self._group(name)
            group.running = max(group.running - n, 0)
            self.running = max(self.running - n, 0)
        for name, n in running.items():
            self._group(name).running += n
            self.running += n
        self.lanes_running = running

    def _lane_rows_finished(self, rows, groups_of: dict) -> None:
        # Columns in, columns out: the per-task work is in C (map, count, fsum),
        # and only the task-stream bars that are kept get built.
        worker, keys, starts, stops, _nbytes = rows
        n = len(keys)
        names = list(map(groups_of.get, keys, repeat("?")))
        seconds = list(map(sub, stops, starts))
        first = names[0]
        if names.count(first) == n:  # the common case: one group
            group = self._group(first)
            group.done += n
            group.seconds += fsum(seconds)
        else:
            for name, duration in zip(names, seconds):
                group = self._group(name)
                group.done += 1
                group.seconds += duration
        self.done += n
        per_worker = self.tasks_per_worker
        per_worker[worker] = per_worker.get(worker, 0) + n
        self.stream.add_rows(worker, starts, stops, names, self.started_at)

    def apply_raw(self, raw: list, groups_of: dict) -> None:
        """Fold the bus's raw tuples (see ``EventBus.subscribe(raw=True)``) of this compute."""
        groups = self.groups
        per_worker = self.tasks_per_worker
        stream = self.stream
        origin = self.started_at
        running = self.running
        done = self.done
        for item in raw:
            tag = item[0]
            if tag == "f":
                _, key, worker, start, stop, _nbytes = item
                name = groups_of.get(key, "?")
                group = groups.get(name) or self._group(name)
                if group.running:
                    group.running -= 1
                    running -= 1
                group.done += 1
                group.seconds += stop - start
                done += 1
                per_worker[worker] = per_worker.get(worker, 0) + 1
                index = stream.seen
                stream.seen = index + 1
                if not index % stream.stride:
                    stream.keep(TaskBar(worker, start - origin, stop - origin, name, False))
            elif tag == "s":
                name = groups_of.get(item[1], "?")
                group = groups.get(name) or self._group(name)
                group.running += 1
                running += 1
            else:
                self.running = running
                self.done = done
                if tag == "e":
                    _, key, worker, start, stop, error = item
                    self._task_erred(groups_of.get(key, "?"), worker, start, stop, error)
                elif type(item[1]) is ComputeFinished:
                    self._compute_finished(item[1])
                running = self.running
                done = self.done
        self.running = running
        self.done = done

    def _group(self, name: str) -> GroupProgress:
        group = self.groups.get(name)
        if group is None:  # a key the scheduler did not announce; count it anyway
            group = self.groups[name] = GroupProgress(0)
        return group

    def _task_erred(self, name: str, worker: str, start: float, stop: float, error: str) -> None:
        group = self._group(name)
        self._end_running(group)
        group.erred += 1
        group.seconds += stop - start
        self.erred += 1
        self.errors.append(f"{name}: {error}")
        origin = self.started_at
        self.stream.add(TaskBar(worker, start - origin, stop - origin, name, True))

    def _end_running(self, group: GroupProgress) -> None:
        # Batches never split a task's start from its end in the wrong order,
        # but a start may be missing (a task failing before it was announced).
        if group.running:
            group.running -= 1
            self.running -= 1

    def _compute_finished(self, event: ComputeFinished) -> None:
        self.status = event.status
        self.stopped_at = self.started_at + (event.time - self.wall_started_at)
        for group in self.groups.values():
            group.running = 0
        self.running = 0
        self.lanes_running = {}

    def note_progress(self) -> None:
        """Record (seconds, done) for the progress-over-time chart; once per batch."""
        now = (self.stopped_at or time.perf_counter()) - self.started_at
        self.progress_timeline.append((now, self.done))

    # -- what views show
    @property
    def finished(self) -> bool:
        return self.stopped_at is not None

    @property
    def task_stream(self) -> list[TaskBar]:
        return self.stream.bars

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the compute started (its wall time once it ended)."""
        end = self.stopped_at if self.stopped_at is not None else now or time.perf_counter()
        return max(end - self.started_at, 0.0)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate so far; None before the first task ends or after the end."""
        if self.finished or not self.done:
            return None
        elapsed = self.elapsed(now)
        return elapsed * (self.n_tasks - self.done) / self.done

    @property
    def fraction_done(self) -> float:
        return min(self.done / self.n_tasks, 1.0) if self.n_tasks else 1.0

    def summary(self) -> str:
        """One line: ``"✔ 10,001 tasks in 1.24 s · threads · 2 workers"``.

        A failed compute counts what failed apart from what ran:
        ``"✖ 1 of 32 tasks failed (ratio) · 29 done · 2 not run · 0.41 s · threads · 2 workers"``.
        """
        where = f"{self.scheduler} · {plural(self.n_workers, 'worker')}"
        elapsed = format_seconds(self.elapsed())
        if self.erred:
            failed_groups = ", ".join(name for name, g in self.groups.items() if g.erred)
            parts = [
                f"{'✖' if self.finished else '…'} {self.erred:,} of "
                f"{plural(self.n_tasks, 'task')} failed ({failed_groups})",
                f"{self.done:,} done",
            ]
            not_run = self.n_tasks - self.done - self.erred - self.running
            if not_run > 0:
                parts.append(f"{not_run:,} not run" if self.finished else f"{not_run:,} to go")
            return " · ".join([*parts, elapsed, where])
        mark = {"ok": "✔", "error": "✖", "cancelled": "■", "running": "…"}.get(self.status, "")
        word = {"error": "failed after", "cancelled": "interrupted after"}.get(self.status, "in")
        if self.status == "running":
            word = "so far"
        tasks = plural(self.n_tasks, "task")
        if self.done != self.n_tasks:
            tasks = f"{self.done:,}/{tasks}"
        return f"{mark} {tasks} {word} {elapsed} · {where}"


def group_label(name: str) -> str:
    """The name dask gives the task group ``name``: its words up to the first that is not
    a plain word, as ``dask.utils.key_split`` cuts a key.

    ``"sum-aggregate-finalize-hlgfinalizecompute"`` -> ``"sum-aggregate"`` (dask
    reads an 8-letter word starting with a-f, such as ``finalize``, as a token);
    ``"finalize-hlgfinalizecompute"`` stays whole. Views show this label and
    the full name in a tooltip; groups with one label share a row.
    """
    words = name.split("-")
    label = words[0]
    for word in words[1:]:
        if not word.isalpha() or (len(word) == 8 and word[0] in "abcdef"):
            break
        label += f"-{word}"
    return label or name


class LabelledGroup(NamedTuple):
    """The groups of one :func:`group_label`, summed: what a view's row shows."""

    progress: GroupProgress
    names: tuple[str, ...]  # the groups' full names

    @property
    def tooltip(self) -> str:
        """The full names, for a row whose label is cut or merges several groups."""
        return ", ".join(self.names)


def groups_by_label(groups: dict[str, GroupProgress]) -> dict[str, LabelledGroup]:
    """``{label: LabelledGroup}`` in first-seen order (see :func:`group_label`)."""
    merged: dict[str, list] = {}
    for name, group in groups.items():
        merged.setdefault(group_label(name), []).append((name, group))
    labelled = {}
    for label, members in merged.items():
        if len(members) == 1:
            name, group = members[0]
            labelled[label] = LabelledGroup(group, (name,))
            continue
        labelled[label] = LabelledGroup(
            GroupProgress(
                total=sum(g.total for _, g in members),
                done=sum(g.done for _, g in members),
                running=sum(g.running for _, g in members),
                erred=sum(g.erred for _, g in members),
                seconds=sum(g.seconds for _, g in members),
            ),
            tuple(name for name, _ in members),
        )
    return labelled


def plural(n: int, noun: str) -> str:
    """``plural(1, "worker") == "1 worker"``, ``plural(2_000, "task") == "2,000 tasks"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def format_seconds(seconds: float) -> str:
    """``0.123 -> "0.12 s"``, ``75 -> "1 min 15 s"``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


class ComputeTracker:
    """Folds the event stream into a :class:`ComputeState` per compute, while open.

    >>> with ComputeTracker() as tracker:
    ...     total.compute()
    >>> tracker.latest.summary()
    '✔ 21 tasks in 0.01 s · threads · 2 workers'

    ``on_change(state)`` is called after each batch that touched ``state``, on
    the thread that delivered it (see module docstring).
    """

    def __init__(
        self,
        on_change: Callable[[ComputeState], None] | None = None,
        stream_limit: int = MAX_TASK_STREAM_BARS,
    ):
        self.on_change = on_change
        self.stream_limit = stream_limit
        self.states: dict[int, ComputeState] = {}
        self.lock = threading.Lock()  # held while a batch is folded in
        self._subscription = None

    @property
    def latest(self) -> ComputeState | None:
        """The most recently started compute, or None before the first."""
        with self.lock:
            return next(reversed(self.states.values()), None)

    def on_raw(self, recorder, batch) -> None:
        """The bus's raw delivery (what :meth:`start` subscribes): one compute's batch."""
        with self.lock:
            state = self.states.get(recorder.compute_id)
            submitted = batch.submitted
            if submitted is not None:
                state = self.states[recorder.compute_id] = ComputeState.from_submitted(
                    submitted, self.stream_limit
                )
                batch = batch._replace(items=batch.items[1:])
            if state is None:  # a compute that began before we subscribed
                return
            state.apply_batch(batch, recorder.groups_of)
            state.note_progress()
        if self.on_change is not None:
            self.on_change(state)

    def forget(self, compute_id: int) -> None:
        """Drop a compute's state (a view that shows only running computes)."""
        with self.lock:
            self.states.pop(compute_id, None)

    def start(self) -> ComputeTracker:
        if self._subscription is None:
            self._subscription = BUS.subscribe(self.on_raw, raw=True)
        return self

    def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def __enter__(self) -> ComputeTracker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
