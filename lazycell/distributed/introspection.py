"""Read-only views of the cluster's state: ``scheduler_info``, ``who_has``, ``has_what``.

Each function runs on the scheduler thread (through ``scheduler.call``), the
one owner of the state, and returns plain data — names, numbers, lists — that
a caller may keep and that the dashboard serves as JSON as it is.
"""

from __future__ import annotations

import time
from collections.abc import Hashable


def worker_info(scheduler, worker) -> dict:
    """One worker's entry in ``scheduler_info()["workers"]``."""
    metrics = worker.metrics
    rss = metrics.get("rss", 0)
    managed = worker.nbytes
    return {
        "name": worker.name,
        "pid": worker.pid,
        "address": worker.address,  # a Unix socket path, or (host, port)
        "status": worker.state,
        "threads": worker.threads,
        "memory_limit": scheduler.memory_limit,
        "memory": rss,  # the process's resident memory, from its last heartbeat
        "managed_bytes": managed,  # results the scheduler knows it holds
        "spilled_bytes": metrics.get("spilled", 0),
        "unmanaged_bytes": max(0, rss - metrics.get("managed", 0)),
        "cpu": metrics.get("cpu", 0.0),
        "n_results": len(worker.has_what),
        "n_processing": len(worker.processing),
        "paused": worker.paused,
        "last_seen": metrics.get("time"),
        "plugins": sorted(scheduler.plugins),
    }


def scheduler_info(scheduler) -> dict:
    """The workers (by name) and the cluster's totals; see ``Client.scheduler_info``."""
    workers = {w.name: worker_info(scheduler, w) for w in scheduler.live_workers()}
    limit = scheduler.memory_limit
    return {
        "type": "LocalCluster",
        "started": scheduler.activity.origin_wall,
        "time": time.time(),
        "workers": workers,
        "totals": {
            "workers": len(workers),
            "threads": sum(w["threads"] for w in workers.values()),
            "memory_limit": limit * len(workers) if limit else None,
            "memory": sum(w["memory"] for w in workers.values()),
            "managed_bytes": sum(w["managed_bytes"] for w in workers.values()),
            "spilled_bytes": sum(w["spilled_bytes"] for w in workers.values()),
            "n_results": sum(w["n_results"] for w in workers.values()),
            "n_processing": sum(w["n_processing"] for w in workers.values()),
            "n_tasks": len(scheduler.tasks),
        },
        "adaptive": dict(scheduler.adaptive.options) if scheduler.adaptive else None,
    }


def running_workers_info(scheduler) -> list[dict]:
    """``worker_info`` of the running workers (not those starting or retiring)."""
    return [worker_info(scheduler, w) for w in scheduler.running_workers()]


def who_has(scheduler, keys: list[Hashable] | None) -> dict:
    """``{key: [worker names]}``: an empty list for a known key not in memory."""
    if keys is None:
        keys = [key for key, ts in scheduler.tasks.items() if ts.state == "memory"]
    out = {}
    for key in keys:
        ts = scheduler.tasks.get(key)
        held = ts is not None and ts.state == "memory" and ts.who_has is not None
        copies = sorted(w.name for w in ts.replicas or ()) if held else []
        out[key] = [ts.who_has.name, *copies] if held else []
    return out


def has_what(scheduler) -> dict:
    """``{worker name: [keys it holds]}`` for every live worker (copies included)."""
    return {
        w.name: [ts.key for ts in w.has_what] + [ts.key for ts in w.replicas]
        for w in scheduler.live_workers()
    }
