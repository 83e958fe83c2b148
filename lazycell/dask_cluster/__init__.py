"""lazycell on an existing ``dask.distributed`` cluster: dask runs the tasks.

lazycell keeps its promises on top: the event stream, named failures, re-runs in the kernel.

::

    kernel                                           any dask.distributed cluster
    ──────                                           ────────────────────────────
    lc.compute(..., scheduler="dask")                dask scheduler ── dask workers
      convert.py: lazycell graph → dask nodes ──────►   (dask + cloudpickle only;
      client.py:  submit, wait, Ctrl-C, failures         no lazycell needed there)
      events.py:  task events → lazycell's bus ◄────── plugin.py on the scheduler

>>> import lazycell as lc
>>> from lazycell import dask_cluster
>>> dc = dask_cluster.connect("tcp://10.0.0.5:8786")    # or a Cluster, or a distributed.Client
>>> lc.compute(total, scheduler=dc)                     # the live panel works as ever
>>> dc.close()

``connect`` returns a :class:`DaskClusterClient`; ``scheduler_for`` gives the
object every lazycell scheduler is (``name``, ``n_workers``, ``run``). The
package's top registers the name ``"dask"`` with :func:`current_scheduler`
as its maker. Nothing here imports dask until a connection is made.
"""

from __future__ import annotations

from lazycell.dask_cluster.client import (
    CURRENT_CONNECTION,
    SCHEDULER_NAME,
    DaskClusterClient,
    DaskGraphRunner,
    current_client,
    current_scheduler,
    make_current,
    open_client_at,
    open_clients,
)
from lazycell.dask_cluster.convert import DaskGraph, NotRunnableOnDask, to_dask_graph


def connect(target, **options) -> DaskClusterClient:
    """A connection to a dask cluster: an address, a ``Cluster`` or a ``distributed.Client``.

    An address (or a ``distributed.Client``) that an open connection already
    uses gives that connection back, and makes it the one ``scheduler="dask"``
    means: ``%%compute -s tcp://...`` in every cell connects once. Options go
    to :class:`DaskClusterClient` (``set_as_default``, ``events``) and from
    there to ``distributed.Client``.

    >>> dc = connect("tcp://10.0.0.5:8786")
    >>> connect("tcp://10.0.0.5:8786") is dc
    True
    """
    if not {name for name in options if name != "timeout"}:  # a timeout only bounds the connect
        for client in reversed(open_clients()):
            if client.dask is target or (
                isinstance(target, str) and client is open_client_at(target)
            ):
                make_current(client)
                return client
    return DaskClusterClient(target, **options)


def connection_for(dask_client) -> DaskClusterClient:
    """The open connection wrapping ``dask_client``, or a new one that is not the default.

    For ``scheduler=distributed_client``: the first compute connects, later
    ones reuse the connection; the session's default scheduler is left alone.
    """
    for client in reversed(open_clients()):
        if client.dask is dask_client:
            return client
    return DaskClusterClient(dask_client, set_as_default=False)


def scheduler_for(client) -> DaskGraphRunner:
    """The scheduler object (``name="dask"``, ``n_workers``, ``run``) for a connection.

    ``client``: a :class:`DaskClusterClient`, or anything :func:`connect` takes.
    """
    if not isinstance(client, DaskClusterClient):
        client = connect(client)
    return client.graph_runner()


__all__ = [
    "CURRENT_CONNECTION",
    "SCHEDULER_NAME",
    "DaskClusterClient",
    "DaskGraph",
    "DaskGraphRunner",
    "NotRunnableOnDask",
    "connect",
    "connection_for",
    "current_client",
    "current_scheduler",
    "make_current",
    "open_client_at",
    "open_clients",
    "scheduler_for",
    "to_dask_graph",
]
