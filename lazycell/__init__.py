"""lazycell: lazy task graphs for Jupyter, on the scheduler of your choice.

>>> import lazycell as lc
>>> @lc.delayed
... def inc(x):
...     return x + 1
>>> lc.compute(inc(1), inc(2), scheduler="threads")
(2, 3)
"""

from lazycell import config, diagnostics
from lazycell.diagnostics import live, performance_report
from lazycell.graph.compute import compute, get, get_scheduler, graph_of, persist
from lazycell.graph.delayed import Delayed, delayed
from lazycell.graph.spec import TaskSpec
from lazycell.schedulers.errors import SerializationError, TaskError, WorkerDiedError

__version__ = "0.1.0"

_FROM_DISTRIBUTED = (
    "Client",
    "Future",
    "LocalCluster",
    "WorkerPlugin",
    "as_completed",
    "get_worker",
    "wait",
)


def __getattr__(name: str):
    # The local cluster loads on first use: worker processes (which import
    # lazycell) and sessions that never start a cluster do not pay for it.
    if name in _FROM_DISTRIBUTED:
        import lazycell.distributed

        return getattr(lazycell.distributed, name)
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
    "Future",
    "LocalCluster",
    "SerializationError",
    "TaskError",
    "TaskSpec",
    "WorkerDiedError",
    "WorkerPlugin",
    "as_completed",
    "compute",
    "config",
    "delayed",
    "diagnostics",
    "get",
    "get_scheduler",
    "get_worker",
    "graph_of",
    "live",
    "performance_report",
    "persist",
    "wait",
]
