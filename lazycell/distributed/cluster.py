"""``LocalCluster``: long-lived worker processes on this machine and the scheduler that feeds them.

The cluster owns a :class:`~lazycell.distributed.scheduler.ClusterScheduler`
(a thread in this process) and, through it, the worker processes. It holds
the random authentication key every data connection must prove it knows.
Workers listen for data on Unix sockets in a private directory of the
cluster, and spill to a directory each that the scheduler makes for them;
a worker's spill directory is removed when it ends (however it ends), and
``close`` removes every directory the cluster made. Every cluster still open
at interpreter exit is closed by ``atexit``; a worker whose parent process
dies removes its files and exits by itself.
"""

from __future__ import annotations

import atexit
import operator
import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref

from lazycell.distributed import introspection
from lazycell.distributed.scaling import Adaptive, check_worker_count
from lazycell.distributed.scheduler import STARTUP_TIMEOUT, ClusterScheduler
from lazycell.distributed.store import parse_memory_limit

DEFAULT_THRESHOLDS = {"spill": 0.6, "pause": 0.8, "terminate": 0.95}
NUM_WORKERS_VAR = "LAZYCELL_NUM_WORKERS"
THREADS_VAR = "LAZYCELL_THREADS_PER_WORKER"

_live_clusters: weakref.WeakSet = weakref.WeakSet()
_live_lock = threading.Lock()


class LocalCluster:
    """Worker processes on this machine that keep results where they were made.

    >>> cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="2GB")
    >>> client = lc.Client(cluster)

    ``n_workers`` and ``threads_per_worker`` default to ``$LAZYCELL_NUM_WORKERS``
    and ``$LAZYCELL_THREADS_PER_WORKER``, else one single-threaded worker per
    core (two threads per worker on machines with more than 4 cores).
    ``n_workers=0`` starts none: tasks wait until ``scale(n)`` or ``adapt()``
    adds workers (as in dask).
    ``memory_limit`` is per worker: bytes, ``"4GB"``, ``"auto"`` (machine
    memory / workers) or None. ``memory_thresholds`` overrides the fractions
    of it at which a worker spills (0.6), pauses (0.8) and is restarted
    (0.95); None turns one off. Spilled results go to a fresh directory
    inside ``local_directory`` (default: the system's temporary directory).
    ``processes=False`` runs the workers as
    threads of this process (for debugging). A task that was running on
    ``allowed_failures`` workers that died fails instead of being retried.
    ``resources={"GPU": 2}`` is what each worker offers to tasks submitted
    with ``resources={"GPU": 1}``: a worker runs only as many of them at once
    as its resources allow (dask's abstract resources).

    A live dashboard is served on ``dashboard_address`` (``"127.0.0.1:0"``:
    loopback, a free port; None turns it off); ``cluster.dashboard_link`` is
    its URL with the access token. ``scale(n)`` and ``adapt(...)`` change the
    number of workers.
    """

    def __init__(
        self,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        memory_limit: int | str | None = "auto",
        processes: bool = True,
        *,
        memory_thresholds: dict | None = None,
        local_directory: str | None = None,
        allowed_failures: int = 3,
        startup_timeout: float = STARTUP_TIMEOUT,
        dashboard_address: str | None = "127.0.0.1:0",
        resources: dict | None = None,
    ):
        n_workers, threads_per_worker = default_worker_split(n_workers, threads_per_worker)
        self.resources = check_resources(resources)
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        # "auto" shares the machine among the workers; an empty cluster among as many
        # as it would start by default.
        sharing = n_workers or default_worker_split(None, threads_per_worker)[0]
        self.memory_limit = parse_memory_limit(memory_limit, sharing)
        self.memory_thresholds = {**DEFAULT_THRESHOLDS, **(memory_thresholds or {})}
        self.authkey = secrets.token_bytes(32)
        # Workers' data sockets live here: only this user can even reach them.
        self.socket_dir = tempfile.mkdtemp(prefix="lazycell-cluster-")
        self.scheduler = ClusterScheduler(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            authkey=self.authkey,
            memory_limit=self.memory_limit,
            thresholds=_usable_thresholds(self.memory_thresholds),
            processes=processes,
            allowed_failures=allowed_failures,
            local_directory=local_directory,
            socket_dir=self.socket_dir,
            resources=self.resources,
        )
        self.closed = False
        self.dashboard = None
        self.startup_timeout = startup_timeout
        with _live_lock:
            _live_clusters.add(self)
        try:
            self.scheduler.start(startup_timeout)
            if dashboard_address is not None:
                from lazycell.distributed.dashboard import Dashboard

                host, port = parse_address(dashboard_address)
                self.dashboard = Dashboard(self, host=host, port=port)
                self.dashboard.start()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.workers())} workers"
        return (
            f"LocalCluster({state}, threads_per_worker={self.threads_per_worker}, "
            f"memory_limit={self.memory_limit})"
        )

    @property
    def n_workers(self) -> int:
        """How many workers the cluster has or is starting (its target size)."""
        return 0 if self.closed else self.scheduler.n_workers

    @property
    def dashboard_link(self) -> str | None:
        """The dashboard's URL with its access token; None if the dashboard is off."""
        return self.dashboard.link if self.dashboard is not None else None

    def workers(self) -> list[dict]:
        """One dict per running worker, as in ``scheduler_info()["workers"]``:
        ``name``, ``pid``, ``address``, ``n_results``, ``n_processing``, ..."""
        if self.closed:
            return []
        return self.scheduler.call(introspection.running_workers_info)

    def scheduler_info(self) -> dict:
        """The workers and the totals; see :meth:`lazycell.Client.scheduler_info`."""
        self._check_open()
        info = self.scheduler.call(introspection.scheduler_info)
        info["dashboard_link"] = self.dashboard_link
        return info

    def activity(self) -> dict:
        """Task counts per group and the recent task stream (see ``activity.py``), as data."""
        self._check_open()
        return self.scheduler.call(lambda scheduler: scheduler.activity.snapshot(scheduler))

    def scale(self, n: int, wait: bool = True) -> None:
        """Have ``n`` workers: start new ones, or retire the least busy after moving their
        results to the others (nothing is recomputed). Turns ``adapt`` off.

        With ``wait`` (the default) returns once ``n`` workers run.
        """
        check_worker_count(n, f"scale({n!r})")
        self._check_open()
        self.scheduler.submit_command("scale", n)
        if wait:
            self.wait_for_workers(n)

    def adapt(
        self,
        minimum: int = 0,
        maximum: int | None = None,
        *,
        idle_timeout: float = 10.0,
        target_duration: float = 1.0,
    ) -> None:
        """Grow and shrink with the work: see ``lazycell/distributed/scaling.py``.

        Adds workers while queued work would take more than ``target_duration``
        seconds per worker (up to ``maximum``), and retires workers idle for
        ``idle_timeout`` seconds (down to ``minimum``), moving their results to
        the remaining workers first. ``scale(n)`` turns it off.
        """
        self._check_open()
        policy = Adaptive(minimum, maximum, idle_timeout, target_duration)
        self.scheduler.submit_command("adapt", policy)

    def wait_for_workers(self, n: int, timeout: float | None = None) -> None:
        """Block until exactly ``n`` workers run and no other is starting or retiring."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            running, present = self.scheduler.call(
                lambda s: (len(s.running_workers()), len(s.workers))
            )
            if running == present == n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster has {running} workers, not {n}, after {timeout} s")
            time.sleep(0.05)

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this LocalCluster is closed; create a new one")

    def close(self) -> None:
        """Stop every worker process and the scheduler thread. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if self.dashboard is not None:
            self.dashboard.close()
        self.scheduler.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        with _live_lock:
            _live_clusters.discard(self)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:8787"`` or ``":0"`` -> (host, port); the host defaults to loopback."""
    text = str(address).strip()
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number < 65536:
        raise ValueError(
            f"dashboard_address={address!r}: expected 'host:port' such as '127.0.0.1:8787' "
            "(port 0 picks a free one), or None to turn the dashboard off"
        )
    return host or "127.0.0.1", number


def check_resources(resources) -> dict:
    """``resources={"GPU": 2, "MEMORY": 8e9}``: what each worker offers to tasks that ask."""
    if resources is None:
        return {}
    if not isinstance(resources, dict) or not all(
        isinstance(name, str) and isinstance(amount, (int, float)) and amount >= 0
        for name, amount in resources.items()
    ):
        raise TypeError(
            f"resources= takes a dict of resource name -> amount each worker offers, such "
            f"as {{'GPU': 2}}; got {resources!r}"
        )
    return dict(resources)


def default_worker_split(n_workers: int | None, threads: int | None) -> tuple[int, int]:
    """(workers, threads per worker) from the arguments, the environment, or the core count.

    ``n_workers`` may be 0 (an empty cluster that ``scale`` or ``adapt`` fills);
    ``threads_per_worker`` must be 1 or more. Not whole numbers: TypeError.
    """
    n_workers = _whole_number("n_workers", n_workers, minimum=0)
    threads = _whole_number("threads_per_worker", threads, minimum=1)
    n_workers = n_workers if n_workers is not None else _env_int(NUM_WORKERS_VAR)
    threads = threads if threads is not None else _env_int(THREADS_VAR)
    cores = os.cpu_count() or 1
    if threads is None:
        if n_workers:
            threads = max(1, cores // n_workers)
        else:
            threads = 1 if cores <= 4 else 2
    if n_workers is None:
        n_workers = max(1, cores // threads)
    return n_workers, threads


def _whole_number(name: str, value, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a whole number, not {value!r}")
    try:
        number = operator.index(value)  # int, or numpy's integers; not "2" or 2.0
    except TypeError:
        raise TypeError(
            f"{name} must be a whole number, not {value!r} of type {type(value).__name__}"
        ) from None
    if number < minimum:
        raise ValueError(f"{name} must be {minimum} or more, not {number}")
    return number


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"environment variable {name}={text!r} must be at least 1")
    return value


def _usable_thresholds(thresholds: dict) -> dict:
    """None (off) becomes infinity, so workers compare without special cases."""
    unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ValueError(f"unknown memory threshold(s) {unknown}; known: spill, pause, terminate")
    return {k: float("inf") if v is None else float(v) for k, v in thresholds.items()}


@atexit.register
def close_all_clusters() -> None:
    """Stop every cluster (and so every worker process) this interpreter started."""
    with _live_lock:
        clusters = list(_live_clusters)
    for cluster in clusters:
        try:
            cluster.close()
        except Exception:
            pass
