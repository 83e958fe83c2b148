"""Tasks that submit tasks: ``get_client()``, ``worker_client()``, ``secede()`` / ``rejoin()``.

::

    task thread (worker process)          worker control thread     scheduler thread (kernel)
    ────────────────────────────          ─────────────────────     ─────────────────────────
    get_client().submit(fn, x)
      WorkerClient: KeyStatus here,
      ("client-request", id, "submit", ───────────────────────────► TaskClients (task_clients.py):
       graph, keys, ...)                                              the kernel's Client submits,
                                                                      holds a Future per key for
                                                                      this worker
    future.result(): wait on the     ◄── ("key-settled", key, ...) ◄─ the Future's done-callback
      KeyStatus, then fetch from the                                  (finished: which worker
      holder's data server (this                                      holds it; erred: the
      worker's store if it is here)                                   PickledFailure)
    last WorkerFuture of a key dropped ──("client-request", None,────► the held Future is dropped
                                          "release", keys)

A :class:`WorkerFuture` is a :class:`~lazycell.distributed.client.Future`
whose client is the worker's :class:`WorkerClient`, so ``result``,
``exception``, ``done``, ``add_done_callback``, ``lc.wait`` and
``lc.as_completed`` work on it unchanged. The kernel keeps each key a task
holds alive (one kernel Future per key and worker) until the task's client
releases it or its worker dies.

``secede()`` takes the calling task's thread out of the worker's pool (a new
thread starts in its place), so a task that waits on the tasks it submitted
does not hold a thread they need; ``rejoin()`` puts it back.
``worker_client()`` does both around a block.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Hashable, Iterable

from lazycell.distributed.client import (
    GATHER_RETRY_SECONDS,
    WAIT_SLICE,
    Future,
    _check_callable,
    _collect_futures,
    _gather_shape,
    _keys_for_futures,
    _make_task_options,
    _mapped_tasks,
    _per_key,
    _refuse_actors,
    _restrictions,
    _scattered_keys,
    _submitted_task,
    current_client,
)
from lazycell.distributed.plugins import worker_of_thread
from lazycell.distributed.protocol import MissingData
from lazycell.distributed.scheduler import KeyStatus
from lazycell.distributed.task_clients import FutureKey
from lazycell.graph.spec import data_spec
from lazycell.schedulers.errors import annotate_task_error


def get_client():
    """The client to submit tasks with: inside a task, its worker's :class:`WorkerClient`;
    in the kernel, the open ``lc.Client``.

    >>> def fib(n):
    ...     if n < 2:
    ...         return n
    ...     client = lc.get_client()
    ...     a, b = client.submit(fib, n - 1), client.submit(fib, n - 2)
    ...     with lc.worker_client():          # frees this task's thread while it waits
    ...         return a.result() + b.result()
    """
    worker = getattr(worker_of_thread, "worker", None)
    if worker is None:
        return current_client()
    if worker.task_client is None:
        with _make_lock:
            if worker.task_client is None:
                worker.task_client = WorkerClient(worker)
    return worker.task_client


_make_lock = threading.Lock()


def secede() -> None:
    """Take this task's thread out of its worker's pool while it waits on other tasks
    (a new thread runs the worker's tasks meanwhile). Outside a task: nothing to do."""
    worker = getattr(worker_of_thread, "worker", None)
    if worker is not None and hasattr(worker, "secede"):
        worker.secede()


def rejoin() -> None:
    """Count this seceded task thread in its worker's pool again (see :func:`secede`)."""
    worker = getattr(worker_of_thread, "worker", None)
    if worker is not None and hasattr(worker, "rejoin"):
        worker.rejoin()


@contextlib.contextmanager
def worker_client(timeout=None, separate_thread: bool = True):
    """``get_client()`` for a block of a task that waits on the tasks it submits: the
    task's thread leaves the worker's pool for the block (``secede`` / ``rejoin``).

    >>> def total(parts):
    ...     with lc.worker_client() as client:
    ...         return sum(client.gather(client.map(load, parts)))
    """
    client = get_client()
    if separate_thread:
        secede()
    try:
        yield client
    finally:
        if separate_thread:
            rejoin()


def fire_and_forget(obj) -> None:
    """Let the tasks of these futures run to the end even if every future of them is
    dropped (their results are released when they end)."""
    flat: list = []
    _collect_futures(obj, flat)
    for future in flat:
        future.client._keep_until_done(future)


class WorkerFuture(Future):
    """A future made inside a task (see the module docstring); a Future in every way."""

    __slots__ = ()


class WorkerClient:
    """``get_client()`` inside a task: submits through the kernel's client, fetches
    results straight from the workers holding them (see the module docstring).

    ``submit``, ``map``, ``scatter``, ``gather``, ``cancel`` and ``get_client()``'s
    futures take the options of :class:`~lazycell.distributed.client.Client`.
    """

    asynchronous = False

    def __init__(self, worker):
        self.worker = worker
        self.closed = False
        self._statuses: dict = {}
        self._refcounts: dict = {}
        self._lock = threading.RLock()
        self.callbacks: queue.SimpleQueue = queue.SimpleQueue()
        self.scheduler = self  # Future.add_done_callback puts calls on client.scheduler.callbacks
        threading.Thread(
            target=self._run_callbacks, name="lazycell-worker-callbacks", daemon=True
        ).start()

    def __repr__(self) -> str:
        return f"<WorkerClient on {self.worker.name}>"

    # -- submitting
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
        """As :meth:`lazycell.Client.submit`."""
        _check_callable(fn, "submit")
        _refuse_actors(actor, actors)
        options = _make_task_options(retries, priority, resources, allow_other_workers)
        key, spec = _submitted_task(fn, args, kwargs, key, pure)
        (future,) = self._submit_graph(
            {key: spec}, [key], _restrictions([key], workers), _per_key([key], options)
        )
        del args, kwargs
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
    ) -> list:
        """As :meth:`lazycell.Client.map`."""
        _check_callable(fn, "map")
        _refuse_actors(actor, actors)
        options = _make_task_options(retries, priority, resources, allow_other_workers)
        graph, keys = _mapped_tasks(fn, iterables, kwargs, key, pure)
        return self._submit_graph(
            graph, keys, _restrictions(keys, workers), _per_key(keys, options)
        )

    def scatter(self, data, workers=None, broadcast: bool = False, hash: bool = True, **kwargs):
        """As :meth:`lazycell.Client.scatter` (lists, dicts or one value)."""
        if isinstance(data, dict):
            keys = list(data)
            values = list(data.values())
        else:
            single = not isinstance(data, (list, tuple))
            values = [data] if single else list(data)
            keys = _scattered_keys(values, hash)
        graph = {k: data_spec(v) for k, v in zip(keys, values)}
        futures = self._submit_graph(graph, keys, _restrictions(keys, workers), None)
        if isinstance(data, dict):
            return dict(zip(keys, futures))
        if not isinstance(data, (list, tuple)):
            return futures[0]
        return type(data)(futures)

    def _submit_graph(self, graph: dict, keys: list, restrictions, options) -> list:
        futures = []
        new_keys = []
        with self._lock:
            for key in keys:
                status = self._statuses.get(key)
                if status is None:
                    status = self._statuses[key] = KeyStatus(key)
                    self._refcounts[key] = 0
                    new_keys.append(key)
                self._refcounts[key] += 1
                futures.append(WorkerFuture(key, self, status))  # type: ignore[arg-type]
        # Answered once the kernel holds the keys: a release sent later cannot overtake it.
        self.worker.request("submit", graph, keys, new_keys, restrictions, options, timeout=60)
        return futures

    def adopt_keys(self, value):
        """Futures the scheduler handed a task (a Variable's or Queue's value, as
        ``FutureKey``: see task_clients.py) become futures of this client."""
        if isinstance(value, list):
            return [self.adopt(v.key) if type(v) is FutureKey else v for v in value]
        return self.adopt(value.key)

    def adopt(self, key) -> Future:
        """A future for ``key``, which the kernel already holds for this worker."""
        with self._lock:
            status = self._statuses.get(key)
            if status is None:
                status = self._statuses[key] = KeyStatus(key)
                self._refcounts[key] = 0
            self._refcounts[key] += 1
            return WorkerFuture(key, self, status)  # type: ignore[arg-type]

    # -- results
    def gather(self, futures, errors: str = "raise"):
        """Values of futures (a Future, or lists / tuples / dicts of them), same shape."""
        return _gather_shape(self, _keys_for_futures(futures), errors)

    def _wait_settled(self, statuses: list, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for status in statuses:
            while not status.event.wait(WAIT_SLICE):
                if self.worker.stopping:
                    raise RuntimeError(f"{self.worker.name} is stopping")
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"<Future {status.status} key={status.key!r}> was not done within "
                        f"{timeout} s"
                    )

    def _gather_keys(self, wanted: list, timeout: float | None, graph=None) -> dict:
        import concurrent.futures

        values: dict = {}
        pending = list(dict(wanted).items())
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            self._wait_settled(
                [s for _, s in pending], None if deadline is None else deadline - time.monotonic()
            )
            retry = []
            for key, status in pending:
                if status.status == "error":
                    raise self._exception_of(status)
                if status.status == "cancelled":
                    raise concurrent.futures.CancelledError(f"<Future cancelled key={key!r}>")
                try:
                    values[key] = self._fetch(key, status.address)
                except MissingData:  # its worker died: wait for the key to settle again
                    status.reset()
                    self.worker.tell("resend", [key])
                    retry.append((key, status))
            if retry:
                time.sleep(GATHER_RETRY_SECONDS)
            pending = retry
        return values

    def _fetch(self, key, address):
        worker = self.worker
        if address == worker.server.getsockname():
            try:
                return worker.store.get(key)
            except KeyError:
                raise MissingData(f"{key!r} is no longer held here") from None
        return worker.fetcher.fetch(address, [key])[key]

    def _exception_of(self, status: KeyStatus, graph=None) -> BaseException:
        assert status.error is not None, "settled as an error without one"
        exc = status.error.rebuild()
        annotate_task_error(exc, status.erred_key, status.erred_spec, "distributed", None)
        return exc

    # -- settling, cancelling, releasing
    def key_settled(self, key, state: str, address, worker_name, error, erred_key, erred_spec):
        """The kernel says ``key`` is done (``state``: finished / error / cancelled)."""
        status = self._statuses.get(key)
        if status is None:
            return
        if state == "pending":
            status.reset()
            return
        status.address = address
        status.worker_name = worker_name
        status.error = error
        status.erred_key = erred_key
        status.erred_spec = erred_spec
        status.settle(state, self.callbacks)

    def cancel(self, futures, **kwargs) -> None:
        flat: list = []
        _collect_futures(futures, flat)
        self._cancel_keys([f.key for f in flat])

    def _cancel_keys(self, keys: list, interrupt: bool = False) -> None:
        with self._lock:
            for key in keys:
                status = self._statuses.pop(key, None)
                self._refcounts.pop(key, None)
                if status is not None:
                    status.settle("cancelled", self.callbacks)
        self.worker.tell("cancel", keys)

    def _release_key(self, key, status: KeyStatus) -> None:
        with self._lock:
            n = self._refcounts.get(key)
            if n is None or self._statuses.get(key) is not status:
                return
            if n > 1:
                self._refcounts[key] = n - 1
                return
            del self._refcounts[key]
            del self._statuses[key]
        self.worker.tell("release", [key])

    def _keep_until_done(self, future) -> None:
        self.worker.tell("fire-and-forget", [future.key])

    def retry(self, futures) -> None:
        flat: list = [f for f in _flat_futures(futures) if f.status == "error"]
        for future in flat:  # before asking: the new outcome may arrive with the answer
            future._status.reset()
        self.worker.request("retry", [f.key for f in flat], timeout=60)

    def _check_open(self) -> None:
        pass

    def _run_callbacks(self) -> None:
        while True:
            callback = self.callbacks.get()
            try:
                callback()
            except Exception as exc:
                print(f"lazycell: a future's done-callback failed: {exc!r}")
            del callback  # it holds its future: not kept while waiting for the next one

    def close(self) -> None:
        """Nothing to close: the worker's client lives as long as the worker."""

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _flat_futures(obj) -> list:
    flat: list = []
    _collect_futures(obj, flat)
    return flat


__all__ = [
    "WorkerClient",
    "WorkerFuture",
    "fire_and_forget",
    "get_client",
    "rejoin",
    "secede",
    "worker_client",
]
