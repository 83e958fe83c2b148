"""The local cluster: ``Client`` and ``LocalCluster`` with long-lived worker processes.

Results stay on the worker that made them; the scheduler (a thread in the
kernel) places each task on the worker holding most of its input bytes, and
inputs held elsewhere move worker to worker. See the ``scheduler`` package for
the design, ``worker.py`` for a worker's threads, ``protocol.py`` for how bytes
travel and how connections are authenticated, ``failures.py`` for how a task's
exception comes back (and why it is kept pickled).

>>> import lazycell as lc
>>> with lc.Client(n_workers=2) as client:
...     futures = client.map(pow, [2, 3], [10, 2])
...     client.gather(futures)
[1024, 9]
"""

from lazycell.distributed.client import (
    Client,
    Future,
    as_completed,
    current_client,
    futures_of,
    get_task_stream,
    wait,
)
from lazycell.distributed.cluster import LocalCluster
from lazycell.distributed.plugins import WorkerPlugin, get_worker
from lazycell.distributed.primitives import Event, Lock, Queue, Semaphore, Variable
from lazycell.distributed.worker_client import (
    fire_and_forget,
    get_client,
    rejoin,
    secede,
    worker_client,
)

__all__ = [
    "Client",
    "Event",
    "Future",
    "LocalCluster",
    "Lock",
    "Queue",
    "Semaphore",
    "Variable",
    "WorkerPlugin",
    "as_completed",
    "current_client",
    "fire_and_forget",
    "futures_of",
    "get_client",
    "get_task_stream",
    "get_worker",
    "rejoin",
    "secede",
    "wait",
    "worker_client",
]
