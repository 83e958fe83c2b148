"""``Client``, ``Future``, ``wait`` and ``as_completed``: the user's handle on a local cluster.

::

    user's thread                     scheduler thread                 workers
    ─────────────                     ────────────────                 ───────
    client.submit / compute ────────► ("update-graph", specs, keys)
      returns Futures at once            places and runs the tasks ───► results stay here
    future.result() / gather:
      wait on the key's KeyStatus ◄─── settled when the key is in memory
      fetch from the worker that holds it, over an authenticated
      data channel (DataFetcher) ◄─────────────────────────────────── data server
    last Future of a key dropped ───► ("release", [key])

A client holds one reference count per key; when the last :class:`Future`
of a key is garbage collected, the key is released on the cluster.

A failure must not outlive the user's interest in it. The exception raised
for a failed task is made afresh for each raise (the scheduler keeps it
pickled), and the frames of this module that its traceback keeps hold keys
and statuses, never futures: a kept exception (IPython keeps the last one)
holds no result on the workers. Its ``lazycell_rerun`` (``%debug``) asks the
cluster for the task's inputs when it is called, computing again those that
were released; it keeps the graph they come from, not the inputs.

Creating a client makes ``scheduler="distributed"`` the default (``lc.compute``,
``x.compute()``, ``%%compute``) until the last open client closes, when the
setting in force before it comes back. The same holds for dask's own
``scheduler`` setting (when dask is installed): dask collections compute on
the most recent open client (:func:`dask_get`), as with ``distributed.Client``.

Tasks reach the cluster too: ``get_client()`` in a task submits through the
kernel's client (``worker_client.py``, ``task_clients.py``), and ``Lock``,
``Event``... are held by the scheduler (``primitives.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import queue
import sys
import threading
import time
from collections import namedtuple
from collections.abc import Hashable, Iterable, Iterator, Mapping
from functools import partial

from lazycell import config
from lazycell.distributed import introspection
from lazycell.distributed.cluster import LocalCluster
from lazycell.distributed.protocol import (
    DataFetcher,
    MissingData,
    UnsendableResult,
    dumps_control,
)
from lazycell.distributed.scheduler import STARTUP_TIMEOUT, KeyStatus, TaskOptions, transitions
from lazycell.distributed.store import parse_memory_limit
from lazycell.distributed.task_clients import TaskClients
from lazycell.events import BUS
from lazycell.events.failure import SerializationError
from lazycell.graph.collect import collect
from lazycell.graph.dask_collections import is_dask_collection
from lazycell.graph.delayed import Delayed
from lazycell.graph.keys import pure_key, random_key
from lazycell.graph.spec import (
    CALL,
    DATA,
    NESTED,
    Call,
    Ref,
    TaskSpec,
    alias_spec,
    call_spec,
    container_spec,
    data_spec,
    flatten_keys,
    key_group,
    nest_values,
    specs_from_dask,
)
from lazycell.schedulers.core import order_graph
from lazycell.schedulers.errors import (
    annotate_task_error,
    make_rerun,
    rerun_locally_and_raise,
)

WAIT_SLICE = 0.2  # seconds; short waits keep Ctrl-C responsive in the calling thread
GATHER_RETRY_SECONDS = 0.05

_open_clients: list = []
_open_lock = threading.Lock()
_config_before_clients = None
_dask_config_before_clients = None


def current_client() -> Client:
    """The most recently created client that is still open; ValueError if there is none."""
    with _open_lock:
        if _open_clients:
            return _open_clients[-1]
    raise ValueError(
        "scheduler 'distributed' needs an open lazycell Client: create one with "
        "lc.Client() (or lc.Client(lc.LocalCluster(...)))"
    )


def local_cluster_client(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
) -> Client:
    """The open client, or a new one on a new local cluster of that shape.

    For ``%%compute -s distributed --workers N --threads-per-worker T
    --memory-limit M``: an open client whose cluster has the shape asked for
    (options not given match anything) is reused; with none open, a new
    ``Client`` starts a local cluster of that shape. An open client of
    another shape is a ValueError that says how to get the one asked for.
    """
    client = open_client_of_shape(n_workers, threads_per_worker, memory_limit)
    if client is not None:
        return client
    options = {"n_workers": n_workers, "threads_per_worker": threads_per_worker}
    if memory_limit is not None:
        options["memory_limit"] = memory_limit
    return Client(**options)


def open_client_of_shape(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
) -> Client | None:
    """The open client if its cluster has that shape; None if no client is open.

    A ValueError if one is open with another shape (see :func:`local_cluster_client`).
    """
    with _open_lock:
        client = _open_clients[-1] if _open_clients else None
    if client is None:
        return None
    cluster = client.cluster
    asked = {
        "--workers": (n_workers, cluster.n_workers),
        "--threads-per-worker": (threads_per_worker, cluster.threads_per_worker),
        "--memory-limit": (
            None if memory_limit is None else parse_memory_limit(memory_limit, cluster.n_workers),
            cluster.memory_limit,
        ),
    }
    different = [
        f"{option} {wanted}" for option, (wanted, has) in asked.items() if wanted not in (None, has)
    ]
    if different:
        raise ValueError(
            f"the open lc.Client's cluster has {describe_shape(cluster)}, not "
            f"{', '.join(different)}: close it first (client.close()) to start one of "
            "that shape, or leave those options out to use it as it is"
        )
    return client


def describe_shape(cluster: LocalCluster) -> str:
    """``"2 workers × 1 thread, 1.0 GB each"``."""
    n, threads = cluster.n_workers, cluster.threads_per_worker
    text = f"{n} worker{'s' if n != 1 else ''} × {threads} thread{'s' if threads != 1 else ''}"
    if cluster.memory_limit:
        text += f", {cluster.memory_limit / 1e9:.1f} GB each"
    return text


def dask_get(dsk, keys, **kwargs):
    """dask's scheduler while an ``lc.Client`` is open: that client's :meth:`Client.get`.

    Set as dask's ``scheduler`` config when the first client opens, so
    ``x.compute()`` on a dask collection runs on the cluster (as with
    ``distributed.Client``); it always asks for the most recent open client.
    """
    client = current_client()
    return Client.get.__wrapped__(client, dsk, keys, **kwargs)  # blocking, even if asynchronous


def _awaitable_when_asynchronous(method):
    """With ``Client(asynchronous=True)`` the method returns an awaitable (run on a
    thread), as dask's asynchronous client does; otherwise it runs as it is."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if self.asynchronous:
            return self._in_thread(partial(method, self, *args, **kwargs))
        return method(self, *args, **kwargs)

    return call


def _register_client(client: Client) -> None:
    global _config_before_clients, _dask_config_before_clients
    with _open_lock:
        if not _open_clients:
            _config_before_clients = config.set(scheduler="distributed")
            _dask_config_before_clients = _set_dask_scheduler()
        elif _dask_config_before_clients is not None:
            _point_dask_at_clients()  # as each distributed.Client does when it opens
        _open_clients.append(client)


def _unregister_client(client: Client) -> None:
    global _config_before_clients, _dask_config_before_clients
    with _open_lock:
        if client not in _open_clients:
            return
        _open_clients.remove(client)
        if _open_clients or _config_before_clients is None:
            return
        previous, _config_before_clients = _config_before_clients, None
        dask_previous, _dask_config_before_clients = _dask_config_before_clients, None
    if config.get("scheduler") == "distributed":  # unless the user chose another since
        previous.__exit__()
    if dask_previous is not None:
        import dask

        if dask.config.get("scheduler", None) is dask_get:  # the same for dask's setting
            dask_previous.__exit__(None, None, None)


def _point_dask_at_clients() -> None:
    import dask

    if dask.config.get("scheduler", None) is not dask_get:
        dask.config.set(scheduler=dask_get)


def _set_dask_scheduler():
    """Make dask's collections compute on the open clients; what restores the setting
    before (None without dask)."""
    try:
        import dask
    except ImportError:
        return None
    return dask.config.set(scheduler=dask_get)


# ------------------------------------------------------------------------------ Future


class Future:
    """A result that is (or will be) held on a worker of the cluster.

    >>> fut = client.submit(sum, [1, 2, 3])
    >>> fut.result()
    6

    ``await fut`` works in asynchronous code (a notebook's top-level await).
    """

    __slots__ = ("key", "_client", "_status", "__weakref__")
    # dask reads a future found in a graph as a reference to its key (``_task_spec``),
    # which is how persisted dask collections point at results held on the cluster.
    __dask_future__ = True

    def __init__(self, key: Hashable, client: Client, status: KeyStatus):
        self.key = key
        self._client = client
        self._status = status

    def __repr__(self) -> str:
        return f"<Future {self.status} key={self.key!r}>"

    def __del__(self):
        client = getattr(self, "_client", None)
        if client is not None:
            client._release_key(self.key, self._status)

    @property
    def client(self) -> Client:
        """The client this future belongs to."""
        if self._client is None:
            raise RuntimeError(f"{self!r} was released; submit the task again for a new one")
        return self._client

    def __reduce__(self):
        raise TypeError(
            "a lazycell Future cannot be pickled; pass it as an argument of "
            "client.submit / client.map (it is replaced by its result on the worker)"
        )

    @property
    def status(self) -> str:
        """``"pending"``, ``"finished"``, ``"error"`` or ``"cancelled"``."""
        return self._status.status

    def done(self) -> bool:
        """True once the result is held, the task failed, or the future was cancelled."""
        return self._status.event.is_set()

    def cancelled(self) -> bool:
        return self._status.status == "cancelled"

    def result(self, timeout: float | None = None):
        """The value, fetched from the worker holding it; raises the task's error."""
        try:
            return self.client._gather_keys([(self.key, self._status)], timeout)[self.key]
        except BaseException:
            # The error's traceback keeps this frame: it must not keep the future. (Not
            # before: the caller's reference may have been handed over to ``self``.)
            del self
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception (None if it succeeded).

        Raises TimeoutError if the task has not ended within ``timeout`` seconds,
        CancelledError if the future was cancelled (as dask does).
        """
        self.client._wait_settled([self._status], timeout)
        status = self._status.status
        if status == "error":
            return self.client._exception_of(self._status)
        if status == "cancelled":
            raise concurrent.futures.CancelledError(f"<Future cancelled key={self.key!r}>")
        return None

    def traceback(self, timeout: float | None = None):
        """The failed task's traceback (a traceback object, as ``traceback.format_tb``
        takes), made from the worker's frames; None if the task succeeded."""
        exc = self.exception(timeout)
        if exc is None:
            return None
        return _traceback_object(exc)

    def cancel(self, **kwargs) -> None:
        """Stop waiting for this key; a pending task is dropped (a running one finishes)."""
        self.client._cancel_keys([self.key])

    def retry(self) -> None:
        """Run the failed task (and failed inputs) again; the future waits for the new run."""
        self.client.retry([self])

    def release(self) -> None:
        """Drop this future now (as if deleted): its result is released once no future
        of the key is left."""
        client = self._client
        if client is not None:
            self._client = None  # type: ignore[assignment]
            client._release_key(self.key, self._status)

    def add_done_callback(self, fn) -> None:
        """Call ``fn(future)`` when the future is done (on a lazycell callback thread)."""
        status = self._status
        call = _bind_callback(fn, self)
        with status.lock:
            if not status.event.is_set():
                status.callbacks.append(call)
                return
        self.client.scheduler.callbacks.put(call)

    def __await__(self):
        return self._result_async().__await__()

    async def _result_async(self):
        loop = asyncio.get_running_loop()
        if not self.done():
            settled = loop.create_future()

            def wake(_):
                loop.call_soon_threadsafe(_set_if_pending, settled)

            self.add_done_callback(wake)
            await settled
        return await loop.run_in_executor(None, self.result)


async def _ready(value):
    return value


def _bind_callback(fn, future: Future):
    return lambda: fn(future)


def _set_if_pending(aio_future) -> None:
    if not aio_future.done():
        aio_future.set_result(None)


# ------------------------------------------------------------------------------ Client


def is_dask_target(target) -> bool:
    """Whether ``Client(target)`` means a dask.distributed cluster: an address, a dask
    ``Cluster`` or a ``distributed.Client`` (distributed is never imported to tell)."""
    if isinstance(target, str):
        return True
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    return isinstance(target, (distributed.Client, distributed.deploy.Cluster))


class Client:
    """Connect to a local cluster (a new one unless given) and make it the default scheduler.

    >>> client = lc.Client(n_workers=2, threads_per_worker=1, memory_limit="2GB")
    >>> fut = client.submit(pow, 2, 10)
    >>> client.gather([fut, client.submit(abs, -1)])
    [1024, 1]
    >>> total = lc.delayed(sum)([1, 2]); total.compute()    # runs on the cluster
    3
    >>> client.close()

    ``Client(cluster)`` uses an existing :class:`LocalCluster`; keyword
    arguments otherwise go to ``LocalCluster``. Beyond one machine,
    ``Client("tcp://host:8786")``, ``Client(dask_cluster)`` (any
    ``distributed.deploy.Cluster``) or ``Client(distributed_client)`` connect
    to a dask.distributed cluster instead and return a
    :class:`lazycell.dask_cluster.DaskClusterClient` (see there). Use ``with Client() as c:``
    to close it (and the cluster it started) at the end of the block.
    ``asynchronous=True`` is for ``async`` code (a notebook's top-level
    ``await``): ``await client.gather(...)``, ``await client.close()``,
    ``async with Client(asynchronous=True) as client:``. Futures are
    awaitable in either mode; ``submit``, ``map``, ``compute`` and ``persist``
    return at once in both.
    """

    def __new__(cls, address_or_cluster=None, **options):
        if is_dask_target(address_or_cluster):
            # Beyond one machine: dask.distributed runs the tasks (lazycell.dask_cluster).
            from lazycell.dask_cluster import connect

            if options.pop("asynchronous", False):
                raise ValueError(
                    "lazycell's connection to a dask cluster is synchronous; for async code "
                    "use distributed.Client(..., asynchronous=True) directly"
                )
            return connect(address_or_cluster, **options)
        return super().__new__(cls)

    def __init__(
        self,
        address_or_cluster: LocalCluster | None = None,
        *,
        asynchronous: bool = False,
        set_as_default: bool = True,
        **cluster_kwargs,
    ):
        if address_or_cluster is None:
            self.cluster = LocalCluster(**cluster_kwargs)
            self._owns_cluster = True
        elif isinstance(address_or_cluster, LocalCluster):
            if cluster_kwargs:
                raise TypeError("pass cluster options to LocalCluster(...), not to Client(cluster)")
            self.cluster = address_or_cluster
            self._owns_cluster = False
        else:
            raise ValueError(
                f"Client({address_or_cluster!r}): pass nothing (a new local cluster), a "
                "lazycell LocalCluster, a dask scheduler's address such as "
                "'tcp://10.0.0.5:8786', a dask Cluster object or a distributed.Client"
            )
        self.asynchronous = asynchronous
        self.scheduler = self.cluster.scheduler
        self._fetcher = DataFetcher(self.cluster.authkey)
        self._refcounts: dict = {}
        self._statuses: dict = {}
        # Reentrant: a Future's __del__ (run by the garbage collector inside any
        # allocation) releases its key under this lock, maybe while we hold it.
        self._lock = threading.RLock()
        self.closed = False
        self._kept_until_done: dict = {}  # id -> Future (fire_and_forget)
        self.scheduler.clients.append(self)
        if self.scheduler.task_clients is None:  # tasks' get_client() submits through us
            self.scheduler.task_clients = TaskClients(self)
        self._is_default = set_as_default
        if set_as_default:
            _register_client(self)

    def __repr__(self) -> str:
        return f"<Client {self.cluster!r}>"

    # -- submitting work
    def submit(
        self,
        fn,
        *args,
        key: Hashable = None,
        workers=None,
        resources: dict | None = None,
        retries: int | None = None,
        priority: int = 0,
        fifo_timeout=None,
        allow_other_workers: bool = False,
        actor: bool = False,
        actors: bool = False,
        pure: bool = True,
        **kwargs,
    ) -> Future:
        """Run ``fn(*args, **kwargs)`` on a worker; Futures among the arguments
        (also inside lists, tuples, sets and dicts) are replaced by their values there.

        The options are dask's, and never reach ``fn``: ``key`` names the
        result; ``workers``: names of the workers it may run on (see
        :meth:`workers`), a preference only with ``allow_other_workers=True``;
        ``resources={"GPU": 1}``: what it holds on its worker while it runs
        (see ``LocalCluster(resources=)``); ``retries=n``: run it again up to
        ``n`` times if it fails; ``priority``: higher runs first.
        ``pure=False`` gives a fresh key even for a call made before.
        ``fifo_timeout`` is accepted and has no effect (tasks run by priority,
        then in the order they came).
        """
        self._check_open()
        _check_callable(fn, "submit")
        _refuse_actors(actor, actors)
        options = self._task_options(retries, priority, resources, allow_other_workers, workers)
        # ``args`` may hold the only references to Futures (a list built in the
        # call): keep them alive until the graph that needs them is submitted,
        # or their release would reach the scheduler first.
        key, spec = _submitted_task(fn, args, kwargs, key, pure)
        (future,) = self._submit_graph(
            {key: spec},
            [key],
            restrictions=_restrictions([key], workers),
            options=_per_key([key], options),
        )
        del args, kwargs  # only now may the argument Futures go
        return future

    def map(
        self,
        fn,
        *iterables: Iterable,
        key=None,
        workers=None,
        retries: int | None = None,
        resources: dict | None = None,
        priority: int = 0,
        allow_other_workers: bool = False,
        fifo_timeout=None,
        actor: bool = False,
        actors: bool = False,
        pure: bool = True,
        batch_size: int | None = None,
        **kwargs,
    ) -> list[Future]:
        """``[client.submit(fn, *items, **kwargs) for items in zip(*iterables)]``, in one graph.

        The options are :meth:`submit`'s; ``key`` is a list of keys (one per
        item) or a prefix for them. ``batch_size`` is accepted (dask sends
        large maps in batches of that many; lazycell sends one graph).
        """
        self._check_open()
        _check_callable(fn, "map")
        _refuse_actors(actor, actors)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"map(batch_size=...) takes a positive number, not {batch_size!r}")
        options = self._task_options(retries, priority, resources, allow_other_workers, workers)
        graph, keys = _mapped_tasks(fn, iterables, kwargs, key, pure)
        return self._submit_graph(
            graph,
            keys,
            restrictions=_restrictions(keys, workers),
            options=_per_key(keys, options),
        )

    def _task_options(
        self, retries, priority, resources, allow_other_workers, workers
    ) -> TaskOptions | None:
        """The :class:`TaskOptions` of a submit / map / compute, checked; None if all default."""
        if not (retries or priority or resources or allow_other_workers):
            return None
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise ValueError(f"retries= takes a number of retries (0 or more), not {retries!r}")
        if not isinstance(priority, (int, float)):
            raise TypeError(f"priority= takes a number (higher runs first), not {priority!r}")
        if resources:
            self._check_resources(resources)
        if allow_other_workers and workers is None:
            raise ValueError("allow_other_workers=True needs workers= to prefer")
        return _make_task_options(retries, priority, resources, allow_other_workers)

    def _check_resources(self, resources) -> None:
        if not isinstance(resources, dict):
            raise TypeError(f"resources= takes a dict such as {{'GPU': 1}}, not {resources!r}")
        offered = self.cluster.resources
        for name, amount in resources.items():
            if name not in offered or offered[name] < amount:
                has = ", ".join(f"{k}={v}" for k, v in offered.items()) or "none"
                raise ValueError(
                    f"no worker of this cluster offers resource {name}={amount} (each worker "
                    f"offers: {has}), so the task could never run; start the cluster with "
                    f"LocalCluster(resources={{{name!r}: {amount!r}}}) or leave resources= out"
                )

    @_awaitable_when_asynchronous
    def get(
        self,
        dsk,
        keys,
        workers=None,
        allow_other_workers=None,
        resources=None,
        sync: bool = True,
        asynchronous=None,
        direct=None,
        retries=None,
        priority: int = 0,
        fifo_timeout=None,
        actors=None,
        **kwargs,
    ):
        """Run a dask graph on the cluster for ``keys`` (a key or nested lists of keys),
        as dask's scheduler get-functions do: ``client.get({"x": 1, "y": (inc, "x")}, "y")``.

        Values come back in the shape of ``keys`` (lists for lists);
        ``sync=False`` gives futures in that shape instead. This is what
        dask collections use while the client is open (``x.compute()``,
        ``dask.compute(..., scheduler=client)``). Keys held by this client's
        futures (persisted collections) may be used without being in ``dsk``.
        The options are :meth:`submit`'s.
        """
        self._check_open()
        _refuse_actors(bool(actors), False)
        options = self._task_options(retries, priority, resources, allow_other_workers, workers)
        if not isinstance(dsk, Mapping) and hasattr(dsk, "__dask_graph__"):
            dsk = dsk.__dask_graph__()
        graph = specs_from_dask(_futures_as_dask_refs(dsk))
        wanted = list(dict.fromkeys(flatten_keys(keys)))
        restrictions = dict.fromkeys(graph, _worker_names(workers)) if workers else None
        opts = None if options is None else dict.fromkeys(graph, options)
        if not sync:
            futures = self._submit_graph(graph, wanted, None, restrictions, opts)
            return nest_values(keys, dict(zip(wanted, futures)), list)
        values = self._run_graph(graph, wanted, restrictions=restrictions, options=opts)
        return nest_values(keys, values, list)  # lists, as distributed's get

    def compute(self, collections, *, optimize_graph: bool = True):
        """Start computing lazy objects (lazycell or dask); returns a Future per object.

        A list or tuple gives a list of futures, a single object one future.
        """
        self._check_open()
        many = isinstance(collections, (list, tuple))
        objs = list(collections) if many else [collections]
        graph, keys = _graph_and_keys(objs, optimize_graph)
        futures = self._submit_graph(_specs_with_future_refs(graph), keys)
        return futures if many else futures[0]

    def persist(self, collections, *, optimize_graph: bool = True):
        """Compute lazy objects on the cluster and return lazy objects that hold the results there.

        The returned objects have the same keys; building on them and computing
        on this client never recomputes them, and their data never leaves the
        workers until asked for.
        """
        self._check_open()
        many = isinstance(collections, (list, tuple))
        objs = list(collections) if many else [collections]
        out = [self._persist_one(obj, optimize_graph) for obj in objs]
        if many:
            return type(collections)(out)
        return out[0]

    def _persist_one(self, obj, optimize_graph: bool):
        if isinstance(obj, Delayed):
            graph, keys = _graph_and_keys([obj], optimize_graph)
            (future,) = self._submit_graph(_specs_with_future_refs(graph), keys)
            spec = call_spec(_held_result, (_FutureHolder(future),))
            return Delayed(obj.key, spec, (), obj._length)
        if is_dask_collection(obj):
            import dask
            from dask.core import flatten

            (optimized,) = dask.optimize(obj) if optimize_graph else (obj,)
            graph = specs_from_dask(optimized.__dask_graph__())
            keys = list(flatten(optimized.__dask_keys__()))
            futures = self._submit_graph(graph, keys)
            rebuild, args = optimized.__dask_postpersist__()
            return rebuild(dict(zip(keys, futures)), *args)
        return obj

    def _submit_graph(
        self, graph: Mapping, keys: list, recorder=None, restrictions=None, options=None
    ) -> list[Future]:
        new_keys = []
        statuses = []
        futures = []
        with self._lock:  # the command goes out under the lock: ordered with releases
            for key in keys:
                status = self._statuses.get(key)
                if status is None:
                    status = self._statuses[key] = KeyStatus(key)
                    self._refcounts[key] = 0
                    new_keys.append(key)
                    statuses.append(status)
                self._refcounts[key] += 1
                futures.append(Future(key, self, status))
            self.scheduler.submit_command(
                "update-graph", graph, new_keys, statuses, recorder, restrictions, options
            )
        return futures

    @_awaitable_when_asynchronous
    def scatter(
        self,
        data,
        workers=None,
        broadcast: bool = False,
        direct=None,
        hash: bool = True,
        timeout=None,
        asynchronous=None,
    ):
        """Put local data on the cluster: a Future per value, in the shape given.

        >>> [a, b] = client.scatter([1, 2])
        >>> remote = client.scatter({"x": big_array})     # {"x": Future}, key "x"
        >>> client.submit(np.sum, remote["x"]).result()

        A list, tuple or set gives one future per item (keys from the values'
        type and token, random with ``hash=False``); a dict gives futures keyed
        by its keys; anything else one future. ``workers`` limits where the
        values are kept. ``broadcast=True`` copies each value to every worker
        (``broadcast=n``: to ``n`` of them) before returning, so tasks anywhere
        read it locally. ``direct`` and ``timeout`` are accepted for dask's
        signature.
        """
        self._check_open()
        if isinstance(data, range) or isinstance(data, Iterator):
            data = list(data)
        input_type = type(data)
        is_namedtuple = isinstance(data, tuple) and hasattr(data, "_fields")
        if input_type in (set, frozenset):
            data = list(data)
        unpack = type(data) not in (dict, list, tuple) and not is_namedtuple
        if unpack:
            data = [data]
        if isinstance(data, dict) and type(data) is dict:
            named = dict(data)
            names = list(named)
        else:
            names = _scattered_keys(data, hash)
            named = dict(zip(names, data))
        graph = {key: data_spec(value) for key, value in named.items()}
        restrictions = dict.fromkeys(graph, _worker_names(workers)) if workers else None
        futures = dict(zip(graph, self._submit_graph(graph, list(graph), None, restrictions)))
        if broadcast:  # a copy on every worker (or ``broadcast`` of them), as dask's
            self._replicate_blocking(
                list(futures.values()), None if broadcast is True else int(broadcast), workers
            )
        if unpack:
            return futures[names[0]]
        if input_type is dict:
            return futures
        if is_namedtuple:
            return input_type(*(futures[k] for k in names))
        if input_type in (list, tuple, set, frozenset):
            return input_type(futures[k] for k in names)
        return [futures[k] for k in names]

    @_awaitable_when_asynchronous
    def replicate(self, futures, n: int | None = None, workers=None, branching_factor=2):
        """Copy the results of ``futures`` to every worker (or ``n`` holders in all, or the
        named ``workers``), so tasks there read them without a transfer; returns when the
        copies are made. The copies go when the results do; a worker holding a copy
        takes over the result if its holder dies."""
        self._check_open()
        flat: list = []
        _collect_futures(futures, flat)
        self._replicate_blocking(flat, n, workers)

    def _replicate_blocking(self, futures: list, n: int | None, workers) -> None:
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError(f"replicate(n=...) takes a number of holders (1 or more), not {n!r}")
        self._wait_settled([f._status for f in futures], None)
        names = _worker_names(workers) if workers is not None else None
        keys = [f.key for f in futures if f.status == "finished"]
        if keys:
            self.scheduler.ask("replicate", keys, n, names, timeout=None)

    @_awaitable_when_asynchronous
    def cancel(self, futures, asynchronous=None, force: bool = False, reason=None, msg=None):
        """Cancel futures (a Future or a list): pending tasks are dropped, running ones
        finish unseen; waiting on them raises CancelledError."""
        flat: list = []
        _collect_futures(futures, flat)
        self._cancel_keys([f.key for f in flat])

    def _keep_until_done(self, future: Future) -> None:
        """``fire_and_forget``: hold ``future`` until its task ends."""
        self._kept_until_done[id(future)] = future
        future.add_done_callback(self._done_with_kept)

    def _done_with_kept(self, future: Future) -> None:
        self._kept_until_done.pop(id(future), None)

    @_awaitable_when_asynchronous
    def retry(self, futures, asynchronous=None) -> None:
        """Run failed futures' tasks (and their failed inputs) again."""
        self._check_open()
        flat: list = []
        _collect_futures(futures, flat)
        keys = [f.key for f in flat if f.status == "error"]
        if keys:  # answered once the statuses are pending again: result() then waits
            self.scheduler.call(partial(transitions.retry, keys=keys))

    def get_task_stream(
        self, start=None, stop=None, count: int | None = None, plot: bool = False, **kwargs
    ) -> list[dict]:
        """The tasks the cluster ran lately, as dask gives them: a dict per task with
        ``key``, ``worker``, ``status`` (``"OK"`` / ``"error"``) and ``startstops``
        (``[{"action": "compute", "start": t0, "stop": t1}]``, ``time.time()`` seconds).

        ``start`` / ``stop`` select a window (``time.time()`` seconds, or how
        long ago: ``"10s"``, ``"500ms"``); ``count`` the last that many. The
        cluster keeps the last 2,000 tasks. ``plot=True`` is not supported: the
        dashboard (``client.dashboard_link``) draws the task stream.
        """
        self._check_open()
        _refuse_plot(plot)
        now = time.time()
        start, stop = _when(start, now), _when(stop, now)
        records = self.scheduler.call(_task_stream_records)
        if start is not None:
            records = [r for r in records if r["startstops"][0]["stop"] >= start]
        if stop is not None:
            records = [r for r in records if r["startstops"][0]["start"] <= stop]
        if count is not None and (start is None or stop is None):
            records = records[-count:] if count else []
        return records

    # -- results
    def gather(self, futures, errors: str = "raise"):
        """Values of ``futures`` (a Future, or lists / tuples / dicts of them), same shape.

        ``errors="skip"`` leaves out futures that failed (in lists) instead of raising.
        """
        if self.asynchronous:  # the futures stay referenced until the thread is done
            return self._in_thread(self._gather_blocking, futures, errors)
        shape = _keys_for_futures(futures)
        try:
            return _gather_shape(self, shape, errors)
        except BaseException:
            del futures  # as in Future.result: the error's traceback must not keep them
            raise

    def _gather_blocking(self, futures, errors: str):
        return _gather_shape(self, _keys_for_futures(futures), errors)

    def _wait_settled(self, statuses: list, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for status in statuses:
            while not status.event.wait(WAIT_SLICE):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"<Future {status.status} key={status.key!r}> was not done within "
                        f"{timeout} s"
                    )

    def _gather_keys(self, wanted: list, timeout: float | None, graph: Mapping | None = None):
        """key -> value for ``wanted`` ``(key, KeyStatus)`` pairs, fetched from the workers
        holding them. The caller keeps their futures alive; this frame holds none (a
        failure's traceback keeps it). ``graph``: see :meth:`_exception_of`."""
        values: dict = {}
        pending = list(dict(wanted).items())
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            self._wait_settled(
                [status for _, status in pending],
                None if deadline is None else deadline - time.monotonic(),
            )
            by_address: dict = {}
            for key, status in pending:
                if status.status == "error":
                    raise self._exception_of(status, graph)
                if status.status == "cancelled":
                    raise concurrent.futures.CancelledError(
                        f"<Future cancelled key={key!r}> was cancelled"
                    )
                by_address.setdefault(status.address, []).append((key, status))
            retry = []
            for address, group in by_address.items():
                if address is None:  # lost between settle and read: wait again
                    retry.extend(group)
                    continue
                try:
                    values.update(self._fetcher.fetch(address, [key for key, _ in group]))
                except MissingData:  # the worker died; the keys are being recomputed
                    self._fetcher.forget(address)
                    retry.extend(group)
                except UnsendableResult as exc:
                    raise SerializationError(
                        f"the result {exc}; keep such values on the workers, or use the "
                        "threads scheduler"
                    ) from None
            if retry:
                time.sleep(GATHER_RETRY_SECONDS)
            pending = retry
        return values

    def _exception_of(self, status: KeyStatus, graph: Mapping | None = None) -> BaseException:
        """A new exception for a failed key, named after the task that failed, that can
        re-run that task here; ``graph`` (if given) is where its inputs come from."""
        exc = status.error.rebuild()
        spec = status.erred_spec
        rerun = None
        if spec is not None:
            rerun = self._rerun_for(status.erred_key, spec, graph)
        annotate_task_error(exc, status.erred_key, spec, "distributed", rerun)
        return exc

    def _rerun_for(self, key: Hashable, spec: TaskSpec, graph: Mapping | None = None):
        def rerun_task_locally():
            return make_rerun(spec, self._inputs_of(key, spec, graph))()

        return rerun_task_locally

    def _inputs_of(self, key: Hashable, spec: TaskSpec, graph: Mapping | None = None) -> dict:
        """The inputs of failed task ``key``, from the cluster: those released since it
        failed are computed again, from the tasks the scheduler still knows or ``graph``."""
        deps = list(spec.deps)
        if not deps:
            return {}
        if graph is None:
            unknown = self.scheduler.call(lambda s: [k for k in deps if k not in s.tasks])
            if unknown:
                raise LookupError(
                    f"the inputs {unknown!r} of the failed task {key!r} are no longer known "
                    "to the cluster (its futures were released); compute it again to debug it"
                )
        futures = self._submit_graph(graph if graph is not None else {}, deps)
        try:
            return self._gather_keys(_keys_and_statuses(futures), None)
        finally:
            del futures  # released once fetched: they were needed only for this re-run

    # -- running graphs for lc.compute(scheduler="distributed")
    def run_graph(self, graph, outputs, *, rerun_exceptions_locally: bool = False) -> dict:
        """Compute ``graph`` for ``outputs`` here and bring the outputs back (a scheduler's run).

        A failure releases the compute's futures on its way out (its traceback keeps
        none of them); its ``lazycell_rerun`` computes the failed task's inputs again
        from ``graph`` when it is called.
        """
        return self._run_graph(graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally)

    def _run_graph(
        self,
        graph,
        outputs,
        *,
        rerun_exceptions_locally: bool = False,
        restrictions=None,
        options=None,
    ) -> dict:
        self._check_open()
        if self._statuses:  # futures of this client may be arguments: lc.delayed(f)(future)
            graph = _specs_with_future_refs(graph)
        recorder = None
        if BUS.listening:
            try:
                order = order_graph(graph, outputs)
            except KeyError:  # inputs held by this client's futures (persisted dask objects)
                order = list(graph)
            recorder = BUS.start_compute(order, "distributed", self.cluster.n_workers)
        status = "error"
        futures = self._submit_graph(graph, list(outputs), recorder, restrictions, options)
        wanted = _keys_and_statuses(futures)
        try:
            values = self._gather_keys(wanted, None, graph)
            status = "ok"
            return values
        except KeyboardInterrupt:
            status = "cancelled"
            self._cancel_keys([key for key, _ in wanted], interrupt=True)
            raise
        except Exception as exc:
            key = getattr(exc, "lazycell_task_key", None)
            if rerun_exceptions_locally and getattr(exc, "lazycell_rerun", None) and key in graph:
                spec = graph[key]
                inputs = self._inputs_of(key, spec, graph)
                rerun_locally_and_raise(exc, key, spec, inputs, "distributed")
            raise
        finally:
            del futures  # see the module docstring: a kept failure keeps no result
            BUS.end_compute(recorder, status)

    # -- cluster
    def workers(self) -> list[dict]:
        """One dict per running worker (see ``LocalCluster.workers``)."""
        return self.cluster.workers()

    @property
    def dashboard_link(self) -> str | None:
        """URL of the cluster's live dashboard (with its access token), or None if off."""
        return self.cluster.dashboard_link

    def scheduler_info(self) -> dict:
        """The workers and the cluster's totals, as plain data.

        ``info["workers"][name]`` has ``address``, ``pid``, ``threads``,
        ``memory_limit``, ``memory`` (resident bytes at the last heartbeat,
        every 0.5 s), ``managed_bytes`` (results held, spilled ones included),
        ``spilled_bytes`` (of those, on disk),
        ``unmanaged_bytes``, ``cpu``, ``n_results`` (tasks held),
        ``n_processing`` and ``paused``; ``info["totals"]`` sums them.
        """
        self._check_open()
        return self.cluster.scheduler_info()

    @_awaitable_when_asynchronous
    def wait_for_workers(self, n_workers: int, timeout: float | None = None) -> None:
        """Block until ``n_workers`` workers run (TimeoutError after ``timeout`` seconds)."""
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Counted on the scheduler thread: it adds and removes workers meanwhile.
            running = self.scheduler.call(_n_running_workers)
            if running >= n_workers:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {running} of {n_workers} workers running after {timeout} s"
                )
            if self.scheduler.stopped:
                raise RuntimeError("the cluster's scheduler has stopped")
            time.sleep(WAIT_SLICE / 4)

    def nthreads(self, workers=None) -> dict:
        """``{worker name: threads}`` of the running workers (or the named ones)."""
        info = self.scheduler_info()["workers"]
        names = _worker_names(workers) if workers is not None else list(info)
        return {name: info[name]["threads"] for name in names if name in info}

    ncores = nthreads  # dask's older name

    def shutdown(self) -> None:
        """Close this client and its cluster, even one it did not start."""
        self._close()
        self.cluster.close()

    def who_has(self, futures=None) -> dict:
        """``{key: [worker names]}`` for ``futures`` (a Future or a list), or every result held."""
        self._check_open()
        keys = None
        if futures is not None:
            flat: list = []
            _collect_futures(futures, flat)
            keys = [f.key for f in flat]
        return self.scheduler.call(partial(introspection.who_has, keys=keys))

    def has_what(self) -> dict:
        """``{worker name: [keys of the results it holds]}``."""
        self._check_open()
        return self.scheduler.call(introspection.has_what)

    def run(self, fn, *args, workers=None, timeout: float | None = 60.0, **kwargs) -> dict:
        """Run ``fn(*args, **kwargs)`` on every worker (or the named ones), outside the graph.

        >>> client.run(os.getpid)
        {'worker-0': 5120, 'worker-1': 5121}
        >>> client.run(lambda: psutil.virtual_memory().percent, workers=["worker-0"])
        {'worker-0': 41.2}

        Returns ``{worker name: result}``. An exception on a worker is raised
        here as itself, with a note naming the worker. ``fn`` runs on the
        worker's control thread: keep it short (it delays the worker's other
        messages, not its running tasks). Inside, :func:`lazycell.get_worker`
        gives the worker.
        """
        self._check_open()
        if not callable(fn):
            raise TypeError(f"client.run needs a function to run, not {fn!r}")
        names = _worker_names(workers) if workers is not None else None
        try:
            payload = dumps_control(partial(_call_on_worker, fn, args, kwargs))
        except Exception as exc:
            raise TypeError(
                f"client.run({_callable_name(fn)}): the function or its arguments cannot be "
                f"pickled to send them to the workers: {exc}"
            ) from exc
        results = self.scheduler.ask("worker-call", payload, names, timeout=timeout)
        return self._values_or_raise(results, f"client.run({_callable_name(fn)})")

    def register_plugin(self, plugin, name: str | None = None) -> dict:
        """Set ``plugin`` (a :class:`WorkerPlugin`) up on every worker, now and later.

        Returns ``{worker name: "OK"}`` for the running workers; raises, naming
        the worker, if ``setup`` fails on one. See :class:`WorkerPlugin`.
        """
        self._check_open()
        if not (hasattr(plugin, "setup") or hasattr(plugin, "teardown")):
            raise TypeError(
                f"register_plugin needs a WorkerPlugin (an object with setup/teardown "
                f"methods), not {plugin!r}"
            )
        name = name or getattr(plugin, "name", None) or random_key(type(plugin).__name__)
        try:
            payload = dumps_control(plugin)
        except Exception as exc:
            raise TypeError(f"the plugin {name!r} cannot be pickled to send it: {exc}") from exc
        results = self.scheduler.ask("register-plugin", name, payload, timeout=60.0)
        self._values_or_raise(results, f"plugin {name!r} setup")
        return {worker: "OK" for worker in sorted(results)}

    register_worker_plugin = register_plugin  # dask's older name

    def unregister_worker_plugin(self, name: str) -> dict:
        """Run the plugin's ``teardown`` on every worker and stop setting it up on new ones."""
        self._check_open()
        results = self.scheduler.ask("remove-plugin", name, timeout=60.0)
        self._values_or_raise(results, f"plugin {name!r} teardown")
        return {worker: "OK" for worker in sorted(results)}

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Replace every worker with a fresh process; all results and futures are dropped.

        Futures of this client become cancelled; the settings (workers,
        threads, memory limit, plugins) stay.
        """
        self._check_open()
        with self._lock:
            self._statuses.clear()
            self._refcounts.clear()
        self.scheduler.ask("restart", timeout=timeout)
        self.scheduler.wait_for_workers(self.scheduler.n_workers, timeout)

    def profile(
        self,
        filename: str | os.PathLike | None = None,
        *,
        start: float | None = None,
        stop: float | None = None,
        workers=None,
    ) -> dict:
        """Where the workers spent their time, per function and line (statistical sampling).

        Each worker samples its task threads' stacks every 10 ms. ``start`` /
        ``stop`` (``time.time()`` seconds) select a window; the default is
        everything kept (the last 10 minutes). Returns the merged profile as
        data; with ``filename`` also writes it as one self-contained HTML page.
        """
        from lazycell.distributed import profile_page, profiler

        self._check_open()
        names = _worker_names(workers) if workers is not None else None
        payload = dumps_control(partial(_profile_snapshot, start=start, stop=stop))
        results = self.scheduler.ask("worker-call", payload, names, timeout=60.0)
        merged = profiler.merge_profiles(self._values_or_raise(results, "client.profile"))
        if filename is not None:
            with open(filename, "w", encoding="utf-8") as f:
                f.write(profile_page.profile_html(merged))
        return merged

    def _values_or_raise(self, results: dict, what: str) -> dict:
        values = {}
        for worker, (ok, value) in sorted(results.items()):
            if not ok:
                exc = value.rebuild()
                exc.add_note(f"raised on {worker} by {what}")
                exc.lazycell_worker = worker
                raise exc
            values[worker] = value
        return values

    def _cancel_keys(self, keys: list, interrupt: bool = False) -> None:
        """Stop computing ``keys``; new futures for them start afresh."""
        with self._lock:
            statuses = []
            for key in keys:  # the old futures keep their (now cancelled) status
                status = self._statuses.pop(key, None)
                self._refcounts.pop(key, None)
                statuses.append(status)
                if status is not None:
                    status.settle("cancelled", self.scheduler.callbacks)
            if not self.closed:  # other clients' futures of these keys carry on
                self.scheduler.submit_command(
                    "interrupt" if interrupt else "cancel", keys, statuses
                )

    def _release_key(self, key: Hashable, status: KeyStatus) -> None:
        with self._lock:
            n = self._refcounts.get(key)
            if n is None or self._statuses.get(key) is not status:
                return  # cancelled earlier: that already released it
            if n > 1:
                self._refcounts[key] = n - 1
                return
            del self._refcounts[key]
            del self._statuses[key]
            if not self.closed:
                self.scheduler.submit_command("release", [key], [status])

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this lazycell Client is closed; create a new one")

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def __await__(self):  # ``client = await Client(asynchronous=True)``, as in dask
        return _ready(self).__await__()

    def close(self):
        """Stop using the cluster (and close it if this client started it).

        With ``asynchronous=True`` the returned object may be awaited (the client
        is closed either way).
        """
        self._close()
        if self.asynchronous:
            return _ready(None)
        return None

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._is_default:
            _unregister_client(self)
        others = [c for c in self.scheduler.clients if c is not self]
        self.scheduler.clients[:] = others
        if getattr(self.scheduler.task_clients, "client", None) is self:
            # Tasks' clients carry on through another client of this cluster, if any.
            self.scheduler.task_clients = TaskClients(others[0]) if others else None
        self._kept_until_done.clear()
        self._fetcher.close()
        if self._owns_cluster:
            self.cluster.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc) -> None:
        await self._in_thread(self._close)

    # -- as a scheduler: lc.compute(..., scheduler=client) or "distributed"
    name = "distributed"
    future_type = Future  # what TaskClients hands tasks (task_clients.py)

    def graph_runner(self) -> ClusterGraphRunner:
        """This client in the shape every scheduler has (``name``, ``n_workers``, ``run``)."""
        return ClusterGraphRunner(self)

    @property
    def n_workers(self) -> int:
        return self.cluster.n_workers

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """A live panel of the workers in a notebook (text elsewhere)."""
        from lazycell.widgets.cluster_view import client_mimebundle

        return client_mimebundle(self)


class ClusterGraphRunner:
    """Runs whole graphs on a client's cluster for ``lc.compute`` (``Client.run`` is dask's)."""

    name = "distributed"

    def __init__(self, client: Client):
        self.client = client

    def __repr__(self) -> str:
        return f"ClusterGraphRunner({self.client!r})"

    @property
    def n_workers(self) -> int:
        return self.client.n_workers

    def run(self, graph, outputs, *, rerun_exceptions_locally: bool = False) -> dict:
        return self.client.run_graph(
            graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally
        )


# ---------------------------------------------------------------------- wait, as_completed

WaitResult = namedtuple("WaitResult", ["done", "not_done"])


RETURN_WHEN = ("ALL_COMPLETED", "FIRST_COMPLETED")


def wait(futures, timeout: float | None = None, return_when: str = "ALL_COMPLETED") -> WaitResult:
    """Wait until all (or, with ``return_when="FIRST_COMPLETED"``, any) futures are done.

    Returns ``(done, not_done)`` sets; raises TimeoutError if ``timeout`` passes first.
    """
    if return_when not in RETURN_WHEN:
        raise NotImplementedError(
            f"wait(return_when={return_when!r}): only return_when='ALL_COMPLETED' and "
            "'FIRST_COMPLETED' are supported"
        )
    flat: list = []
    _collect_futures(futures, flat)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = {f for f in flat if f.done()}
        if len(done) == len(flat) or (return_when == "FIRST_COMPLETED" and done):
            return WaitResult(done, set(flat) - done)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{len(flat) - len(done)} of {len(flat)} futures not done in time")
        waiting_on = next(f for f in flat if not f.done())
        waiting_on._status.event.wait(WAIT_SLICE if return_when == "ALL_COMPLETED" else 0.01)


class as_completed:  # noqa: N801 - dask's name, used as a function and as a class
    """Futures in the order they finish; more can be added while iterating.

    >>> for future in lc.as_completed(futures):
    ...     print(future.result())
    >>> ac = lc.as_completed(futures, with_results=True)
    >>> for future, result in ac:
    ...     if result < 10:
    ...         ac.add(client.submit(refine, result))     # iterated too
    >>> for batch in lc.as_completed(futures).batches():  # all finished so far, at once
    ...     client.gather(batch)

    ``with_results=True`` yields ``(future, result)``; a failed future then
    raises its exception there, or with ``raise_errors=False`` yields
    ``(future, (type, exception, traceback))``. ``count()`` is how many are
    still to be yielded; ``timeout`` (seconds) raises TimeoutError when the
    next one takes longer than that from the start.
    """

    def __init__(
        self,
        futures=None,
        loop=None,
        with_results: bool = False,
        raise_errors: bool = True,
        *,
        timeout: float | None = None,
    ):
        self.with_results = with_results
        self.raise_errors = raise_errors
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.lock = threading.Lock()
        self.waiting: dict = {}  # id(future) -> [future, times added and not yet done]
        self.finished: queue.SimpleQueue = queue.SimpleQueue()  # futures done, not yielded
        self.n_finished = 0
        if futures:
            self.update(futures)

    def update(self, futures) -> None:
        """Add futures; each is yielded once it is done."""
        flat: list = []
        _collect_futures(futures, flat)
        if not flat and futures:
            raise TypeError(f"as_completed takes futures, not {futures!r}")
        for future in flat:
            with self.lock:
                entry = self.waiting.setdefault(id(future), [future, 0])
                entry[1] += 1
            future.add_done_callback(self._on_done)

    def add(self, future) -> None:
        """Add one future; it is yielded once it is done."""
        self.update([future])

    def _on_done(self, future) -> None:
        with self.lock:
            entry = self.waiting.get(id(future))
            if entry is None:  # cleared meanwhile
                return
            entry[1] -= 1
            if not entry[1]:
                del self.waiting[id(future)]
            self.n_finished += 1
        self.finished.put(future)

    def count(self) -> int:
        """How many futures are still to be yielded (running, or done and not yet yielded)."""
        with self.lock:
            return sum(n for _, n in self.waiting.values()) + self.n_finished

    def is_empty(self) -> bool:
        """True if there is nothing left to yield."""
        with self.lock:  # not count(): it sums every waiting future, and runs per item
            return not self.waiting and not self.n_finished

    def has_ready(self) -> bool:
        """True if a finished future is waiting to be yielded."""
        with self.lock:
            return self.n_finished > 0

    def clear(self) -> None:
        """Forget every future not yet yielded."""
        with self.lock:
            self.waiting.clear()
            self.n_finished = 0
            while True:
                try:
                    self.finished.get_nowait()
                except queue.Empty:
                    break

    def __repr__(self) -> str:
        with self.lock:
            return f"<as_completed: waiting={len(self.waiting)} done={self.n_finished}>"

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self.is_empty():
                raise StopIteration
            wait_for = WAIT_SLICE
            if self.deadline is not None:
                wait_for = min(wait_for, self.deadline - time.monotonic())
                if wait_for <= 0:
                    raise TimeoutError("as_completed: no future finished within the timeout")
            try:
                future = self.finished.get(timeout=wait_for)
            except queue.Empty:
                continue
            with self.lock:
                self.n_finished -= 1
            return self._item(future)

    next = __next__

    def _item(self, future):
        if not self.with_results:
            return future
        if future.status == "error":
            exc = future.exception()
            if self.raise_errors:
                raise exc
            return future, (type(exc), exc, _traceback_object(exc))
        if future.status == "cancelled":  # yielded, not raised, as by dask
            return future, concurrent.futures.CancelledError(
                f"<Future cancelled key={future.key!r}>"
            )
        return future, future.result()

    def next_batch(self, block: bool = True) -> list:
        """Every future finished so far (at least one if ``block``, waiting for it)."""
        batch = [next(self)] if block else []
        while True:
            try:
                future = self.finished.get_nowait()
            except queue.Empty:
                return batch
            with self.lock:
                self.n_finished -= 1
            batch.append(self._item(future))

    def batches(self) -> Iterator[list]:
        """Lists of the futures finished since the last list, until all are yielded."""
        while True:
            try:
                yield self.next_batch(block=True)
            except StopIteration:
                return

    def __aiter__(self):
        return self

    async def __anext__(self):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self.__next__)
        except StopIteration:
            raise StopAsyncIteration from None


def futures_of(obj) -> list:
    """The Futures in ``obj``: a Future, lists / tuples / sets / dicts of them, or a
    collection persisted on the cluster (``client.persist(x)``)."""
    flat: list = []
    _collect_futures(obj, flat)
    if isinstance(obj, Delayed):
        _collect_futures(
            [a.future for a in obj._spec.args or () if isinstance(a, _FutureHolder)], flat
        )
    elif is_dask_collection(obj):
        _collect_futures(list(dict(obj.__dask_graph__()).values()), flat)
    return list({id(f): f for f in flat}.values())


class get_task_stream:  # noqa: N801 - dask's name for this context manager
    """Collect the tasks the cluster runs inside a ``with`` block.

    >>> with lc.get_task_stream() as ts:
    ...     x.compute()
    >>> ts.data     # what client.get_task_stream() gives, for the block's time
    [{'key': ..., 'worker': 'worker-0', 'status': 'OK', 'startstops': [...]}, ...]
    """

    def __init__(self, client: Client | None = None, plot: bool = False, **kwargs):
        _refuse_plot(plot)
        self.client = client
        self.data: list[dict] = []
        self.start: float | None = None

    def __enter__(self) -> get_task_stream:
        self.client = self.client or current_client()
        self.start = time.time()
        return self

    def __exit__(self, *exc) -> None:
        client = self.client
        if client is not None and not client.closed:
            self.data.extend(client.get_task_stream(start=self.start, stop=time.time()))


# ------------------------------------------------------------------------------ helpers


class _FutureHolder:
    """Keeps a persisted result's future alive inside the placeholder task of its Delayed."""

    __slots__ = ("future",)

    def __init__(self, future: Future):
        self.future = future

    def __reduce__(self):
        raise TypeError(
            "a Delayed persisted on a lazycell Client can be computed only in this process "
            "(threads / sync scheduler, or the client); compute it there"
        )


def _held_result(holder: _FutureHolder):
    return holder.future.result()


def _task_stream_records(scheduler) -> list[dict]:
    activity = scheduler.activity
    to_wall = activity.origin_wall - activity.origin
    return [
        {
            "key": key,
            "group": group,
            "worker": worker,
            "status": "error" if erred else "OK",
            "startstops": [{"action": "compute", "start": start + to_wall, "stop": stop + to_wall}],
        }
        for key, group, worker, start, stop, erred in activity.stream
    ]


DURATION_UNITS = (
    ("ms", 1e-3),
    ("us", 1e-6),
    ("minutes", 60.0),
    ("minute", 60.0),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
)


def duration_seconds(value) -> float | None:
    """Seconds from a number or dask's duration text ("200ms", "5s", "1 minute");
    None if ``value`` is neither (each caller says what it expected)."""
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip().lower().replace(" ", "")
    for unit, factor in DURATION_UNITS:
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * factor
            except ValueError:
                return None
    return None


def _n_running_workers(scheduler) -> int:
    return len(scheduler.running_workers())


def _when(moment, now: float) -> float | None:
    """``time.time()`` seconds from a number or from how long ago ("10s", "500ms")."""
    if moment is None or isinstance(moment, (int, float)):
        return moment
    ago = duration_seconds(moment)
    if ago is None:
        raise ValueError(
            f"get_task_stream: {moment!r} is not a time: give time.time() seconds or how "
            "long ago, such as '10s' or '500ms'"
        )
    return now - ago


def _traceback_object(exc: BaseException):
    """A traceback object of the worker's frames (from the failure's traceback text)."""
    text = getattr(exc, "lazycell_remote_traceback", None)
    if text:
        try:
            from tblib import Traceback  # installed with distributed; optional here

            return Traceback.from_string(text).as_traceback()
        except Exception:
            pass
    try:  # without tblib: where the kernel raised it, with the worker's frames as its cause
        raise exc
    except BaseException as raised:  # noqa: B036 - just made; only its traceback is wanted
        return raised.__traceback__


def _call_on_worker(fn, args: tuple, kwargs: dict, worker):
    return fn(*args, **kwargs)


def _profile_snapshot(worker, start=None, stop=None) -> dict:
    return worker.sampler.snapshot(start, stop)


def _callable_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _worker_names(workers) -> list:
    if isinstance(workers, str):
        return [workers]
    return list(workers)


def _specs_with_future_refs(graph: Mapping) -> Mapping:
    """``graph`` with Futures among its tasks' arguments (``lc.delayed(f)(future)``, also
    inside lists, tuples, sets and dicts) made references to their keys, and a task that
    is a Future (``lc.delayed(future)``) an alias of its key. The caller keeps the
    Futures alive (they are in the objects being computed) until the graph is submitted."""
    changed = {}
    for key, spec in graph.items():
        kind = spec.kind
        if kind == DATA:
            if isinstance(spec.args, Future):
                changed[key] = alias_spec(spec.args.key)
            continue
        if kind != CALL and kind != NESTED:
            continue
        if not (
            any(_holds_future(a) for a in spec.args)
            or (spec.kwargs and any(_holds_future(v) for v in spec.kwargs.values()))
        ):
            continue
        if spec.func is None:  # a container
            changed[key] = container_spec(_refs_for_futures(spec.args))
        else:
            args = tuple(_refs_for_futures(a) for a in spec.args)
            kwargs = {k: _refs_for_futures(v) for k, v in (spec.kwargs or {}).items()}
            changed[key] = call_spec(spec.func, args, kwargs or None)
    if not changed:
        return graph
    return {**graph, **changed}


def _refs_for_futures(obj):
    if isinstance(obj, Future):
        return Ref(obj.key)
    t = type(obj)
    if t in (list, tuple, set, frozenset):
        return t(_refs_for_futures(x) for x in obj)
    if t is dict:
        return {k: _refs_for_futures(v) for k, v in obj.items()}
    if t is Call:
        kwargs = obj.kwargs and {k: _refs_for_futures(v) for k, v in obj.kwargs.items()}
        return Call(obj.func, tuple(_refs_for_futures(a) for a in obj.args), kwargs)
    return obj


def _futures_as_dask_refs(dsk: Mapping) -> Mapping:
    """``dsk`` with this module's Futures inside dask tasks' arguments made references
    to their keys (``dask.delayed(f)(future)``): dask reads only its own ``TaskRef``
    there, and would send the Future itself to the worker."""
    task_spec = sys.modules.get("dask._task_spec")
    if task_spec is None:
        return dsk
    if hasattr(dsk, "to_dict") and not isinstance(dsk, dict):  # HighLevelGraph
        dsk = dsk.to_dict()
    changed = {}
    for key, node in dsk.items():
        new = _task_with_future_refs(node, task_spec)
        if new is not node:
            changed[key] = new
    return {**dsk, **changed} if changed else dsk


def _task_with_future_refs(node, task_spec):
    if type(node) is not task_spec.Task:
        return node
    args = [_argument_with_future_refs(a, task_spec) for a in node.args]
    kwargs = {k: _argument_with_future_refs(v, task_spec) for k, v in node.kwargs.items()}
    if all(a is b for a, b in zip(args, node.args)) and all(
        kwargs[k] is v for k, v in node.kwargs.items()
    ):
        return node
    return task_spec.Task(node.key, node.func, *args, **kwargs)


def _argument_with_future_refs(arg, task_spec):
    if isinstance(arg, task_spec.GraphNode):
        return _task_with_future_refs(arg, task_spec)
    if _holds_future(arg):
        return task_spec.parse_input(arg)  # a Future -> Alias of its key, containers too
    return arg


def _holds_future(obj) -> bool:
    if isinstance(obj, Future):
        return True
    t = type(obj)
    if t in (list, tuple, set, frozenset):
        return any(_holds_future(x) for x in obj)
    if t is dict:
        return any(_holds_future(x) for x in obj.values())
    if t is Call:
        return any(_holds_future(a) for a in obj.args) or bool(
            obj.kwargs and any(_holds_future(v) for v in obj.kwargs.values())
        )
    return False


def _check_callable(fn, method: str) -> None:
    if not callable(fn):
        raise TypeError(f"client.{method}: the first argument must be a function, not {fn!r}")


def _refuse_plot(plot) -> None:
    if plot:
        raise ValueError(
            "get_task_stream(plot=True) is not supported; the dashboard "
            "(client.dashboard_link) draws the task stream"
        )


def _refuse_actors(actor: bool, actors: bool) -> None:
    if actor or actors:
        raise NotImplementedError(
            "lazycell's local cluster has no actors (stateful objects on a worker); keep "
            "state in lc.get_worker().namespace, or use dask.distributed for actors"
        )


def _submitted_task(fn, args: tuple, kwargs: dict, key: Hashable, pure: bool):
    """``(key, spec)`` of ``submit(fn, *args, key=key, pure=pure, **kwargs)``, as the
    kernel's and a task's client both submit it: Futures among the arguments become
    references to their keys; without ``key``, one from the call (random if not ``pure``)."""
    task_args = tuple(_futures_to_refs(a) for a in args)
    task_kwargs = {k: _futures_to_refs(v) for k, v in kwargs.items()}
    spec = call_spec(fn, task_args, task_kwargs or None)
    if key is None:
        name = key_group(getattr(fn, "__name__", None) or type(fn).__name__)
        key = pure_key(name, fn, task_args, task_kwargs) if pure else random_key(name)
    return key, spec


def _mapped_tasks(fn, iterables, kwargs: dict, key, pure: bool) -> tuple[dict, list]:
    """``(graph, keys)`` of ``map(fn, *iterables, key=key, pure=pure, **kwargs)``: one task
    per item; ``key`` is a list of keys (one per item) or a prefix for them."""
    graph = {}
    keys = []
    given_keys = None
    name = key_group(getattr(fn, "__name__", None) or type(fn).__name__)
    if isinstance(key, str):
        name = key
    elif key is not None:
        given_keys = list(key)
    extra = {k: _futures_to_refs(v) for k, v in kwargs.items()}
    for i, items in enumerate(zip(*iterables)):
        args = tuple(_futures_to_refs(a) for a in items)
        if given_keys is not None:
            if i >= len(given_keys):
                raise ValueError(
                    f"map(key=[...]) got {len(given_keys)} keys for more items than that; "
                    "give one key per item"
                )
            task_key = given_keys[i]
        elif pure:
            task_key = pure_key(name, fn, args, extra)
        else:
            task_key = random_key(name)
        graph[task_key] = call_spec(fn, args, extra or None)
        keys.append(task_key)
    if given_keys is not None and len(given_keys) != len(keys):
        raise ValueError(
            f"map(key=[...]) got {len(given_keys)} keys for {len(keys)} items; "
            "give one key per item"
        )
    return graph, keys


def _make_task_options(retries, priority, resources, allow_other_workers) -> TaskOptions | None:
    """The :class:`TaskOptions` of a submit / map / compute; None if all default.
    Not checked here: the kernel's client checks them (``Client._task_options``), for a
    task's submit too (``TaskClients.handle``)."""
    if not (retries or priority or resources or allow_other_workers):
        return None
    return TaskOptions(
        retries=retries or 0,
        priority=priority,
        resources=dict(resources) if resources else None,
        loose_restrictions=bool(allow_other_workers),
    )


def _scattered_keys(values, hash: bool) -> list:
    """The keys of scattered ``values``: from each value's type and token (random with
    ``hash=False``), for the kernel's and a task's ``scatter``."""
    return [pure_key(type(v).__name__, v) if hash else random_key(type(v).__name__) for v in values]


def _restrictions(keys: list, workers) -> dict | None:
    """The ``workers=`` of a submit / map: key -> worker names, or None for anywhere."""
    return None if workers is None else dict.fromkeys(keys, _worker_names(workers))


def _per_key(keys: list, options: TaskOptions | None) -> dict | None:
    return None if options is None else dict.fromkeys(keys, options)


def _gather_shape(client, shape, errors: str):
    """``shape`` with each :class:`_GatheredKey` replaced by its key's value, for the
    kernel's and a task's client (``errors="skip"`` leaves failed ones out)."""
    wanted: list = []
    _collect_gathered_keys(shape, wanted)
    if errors == "skip":
        client._wait_settled([status for _, status in wanted], None)
        wanted = [(key, status) for key, status in wanted if status.status == "finished"]
        values = client._gather_keys(wanted, None)
        return _fill_gathered_keys(shape, values, skip_missing=True)
    values = client._gather_keys(wanted, None)
    return _fill_gathered_keys(shape, values)


def _futures_to_refs(obj):
    t = type(obj)
    if t is Future or isinstance(obj, Future):  # WorkerFuture too (worker_client.py)
        return Ref(obj.key)
    if t in (list, tuple, set, frozenset):
        return t(_futures_to_refs(x) for x in obj)
    if t is dict:
        return {k: _futures_to_refs(v) for k, v in obj.items()}
    return obj


def _keys_and_statuses(futures: list) -> list:
    """``(key, KeyStatus)`` of each future: what waiting and fetching need, without the futures."""
    return [(future.key, future._status) for future in futures]


class _GatheredKey:
    """Stands for a Future in the shape given to ``gather`` (see ``_keys_for_futures``)."""

    __slots__ = ("key", "status")

    def __init__(self, key: Hashable, status: KeyStatus):
        self.key = key
        self.status = status


def _keys_for_futures(obj):
    """``obj`` with each Future replaced by its key and status, in the same shape
    (inside lists, tuples and dicts)."""
    if isinstance(obj, Future):
        return _GatheredKey(obj.key, obj._status)
    if isinstance(obj, (list, tuple)):
        return type(obj)([_keys_for_futures(x) for x in obj])
    if isinstance(obj, dict):
        return {k: _keys_for_futures(v) for k, v in obj.items()}
    return obj


def _collect_gathered_keys(obj, out: list) -> None:
    if isinstance(obj, _GatheredKey):
        out.append((obj.key, obj.status))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _collect_gathered_keys(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            _collect_gathered_keys(item, out)


def _fill_gathered_keys(obj, values: dict, skip_missing: bool = False):
    if isinstance(obj, _GatheredKey):
        return values[obj.key]
    if isinstance(obj, (list, tuple)):
        items = [
            _fill_gathered_keys(x, values, skip_missing)
            for x in obj
            if not (skip_missing and isinstance(x, _GatheredKey) and x.key not in values)
        ]
        return type(obj)(items)
    if isinstance(obj, dict):
        return {k: _fill_gathered_keys(v, values, skip_missing) for k, v in obj.items()}
    return obj


def _collect_futures(obj, out: list) -> None:
    if isinstance(obj, Future):
        out.append(obj)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            _collect_futures(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            _collect_futures(item, out)


def _graph_and_keys(objs: list, optimize_graph: bool) -> tuple[dict, list]:
    """The specs and output keys of lazycell objects and dask collections, as ``compute`` uses."""
    collected = collect(objs, optimize_graph)
    if len(collected.found) != len(objs):
        raise TypeError(
            "client.compute / persist take lazycell Delayed objects or dask collections"
        )
    # Keep the caller's order (lazycell objects and dask collections may be mixed).
    by_id = {id(obj): key for obj, key in zip(collected.found, collected.keys)}
    return collected.graph, [by_id[id(obj)] for obj in objs]
