"""The scheduler advisor: measure every compute, say with numbers where it would run best.

::

    worker threads (hot path)                 delivering thread / computing thread (last batch)
    ─────────────────────────                 ─────────────────────────────────────────────────
    lane columns: key, start, stop, nbytes ─► Advisor.on_raw: fold per task group
    a sample of tasks (events.is_sampled):       (tasks, task seconds, span, bytes out)
      thread CPU seconds, wall seconds        compute ends: read the lanes' CPU samples, the
    recorder: process CPU at start / end        process CPU, the inputs each task took (graph)
                                              each batch: the kernel's RSS (and its child
                                                processes' on processes); compute ends: the
                                                results held at once (sizes, graph, stops)
                                                 ├─► ComputeMeasure (the last few kept)
                                                 └─► TaskProfile per group, for later computes

    advice_for(measure) ─► Advice: per group CPU/wall, what it waits for, bytes in and
                           out, an estimate on sync / threads / processes (/ the open
                           cluster), the pick, and a one-line ``hint`` when another
                           scheduler would clearly do better
    choose_for_graph(graph) ─► scheduler="auto" (registry.set_auto_chooser)

- ``GroupMeasure``: one task group in one compute, as measured.
- ``ComputeMeasure``: one compute: where it ran, how long, the kernel process's
  CPU over it, its groups.
- ``TaskProfile``: what one task of a group costs, whatever scheduler ran it:
  CPU seconds, seconds waiting on something else (I/O, sleep), the share of
  its CPU that holds the GIL (known once it ran on two threads or more), and
  bytes in and out. The newest measure of a group replaces its profile, but
  keeps the GIL share an earlier compute measured if this one cannot tell.
- ``Advisor``: the listener (``ADVISOR``). It listens while a view shows a
  compute (the text bar; a ``%%compute`` cell), while ``scheduler="auto"``
  runs one (:meth:`Advisor.listening`), and from the first :func:`advise`
  that found nothing measured on (:meth:`Advisor.start`, until ``stop``): a
  compute no one listens to is not recorded at all (see ``lazycell.events``),
  so it cannot be measured.

How the GIL shows. ``time.thread_time`` counts the CPU a thread used, not the
time it waited for the GIL. On the threads scheduler, tasks that hold the GIL
run one at a time however many threads there are: each task's CPU/wall is
about 1/threads, and the group keeps about one core busy. Tasks that release
it (NumPy ufuncs) keep CPU/wall near 1 on every thread; tasks that wait on
I/O have CPU/wall near 0. On a busy machine a thread also waits for a CPU
other programs hold; Linux counts that wait per thread (``schedstat``), and
it is left out of the wall time, or a loaded machine would look like the GIL.
On the sync scheduler only one task runs at a time, so whether a group holds
the GIL cannot be told from it: the advice says so and assumes it does.

How memory shows (:class:`MemoryUse`). The delivering thread reads the RSS of
the kernel (with its child processes, the pool's workers, on processes) at
each batch, a few times a second and once at the end: never per task. A peak
between two reads is missed, so where the graph is known the advisor also
replays when each result was made and released (``GraphRun`` drops a result
once its last dependent ran) to find the most bytes of results held at once.
Near the memory limit (``MEMORY_NEAR_LIMIT`` of it, the machine's or a
container's, or ``MEMORY_LIMIT``) with much of it the compute's own, the
advice points at the local cluster, whose workers spill results to disk:
about memory, not speed. Memory the kernel held before the compute stays in
the kernel wherever it runs, so that alone says nothing.

The estimates (:func:`estimate_terms`, :func:`seconds_from_terms`) come from
those measured numbers and the core count, all groups sharing the workers;
the constants they add (per-task overhead of each scheduler, the speed of
pickling to a worker process) match what ``benchmarks/bench_advisor.py``
measures (tiny tasks; large arrays on processes) and are printed with every
advice.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from itertools import repeat
from math import fsum, inf
from operator import sub

import psutil

from lazycell import config
from lazycell.diagnostics.compute_state import plural
from lazycell.diagnostics.resources import child_pids, total_memory
from lazycell.diagnostics.workers import format_bytes
from lazycell.events import BUS, group_keys
from lazycell.events.recording import runqueue_wait
from lazycell.graph.spec import TaskSpec, key_group
from lazycell.schedulers.registry import (
    AutoChoice,
    last_auto_choice,
    scheduler_entry,
    set_auto_chooser,
)

# Per-task cost of each scheduler besides the task itself, seconds (recording on):
# measured by benchmarks/bench_advisor.py's tiny tasks on a 2-core machine.
OVERHEAD = {"sync": 5e-6, "threads": 12e-6, "processes": 25e-6, "distributed": 100e-6}
# Bytes per second a processes worker's inputs and results travel (pickle, socket,
# unpickle), each way.
PROCESS_BYTES_PER_SECOND = 1.0e9
# Between a local cluster's workers results stay put; what moves travels at about this.
CLUSTER_BYTES_PER_SECOND = 1.5e9
# Starting the worker processes of a processes pool for the first time in a session.
PROCESS_START_SECONDS = 0.4
# Only computes at least this long get a hint; shorter ones are not worth a word.
HINT_AFTER_SECONDS = 0.5
# A hint only when another scheduler would be at least this many times faster.
HINT_SPEEDUP = 1.5
# The pick stays the current scheduler unless another is this much faster (noise).
PICK_MARGIN = 1.1
# scheduler="auto" names the task groups of at most about this many keys of a graph.
AUTO_SAMPLE_KEYS = 1000
# scheduler="auto" leaves threads only when another scheduler is this much faster.
AUTO_MARGIN = 1.15
# A compute's per-task scheduling costs more than the work below this task length.
TINY_TASK_SECONDS = 50e-6
# A group whose CPU/wall is below this on threads mostly waits (I/O, sleep); above
# it, its waiting while other tasks ran is taken as waiting for the GIL.
MOSTLY_WAITING = 0.15
# Above this share of the task time spent waiting for a CPU, the machine is busy.
BUSY_MACHINE = 0.3
# A GIL share at least this high is read as holding the GIL throughout.
GIL_BOUND = 0.7
# How many computes' measures are kept.
KEEP_COMPUTES = 20
# Graphs above this many tasks skip counting each task's input bytes at the end.
MAX_TASKS_FOR_INPUT_BYTES = 50_000

# Memory: a compute that took the kernel (with the processes pool's workers) to this
# share of the memory limit gets a note, and the hint: more than speed, it risks
# swapping or the kernel being killed...
MEMORY_NEAR_LIMIT = 0.7
# ...when at least this share of the limit was the compute's own (results held at
# once, or the rise it caused): what the kernel held before stays wherever it runs.
MEMORY_OWN_SHARE = 0.1
# The memory those shares are of, bytes. None: the machine's, or a container's lower
# limit (cgroup). Set it to advise for a smaller budget (tests do).
MEMORY_LIMIT: int | None = None
# The local cluster's workers spill results to disk above this share of their limit
# (lazycell.distributed.cluster's default thresholds).
CLUSTER_SPILL_SHARE = 0.6

LOCAL_SCHEDULERS = ("sync", "threads", "processes")


def core_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ------------------------------------------------------------------ what was measured


@dataclass
class GroupMeasure:
    """One task group in one compute, as measured (seconds on the perf_counter clock)."""

    name: str
    n_tasks: int = 0  # finished
    task_seconds: float = 0.0  # summed wall time of its finished tasks
    first_start: float = inf
    last_stop: float = -inf
    nbytes_out: int = 0  # summed size of its results
    nbytes_in: int | None = None  # summed size of the results its tasks took; None: unknown
    n_sampled: int = 0  # tasks whose thread CPU time was measured
    sampled_cpu: float = 0.0
    sampled_wall: float = 0.0
    # of sampled_wall, seconds the threads waited for a CPU other programs held
    sampled_runqueue: float = 0.0
    # tasks per dependency level of the graph: how many could run at once; None: unknown
    parallelism: float | None = None

    @property
    def span(self) -> float:
        """Wall seconds from its first task's start to its last task's end."""
        return max(self.last_stop - self.first_start, 0.0)

    @property
    def mean_task_seconds(self) -> float:
        return self.task_seconds / self.n_tasks if self.n_tasks else 0.0

    @property
    def cpu_per_wall(self) -> float | None:
        """CPU / wall of its sampled tasks; None when none was sampled (processes).

        The wall leaves out the time the threads waited for a CPU that other
        programs held (Linux's runqueue wait), which says nothing of the work.
        """
        wall = self.sampled_wall - self.sampled_runqueue
        if not self.n_sampled or wall <= 0:
            return None
        return min(self.sampled_cpu / wall, 1.0)

    @property
    def concurrency(self) -> float:
        """How many of its tasks ran at once, on average."""
        return self.task_seconds / self.span if self.span > 0 else 1.0

    @property
    def cores_busy(self) -> float | None:
        """Cores its tasks kept busy on average (CPU/wall × tasks at once)."""
        ratio = self.cpu_per_wall
        return None if ratio is None else ratio * self.concurrency


@dataclass
class ComputeMeasure:
    """One compute, as measured."""

    compute_id: int
    scheduler: str
    n_workers: int
    n_tasks: int
    started: float  # time.time clock
    elapsed: float = 0.0
    process_cpu: float | None = None  # CPU seconds of the kernel process over the compute
    status: str = "running"
    groups: dict[str, GroupMeasure] = field(default_factory=dict)
    # group -> its TaskProfile from this measure and what earlier ones knew
    profiles: dict[str, TaskProfile] = field(default_factory=dict)
    lane_seconds: dict[str, float] = field(default_factory=dict)  # worker -> task seconds
    # RSS in bytes of the kernel (and, on processes, its child processes) read at each
    # batch: the lowest, highest and last read, and the most a read rose above an
    # earlier one (what the compute added); None: not read (other schedulers)
    rss_low: int | None = None
    rss_peak: int | None = None
    rss_last: int | None = None
    rss_rise: int = 0
    rss_processes: int = 1  # processes the last read summed
    # the most bytes of results held at once, and those still held at the end (the
    # outputs), from the results' estimated sizes; None: unknown (no graph) or small
    held_peak: int | None = None
    held_at_end: int | None = None

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def concurrency(self) -> float:
        """How many tasks (of any group) ran at once, on average."""
        busy = fsum(group.task_seconds for group in self.groups.values())
        return busy / self.elapsed if self.elapsed > 0 else 1.0


@dataclass
class TaskProfile:
    """What one task of a group costs (see the module docstring)."""

    group: str
    cpu: float  # CPU seconds per task
    wait: float  # seconds per task neither on a CPU nor waiting for the GIL
    gil_share: float | None  # share of its CPU that holds the GIL; None: not known
    bytes_in: float
    bytes_out: float
    measured_on: str  # the scheduler of the compute it comes from
    cpu_source: str  # where its CPU share comes from
    parallelism: float  # how many of its tasks the graph lets run at once


def profile_of(
    group: GroupMeasure,
    scheduler: str,
    earlier: TaskProfile | None,
    compute_concurrency: float = 1.0,
) -> TaskProfile:
    """A group's profile from one measure (and what an earlier one knew that this cannot).

    ``compute_concurrency``: how many tasks of any group ran at once in that compute.
    """
    wall = group.mean_task_seconds
    ratio = group.cpu_per_wall
    gil = earlier.gil_share if earlier is not None else None
    parallelism = group.parallelism
    if parallelism is None:
        parallelism = earlier.parallelism if earlier is not None else float(group.n_tasks or 1)
    if ratio is None:  # processes: no thread CPU from the workers
        if earlier is not None and earlier.cpu + earlier.wait > 0:
            ratio = earlier.cpu / (earlier.cpu + earlier.wait)
            source = earlier.cpu_source
        else:
            ratio = 1.0
            source = "assumed all CPU"
        cpu = wall * ratio
        wait = wall - cpu
    else:
        source = f"time.thread_time on {scheduler}"
        # Time spent waiting for a CPU other programs held is not the task's.
        wall = max(wall * (1 - group.sampled_runqueue / group.sampled_wall), 0.0)
        cpu = wall * ratio
        wait = max(wall - cpu, 0.0)
        concurrency = group.concurrency
        if scheduler == "threads" and ratio >= MOSTLY_WAITING and compute_concurrency >= 1.3:
            # Tasks overlapped, and this group computes more than it waits: what it
            # waited for is the GIL other tasks held, which it would not wait for
            # alone (as it did on sync, if it ran there: then that waiting stays).
            wait = earlier.wait if earlier is not None and earlier.measured_on == "sync" else 0.0
            wait = min(wait, max(wall - cpu, 0.0))
        if scheduler == "threads" and ratio >= 0.3 and group.n_tasks >= 4:
            cores = max(ratio * concurrency, 1e-9)
            if concurrency >= 1.3:
                # CPU-bound on several threads: the cores kept busy tell the GIL's share.
                gil = min(1.0, max(1.0 / cores, 1.0 / concurrency))
                # Handing the GIL over costs the waiting thread a wait for a CPU too
                # (left out above), so a GIL-bound group reads 0.75-0.85 on a busy
                # machine; GIL-releasing NumPy reads 0.5-0.6.
                if gil >= GIL_BOUND:
                    gil = 1.0
            elif parallelism >= 2 and ratio >= 0.8:
                # Tasks the graph let run together ran one at a time, each all CPU:
                # the GIL passed them along (tasks shorter than its switch interval).
                gil = 1.0
    n = group.n_tasks or 1
    bytes_out = group.nbytes_out / n
    bytes_in = group.nbytes_in / n if group.nbytes_in is not None else bytes_out
    return TaskProfile(
        group.name, cpu, wait, gil, bytes_in, bytes_out, scheduler, source, parallelism
    )


# ------------------------------------------------------------------ the estimates


@dataclass(frozen=True)
class Setting:
    """What an estimate assumes about the machine and the schedulers."""

    cores: int
    workers: dict[str, int]  # scheduler -> workers it would run with
    processes_warm: bool  # a processes pool already ran in this session
    cluster_open: bool


def estimate_terms(
    profile: TaskProfile, n_tasks: int, scheduler: str, setting: Setting
) -> tuple[float, float, float, float, float]:
    """What ``n_tasks`` tasks of ``profile`` add to each bound of a compute on ``scheduler``.

    ``(serial, gil, cpu, wall, extra)``: all of it one after the other; the
    GIL's share of the CPU (one at a time on threads); the CPU spread over
    min(k, cores, tasks at once); CPU and waiting spread over min(k, tasks at
    once); per-task overhead and moving inputs and results (processes, cluster).
    """
    n = n_tasks
    cpu, wait = profile.cpu, profile.wait
    k = max(min(setting.workers.get(scheduler, setting.cores), profile.parallelism), 1)
    cores = max(min(k, setting.cores), 1)
    extra = n * OVERHEAD.get(scheduler, OVERHEAD["processes"])
    if scheduler == "distributed":
        extra += n * profile.bytes_in / 2 / CLUSTER_BYTES_PER_SECOND  # half stay put
    elif scheduler == "processes":
        extra += n * (profile.bytes_in + profile.bytes_out) / PROCESS_BYTES_PER_SECOND
    gil = 1.0 if profile.gil_share is None else profile.gil_share
    return n * (cpu + wait), gil * n * cpu, n * cpu / cores, n * (cpu + wait) / k, extra


def seconds_from_terms(terms: list[tuple], scheduler: str) -> float:
    """A compute's seconds on ``scheduler`` from its groups' :func:`estimate_terms`.

    sync: everything one after the other. threads: the longest of the GIL's
    share, the CPU over the cores and CPU plus waiting over the threads, with
    every group's tasks sharing them (groups overlap); processes and the
    cluster: the same without the GIL. Overheads and moving data add up.
    """
    serial, gil, cpu, wall, extra = (fsum(column) for column in zip(*terms)) if terms else [0] * 5
    if scheduler == "sync":
        return serial + extra
    if scheduler == "threads":
        return max(gil, cpu, wall) + extra
    return max(cpu, wall) + extra


def estimate_seconds(profile: TaskProfile, n_tasks: int, scheduler: str, setting: Setting) -> float:
    """Seconds ``n_tasks`` tasks of ``profile`` alone would take on ``scheduler``."""
    return seconds_from_terms([estimate_terms(profile, n_tasks, scheduler, setting)], scheduler)


def candidate_schedulers(setting: Setting) -> list[str]:
    return [*LOCAL_SCHEDULERS, *(["distributed"] if setting.cluster_open else [])]


def estimate_graph(
    counts: Mapping[str, int], profiles: Mapping[str, TaskProfile], setting: Setting
) -> dict[str, float]:
    """Seconds on each candidate scheduler for ``counts`` tasks per group (seconds_from_terms)."""
    totals = {}
    for scheduler in candidate_schedulers(setting):
        terms = [
            estimate_terms(profiles[name], n, scheduler, setting)
            for name, n in counts.items()
            if name in profiles
        ]
        total = seconds_from_terms(terms, scheduler)
        if scheduler == "processes" and not setting.processes_warm:
            total += PROCESS_START_SECONDS
        totals[scheduler] = total
    return totals


# ------------------------------------------------------------------ the advice


@dataclass
class GroupAdvice:
    measure: GroupMeasure
    profile: TaskProfile
    kind: str  # "holds the GIL", "releases the GIL", "waits (I/O)", "tiny tasks", "CPU"
    estimates: dict[str, float]


@dataclass
class Advice:
    """The advisor's reading of one compute. ``str(advice)`` is the whole reasoning.

    ``pick``: the scheduler it would run this compute on; ``estimates``: seconds
    on each; ``hint``: one line when another scheduler would clearly do better
    (at least ``HINT_SPEEDUP`` times faster, on a compute of at least
    ``HINT_AFTER_SECONDS``), else None.
    """

    measure: ComputeMeasure
    groups: list[GroupAdvice]
    estimates: dict[str, float]
    pick: str
    hint: str | None
    notes: list[str]
    setting: Setting
    memory: MemoryUse | None = None  # what was read of memory (sync, threads, processes)

    @property
    def speedup(self) -> float:
        """How many times faster the pick is than where the compute ran (estimated)."""
        current = self.estimates.get(self.measure.scheduler)
        best = self.estimates.get(self.pick)
        if not current or not best:
            return 1.0
        return current / best

    def __str__(self) -> str:
        m = self.measure
        lines = [
            f"Compute {m.compute_id} on {m.scheduler} ({plural(m.n_workers, 'worker')}): "
            f"{plural(m.n_tasks, 'task')} in "
            f"{seconds_text(m.elapsed)}" + ("" if m.status == "ok" else f" ({m.status})")
        ]
        if m.process_cpu is not None and m.elapsed > 0:
            lines.append(
                f"  this process used {seconds_text(m.process_cpu)} of CPU: "
                f"{m.process_cpu / m.elapsed:.2f} cores busy of {self.setting.cores}"
            )
        for group in self.groups:
            lines += ["", *group_lines(group, m.scheduler)]
        lines.append("")
        lines.append("Estimated for the whole compute: " + estimates_text(self.estimates, m))
        if self.pick == m.scheduler:
            lines.append(f"Pick: {self.pick} (where it ran; nothing is clearly faster)")
        else:
            lines.append(f"Pick: {self.pick}, ≈ {self.speedup:.1f}× faster than {m.scheduler}")
        if self.memory is not None:
            lines.append("Memory: " + memory_text(self.memory))
        lines += [f"Note: {note}" for note in self.notes]
        lines.append("Assumptions: " + assumptions_text(self.setting))
        lines.append(f"hint: {self.hint}" if self.hint else "No hint: the choice was right.")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the reasoning
        printer.text(str(self))


def seconds_text(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms" if seconds < 0.1 else f"{seconds:.2f} s"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"


def estimates_text(estimates: dict[str, float], measure: ComputeMeasure) -> str:
    parts = []
    for name, seconds in estimates.items():
        text = f"{name} ≈ {seconds_text(seconds)}"
        if name == measure.scheduler:
            text += f" (measured {seconds_text(measure.elapsed)})"
        parts.append(text)
    return " · ".join(parts)


def group_lines(group: GroupAdvice, scheduler: str) -> list[str]:
    g, p = group.measure, group.profile
    lines = [
        f"Task group {g.name!r}: {plural(g.n_tasks, 'task')}, "
        f"{seconds_text(g.mean_task_seconds)} each, "
        f"{seconds_text(g.task_seconds)} of task time over {seconds_text(g.span)} "
        f"({g.concurrency:.2f} running at once): {group.kind}"
    ]
    ratio = g.cpu_per_wall
    if ratio is not None:
        lines.append(
            f"  CPU/wall {ratio:.2f} per task (time.thread_time of {g.n_sampled} of "
            f"{g.n_tasks:,} tasks); {g.cores_busy:.2f} cores busy"
            + (
                f"; {g.sampled_runqueue / g.sampled_wall:.0%} of the time waiting for a CPU "
                "other programs held, left out"
                if g.sampled_runqueue > 0.05 * g.sampled_wall
                else ""
            )
        )
    else:
        where = "worker processes" if scheduler == "processes" else "none of its tasks sampled"
        lines.append(f"  no CPU sample on {scheduler} ({where}): {p.cpu_source}")
    gil = "unknown (never ran on 2+ threads)" if p.gil_share is None else f"{p.gil_share:.2f}"
    lines.append(
        f"  per task: CPU {seconds_text(p.cpu)}, waiting {seconds_text(p.wait)}, GIL share "
        f"{gil}; in {format_bytes(p.bytes_in)}, out {format_bytes(p.bytes_out)}"
        + ("" if g.nbytes_in is not None else " (in: taken as out)")
        + f"; up to {p.parallelism:.0f} at once"
    )
    lines.append(
        "  estimate: " + " · ".join(f"{k} ≈ {seconds_text(v)}" for k, v in group.estimates.items())
    )
    return lines


def assumptions_text(setting: Setting) -> str:
    workers = ", ".join(f"{name} {n}" for name, n in setting.workers.items())
    overhead = ", ".join(f"{name} {seconds * 1e6:.0f} µs" for name, seconds in OVERHEAD.items())
    start = "" if setting.processes_warm else f", +{PROCESS_START_SECONDS} s to start processes"
    return (
        f"{setting.cores} cores; workers: {workers}; per-task overhead: {overhead}{start}; "
        f"processes pickle inputs and results at {PROCESS_BYTES_PER_SECOND / 1e9:.1f} GB/s; "
        "groups share the workers; on threads, a group that computes more than it waits "
        "waited for the GIL (benchmarks/bench_advisor.py checks these)"
    )


def kind_of(group: GroupMeasure, profile: TaskProfile, scheduler: str) -> str:
    if profile.cpu + profile.wait < TINY_TASK_SECONDS:
        return "tiny tasks"
    if profile.wait > profile.cpu:
        return "waits (I/O or sleep)"
    if profile.gil_share is None:
        return "CPU (whether it holds the GIL is unknown)"
    return "holds the GIL" if profile.gil_share >= GIL_BOUND else "releases the GIL"


# ------------------------------------------------------------------ the listener


class Advisor:
    """Measures each compute it hears and keeps what each task group cost (``ADVISOR``)."""

    def __init__(self):
        self.computes: deque[ComputeMeasure] = deque(maxlen=KEEP_COMPUTES)
        self.profiles: dict[str, TaskProfile] = {}
        self.lock = threading.Lock()
        self._running: dict[int, ComputeMeasure] = {}
        self._sizes: dict[int, dict] = {}  # compute id -> key -> result size
        self._stops: dict[int, dict] = {}  # compute id -> key -> when its task ended
        self._subscription = None
        self._users = 0  # open acquire()s
        self._kept = False  # start() without stop()

    # -- listening
    def acquire(self) -> None:
        """Listen until the matching :meth:`release` (the text bar, a ``%%compute`` cell)."""
        with self.lock:
            self._users += 1
            self._subscribe()

    def release(self) -> None:
        with self.lock:
            self._users = max(self._users - 1, 0)
            if not self._users and not self._kept:
                self._unsubscribe()

    @contextmanager
    def listening(self) -> Iterator[Advisor]:
        """``with ADVISOR.listening():`` computes inside are measured."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def start(self) -> Advisor:
        """Listen to every compute from now on, until :meth:`stop` (``lc.advise()`` does this)."""
        with self.lock:
            self._kept = True
            self._subscribe()
        return self

    def stop(self) -> None:
        with self.lock:
            self._kept = False
            if not self._users:
                self._unsubscribe()

    def _subscribe(self) -> None:  # lock held
        if self._subscription is None:
            # First: views that ask for a hint at a compute's end find it folded.
            self._subscription = BUS.subscribe(self.on_raw, raw=True, first=True)
            BUS.measure_runqueue = True

    def _unsubscribe(self) -> None:  # lock held
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
            BUS.measure_runqueue = False
            # A compute still running will not be heard to its end (a cluster's
            # persist outlives the bar): drop it rather than keep it, or half of it.
            self._running.clear()
            self._sizes.clear()
            self._stops.clear()

    @property
    def listening_now(self) -> bool:
        return self._subscription is not None

    def forget(self) -> None:
        """Drop every measure and profile (tests; a new session of work)."""
        with self.lock:
            self.computes.clear()
            self.profiles.clear()

    def on_raw(self, recorder, batch) -> None:
        """The bus's raw delivery: fold one batch of one compute."""
        compute_id = recorder.compute_id
        submitted = batch.submitted
        running = self._running.get(compute_id)  # a dict read: atomic without the lock
        scheduler = (
            submitted.scheduler if submitted is not None else getattr(running, "scheduler", "")
        )
        # Read before the lock, once a batch (a few a second, 25-50 µs): never per task.
        rss = (
            kernel_rss(with_children=scheduler == "processes")
            if scheduler in LOCAL_SCHEDULERS
            else None
        )
        with self.lock:
            measure = self._running.get(compute_id)
            if submitted is not None:
                measure = ComputeMeasure(
                    compute_id,
                    submitted.scheduler,
                    submitted.n_workers,
                    submitted.n_tasks,
                    submitted.time,
                    groups={name: GroupMeasure(name) for name in submitted.groups},
                )
                self._running[compute_id] = measure
                if recorder.graph is not None and submitted.n_tasks <= MAX_TASKS_FOR_INPUT_BYTES:
                    self._sizes[compute_id] = {}
                    self._stops[compute_id] = {}
            if measure is None:  # began before we listened
                return
            if rss is not None:
                add_rss_read(measure, *rss)
            sizes = self._sizes.get(compute_id)
            stops_of = self._stops.get(compute_id)
            groups_of = recorder.groups_of
            for item in batch.items:
                if item[0] == "f":
                    _, key, _worker, start, stop, nbytes = item
                    self._add_tasks(measure, groups_of.get(key, "?"), [start], [stop], [nbytes])
                    if sizes is not None:
                        sizes[key] = nbytes
                        stops_of[key] = stop
            for worker, keys, starts, stops, nbytes in batch.lanes:
                measure.lane_seconds[worker] = measure.lane_seconds.get(worker, 0.0) + fsum(
                    map(sub, stops, starts)
                )
                names = list(map(groups_of.get, keys, repeat("?")))
                if names.count(names[0]) == len(names):
                    self._add_tasks(measure, names[0], starts, stops, nbytes)
                else:
                    for name, start, stop, size in zip(names, starts, stops, nbytes):
                        self._add_tasks(measure, name, [start], [stop], [size])
                if sizes is not None:
                    sizes.update(zip(keys, nbytes))
                    stops_of.update(zip(keys, stops))
            if batch.finished is not None:
                self._finish(measure, recorder, batch.finished)

    @staticmethod
    def _add_tasks(measure: ComputeMeasure, name: str, starts, stops, nbytes) -> None:
        group = measure.groups.get(name)
        if group is None:
            group = measure.groups[name] = GroupMeasure(name)
        group.n_tasks += len(starts)
        group.task_seconds += fsum(map(sub, stops, starts))
        group.first_start = min(group.first_start, min(starts))
        group.last_stop = max(group.last_stop, max(stops))
        group.nbytes_out += sum(nbytes)

    def _finish(self, measure: ComputeMeasure, recorder, finished) -> None:
        """The compute ended (lock held): CPU samples, input bytes, profiles."""
        del self._running[measure.compute_id]
        sizes = self._sizes.pop(measure.compute_id, None)
        stops = self._stops.pop(measure.compute_id, None)
        measure.status = finished.status
        measure.elapsed = max(finished.time - measure.started, 0.0)
        if recorder.cpu_at_end is not None:
            measure.process_cpu = recorder.cpu_at_end - recorder.cpu_at_start
        groups_of = recorder.groups_of
        for lane in list(recorder.lanes):
            # The share of this lane's task time its thread waited for a CPU.
            waited = 0.0
            if lane.runqueue_at_start is not None:
                now = runqueue_wait(lane.thread_id)
                busy = measure.lane_seconds.get(lane.worker, 0.0)
                if now is not None and busy > 0:
                    waited = min(max(now - lane.runqueue_at_start, 0.0) / busy, 0.95)
            for key, cpu, wall in list(lane.cpu_samples):
                group = measure.groups.get(groups_of.get(key, "?"))
                if group is not None:
                    group.n_sampled += 1
                    group.sampled_cpu += cpu
                    group.sampled_wall += wall
                    group.sampled_runqueue += wall * waited
        graph = recorder.graph
        if sizes is not None and graph is not None:
            add_inputs_and_parallelism(measure, graph, sizes, groups_of)
            # Replaying releases costs a sort; below this its answer cannot matter.
            if sum(sizes.values()) >= MEMORY_OWN_SHARE * memory_limit()[0]:
                measure.held_peak, measure.held_at_end = results_held_at_once(graph, sizes, stops)
        measure.groups = {name: g for name, g in measure.groups.items() if g.n_tasks}
        self.computes.append(measure)
        concurrency = measure.concurrency
        measure.profiles = {
            name: profile_of(group, measure.scheduler, self.profiles.get(name), concurrency)
            for name, group in measure.groups.items()
        }
        if measure.status == "ok" and measure.scheduler in (*LOCAL_SCHEDULERS, "distributed"):
            self.profiles.update(measure.profiles)

    # -- reading
    def measure_of(self, compute_id: int) -> ComputeMeasure | None:
        with self.lock:
            for measure in self.computes:
                if measure.compute_id == compute_id:
                    return measure
        return None

    def setting(self, workers: int | None = None) -> Setting:
        cores = core_count()
        n = workers or config.get("num_workers") or cores  # threads and processes alike
        return Setting(
            cores=cores,
            workers={"sync": 1, "threads": n, "processes": n},
            processes_warm=processes_pool_is_running(n),
            cluster_open=cluster_is_open(),
        )

    def advice_for(self, measure: ComputeMeasure) -> Advice:
        """The advice for one measured compute (see :class:`Advice`)."""
        setting = self.setting()
        # Where it ran, with how many workers it had.
        if measure.scheduler in setting.workers:
            setting.workers[measure.scheduler] = measure.n_workers
        groups = []
        profiles = measure.profiles
        for name, group in measure.groups.items():
            profile = profiles[name]
            estimates = {
                s: estimate_seconds(profile, group.n_tasks, s, setting)
                for s in candidate_schedulers(setting)
            }
            groups.append(
                GroupAdvice(group, profile, kind_of(group, profile, measure.scheduler), estimates)
            )
        counts = {name: group.n_tasks for name, group in measure.groups.items()}
        estimates = estimate_graph(counts, profiles, setting)
        current = measure.scheduler
        pick = min(estimates, key=estimates.__getitem__) if estimates else current
        if current in estimates and estimates[current] <= PICK_MARGIN * estimates[pick]:
            pick = current
        notes = notes_for(groups, setting)
        memory = memory_use(measure)
        if memory is not None and memory.near_limit:
            notes.append(memory_note(memory, setting))
        advice = Advice(measure, groups, estimates, pick, None, notes, setting, memory)
        advice.hint = hint_text(advice)
        return advice

    def choose_for_graph(
        self, graph: Mapping[Hashable, TaskSpec], outputs: list, num_workers: int | None
    ) -> AutoChoice:
        """``scheduler="auto"``: the scheduler this graph's groups ran best on, else threads.

        The compute itself runs inside :meth:`listening` (``set_auto_chooser``), so
        the next one knows more.
        """
        # A strided sample of the keys names the groups of a big graph well enough, at
        # a fraction of the cost (naming 20,000 keys takes 10 ms: a tenth of their compute).
        keys = list(graph)
        stride = max(len(keys) // AUTO_SAMPLE_KEYS, 1)
        counts: dict[str, int] = {}
        for name in group_keys(keys[::stride], key_group).values():
            counts[name] = counts.get(name, 0) + stride
        with self.lock:
            profiles = {name: self.profiles[name] for name in counts if name in self.profiles}
        known = sum(counts[name] for name in profiles)
        if not profiles or known < sum(counts.values()) / 2:
            return AutoChoice("threads", "threads: these functions were not measured yet")
        setting = self.setting(num_workers)
        estimates = {
            s: t
            for s, t in estimate_graph(counts, profiles, setting).items()
            if s in LOCAL_SCHEDULERS
        }
        best = min(estimates, key=estimates.__getitem__)
        if estimates[best] * AUTO_MARGIN >= estimates["threads"]:
            best = "threads"
        if best == "processes":
            unpicklable = first_unpicklable_function(graph, stride)
            if unpicklable is not None:
                return AutoChoice(
                    "threads",
                    f"threads: processes would be faster, but {unpicklable} cannot be "
                    "pickled to a worker process",
                )
        named = ", ".join(f"{s} ≈ {seconds_text(t)}" for s, t in estimates.items())
        return AutoChoice(
            best, f"{best}: estimated from earlier computes of {', '.join(profiles)} ({named})"
        )


def add_inputs_and_parallelism(measure: ComputeMeasure, graph, sizes: dict, groups_of) -> None:
    """Each group's input bytes and how many of its tasks could run at once.

    A task's level is one more than its deepest input's; a group's parallelism
    is its tasks over the levels they sit on (a chain: 1; a map: all of them).
    """
    inputs: dict[str, int] = {}
    level: dict = {}
    levels: dict[str, set] = {}
    for key in sizes:
        stack = [key]
        while stack:  # levels of the inputs first, without recursion
            top = stack[-1]
            if top in level:
                stack.pop()
                continue
            spec = graph.get(top)
            deps = spec.deps if spec is not None else ()
            missing = [dep for dep in deps if dep not in level]
            if missing:
                stack.extend(missing)
                continue
            level[top] = 1 + max((level[dep] for dep in deps), default=0)
            stack.pop()
    for key, _size in sizes.items():
        spec = graph.get(key)
        name = groups_of.get(key, "?")
        levels.setdefault(name, set()).add(level.get(key, 0))
        if spec is not None and spec.deps:
            inputs[name] = inputs.get(name, 0) + sum(sizes.get(dep, 0) for dep in spec.deps)
    for name, group in measure.groups.items():
        group.nbytes_in = inputs.get(name, 0)
        if levels.get(name):
            group.parallelism = group.n_tasks / len(levels[name])


# ------------------------------------------------------------------ memory


@functools.cache
def kernel_process() -> psutil.Process:
    return psutil.Process(os.getpid())


def kernel_rss(with_children: bool) -> tuple[int, int]:
    """RSS in bytes of this process (with its child processes), and how many were summed.

    A few ``/proc`` reads (tens of µs): the advisor calls it once per batch.
    """
    rss = kernel_process().memory_info().rss
    if not with_children:
        return rss, 1
    n = 1
    for pid in child_pids(kernel_process()):
        try:
            rss += psutil.Process(pid).memory_info().rss
            n += 1
        except psutil.Error:  # it ended meanwhile
            pass
    return rss, n


def add_rss_read(measure: ComputeMeasure, rss: int, n_processes: int) -> None:
    """Fold one :func:`kernel_rss` read into ``measure``."""
    if measure.rss_peak is None:
        measure.rss_low = measure.rss_peak = rss
    measure.rss_low = min(measure.rss_low, rss)
    measure.rss_peak = max(measure.rss_peak, rss)
    measure.rss_rise = max(measure.rss_rise, rss - measure.rss_low)
    measure.rss_last = rss
    measure.rss_processes = n_processes


@functools.cache
def container_memory_limit() -> int | None:
    """The memory limit of this process's cgroup (a container's), or None: none, or unknown."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None  # "max": no limit
    return None


def memory_limit() -> tuple[int, str]:
    """The bytes the memory thresholds are shares of, and what they are, in words.

    ``MEMORY_LIMIT`` when set, else the machine's memory, or a container's limit
    when lower (above it the kernel is killed, however much the machine has).
    """
    if MEMORY_LIMIT is not None:
        return int(MEMORY_LIMIT), "advisor.MEMORY_LIMIT"
    machine = total_memory()
    container = container_memory_limit()
    if container is not None and container < machine:
        return container, "this container's limit"
    return machine, "the machine's memory"


def results_held_at_once(graph: Mapping, sizes: dict, stops: dict) -> tuple[int, int]:
    """The most bytes of results held at one time, and those held at the end.

    Replays the compute: a result is held from its task's end until its last
    dependent's end (``GraphRun.release_unneeded_results``), one no task took
    (an output) until the compute ends. Sizes are the recorded estimates.
    """
    released: dict = {}
    for key, stop in stops.items():
        spec = graph.get(key)
        for dep in spec.deps if spec is not None else ():
            if released.get(dep, -inf) < stop:
                released[dep] = stop
    changes = []
    at_end = 0
    for key, stop in stops.items():
        size = sizes.get(key, 0)
        if size > 0:
            changes.append((stop, 0, size))
            if key in released:
                changes.append((released[key], 1, -size))  # after the results made then
            else:
                at_end += size
    changes.sort()
    held = peak = 0
    for _, _, size in changes:
        held += size
        peak = max(peak, held)
    return peak, at_end


@dataclass(frozen=True)
class MemoryUse:
    """How close one compute came to the memory limit (see the module docstring).

    ``peak``: the highest RSS read, or, when higher, what the kernel held
    without the compute's results plus the most of them held at once (a peak
    between two reads); ``own``: the part of it that was the compute's.
    """

    peak: int
    own: int
    limit: int
    limit_source: str
    rss_peak: int
    held_peak: int | None
    n_processes: int

    @property
    def share(self) -> float:
        return self.peak / self.limit if self.limit else 0.0

    @property
    def near_limit(self) -> bool:
        """Near the limit, and much of it the compute's: the cluster's spilling would help."""
        return self.share >= MEMORY_NEAR_LIMIT and self.own >= MEMORY_OWN_SHARE * self.limit


def memory_use(measure: ComputeMeasure) -> MemoryUse | None:
    """What ``measure`` read of memory, against :func:`memory_limit`; None: not read."""
    if measure.rss_peak is None:
        return None
    limit, source = memory_limit()
    peak = measure.rss_peak
    own = measure.rss_rise
    if measure.held_peak is not None:
        # The last read held the outputs still; without them, what the kernel held anyway.
        without_results = max(measure.rss_last - (measure.held_at_end or 0), 0)
        peak = max(peak, without_results + measure.held_peak)
        own = max(own, measure.held_peak)
    return MemoryUse(
        peak, own, limit, source, measure.rss_peak, measure.held_peak, measure.rss_processes
    )


def cluster_memory_limit_text(memory: MemoryUse, cores: int) -> str:
    """A per-worker ``memory_limit`` for ``lc.Client``: what the kernel does not hold, shared."""
    kernel = max(memory.peak - memory.own, 0)
    per_worker = max(memory.limit - kernel, memory.limit // 4) / max(cores, 1)
    if per_worker >= 1e9:
        return f"{per_worker / 1e9:.1f}GB"
    return f"{max(per_worker / 1e6, 1):.0f}MB"


def first_unpicklable_function(graph: Mapping[Hashable, TaskSpec], stride: int) -> str | None:
    """The name of a task function (of every ``stride``-th task) cloudpickle refuses, or None.

    Only functions: pickling arguments to check them could cost as much as the
    compute. A task whose argument cannot travel still fails on processes, with
    an error that says to use threads.
    """
    import cloudpickle  # what the processes scheduler ships tasks with

    seen: set[int] = set()
    for spec in list(graph.values())[::stride]:
        func = spec.func
        if func is None or id(func) in seen:
            continue
        seen.add(id(func))
        try:
            cloudpickle.dumps(func)
        except Exception:
            return f"the function {spec.function_name!r}"
    return None


def processes_pool_is_running(n_workers: int) -> bool:
    """Whether the processes scheduler's pool of ``n_workers`` is up (no start-up to pay).

    Without the processes module loaded no pool can run: asking would import it.
    """
    processes = sys.modules.get("lazycell.schedulers.processes")
    return processes is not None and processes.existing_pool(n_workers) is not None


def cluster_is_open() -> bool:
    """Whether ``scheduler="distributed"`` could run now (an open local cluster).

    Without the cluster's client module loaded no client can be open: asking
    the registry then would import the cluster's package for nothing.
    """
    if "lazycell.distributed.client" not in sys.modules:
        return False
    try:
        scheduler_entry("distributed").make(None, None)
    except Exception:  # not registered, or no open client
        return False
    return True


@functools.cache
def autogroup_scheduling() -> bool:
    """Whether Linux shares CPUs between sessions first (each worker process has its own)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as file:
            return file.read().strip() == "1"
    except OSError:
        return False


def notes_for(groups: list[GroupAdvice], setting: Setting) -> list[str]:
    notes = []
    waited = fsum(g.measure.sampled_runqueue for g in groups)
    sampled = fsum(g.measure.sampled_wall for g in groups)
    if sampled and waited / sampled > BUSY_MACHINE and autogroup_scheduling():
        notes.append(
            f"other programs held the CPUs {waited / sampled:.0%} of the time; Linux shares "
            "them between sessions first, and each processes worker is a session of its "
            "own, so on a machine this busy processes may beat these estimates"
        )
    for group in groups:
        g, p = group.measure, group.profile
        if group.kind == "tiny tasks" and g.n_tasks >= 1000:
            notes.append(
                f"{g.n_tasks:,} tasks of {seconds_text(p.cpu + p.wait)} in {g.name!r}: "
                "scheduling costs more than the work; batch them (fewer, bigger tasks)"
            )
        if group.kind.startswith("waits") and p.wait > 4 * p.cpu:
            more = min(max(setting.workers["threads"] * 4, 8), max(g.n_tasks, 1), 64)
            notes.append(
                f"{g.name!r} mostly waits: more threads overlap more of it "
                f"(--scheduler threads --workers {more})"
            )
        if p.gil_share is None and p.cpu > p.wait and g.n_tasks > 1:
            releasing = replace(p, gil_share=0.0)
            threads = estimate_seconds(releasing, g.n_tasks, "threads", setting)
            notes.append(
                f"whether {g.name!r} holds the GIL shows only on 2+ threads; the estimates "
                f"assume it does: if it releases it (NumPy), threads ≈ {seconds_text(threads)}"
            )
        moved = g.n_tasks * (p.bytes_in + p.bytes_out)
        if moved > 2e8:
            notes.append(
                f"{g.name!r} moves {format_bytes(moved)} of inputs and results: "
                "on processes all of it is pickled; threads share it, "
                "a local cluster keeps it on its workers"
            )
    return notes


def memory_text(memory: MemoryUse) -> str:
    """The memory line of the reasoning: the peak against the limit, and the compute's part."""
    children = memory.n_processes - 1
    who = "this process" + (
        f" and its {children} child process{'es' if children > 1 else ''}" if children else ""
    )
    how = f"highest RSS of its reads, a few a second: {format_bytes(memory.rss_peak)}"
    if memory.held_peak is not None:
        held = format_bytes(memory.held_peak)
        how += f"; results held at once ≈ {held}, by their estimated sizes"
    return (
        f"{who} peaked at ≈ {format_bytes(memory.peak)} ({how}), {memory.share:.0%} of "
        f"{format_bytes(memory.limit)} ({memory.limit_source}); the compute's own ≈ "
        f"{format_bytes(memory.own)}"
    )


def memory_note(memory: MemoryUse, setting: Setting) -> str:
    limit = cluster_memory_limit_text(memory, setting.cores)
    return (
        f"memory came near the limit ({memory.share:.0%} of {format_bytes(memory.limit)}, "
        f"{format_bytes(memory.own)} of it this compute's): there the machine swaps or the kernel "
        f'is killed. A local cluster (lc.Client(memory_limit="{limit}"), then --scheduler '
        "distributed) keeps results on its workers, which spill them to disk above "
        f"{CLUSTER_SPILL_SHARE:.0%} of their limit. This is about memory, not speed: it may "
        "take longer, but it finishes"
    )


def memory_hint(advice: Advice) -> str | None:
    """The hint when memory is the main problem: near the limit, much of it the compute's."""
    memory = advice.memory
    if memory is None or not memory.near_limit:
        return None
    limit = cluster_memory_limit_text(memory, advice.setting.cores)
    return (
        f"memory peaked at ≈ {format_bytes(memory.peak)}, {memory.share:.0%} of "
        f"{format_bytes(memory.limit)} — --scheduler distributed with "
        f'lc.Client(memory_limit="{limit}") spills results to disk above '
        f"{CLUSTER_SPILL_SHARE:.0%} of each worker's limit: maybe slower, but it finishes "
        "instead of swapping or being killed"
    )


def hint_text(advice: Advice) -> str | None:
    """The one-line hint, or None when the current choice is right or the compute was short.

    Memory near the limit comes first, whatever the compute's length or outcome
    (a MemoryError is an error): speed matters little to a kernel about to be killed.
    """
    hint = memory_hint(advice)
    if hint is not None:
        return hint
    m = advice.measure
    if advice.pick == m.scheduler or m.status != "ok" or m.elapsed < HINT_AFTER_SECONDS:
        return None
    speedup = advice.speedup
    if speedup < HINT_SPEEDUP:
        return None
    # The group whose estimate gains most names the reason.
    main = max(
        advice.groups,
        key=lambda g: g.estimates.get(m.scheduler, 0) - g.estimates.get(advice.pick, 0),
    )
    g, p = main.measure, main.profile
    ratio = g.cpu_per_wall
    if main.kind == "holds the GIL" and ratio is not None:
        why = (
            f"{g.name!r} holds the GIL (CPU/wall {ratio:.2f} on each of {m.n_workers} threads, "
            f"{g.cores_busy:.1f} core busy)"
        )
    elif main.kind == "tiny tasks":
        each = seconds_text(p.cpu + p.wait)
        why = f"{g.n_tasks:,} tasks of {each}: scheduling costs more than the work"
    elif main.kind.startswith("waits"):
        why = f"{g.name!r} mostly waits (CPU/wall {ratio or 0:.2f})"
    elif m.scheduler == "processes" and p.bytes_in + p.bytes_out > 1e5:
        moved = format_bytes(g.n_tasks * (p.bytes_in + p.bytes_out))
        why = f"{g.name!r} moves {moved} through pickling"
    elif m.scheduler == "sync":
        why = f"{g.name!r} is CPU work run on one core of {advice.setting.cores}"
    else:
        why = f"{g.name!r} {main.kind}"
    estimate = m.elapsed / speedup
    return (
        f"{why} — --scheduler {advice.pick} would take ≈ {seconds_text(estimate)} "
        f"instead of {seconds_text(m.elapsed)}"
    )


ADVISOR = Advisor()
set_auto_chooser(ADVISOR.choose_for_graph, ADVISOR.listening)


# ------------------------------------------------------------------ the plain-Python API


def advice_for_last_compute() -> Advice | None:
    """The advice for the last compute the advisor measured, or None.

    Computes are measured while a view shows them (the text bar, the panel, a
    ``%%compute`` cell), under ``scheduler="auto"``, and always once
    :func:`advise` found nothing to say.
    """
    with ADVISOR.lock:
        measure = ADVISOR.computes[-1] if ADVISOR.computes else None
    return None if measure is None else ADVISOR.advice_for(measure)


def advise() -> Advice | str:
    """``lc.advise()``: the reasoning for the last compute, or what to do to get one.

    >>> total.compute()
    >>> print(lc.advise())          # per task group: time, CPU/wall, bytes, estimates

    With nothing measured yet it says so, and measures every compute from then on.
    """
    advice = advice_for_last_compute()
    if advice is None:
        ADVISOR.start()
        return NOTHING_MEASURED
    return advice


def advise_text() -> str:
    """What ``%scheduler --advise`` prints: :func:`advise`, and the last ``auto`` choice."""
    text = str(advise())
    choice = last_auto_choice()
    if choice is not None:
        text += f"\nscheduler='auto' last ran on {choice.reason}"
    return text


NOTHING_MEASURED = (
    "No compute measured yet: the advisor measures computes from now on. "
    "Run the compute again, then ask again."
)


def hint_for(state) -> str | None:
    """The hint line for a finished compute's ``ComputeState`` (the panel, the text bar).

    None when the advisor is off (``lc.config`` ``advisor=False``), did not
    measure that compute, or finds the current scheduler right.
    """
    if not config.get("advisor") or not state.finished:
        return None
    measure = ADVISOR.measure_of(state.compute_id)
    if measure is None:
        return None
    if measure.elapsed < HINT_AFTER_SECONDS:
        memory = memory_use(measure)
        if memory is None or not memory.near_limit:
            return None
    return ADVISOR.advice_for(measure).hint


def listening() -> AbstractContextManager:
    """``with advisor.listening():`` the computes inside are measured (views, ``%%compute``)."""
    return ADVISOR.listening()
