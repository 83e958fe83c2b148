"""Which workers a compute's memory bars show, and what each holds.

The worker memory bars need, per worker, either a process to measure or the
cluster's own account of its memory:

- ``sync`` and ``threads``: every worker is a thread of this process, so
  there is one bar, the kernel's;
- ``processes``: each pool process is a worker of its own
  (:func:`worker_processes` gives ``{label: pid}``);
- ``distributed``: each cluster worker reports, with its heartbeat, the
  results it holds, what it spilled to disk and the rest of its memory
  (:func:`worker_memory_from_info` turns the cluster's ``scheduler_info()``
  into ``{name: WorkerMemory}``).

One rule for every bar's limit, whatever the scheduler (:func:`bar_limit`):
the process's memory limit when it has one (a cluster worker's
``memory_limit``), else the machine's memory. Dividing the machine among the
processes shown made the kernel's bar 25 GB under threads and 8 GB under
processes for the same kernel; the machine's memory is the point past which
any one process would exhaust it. Every bar states the rule in its tooltip
(:func:`limit_rule`).

A bar turns orange at ``WARN_FRACTION`` and red at ``DANGER_FRACTION`` of its
limit, in the notebook panels and on the cluster's dashboard alike.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from lazycell.diagnostics.compute_state import ComputeState
from lazycell.diagnostics.resources import total_memory as machine_memory

WARN_FRACTION = 0.6
DANGER_FRACTION = 0.85


class WorkerMemory(NamedTuple):
    """One cluster worker's memory, in bytes, as its bar draws it."""

    managed: int  # results the worker holds in memory
    unmanaged: int  # the rest of the process's resident memory
    spilled: int  # results moved to disk (not in memory)
    limit: int  # see bar_limit: the worker's memory limit, or the machine's memory
    has_limit: bool = True  # False: ``limit`` is the machine's memory

    @property
    def in_memory(self) -> int:
        return self.managed + self.unmanaged


def bar_limit(memory_limit: int | None, machine: int | None = None) -> int:
    """What a memory bar is drawn against: ``memory_limit``, else the machine's memory."""
    return memory_limit or (machine if machine is not None else machine_memory())


def limit_rule(limit: int, has_limit: bool) -> str:
    """The rule, as a bar's tooltip says it (see the module docstring)."""
    if has_limit:
        return f"drawn against the worker's memory limit ({limit / 1e9:.1f} GB)"
    return (
        f"drawn against the machine's memory ({limit / 1e9:.1f} GB): "
        "a process without a memory limit can use all of it"
    )


class TaskSlots(NamedTuple):
    """A worker's (or the cluster's) tasks in hand: those running and those queued."""

    running: int
    queued: int


def task_slots(n_processing: int, threads: int) -> TaskSlots:
    """Split the tasks sent to a worker into running and queued.

    A worker runs at most one task per thread; the scheduler sends it more
    than that to keep its threads busy, and those wait in its queue. A free
    thread takes the next task at once, so ``min(sent, threads)`` run.
    """
    running = min(n_processing, max(threads, 0))
    return TaskSlots(running, n_processing - running)


def cluster_task_slots(info: dict) -> TaskSlots:
    """:func:`task_slots` summed over the workers of ``scheduler_info()``."""
    workers = info.get("workers")
    if workers is None:  # totals only
        totals = info["totals"]
        return task_slots(totals["n_processing"], totals["threads"])
    slots = [task_slots(w["n_processing"], w["threads"]) for w in workers.values()]
    return TaskSlots(sum(s.running for s in slots), sum(s.queued for s in slots))


def worker_processes(state: ComputeState) -> dict[str, int]:
    """``{label: pid}`` of the processes doing ``state``'s work, the kernel first."""
    processes = {"kernel": os.getpid()}
    if state.scheduler == "processes":
        processes.update(_pool_processes(state.n_workers))
    return processes


def _pool_processes(n_workers: int) -> dict[str, int]:
    # Imported here: the pool's module (cloudpickle, subprocesses) loads only
    # for a processes compute. Only looks: a pool retired since its compute
    # (a newer size took its place) has no processes to show, and none start.
    from lazycell.schedulers.processes import existing_pool

    pool = existing_pool(n_workers)
    if pool is None:
        return {}
    return {f"process-{index}": pid for index, pid in enumerate(pool.pids)}


def worker_memory_from_info(info: dict, total_memory: int | None = None) -> dict[str, WorkerMemory]:
    """``{worker name: WorkerMemory}`` from ``scheduler_info()``.

    Workers without a memory limit are drawn against the machine's memory
    (``total_memory``, default: this machine's), as :func:`bar_limit` says.
    """
    workers = info.get("workers", {})
    if total_memory is None:
        total_memory = machine_memory()
    return {
        name: WorkerMemory(
            # managed_bytes counts every result the worker holds, spilled ones too
            managed=max(0, worker.get("managed_bytes", 0) - worker.get("spilled_bytes", 0)),
            unmanaged=worker.get("unmanaged_bytes", 0),
            spilled=worker.get("spilled_bytes", 0),
            limit=bar_limit(worker.get("memory_limit"), total_memory),
            has_limit=bool(worker.get("memory_limit")),
        )
        for name, worker in workers.items()
    }


def format_bytes(n: float) -> str:
    """``1234567 -> "1.2 MB"`` (the panels' and the advisor's one way to write a size)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
