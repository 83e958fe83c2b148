"""CPU and memory of the kernel process and its children, sampled on a thread.

::

    sampler thread (every ``interval`` s)           readers (views, reports)
    ─────────────────────────────────────           ────────────────────────
    psutil: this process + children (recursive)
      cpu_percent, rss of each ──► samples.append(ResourceSample) ──► read samples / latest

- ``ResourceSample``: one instant: seconds on the ``perf_counter`` clock,
  total CPU % (100 = one core busy) and RSS in bytes of the kernel and its
  children, and the RSS of each process by pid (the worker memory bars use it).
- ``ResourceSampler``: the thread. ``samples`` only grows (a list append is
  atomic), so readers need no lock; ``max_samples`` bounds it by halving.

Why children too: the processes scheduler's workers are the kernel's
children, and their CPU and memory are the compute's.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import NamedTuple

import psutil

DEFAULT_INTERVAL = 0.5


class ResourceSample(NamedTuple):
    time: float  # perf_counter clock
    cpu_percent: float  # summed over the processes; 100 = one core
    rss: int  # bytes, summed over the processes
    rss_by_pid: dict


@functools.cache
def total_memory() -> int:
    """The machine's physical memory in bytes: the limit memory bars are drawn against.

    Read once: it does not change while the kernel runs, and panels ask at every render.
    """
    return psutil.virtual_memory().total


def _proc_children_supported() -> bool:
    pid = os.getpid()
    return os.path.exists(f"/proc/{pid}/task/{pid}/children")


PROC_CHILDREN = _proc_children_supported()


def child_pids(process: psutil.Process) -> list[int]:
    """The pids of ``process``'s descendants: :func:`descendant_pids`, else psutil's walk."""
    pids = descendant_pids(process.pid)
    if pids is not None:
        return list(pids)
    try:
        return [child.pid for child in process.children(recursive=True)]
    except psutil.Error:  # it ended meanwhile
        return []


def descendant_pids(pid: int) -> list[int] | None:
    """The pids of ``pid``'s children, recursively; None where the system cannot say cheaply.

    Linux lists each thread's children in ``/proc/<pid>/task/<tid>/children``:
    a few small reads, where psutil's ``children()`` reads the stat file of
    every process on the machine. It matters because the sampler runs on the
    delivering thread during computes (see events.py), and every read releases
    the GIL, which it must then win back from the busy worker threads.
    """
    if not PROC_CHILDREN:
        return None
    found: list[int] = []
    parents = [pid]
    while parents:
        parent = parents.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:  # it has ended
            continue
        for thread in threads:
            try:
                with open(f"/proc/{parent}/task/{thread}/children", "rb") as file:
                    children = [int(child) for child in file.read().split()]
            except OSError:  # the thread has ended
                continue
            found.extend(children)
            parents.extend(children)
    return found


class ResourceSampler:
    """Sample CPU % and RSS of this process and its children every ``interval`` s.

    >>> with ResourceSampler(interval=0.1) as sampler:
    ...     total.compute()
    >>> sampler.latest.rss > 0
    True
    """

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, pid: int | None = None, max_samples: int = 4000
    ):
        self.interval = interval
        self.max_samples = max_samples
        self.root = psutil.Process(pid or os.getpid())
        self.samples: list[ResourceSample] = []
        self._processes: dict[int, psutil.Process] = {}  # kept so cpu_percent has a baseline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> ResourceSample | None:
        return self.samples[-1] if self.samples else None

    def sample(self) -> ResourceSample:
        """Take one sample now (the thread calls this; tests may too)."""
        processes = self._current_processes()
        cpu = 0.0
        rss_by_pid = {}
        for pid, process in processes.items():
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(None)
                    rss_by_pid[pid] = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self._processes.pop(pid, None)
        sample = ResourceSample(time.perf_counter(), cpu, sum(rss_by_pid.values()), rss_by_pid)
        self.samples.append(sample)
        if len(self.samples) > self.max_samples:
            self.samples = self.samples[::2]
        return sample

    def sample_if_due(self) -> None:
        """Sample unless the last sample is younger than ``interval`` (for callers' clocks)."""
        latest = self.latest
        if latest is None or time.perf_counter() - latest.time >= self.interval:
            self.sample()

    def _current_processes(self) -> dict[int, psutil.Process]:
        alive = {self.root.pid: self.root}
        for pid in child_pids(self.root):
            process = self._processes.get(pid)
            if process is None:
                try:
                    process = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue
            alive[pid] = process
        for pid, process in alive.items():
            if pid not in self._processes:
                self._processes[pid] = process
                try:
                    process.cpu_percent(None)  # the first call only sets the baseline
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
        for pid in list(self._processes):
            if pid not in alive:
                del self._processes[pid]
        return {pid: self._processes[pid] for pid in alive if pid in self._processes}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> ResourceSampler:
        if self._thread is None:
            self._stop.clear()
            self.sample()
            self._thread = threading.Thread(
                target=self._run, name="lazycell-resources", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after one last sample, so short computes get an end point."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
