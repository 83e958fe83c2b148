"""lazycell: lazy task graphs for Jupyter, on the scheduler of your choice.

>>> import lazycell as lc
>>> @lc.delayed
... def inc(x):
...     return x + 1
>>> lc.compute(inc(1), inc(2), scheduler="threads")
(2, 3)
"""

from lazycell import config, diagnostics
from lazycell.graph.compute import compute, get, get_scheduler, graph_of, persist
from lazycell.graph.delayed import Delayed, delayed
from lazycell.graph.spec import TaskSpec
from lazycell.schedulers.errors import SerializationError, TaskError, WorkerDiedError

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    """``%load_ext lazycell``: register the magics (see ``lazycell.kernel_ext``)."""
    from lazycell.kernel_ext import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext lazycell``: remove the magics and stop what they started."""
    from lazycell.kernel_ext import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "Delayed",
    "SerializationError",
    "TaskError",
    "TaskSpec",
    "WorkerDiedError",
    "compute",
    "config",
    "delayed",
    "diagnostics",
    "get",
    "get_scheduler",
    "graph_of",
    "persist",
]
