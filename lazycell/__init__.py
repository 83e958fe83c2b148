"""lazycell: lazy task graphs for Jupyter, on the scheduler of your choice.

>>> import lazycell as lc
>>> @lc.delayed
... def inc(x):
...     return x + 1
>>> lc.compute(inc(1), inc(2), scheduler="threads")
(2, 3)

This module is the package's public surface and the one place that wires
its layers together (see ``docs/architecture.md``): it registers the
schedulers that live above the scheduler registry, and loads the local
cluster, the reports and the IPython extension only when first used, so
``import lazycell`` stays light (no plotly, ipywidgets, IPython or numpy).
"""

import sys

from lazycell import config, diagnostics
from lazycell._version import __version__ as __version__
from lazycell.api import compute, get, get_scheduler, graph_of, persist
from lazycell.events.failure import SerializationError, TaskError, WorkerDiedError
from lazycell.graph.delayed import Delayed, delayed
from lazycell.graph.spec import TaskSpec
from lazycell.schedulers.registry import register_scheduler, register_scheduler_object
from lazycell.widgets.live import live

# The name lc.diagnostics.live has had since 0.1; live() itself is a widgets-layer view.
diagnostics.live = live

_FROM_DISTRIBUTED = (
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
    "fire_and_forget",
    "futures_of",
    "get_client",
    "get_task_stream",
    "get_worker",
    "rejoin",
    "secede",
    "wait",
    "worker_client",
)


def _open_cluster_scheduler(num_workers, pool):
    """``scheduler="distributed"``: the open ``lc.Client``'s cluster (ValueError without one)."""
    from lazycell.distributed.client import current_client

    return current_client().graph_runner()


register_scheduler(
    "distributed",
    _open_cluster_scheduler,
    aliases=("local-cluster", "localcluster", "cluster"),
    when_to_use="the open lc.Client's local cluster: results stay on long-lived workers",
)


def _dask_cluster_scheduler(num_workers, pool):
    """``scheduler="dask"``: the open connection to a dask cluster (``lc.Client(address)``)."""
    from lazycell.dask_cluster import current_scheduler

    return current_scheduler(num_workers, pool)


register_scheduler(
    "dask",
    _dask_cluster_scheduler,
    aliases=("dask-cluster", "dask.distributed"),
    when_to_use="beyond one machine: an existing dask.distributed cluster, "
    "lc.Client('tcp://host:8786') or --scheduler tcp://host:8786",
)


def _is_distributed_client(obj) -> bool:
    distributed = sys.modules.get("distributed")  # never imported to tell
    return distributed is not None and isinstance(obj, distributed.Client)


def _distributed_client_scheduler(client):
    """``scheduler=distributed_client``: that client's cluster, through one lazycell connection."""
    from lazycell.dask_cluster import connection_for

    return connection_for(client).graph_runner()


register_scheduler_object(_is_distributed_client, _distributed_client_scheduler)


def __getattr__(name: str):
    # The local cluster and the report load on first use: worker processes
    # (which import lazycell) and sessions that never use them do not pay for them.
    if name in _FROM_DISTRIBUTED:
        import lazycell.distributed

        return getattr(lazycell.distributed, name)
    if name == "dask_cluster":
        import lazycell.dask_cluster

        return lazycell.dask_cluster
    if name == "advise":
        from lazycell.diagnostics.advisor import advise

        return advise
    if name == "performance_report":
        from lazycell.diagnostics.report import performance_report

        return performance_report
    raise AttributeError(f"module 'lazycell' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """``%load_ext lazycell``: register the magics (see ``lazycell.kernel_ext``)."""
    from lazycell.kernel_ext import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext lazycell``: remove the magics and stop what they started."""
    from lazycell.kernel_ext import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "Client",
    "Delayed",
    "Event",
    "Future",
    "LocalCluster",
    "Lock",
    "Queue",
    "Semaphore",
    "SerializationError",
    "TaskError",
    "TaskSpec",
    "Variable",
    "WorkerDiedError",
    "WorkerPlugin",
    "advise",
    "as_completed",
    "compute",
    "config",
    "dask_cluster",
    "delayed",
    "diagnostics",
    "fire_and_forget",
    "futures_of",
    "get",
    "get_client",
    "get_scheduler",
    "get_task_stream",
    "get_worker",
    "graph_of",
    "live",
    "performance_report",
    "persist",
    "register_scheduler",
    "rejoin",
    "secede",
    "wait",
    "worker_client",
]
