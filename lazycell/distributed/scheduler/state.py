"""The scheduler's named state: records of tasks and workers, and the container that holds them.

Nothing here changes a task's state or talks to a process: the parts above
(``placement``, ``transitions``, ``membership``) change the records, and the
scheduler thread (``loop``) is the one owner of them all.

State of a task (``TaskState.state``), as in dask's scheduler:

- ``released``    known (its spec is kept) but not in memory and not queued;
- ``waiting``     needed; ``waiting_on`` holds the inputs not in memory yet;
- ``ready``       all inputs in memory; on the ``ready`` heap by ``priority``;
- ``processing``  sent to ``processing_on``;
- ``memory``      result held by worker ``who_has`` (``nbytes`` big), and copies of it
                  by the workers in ``replicas`` (``client.replicate``, ``scatter(broadcast=)``);
- ``erred``       failed, or an input failed (``error`` names the task that did);
- ``forgotten``   dropped from ``tasks``: no wanted key depends on it any more.

State of a worker (``WorkerHandle.state``): ``starting`` (its process is up,
it has not said ``ready``), ``running`` (gets tasks), ``retiring`` (told to
go by ``scale``/``adapt``: gets no tasks, its results move away first),
``closed`` (stopped or dead; out of ``workers``).

Scheduler state (:class:`SchedulerState`):

- ``tasks``      key -> TaskState, for every key some wanted key depends on
                 (``TaskState.wanted``: the client holds futures for it);
- ``ready``      heap of ``(priority, key)``; stale entries are skipped;
- ``workers``    index -> WorkerHandle, with ``processing`` and ``has_what`` sets;
- ``statuses``   key -> the KeyStatus of each client that wants the key (what its
                 futures wait on); a key is ``wanted`` while the list is not empty.

The rest of :class:`SchedulerState` belongs to one part each, listed with it
in ``SchedulerState.__init__``.

The outside world is five methods of :class:`SchedulerState`: ``send_to``
(one control message to a worker), ``launch_worker``, ``end_worker_process``,
``wait_for_exit`` and ``worker_exited``. ``ClusterScheduler`` (``loop``)
implements them with sockets and processes; a test implements them with a
list of sent messages and plain ``WorkerHandle`` records, and drives the
state machine without either. Tasks and releases for a worker do not go
through ``send_to``: they wait in its ``to_compute`` and ``to_release``
lists, which the loop sends in one batch per worker per round.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, NamedTuple

from lazycell.distributed.activity import ClusterActivity
from lazycell.distributed.failures import PickledFailure
from lazycell.graph.spec import TaskSpec

if TYPE_CHECKING:
    import subprocess
    from multiprocessing.connection import Connection


def warn_user(message: str) -> None:
    """A RuntimeWarning about the cluster, shown as ``lazycell:0: RuntimeWarning: lazycell:
    ...``: it is raised on the scheduler thread, where no line of the user's (nor of
    lazycell's) is the place to point at."""
    warnings.warn_explicit(
        f"lazycell: {message}", RuntimeWarning, filename="lazycell", lineno=0, module="lazycell"
    )


class TaskState:
    """One key's place in the cluster (see the module docstring for ``state``)."""

    __slots__ = (
        "key",
        "spec",
        "state",
        "priority",
        "deps",
        "dependents",
        "waiting_on",
        "processing_on",
        "who_has",
        "nbytes",
        "wanted",
        "suspicious",
        "error",
        "recorder",
        "restrictions",
        "group",
        "expected_seconds",
        "counted",
        "retries",
        "resources",
        "loose_restrictions",
        "replicas",
    )

    def __init__(self, key: Hashable, spec: TaskSpec, priority: tuple, recorder):
        self.key = key
        self.spec = spec
        self.state = "released"
        self.priority = priority
        self.deps: list[TaskState] = []
        self.dependents: set[TaskState] = set()
        self.waiting_on: set[TaskState] = set()
        self.processing_on: WorkerHandle | None = None
        self.who_has: WorkerHandle | None = None
        self.nbytes = 0
        self.wanted = False
        self.suspicious = 0  # deaths of workers that were running it
        self.error: tuple | None = None  # (PickledFailure, key of the failed task)
        self.recorder = recorder
        self.restrictions: frozenset | None = None  # names of the workers it may run on
        self.group: str | None = None  # key_group(key), set when first sent
        self.expected_seconds = 0.0  # its share of its worker's queued_seconds
        self.counted = False  # its finish or failure is in the activity counts
        self.retries = 0  # failures left to retry (submit(..., retries=n))
        self.resources: dict | None = None  # {"GPU": 1}: held on its worker while it runs
        self.loose_restrictions = False  # allow_other_workers: restrictions are a preference
        self.replicas: set[WorkerHandle] | None = None  # other workers holding a copy

    def __repr__(self) -> str:
        return f"<TaskState {self.key!r} {self.state}>"


class TaskOptions(NamedTuple):
    """What ``submit`` / ``map`` / ``compute`` were told about a task beyond its call."""

    retries: int = 0  # run again up to this many times when it fails
    priority: float = 0  # higher first, before the graph's own order (as in dask)
    resources: dict | None = None  # abstract resources it holds on its worker while it runs
    loose_restrictions: bool = False  # ``workers=`` is a preference (allow_other_workers)


class KeyStatus:
    """What the futures of one key wait on; written by the scheduler thread only.

    ``status`` is ``"pending"``, ``"finished"`` (``address`` says which worker
    holds it), ``"error"`` (``error`` is the
    :class:`~lazycell.distributed.failures.PickledFailure`, ``erred_key`` /
    ``erred_spec`` the task that failed) or ``"cancelled"``. It holds no live
    exception: each raise rebuilds one, so no traceback (and none of the
    futures its frames hold) is kept here.
    """

    def __init__(self, key: Hashable):
        self.key = key
        self.status = "pending"
        self.address: tuple | None = None
        self.worker_name: str | None = None
        self.error: PickledFailure | None = None
        self.erred_key: Hashable = None
        self.erred_spec: TaskSpec | None = None
        self.event = threading.Event()
        self.callbacks: list = []
        self.lock = threading.Lock()

    def settle(self, status: str, callback_queue: queue.SimpleQueue) -> None:
        with self.lock:
            if self.status == "cancelled":  # final, whatever the scheduler learns later
                return
            self.status = status
            self.event.set()
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback_queue.put(callback)

    def reset(self) -> None:
        with self.lock:
            if self.status == "cancelled":
                return
            self.status = "pending"
            self.address = None
            self.event.clear()


class WorkerHandle:
    """The scheduler's view of one worker: its connection and process, and what it holds.

    A record: ``loop`` fills ``control``, ``proc`` and ``thread`` and does the
    I/O on them; a test leaves them ``None``.
    """

    def __init__(self, index: int, threads: int):
        self.index = index
        self.name = f"worker-{index}"
        self.threads = threads
        self.state = "starting"  # -> "running" -> ("retiring" ->) "closed"
        self.started_at = time.monotonic()
        self.pid: int | None = None
        self.address: tuple | None = None  # its data server, where peers fetch results
        self.control: Connection | None = None  # control messages, both ways
        self.proc: subprocess.Popen | None = None  # None for a worker on a thread
        self.thread: threading.Thread | None = None
        self.spill_dir: str | None = None  # made by the loop; removed when the worker ends
        self.processing: set[TaskState] = set()
        self.long_running: set[TaskState] = set()  # of those, seceded: they hold no thread
        self.has_what: set[TaskState] = set()
        self.replicas: set[TaskState] = set()  # copies of results whose who_has is another
        self.nbytes = 0
        self.queued_seconds = 0.0  # expected run time of the tasks in processing
        self.paused = False
        self.exit_reason: str | None = None
        self.to_compute: list = []  # (key, spec, input addresses) to send in the next batch
        self.to_release: list = []  # keys to drop, sent in the next batch
        self.recent_batches: OrderedDict = OrderedDict()  # batch id -> keys
        self.metrics: dict = {}  # its last heartbeat: rss, cpu, managed, spilled, time
        self.pending_moves: set | None = None  # retiring: moves of its results not done yet
        self.retired = False  # told to stop by scale/adapt: no replacement, not a failure
        self.resources: dict = {}  # abstract resources it offers ({"GPU": 2}), from the cluster
        self.resources_free: dict = {}  # of those, not held by a running task

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.name} pid={self.pid} {self.state}>"


class PendingCall:
    """A function, plugin setup or teardown sent to some workers, waiting for their answers."""

    def __init__(self, worker_names: set, reply: queue.SimpleQueue):
        self.waiting = set(worker_names)
        self.results: dict = {}  # worker name -> (ok, value or PickledFailure)
        self.reply = reply

    def answer(self, worker_name: str, ok: bool, value) -> None:
        if worker_name not in self.waiting:
            return
        self.waiting.discard(worker_name)
        self.results[worker_name] = (ok, value)
        if not self.waiting:
            self.reply.put(self.results)


class SchedulerState:
    """Every piece of the scheduler's state, and the seams to the outside world.

    See the module docstring. The parts above take this object as their first
    argument (``transitions.task_finished(state, worker, ...)``), so a test can
    build one, add ``WorkerHandle`` records and drive it with no thread.
    """

    def __init__(self, n_workers: int, threads_per_worker: int, allowed_failures: int):
        self.n_workers = n_workers  # the size to keep; scale and adapt change it
        self.threads_per_worker = threads_per_worker
        self.allowed_failures = allowed_failures
        self.worker_resources: dict = {}  # what each worker offers (LocalCluster(resources=))
        # Tasks (transitions).
        self.tasks: dict[Hashable, TaskState] = {}
        self.ready: list = []
        self.statuses: dict[Hashable, list[KeyStatus]] = {}  # one per client wanting it
        self.callbacks: queue.SimpleQueue = queue.SimpleQueue()  # futures' callbacks to run
        self.generations = itertools.count()  # first part of a priority: graphs in order
        self.activity = ClusterActivity()
        # Estimates and the current run of root tasks (placement).
        self.mean_task_seconds: float | None = None
        self.group_seconds: dict[str, float] = {}  # task group -> mean duration
        self.root_worker: WorkerHandle | None = None
        self.root_run = 0
        self.root_run_length = 1
        # Workers (membership).
        self.workers: dict[int, WorkerHandle] = {}
        self.worker_indices = itertools.count()
        self.startup_failures = 0  # workers in a row that died before saying "ready"
        self.stopped = False
        self.request_ids = itertools.count()
        self.pending_calls: dict[int, PendingCall] = {}  # request id -> call awaiting answers
        self.moves: dict[int, tuple] = {}  # request id -> (retiring worker, receiving worker)
        self.replications: dict[int, tuple] = {}  # request id -> (receiving worker, Replication)

    def running_workers(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.state == "running"]

    def live_workers(self) -> list[WorkerHandle]:
        """Workers starting or running: the ones that count towards the cluster's size."""
        return [w for w in self.workers.values() if w.state in ("starting", "running")]

    # -- the outside world (see the module docstring)
    def send_to(self, worker: WorkerHandle, message: tuple) -> None:
        """Send one control message to ``worker``; a dead worker's is dropped."""
        raise NotImplementedError

    def launch_worker(self, index: int) -> WorkerHandle:
        """Start worker ``index`` (state ``starting``) and return its handle."""
        raise NotImplementedError

    def end_worker_process(self, worker: WorkerHandle) -> str:
        """Make sure a closed worker has stopped; say how it ended ("was killed by ...")."""
        raise NotImplementedError

    def wait_for_exit(self, workers: list[WorkerHandle]) -> None:
        """Workers told to stop: wait a little for them, kill the rest."""
        raise NotImplementedError

    def worker_exited(self, worker: WorkerHandle) -> bool:
        """Whether ``worker``'s process has exited (its end-of-file may not have arrived)."""
        raise NotImplementedError

    def worker_left(self, worker: WorkerHandle) -> None:
        """A worker is gone: what its tasks asked for (locks, waits, futures) goes too."""
