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
    limit: int  # the worker's memory limit, or its share of the machine's memory

    @property
    def in_memory(self) -> int:
        return self.managed + self.unmanaged


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

    Workers without a memory limit are drawn against an equal share of the
    machine's memory (``total_memory``, default: this machine's).
    """
    workers = info.get("workers", {})
    if total_memory is None:
        total_memory = machine_memory()
    share = total_memory // max(len(workers), 1)
    return {
        name: WorkerMemory(
            # managed_bytes counts every result the worker holds, spilled ones too
            managed=max(0, worker.get("managed_bytes", 0) - worker.get("spilled_bytes", 0)),
            unmanaged=worker.get("unmanaged_bytes", 0),
            spilled=worker.get("spilled_bytes", 0),
            limit=worker.get("memory_limit") or share,
        )
        for name, worker in workers.items()
    }
