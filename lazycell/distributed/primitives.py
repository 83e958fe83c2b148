"""``Lock``, ``Semaphore``, ``Event``, ``Variable`` and ``Queue``: dask's coordination
primitives, held by the local cluster's scheduler, for the kernel and for tasks.

::

    kernel: Lock("db").acquire() ─► scheduler.ask("coordination", …) ─┐
    task:   Lock("db").acquire() ─► worker.request(…) ─ control ──────┤
                                                                      ▼
                                            scheduler thread: scheduler/coordination.py
                                            answers now, or when released / set / put,
                                            or at the wait's deadline (False / TimeoutError)

Objects with the same name are the same primitive anywhere in the cluster; a
primitive passed to a task travels by name. Every wait has a way out: its
``timeout``; the task's worker dying (its waits are dropped, the locks and
leases its tasks held are released); the cluster closing (a RuntimeError);
Ctrl-C in the kernel (the wait is withdrawn, a lease got meanwhile given back).
A ``Variable`` or ``Queue`` may hold a Future, put there by the kernel or a
task (the cluster keeps its result while it is there); other values must be
picklable.
"""

from __future__ import annotations

import uuid
from collections import deque

from lazycell.distributed.client import Client, Future, current_client, duration_seconds
from lazycell.distributed.plugins import worker_of_thread
from lazycell.distributed.task_clients import FutureKey
from lazycell.distributed.worker_client import get_client


def _seconds(timeout) -> float | None:
    """Seconds from a number, None, or dask's strings ("200ms", "5s", "1 minute")."""
    if timeout is None:
        return None
    seconds = duration_seconds(timeout)
    if seconds is None:
        raise ValueError(f"{timeout!r} is not a timeout: give seconds, or a string such as '200ms'")
    return seconds


def _ask(client: Client | None, kind: str, *args):
    """One coordination request, from a task (through its worker) or the kernel."""
    worker = getattr(worker_of_thread, "worker", None)
    if worker is not None and hasattr(worker, "request"):
        args = tuple(FutureKey(a.key) if isinstance(a, Future) else a for a in args)
        if kind in ("variable-get", "queue-get"):
            get_client()  # the answer may hold futures: the worker's client takes them
        return worker.request(kind, *args, timeout=None)
    client = client or current_client()
    client._check_open()
    owner = f"kernel-{uuid.uuid4().hex}"
    try:
        ok, value = client.scheduler.ask("coordination", owner, kind, args, timeout=None)
    except BaseException:  # Ctrl-C: withdraw the wait (and give back a lease got meanwhile)
        if not client.closed:
            client.scheduler.submit_command("coordination", owner, "forget-owner", (), None)
        raise
    if not ok:
        raise value
    return value


class _Primitive:
    prefix = "primitive"

    def __init__(self, name: str | None = None, client: Client | None = None):
        self.name = name or f"{self.prefix}-{uuid.uuid4().hex}"
        self.client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"

    def _ask(self, kind: str, *args):
        return _ask(self.client, kind, *args)


class Semaphore(_Primitive):
    """At most ``max_leases`` holders at once, cluster-wide (dask's ``Semaphore``).

    >>> sem = lc.Semaphore(max_leases=2, name="database")
    >>> def query(sql):
    ...     with sem:                      # at most two tasks talk to the database
    ...         return run(sql)

    ``acquire(timeout=None)`` waits for a lease and returns True, or False
    after ``timeout`` seconds; ``release()`` gives one back (RuntimeError if
    this object holds none). Leases are held by the object that acquired
    them; a task's leases are released if its worker dies.
    """

    prefix = "semaphore"

    def __init__(
        self,
        max_leases: int = 1,
        name: str | None = None,
        register: bool = True,
        scheduler_rpc=None,
        loop=None,
        client: Client | None = None,
    ):
        if not isinstance(max_leases, int) or max_leases < 1:
            raise ValueError(f"max_leases must be a positive number, not {max_leases!r}")
        super().__init__(name, client)
        self.max_leases = max_leases
        self._leases: deque = deque()
        self._registered = False
        if register:
            self.register()

    def register(self) -> None:
        """Create the semaphore on the cluster (done on first use if not now)."""
        if not self._registered:
            self._ask("semaphore-create", self.name, self.max_leases)
            self._registered = True

    def acquire(self, timeout=None) -> bool:
        """Wait for a lease: True when got, False if ``timeout`` seconds pass first."""
        self.register()
        lease_id = uuid.uuid4().hex
        if self._ask("semaphore-acquire", self.name, lease_id, _seconds(timeout)):
            self._leases.append(lease_id)
            return True
        return False

    def release(self) -> bool:
        """Give back a lease this object holds."""
        if not self._leases:
            raise RuntimeError("Released too often")
        lease_id = self._leases.popleft()
        return self._ask("semaphore-release", self.name, lease_id)

    def get_value(self) -> int:
        """How many leases are held now."""
        self.register()
        return self._ask("semaphore-value", self.name)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __reduce__(self):  # registered where first used (unpickling may not ask anything)
        return (Semaphore, (self.max_leases, self.name, False))


class Lock(Semaphore):
    """A cluster-wide lock (dask's ``Lock``): a semaphore of one lease.

    >>> lock = lc.Lock("output-file")
    >>> def write(part):
    ...     with lock:
    ...         append_to_file(part)

    ``acquire(blocking=True, timeout=None)`` returns True when got, False if
    not got in time (at once with ``blocking=False``).
    """

    prefix = "lock"

    def __init__(self, name: str | None = None, client: Client | None = None, **kwargs):
        super().__init__(max_leases=1, name=name, register=False, client=client)

    def acquire(self, blocking: bool = True, timeout=None) -> bool:  # type: ignore[override]
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify a timeout for a non-blocking call")
            timeout = 0
        return super().acquire(timeout=timeout)

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self.get_value() == 1

    def __reduce__(self):
        return (Lock, (self.name,))


class Event(_Primitive):
    """A cluster-wide flag tasks and the kernel wait on (dask's ``Event``).

    >>> stop = lc.Event("stop")
    >>> def worker_loop():
    ...     while not stop.is_set():
    ...         step()
    >>> stop.set()                         # from the notebook

    ``wait(timeout=None)`` returns True once set, False after ``timeout``.
    """

    prefix = "event"

    def wait(self, timeout=None) -> bool:
        return self._ask("event-wait", self.name, _seconds(timeout))

    def set(self) -> None:
        self._ask("event-set", self.name)

    def clear(self) -> None:
        self._ask("event-clear", self.name)

    def is_set(self) -> bool:
        return self._ask("event-is-set", self.name)

    def __reduce__(self):
        return (Event, (self.name,))


class Variable(_Primitive):
    """A cluster-wide value (dask's ``Variable``): ``set`` anywhere, ``get`` anywhere.

    >>> threshold = lc.Variable("threshold")
    >>> threshold.set(0.5)
    >>> client.submit(lambda: threshold.get() * 2).result()
    1.0

    ``get(timeout=None)`` waits until a value is set; TimeoutError after ``timeout``.
    """

    prefix = "variable"

    def set(self, value, timeout="30 s", **kwargs) -> None:
        self._ask("variable-set", self.name, value)

    def get(self, timeout=None, **kwargs):
        return self._ask("variable-get", self.name, _seconds(timeout))

    def delete(self) -> None:
        self._ask("variable-delete", self.name)

    def __reduce__(self):
        return (Variable, (self.name,))


class Queue(_Primitive):
    """A cluster-wide FIFO queue (dask's ``Queue``), for the kernel and tasks.

    >>> q = lc.Queue("results", maxsize=100)
    >>> def produce(i):
    ...     q.put(i * i)
    >>> client.gather(client.map(produce, range(3)))
    >>> sorted(q.get(batch=True))
    [0, 1, 4]

    ``put(value, timeout=None)`` waits while the queue is full (``maxsize``);
    ``get(timeout=None, batch=False)`` waits for an item (TimeoutError after
    ``timeout``); ``batch=True`` takes every item there now, ``batch=n``
    waits for ``n``.
    """

    prefix = "queue"

    def __init__(
        self,
        name: str | None = None,
        client: Client | None = None,
        maxsize: int = 0,
        *,
        register: bool = True,
    ):
        super().__init__(name, client)
        self.maxsize = maxsize
        self._registered = False
        if register:
            self._register()

    def _register(self) -> None:
        if not self._registered:
            self._ask("queue-create", self.name, self.maxsize)
            self._registered = True

    def put(self, value, timeout=None, **kwargs) -> None:
        self._register()
        self._ask("queue-put", self.name, value, _seconds(timeout))

    def get(self, timeout=None, batch=False, **kwargs):
        self._register()
        return self._ask("queue-get", self.name, _seconds(timeout), batch)

    def qsize(self, **kwargs) -> int:
        self._register()
        return self._ask("queue-qsize", self.name)

    def __reduce__(self):  # registered where first used (unpickling may not ask anything)
        return (_unpickle_queue, (self.name, self.maxsize))


def _unpickle_queue(name: str, maxsize: int) -> Queue:
    return Queue(name, None, maxsize, register=False)
