"""What the JupyterLab extension is sent: plain JSON-able dicts built from the folded state.

The front end's types for these are in ``labextension/src/protocol.ts``; keep
the two in step. Every function here is a function of its arguments (a
``ComputeState``, resource samples, a cluster's ``scheduler_info()``), so the
shapes are testable without a kernel or a browser.

- ``compute_message(state, cell)``: the running (or last) compute: totals,
  ETA, its task groups (the ``MAX_GROUPS`` largest), its first errors.
- ``history_entry(state, cell)``: one line of the kernel's history of computes.
- ``local_workers(state, sample, memory_total)``: the kernel (sync / threads)
  and the pool's processes, measured by the resource sampler;
  ``cluster_workers(info)``: a lazycell or dask cluster's own account.
- ``resource_points(samples, now)``: ``[seconds ago, CPU %, RSS]`` for the
  resources-over-time chart.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from lazycell.diagnostics.compute_state import ComputeState
from lazycell.diagnostics.resources import ResourceSample
from lazycell.diagnostics.workers import bar_limit, worker_memory_from_info

# A graph of thousands of groups would make every message large; the panel shows the largest.
MAX_GROUPS = 50
MAX_ERRORS = 20
# The panel's task stream draws at most this many bars, spread over the whole compute.
TASK_STREAM_BARS = 400
# The resources chart spans this many seconds; older samples are not sent.
RESOURCE_WINDOW_SECONDS = 120.0


class CellOfCompute(NamedTuple):
    """Where a compute ran: ``In[number]`` and the notebook cell's id (None outside a cell)."""

    number: int | None
    cell_id: str | None


NO_CELL = CellOfCompute(None, None)


def compute_message(state: ComputeState, cell: CellOfCompute = NO_CELL) -> dict:
    """The compute's progress, as the side panel and status item draw it."""
    groups = sorted(state.groups.items(), key=lambda item: -item[1].total)[:MAX_GROUPS]
    order = {name: index for index, name in enumerate(state.groups)}
    groups.sort(key=lambda item: order[item[0]])  # the largest, in the graph's order
    eta = state.eta()
    return {
        "id": state.compute_id,
        "cell": cell.number,
        "cellId": cell.cell_id,
        "scheduler": state.scheduler,
        "nWorkers": state.n_workers,
        "nTasks": state.n_tasks,
        "done": state.done,
        "running": state.running,
        "erred": state.erred,
        "status": state.status,
        "elapsed": round(state.elapsed(), 3),
        "eta": None if eta is None else round(eta, 3),
        "groups": [
            {
                "name": name,
                "total": group.total,
                "done": group.done,
                "running": group.running,
                "erred": group.erred,
            }
            for name, group in groups
        ],
        "errors": state.errors[:MAX_ERRORS],
        "summary": state.summary(),
    }


def task_stream_message(state: ComputeState) -> dict:
    """The compute's task stream (thinned, see ``ThinnedStream``), in columns by index.

    ``bars``: ``[worker index, start, stop, group index, erred]`` in seconds
    since the compute started; ``workers`` and ``groups`` name the indexes.
    """
    workers: dict[str, int] = {}
    groups: dict[str, int] = {}
    bars = []
    for bar in state.task_stream:
        worker = workers.setdefault(bar.worker, len(workers))
        group = groups.setdefault(bar.group, len(groups))
        bars.append([worker, round(bar.start, 4), round(bar.stop, 4), group, int(bar.erred)])
    return {
        "computeId": state.compute_id,
        "workers": list(workers),
        "groups": list(groups),
        "bars": bars,
    }


def history_entry(state: ComputeState, cell: CellOfCompute = NO_CELL) -> dict:
    """One finished compute, for the panel's history."""
    return {
        "id": state.compute_id,
        "cell": cell.number,
        "cellId": cell.cell_id,
        "scheduler": state.scheduler,
        "nTasks": state.n_tasks,
        "done": state.done,
        "erred": state.erred,
        "status": state.status,
        "duration": round(state.elapsed(), 3),
        "startedAt": state.wall_started_at,
        "summary": state.summary(),
    }


def worker_row(
    name: str,
    *,
    managed: int = 0,
    unmanaged: int = 0,
    spilled: int = 0,
    limit: int,
    threads: int | None = None,
    tasks: int | None = None,
    processing: int | None = None,
    cpu: float | None = None,
) -> dict:
    """One worker's row: its memory bar (bytes) and what else is known of it."""
    return {
        "name": name,
        "threads": threads,
        "tasks": tasks,
        "processing": processing,
        "cpu": None if cpu is None else round(cpu, 1),
        "managed": int(managed),
        "unmanaged": int(unmanaged),
        "spilled": int(spilled),
        "limit": int(limit),
    }


def local_workers(
    state: ComputeState | None,
    processes: dict[str, int],
    sample: ResourceSample | None,
    memory_total: int,
) -> list[dict]:
    """The kernel and the pool's processes (``{label: pid}``) with their resident memory.

    The kernel's row carries the threads scheduler's threads and the CPU of
    the kernel with its children (the sampler measures them together).
    """
    rss_by_pid = sample.rss_by_pid if sample is not None else {}
    per_worker = state.tasks_per_worker if state is not None else {}
    local = state is not None and state.scheduler in ("sync", "threads")
    rows = []
    for label, pid in processes.items():
        is_kernel = label == "kernel"
        tasks = sum(per_worker.values()) if is_kernel and local else per_worker.get(label)
        rows.append(
            worker_row(
                label,
                unmanaged=rss_by_pid.get(pid, 0),
                limit=memory_total,
                threads=state.n_workers if is_kernel and local and state else None,
                tasks=tasks if state is not None else None,
                cpu=sample.cpu_percent if is_kernel and sample is not None else None,
            )
        )
    return rows


def cluster_workers(info: dict, memory_total: int | None = None) -> list[dict]:
    """A lazycell ``LocalCluster``'s workers, from its ``scheduler_info()``."""
    memory = worker_memory_from_info(info, memory_total)
    return [
        worker_row(
            name,
            managed=memory[name].managed,
            unmanaged=memory[name].unmanaged,
            spilled=memory[name].spilled,
            limit=memory[name].limit,
            threads=worker.get("threads"),
            tasks=worker.get("n_results"),
            processing=worker.get("n_processing"),
            cpu=worker.get("cpu"),
        )
        for name, worker in info.get("workers", {}).items()
    ]


def dask_cluster_workers(info: dict, memory_total: int) -> list[dict]:
    """A dask.distributed cluster's workers, from dask's ``Client.scheduler_info()``.

    A worker without a memory limit is drawn against the machine's memory,
    ``memory_total`` (the one rule of ``diagnostics.workers.bar_limit``).
    """
    workers = info.get("workers", {})
    rows = []
    for address, worker in workers.items():
        metrics = worker.get("metrics", {})
        spilled = metrics.get("spilled_bytes", {})
        spilled_disk = spilled.get("disk", 0) if isinstance(spilled, dict) else 0
        managed = metrics.get("managed_bytes", 0)
        rows.append(
            worker_row(
                str(worker.get("name", address)),
                managed=managed,
                unmanaged=max(0, metrics.get("memory", 0) - managed),
                spilled=spilled_disk,
                limit=bar_limit(worker.get("memory_limit"), memory_total),
                threads=worker.get("nthreads"),
                tasks=metrics.get("task_counts", {}).get("memory"),
                processing=metrics.get("task_counts", {}).get("processing"),
                cpu=metrics.get("cpu"),
            )
        )
    return rows


def resource_points(samples: list[ResourceSample], now: float | None = None) -> list[list]:
    """``[[seconds ago, CPU %, RSS bytes], ...]`` of the last ``RESOURCE_WINDOW_SECONDS``."""
    now = time.perf_counter() if now is None else now
    points = []
    for sample in reversed(samples):
        ago = now - sample.time
        if ago > RESOURCE_WINDOW_SECONDS:
            break
        points.append([round(max(ago, 0.0), 2), round(sample.cpu_percent, 1), sample.rss])
    points.reverse()
    return points
