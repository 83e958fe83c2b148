"""``DaskClusterClient``: lazycell graphs on an existing ``dask.distributed`` cluster.

::

    computing thread (lc.compute)          client's event loop thread       dask cluster
    ─────────────────────────────          ──────────────────────────       ────────────
    run(graph, outputs):
      to_dask_graph (convert.py)
      BUS.recording ─ feed.watch(graph)
      client.get(dsk, keys, sync=False) ──► update-graph ────────────────► scheduler runs
      wait in slices of WAIT_SLICE:                                          it on workers
        gather (a coroutine on the loop) ◄ results ◄──────────────────────── workers
        feed.catch_up (polling only)       events (events.py) ◄──────────── plugin (plugin.py)
      Ctrl-C: cancel the futures ────────► cancel ─────────────────────────► tasks released
      a failure: name it, record it, raise the user's exception with a re-run

The engine is dask's: lazycell converts the graph, waits, and keeps its own
promises on top — the event stream (live panel, text bar, reports), failures
raised as the user's own exception naming the task, a re-run in the kernel
for ``%pdb`` / ``%debug``, and a Ctrl-C that stops the compute on the
cluster and returns at once while the cluster keeps serving.

Why wait in slices: a thread blocked in one long wait does not see a
KeyboardInterrupt until the wait ends. The gather runs as a coroutine on the
client's own event loop and this thread looks at it every ``WAIT_SLICE``.

The wrapper passes everything dask already does straight through (``submit``,
``map``, ``gather``, ``scheduler_info``, ``who_has``, ``has_what``, ``run``,
``dashboard_link``); ``compute`` and ``persist`` also take lazycell objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pickle
import threading
import traceback
from collections.abc import Hashable, Mapping, Sequence

from lazycell import config
from lazycell.dask_cluster.convert import DaskGraph, held_result, to_dask_graph
from lazycell.dask_cluster.events import ComputeWatch, TaskEventFeed, TaskFailure
from lazycell.events import BUS, Failure, SerializationError, WorkerDiedError
from lazycell.events.failure import message_of, type_name_of
from lazycell.graph.collect import collect
from lazycell.graph.delayed import Delayed
from lazycell.graph.spec import TaskSpec, call_spec, describe_task
from lazycell.schedulers.core import order_graph
from lazycell.schedulers.errors import annotate_task_error, make_rerun, rerun_locally_and_raise
from lazycell.schedulers.registry import canonical_scheduler_name

SCHEDULER_NAME = "dask"
WAIT_SLICE = 0.1  # seconds; how soon a Ctrl-C is seen while a compute waits
CANCEL_TIMEOUT = 1.0  # seconds to wait for the scheduler to confirm a cancel
INSTALL_HINT = 'pip install "lazycell[dask]"'

_open_clients: list[DaskClusterClient] = []
_open_lock = threading.Lock()
# lc.config as it was before the first connection that became the default (see below).
_config_before_default: config.set | None = None


def import_distributed():
    """``distributed``, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "lazycell runs on a dask cluster through dask.distributed, which is not "
            f"installed here: {INSTALL_HINT}"
        ) from exc
    return distributed


def current_client() -> DaskClusterClient:
    """The most recently connected (or reused) open DaskClusterClient; ValueError if none."""
    with _open_lock:
        if _open_clients:
            return _open_clients[-1]
    raise ValueError(
        f"scheduler {SCHEDULER_NAME!r} needs a connection to a dask cluster: "
        "lc.dask_cluster.connect('tcp://host:8786') (or a distributed.LocalCluster, "
        "or a distributed.Client)"
    )


def open_client_at(address: str) -> DaskClusterClient | None:
    """The open DaskClusterClient connected to the scheduler at ``address``, if any."""
    wanted = _normalise_address(address)
    with _open_lock:
        for client in reversed(_open_clients):
            if _normalise_address(client.address) == wanted:
                return client
    return None


def _normalise_address(address: str) -> str:
    return address if "://" in address else f"tcp://{address}"


def open_clients() -> list[DaskClusterClient]:
    """The open connections, oldest first."""
    with _open_lock:
        return list(_open_clients)


def make_current(client: DaskClusterClient) -> None:
    """Make ``client`` the one ``scheduler="dask"`` means (the most recently used)."""
    with _open_lock:
        if client in _open_clients:
            _open_clients.remove(client)
            _open_clients.append(client)


def current_scheduler(num_workers: int | None = None, pool=None) -> DaskGraphRunner:
    """The registry's maker for ``scheduler="dask"``: the open connection's runner.

    ``num_workers`` and ``pool`` size local schedulers; a cluster is sized by its admin.
    """
    return current_client().graph_runner()


class _CurrentConnection:
    """The default scheduler while a connection is open, if "dask" is not a registered name.

    ``lc.compute`` takes it like a client (``graph_runner``): the most recent
    open connection runs the graph.
    """

    name = SCHEDULER_NAME

    def __repr__(self) -> str:
        return "<the open dask cluster connection>"

    def graph_runner(self) -> DaskGraphRunner:
        return current_client().graph_runner()

    def run(self, graph, outputs, *, rerun_exceptions_locally: bool = False) -> dict:
        return self.graph_runner().run(
            graph, outputs, rerun_exceptions_locally=rerun_exceptions_locally
        )


CURRENT_CONNECTION = _CurrentConnection()


def _default_setting():
    """What ``lc.config``'s scheduler is while a connection is the default."""
    try:  # by name once the package has registered it (lazycell/__init__.py)
        return canonical_scheduler_name(SCHEDULER_NAME)
    except ValueError:
        return CURRENT_CONNECTION


def _register(client: DaskClusterClient, as_default: bool) -> None:
    global _config_before_default
    with _open_lock:
        if as_default and not any(c._is_default for c in _open_clients):
            _config_before_default = config.set(scheduler=_default_setting())
        client._is_default = as_default
        _open_clients.append(client)


def _unregister(client: DaskClusterClient) -> None:
    global _config_before_default
    with _open_lock:
        if client not in _open_clients:
            return
        _open_clients.remove(client)
        if any(c._is_default for c in _open_clients) or _config_before_default is None:
            return
        previous, _config_before_default = _config_before_default, None
    if config.get("scheduler") == _default_setting():  # unless the user chose another since
        previous.__exit__()


# ------------------------------------------------------------------------- the client


class DaskClusterClient:
    """A connection to a dask cluster that runs lazycell graphs there.

    >>> dc = lc.dask_cluster.connect("tcp://10.0.0.5:8786")   # or a Cluster, or a Client
    >>> total = lc.delayed(sum)([lc.delayed(abs)(-i) for i in range(4)])
    >>> total.compute(scheduler=dc)         # or scheduler="dask": the open connection
    6
    >>> dc.submit(pow, 2, 10).result()      # dask's own API passes through
    1024
    >>> dc.close()

    ``target`` is an address (``"tcp://host:port"``), a
    ``distributed.deploy.Cluster`` (``LocalCluster``, SLURM, Kubernetes...) or
    a ``distributed.Client`` you already have; a client made here is closed by
    :meth:`close`, one you passed in is left open. ``set_as_default`` makes it
    lazycell's default scheduler until closed. ``events="poll"`` reads task
    events from the scheduler's task stream instead of a plugin (what happens
    anyway, with a warning, on a cluster that refuses plugins).
    """

    def __init__(
        self,
        target,
        *,
        set_as_default: bool = True,
        events: str = "push",
        **client_kwargs,
    ):
        distributed = import_distributed()
        if events not in ("push", "poll"):
            raise ValueError(f"events must be 'push' or 'poll', not {events!r}")
        if isinstance(target, distributed.Client):
            if client_kwargs:
                raise TypeError("pass client options to distributed.Client(...), not here")
            self.dask = target
            self._owns_client = False
        elif isinstance(target, (str, distributed.deploy.Cluster)):
            self.dask = distributed.Client(target, set_as_default=False, **client_kwargs)
            self._owns_client = True
        else:
            raise TypeError(
                f"cannot connect to {target!r}: pass an address such as 'tcp://host:8786', "
                "a distributed.deploy.Cluster or a distributed.Client"
            )
        if self.dask.asynchronous:
            raise ValueError(
                "lazycell needs a synchronous distributed.Client (asynchronous=False): it "
                "waits for results in the computing thread"
            )
        self.address: str = self.dask.scheduler.address
        self.closed = False
        self._is_default = False
        self.feed = TaskEventFeed(self.dask, mode=events)
        self.feed.start()
        _register(self, set_as_default)

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.dask.status
        return f"<DaskClusterClient {self.address} ({state})>"

    def _repr_html_(self) -> str:
        return self.dask._repr_html_()

    # -- as a scheduler: lc.compute(..., scheduler=dc), or scheduler="dask"
    name = SCHEDULER_NAME

    def graph_runner(self, workers: Sequence[str] | None = None) -> DaskGraphRunner:
        """This connection in the shape every scheduler has (``name``, ``n_workers``, ``run``).

        ``workers``: addresses of the only workers the tasks may run on.
        """
        return DaskGraphRunner(self, workers)

    @property
    def n_workers(self) -> int:
        """How many workers the cluster has now."""
        try:
            return self.dask.scheduler_info(n_workers=0)["n_workers"]
        except (TypeError, KeyError):  # an older distributed
            return len(self.dask.scheduler_info()["workers"])

    # -- dask's own API, passed through
    def submit(self, fn, *args, **kwargs):
        """dask's ``Client.submit``: a ``distributed.Future``."""
        return self.dask.submit(fn, *args, **kwargs)

    def map(self, fn, *iterables, **kwargs):
        """dask's ``Client.map``: a list of ``distributed.Future``."""
        return self.dask.map(fn, *iterables, **kwargs)

    def gather(self, futures, **kwargs):
        """dask's ``Client.gather``."""
        return self.dask.gather(futures, **kwargs)

    def scheduler_info(self, **kwargs) -> dict:
        """dask's ``Client.scheduler_info``: the workers and the cluster's totals."""
        return self.dask.scheduler_info(**kwargs)

    def who_has(self, futures=None, **kwargs) -> dict:
        """dask's ``Client.who_has``: ``{key: [worker addresses]}``."""
        return self.dask.who_has(futures, **kwargs)

    def has_what(self, workers=None, **kwargs) -> dict:
        """dask's ``Client.has_what``: ``{worker address: [keys]}``."""
        return self.dask.has_what(workers, **kwargs)

    def run(self, function, *args, **kwargs) -> dict:
        """dask's ``Client.run``: ``function`` on every worker, ``{address: result}``."""
        return self.dask.run(function, *args, **kwargs)

    @property
    def dashboard_link(self) -> str | None:
        """dask's dashboard of the cluster, if it has one."""
        try:
            return self.dask.dashboard_link
        except Exception:
            return None

    @property
    def cluster(self):
        """The ``distributed.deploy.Cluster`` this connection was made with, else None."""
        return getattr(self.dask, "cluster", None)

    def scale(self, n: int) -> None:
        """Ask the cluster for ``n`` workers (a connection made from a Cluster object)."""
        self._cluster_or_error("scale").scale(n)

    def adapt(self, minimum: int = 0, maximum: int | None = None, **kwargs):
        """Let the cluster grow and shrink with the work (a connection made from a Cluster)."""
        if maximum is None:
            return self._cluster_or_error("adapt").adapt(minimum=minimum, **kwargs)
        return self._cluster_or_error("adapt").adapt(minimum=minimum, maximum=maximum, **kwargs)

    def _cluster_or_error(self, what: str):
        cluster = self.cluster
        if cluster is None:
            raise ValueError(
                f"{what}() needs the Cluster object this connection was made with "
                "(lc.Client(cluster)); a connection by address cannot resize the cluster: "
                "ask its admin, or use the cluster's own tools (dask-jobqueue, dask-kubernetes...)"
            )
        return cluster

    # -- lazycell objects too
    def compute(self, collections, *, optimize_graph: bool = True, **kwargs):
        """Start computing lazycell or dask objects; a ``distributed.Future`` per object.

        A list or tuple gives a list of futures. Objects without lazycell ones
        go straight to dask's ``Client.compute`` (``kwargs`` are its options).
        """
        many = isinstance(collections, (list, tuple))
        objs = list(collections) if many else [collections]
        if not any(isinstance(obj, Delayed) for obj in objs):
            return self.dask.compute(collections, optimize_graph=optimize_graph, **kwargs)
        self._check_open()
        collected = collect(objs, optimize_graph)
        if len(collected.found) != len(objs):
            raise TypeError("compute takes lazycell Delayed objects or dask collections")
        by_id = {id(obj): key for obj, key in zip(collected.found, collected.keys)}
        keys = [by_id[id(obj)] for obj in objs]
        dask_graph = to_dask_graph(collected.graph, order_graph(collected.graph, keys))
        futures = self.dask.get(
            dask_graph.tasks, [dask_graph.dask_key(key) for key in keys], sync=False, **kwargs
        )
        return futures if many else futures[0]

    def persist(self, collections, *, optimize_graph: bool = True, **kwargs):
        """Compute on the cluster and return lazy objects whose results stay there.

        A lazycell ``Delayed`` comes back as a ``Delayed`` of the same key that
        reads the result from the cluster when used (on any scheduler; on this
        one it never leaves the workers). dask collections go to dask's
        ``Client.persist``.
        """
        many = isinstance(collections, (list, tuple))
        objs = list(collections) if many else [collections]
        lazy = [obj for obj in objs if isinstance(obj, Delayed)]
        futures = dict(zip(map(id, lazy), self.compute(lazy, optimize_graph=optimize_graph)))
        out = []
        for obj in objs:
            if isinstance(obj, Delayed):
                spec = call_spec(held_result, (futures[id(obj)],))
                out.append(Delayed(obj.key, spec, (), obj._length))
            else:
                out.append(self.dask.persist(obj, optimize_graph=optimize_graph, **kwargs))
        return type(collections)(out) if many else out[0]

    # -- lifetime
    def close(self) -> None:
        """Stop lazycell's use of the cluster (and the connection, if made here).

        The cluster itself keeps running; a ``distributed.Client`` passed in stays open.
        """
        if self.closed:
            return
        self.closed = True
        _unregister(self)
        self.feed.close()
        if self._owns_client:
            self.dask.close()

    def __enter__(self) -> DaskClusterClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(
                f"this connection to the dask cluster at {self.address} is closed; "
                "connect again with lc.dask_cluster.connect(...)"
            )
        if self.dask.status not in ("running", "connecting"):
            raise ConnectionError(
                f"the connection to the dask scheduler at {self.address} is {self.dask.status}; "
                "connect again with lc.dask_cluster.connect(...) once the cluster is up"
            )


# ------------------------------------------------------------------------- the runner


class DaskGraphRunner:
    """Runs whole lazycell graphs on a dask cluster for ``lc.compute`` (the Scheduler shape)."""

    name = SCHEDULER_NAME

    def __init__(self, owner: DaskClusterClient, workers: Sequence[str] | None = None):
        self.owner = owner
        self.workers = list(workers) if workers is not None else None

    def __repr__(self) -> str:
        return f"DaskGraphRunner({self.owner!r})"

    @property
    def n_workers(self) -> int:
        return len(self.workers) if self.workers is not None else self.owner.n_workers

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: Sequence[Hashable],
        *,
        rerun_exceptions_locally: bool = False,
    ) -> dict:
        owner = self.owner
        owner._check_open()
        order = order_graph(graph, outputs)  # culls, and raises on missing keys here
        dask_graph = to_dask_graph(graph, order)
        n_workers = self.n_workers if BUS.listening else 0
        with BUS.recording(order, self.name, n_workers) as recorder:
            watch = owner.feed.watch(dask_graph, recorder)
            try:
                values = self._compute(graph, dask_graph, outputs, watch)
            except (KeyboardInterrupt, ConnectionError):
                raise
            except Exception as exc:
                named, inputs = self._named_failure(exc, graph, dask_graph, watch)
                if rerun_exceptions_locally and inputs is not None:
                    rerun_locally_and_raise(
                        named, inputs.key, inputs.spec, inputs.fetch(), self.name
                    )
                if named is exc:
                    raise
                raise named from exc
            finally:
                owner.feed.unwatch(watch)
        return dict(zip(outputs, values))

    def _compute(
        self, graph: Mapping, dask_graph: DaskGraph, outputs: Sequence, watch: ComputeWatch
    ) -> list:
        """Submit, wait (interruptibly) and gather; on Ctrl-C, cancel on the cluster."""
        client = self.owner.dask
        restrictions = {}
        if self.workers is not None:
            restrictions = {"workers": self.workers, "allow_other_workers": False}
        keys = [dask_graph.dask_key(key) for key in outputs]
        futures = None
        try:
            try:
                futures = client.get(dask_graph.tasks, keys, sync=False, **restrictions)
            except (TypeError, pickle.PicklingError, AttributeError) as exc:
                unpicklable = _unpicklable_task(graph, dask_graph)
                if unpicklable is None:
                    raise
                raise unpicklable from exc
            values = self._wait(client.gather(futures, asynchronous=True), watch)
            self.owner.feed.catch_up(watch, final=True)
            return values
        except KeyboardInterrupt:
            if futures is not None:
                self._cancel(futures)
            raise
        except (OSError, concurrent.futures.CancelledError) as exc:
            if self._connection_lost(exc):
                raise ConnectionError(
                    f"lost the connection to the dask scheduler at {self.owner.address} "
                    "while computing; the cluster may have stopped. Connect again with "
                    "lc.dask_cluster.connect(...) once it is up"
                ) from exc
            raise

    def _wait(self, coroutine, watch: ComputeWatch | None = None):
        """Run ``coroutine`` on the client's loop; wait here in slices (Ctrl-C stays responsive)."""
        client = self.owner.dask
        # Left to end by itself when we leave early: cancelling the futures ends it.
        done = asyncio.run_coroutine_threadsafe(coroutine, client.loop.asyncio_loop)
        while True:
            try:
                return done.result(timeout=WAIT_SLICE)
            except concurrent.futures.TimeoutError:
                if watch is not None:
                    self.owner.feed.catch_up(watch)
                if client.status in ("closing", "closed"):
                    raise ConnectionError(
                        f"the connection to the dask scheduler at {self.owner.address} "
                        "was closed while computing"
                    ) from None

    def _cancel(self, futures: list) -> None:
        """Release the compute's tasks on the cluster; the cluster keeps serving."""
        client = self.owner.dask
        try:
            coroutine = client.cancel(futures, asynchronous=True, reason="lazycell-interrupted")
            cancelled = asyncio.run_coroutine_threadsafe(coroutine, client.loop.asyncio_loop)
            cancelled.result(timeout=CANCEL_TIMEOUT)
        except Exception:  # the scheduler is slow or gone: dropping the futures releases them
            pass

    def _connection_lost(self, exc: BaseException) -> bool:
        reason = getattr(exc, "reason", "")
        return (
            reason == "scheduler-connection-lost"
            or self.owner.dask.status != "running"
            or type(exc).__name__ == "CommClosedError"
        )

    # -- failures
    def _named_failure(
        self, exc: Exception, graph: Mapping, dask_graph: DaskGraph, watch: ComputeWatch
    ) -> tuple[BaseException, FailedTaskInputs | None]:
        """The error to raise for ``exc``, and the failed task's inputs when it has them.

        The user's own exception, naming the task, with a re-run; a KilledWorker
        as a WorkerDiedError naming the task; anything else as it is.
        """
        distributed = import_distributed()
        if isinstance(exc, distributed.KilledWorker):
            key = dask_graph.lazycell_key(exc.task)
            spec = graph.get(key)
            last = getattr(exc.last_worker, "address", exc.last_worker)
            died = WorkerDiedError(
                f"lazycell: {describe_task(key, spec)} was running on each of the "
                f"{exc.allowed_failures + 1} dask worker(s) that died while running it "
                f"(dask's KilledWorker; the last was {last}). The task "
                "itself probably ends its process: memory beyond the worker's limit, a crash "
                "in native code, os._exit. The workers' logs say more"
            )
            return annotate_task_error(died, key, spec, self.name), None
        self.owner.feed.catch_up(watch, final=True)  # polling: the failure may not be in yet
        failure = _blamed(exc, watch.failures)
        if failure is None or failure.key not in graph:
            return exc, None  # not a task's failure (a pickling error, a cancelled future...)
        key, spec = failure.key, graph[failure.key]
        remote = _worker_traceback(exc)
        # The same exception object, its worker traceback as text (as every scheduler shows it).
        own = Failure(exc, remote, type_name_of(exc), message_of(exc)).rebuild()
        if watch.recorder is not None:
            watch.recorder.erred(key, failure.worker, failure.start, failure.stop, own)
        inputs = FailedTaskInputs(self, graph, dask_graph, key)
        return annotate_task_error(own, key, spec, self.name, inputs.rerun), inputs


class FailedTaskInputs:
    """The inputs of a task that failed on the cluster, fetched when a re-run needs them.

    Only the part of the graph that computes them is kept (with the exception,
    maybe for the rest of the session). Inputs still held on the cluster are
    gathered; those released since are computed there again, from their tasks,
    the way ``distributed``'s own ``recreate_error_locally`` does.
    """

    def __init__(self, runner: DaskGraphRunner, graph: Mapping, dask_graph: DaskGraph, key):
        self.runner = runner
        self.key = key
        self.spec = spec = graph[key]
        self.deps = list(spec.deps)
        needed = order_graph(graph, self.deps) if self.deps else []
        tasks = dask_graph.tasks
        self.dask_keys = [dask_graph.dask_key(dep) for dep in self.deps]
        self.tasks = {k: tasks[k] for k in map(dask_graph.dask_key, needed) if k in tasks}
        self.held = dask_graph.held  # futures the inputs may stand on

    def fetch(self) -> dict:
        """``{dependency key: value}``, from the cluster."""
        if not self.deps:
            return {}
        runner = self.runner
        runner.owner._check_open()
        client = runner.owner.dask
        futures = client.get(self.tasks, self.dask_keys, sync=False)
        try:
            values = runner._wait(client.gather(futures, asynchronous=True))
        except KeyboardInterrupt:
            runner._cancel(futures)
            raise
        return dict(zip(self.deps, values))

    def rerun(self):
        """Run the task again here, in the calling thread, with its inputs (for ``%debug``)."""
        return make_rerun(self.spec, self.fetch())()


def _unpicklable_task(graph: Mapping, dask_graph: DaskGraph) -> SerializationError | None:
    """The first task that cannot be pickled, named with the fix; None if every task pickles."""
    import cloudpickle

    for dask_key, node in dask_graph.tasks.items():
        try:
            cloudpickle.dumps(node)
        except Exception as exc:
            key = dask_graph.lazycell_key(dask_key)
            return SerializationError(
                f"lazycell: {describe_task(key, graph.get(key))} cannot be pickled to send it "
                f"to the dask cluster ({type(exc).__name__}: {exc}). Its function and arguments "
                "travel to the scheduler and the workers: create what does not pickle (a lock, "
                "an open file, a connection) inside the task, or compute on this machine "
                "(scheduler='threads')"
            )
    return None


def _blamed(exc: BaseException, failures: list[TaskFailure]) -> TaskFailure | None:
    """The failed task whose exception ``exc`` is: same repr if told apart, else the first."""
    if not failures:
        return None
    text = repr(exc)
    for failure in failures:
        if failure.error == text:
            return failure
    return failures[0]


def _worker_traceback(exc: BaseException) -> str:
    """The worker's traceback of ``exc`` (dask sends its frames) without the engines' frames."""
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if not _is_engine_frame(frame)
    ]
    return "Traceback (most recent call last):\n" + "".join(
        traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    )


# Frames of machinery, not of the user's code: dask's (on any machine) and lazycell's.
_ENGINE_PACKAGES = frozenset({"dask", "distributed", "tornado", "asyncio", "concurrent"})
_LAZYCELL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_engine_frame(frame: traceback.FrameSummary) -> bool:
    if frame.filename.startswith(_LAZYCELL_DIR):
        return True
    return not _ENGINE_PACKAGES.isdisjoint(frame.filename.replace("\\", "/").split("/")[:-1])
