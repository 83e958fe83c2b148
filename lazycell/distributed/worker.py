"""Main program of one local-cluster worker: runs tasks and keeps their results.

::

    scheduler thread (kernel)            this worker                         peers / client
    ─────────────────────────            ───────────                         ──────────────
    ("setup", path, cwd, key, opts) ───► control thread: adopt path, listen
                                   ◄──── ("ready", pid, data address)
    ("compute", id, [(key, spec, where)]) ► tasks queue ─► task threads:
                                                         inputs from store, or fetched
                                                         from a peer's data server ◄──── data
                                                         run, store.put(result)
                                   ◄──── ("reports", [("finished", key, nbytes, t0, t1),
                                                      ("erred", key, PickledFailure, t0, t1),
                                                      ("missing", key, dep)])
                                   ◄──── ("broken", id, error): batch cannot be unpickled
    ("release", [keys])            ───► store.delete
                                         data server threads: ("get", keys) ──────────► values
                                           (spilled ones sent from their files, unread)
    ("call", id, fn)               ───► control thread: fn(worker)
                                   ◄──── ("call-result", id, ok, value or failure)
    ("plugin", id, name, plugin)   ───► control thread: plugin.setup(worker)
                                   ◄──── ("call-result", id, ok, ...)
    ("gather-from", id, {addr: keys}) ► mover thread: fetch from peers, store
                                   ◄──── ("gathered", id, {key: nbytes} or error)
                                   ◄──── ("heartbeat", {rss, cpu, managed, spilled, ...})
                                   ◄──── ("client-request", id, kind, args): a task's
                                         get_client(), Lock, Queue... (request())
    ("client-reply", id, ok, value) ───► control thread: to the waiting task thread
    ("key-settled", key, status, ...) ─► control thread: the task's WorkerClient
                                   ◄──── ("reports", [("seceded", key)]): secede()
    ("stop",)                      ───► plugins' teardown(worker), exit

- ``store``: the :class:`ResultStore` of results made here; spills to disk
  above the spill threshold of the memory limit.
- ``tasks``: tasks sent by the scheduler, run in arrival order by
  ``threads_per_worker`` task threads. Nothing a task does ends a task
  thread: whatever escapes a task's handling (an input that cannot be sent
  here, a result that cannot be kept) becomes that task's failure, and the
  thread takes the next task.
- ``outbox``: reports not yet sent. Sent at once when the task queue is
  empty, else at least every ``FLUSH_INTERVAL`` by the flusher thread, so a
  stream of tiny tasks costs one message per batch, not per task.
- ``where``: for each input held by another worker, that worker's data
  address; inputs held here are read from ``store``.
- ``namespace``: a dict for resources tasks share on this worker (a database
  connection a :class:`~lazycell.distributed.plugins.WorkerPlugin` opens in
  ``setup``); tasks reach it through :func:`get_worker`.
- ``replies``: a slot per request a task thread waits on (``request``);
  answered by the control thread, which therefore never asks anything itself.
  Requests that need no answer (a future released in ``__del__``) go through
  ``told`` and the teller thread, never straight to the socket; requests that
  wait go the same way, so the scheduler reads them all in the order they were
  made (a release told before a submit of the same key cannot overtake it).
- ``seceded``: task threads that left the pool (``secede()``) while they wait
  on other tasks; a new task thread took each one's place, and each ends
  after its task unless it rejoined (``rejoin()``: the first idle thread
  leaves instead).
- ``call`` and ``plugin`` run on the control thread, in order with the other
  messages: a plugin a new worker is sent before any task is set up before
  that task runs.
- The stack sampler (``profiler.py``) samples the task threads while they
  run a task, every 10 ms, for ``client.profile``.
- The heartbeat thread sends memory and CPU use every ``HEARTBEAT_SECONDS``
  for ``scheduler_info``, the dashboard and the panels.
- The memory monitor (only with a memory limit) samples this process's RSS:
  above ``pause`` it stops starting tasks (and tells the scheduler), above
  ``terminate`` it reports and exits so the scheduler restarts it and
  recomputes what it held.
- Spilled results go to the directory the scheduler names in the setup
  (``spill_dir``); the scheduler removes it when this worker ends, however
  it ends.

Started as ``python -m lazycell.distributed.worker FD PARENT_PID`` over a
socket pair (not ``multiprocessing``), so the user's ``__main__`` is never
re-imported. SIGINT is ignored (the kernel decides what an interrupt stops);
the worker exits by itself when its parent process disappears. With
``processes=False`` the same :class:`Worker` runs on a thread in the kernel.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection

import cloudpickle

from lazycell.distributed.failures import PickledFailure
from lazycell.distributed.plugins import worker_of_thread
from lazycell.distributed.profiler import BusyThreads, StackSampler
from lazycell.distributed.protocol import (
    DataFetcher,
    Gone,
    MissingData,
    UnsendableResult,
    accept_authenticated,
    dumps_control,
    listen,
    loads_control,
)
from lazycell.distributed.store import ResultStore
from lazycell.events.failure import Failure, type_name_of
from lazycell.graph.spec import describe_task, run_task

FLUSH_INTERVAL = 0.005


def _holds_future_key(value) -> bool:
    if type(value).__name__ == "FutureKey":
        return True
    return type(value) is list and any(type(v).__name__ == "FutureKey" for v in value)


_running = threading.local()  # .key: the task a task thread runs (for secede())
_LEAVE_POOL = ("leave-pool",)  # on the task queue: the thread that takes it ends (rejoin())
MEMORY_SAMPLE_SECONDS = 0.05
HEARTBEAT_SECONDS = 0.5


class Worker:
    """One worker's state and threads (see the module docstring)."""

    def __init__(self, control: Connection, in_process: bool = False):
        self.control = control
        self.in_process = in_process
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.outbox: list = []
        self.outbox_lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.reports_pending = threading.Event()
        self.unpaused = threading.Event()
        self.unpaused.set()
        self.stopping = False
        self.store = ResultStore()
        self.fetcher: DataFetcher | None = None
        self.server = None
        self.socket_dir: str | None = None
        self.told_to_stop = False
        self.threads: list[threading.Thread] = []
        self.name = "worker"
        self.namespace: dict = {}
        self.plugins: dict = {}  # name -> WorkerPlugin, in registration order
        self.busy = BusyThreads()  # task threads running a task now, for the sampler
        self.sampler = StackSampler(is_busy=self.busy.is_busy)
        # Requests tasks make of the scheduler (get_client(), Lock, Queue...): id -> reply slot.
        self.replies: dict = {}
        self.request_ids = itertools.count()
        self.task_client = None  # the WorkerClient of get_client(), made on first use
        self.seceded: set = set()  # idents of task threads that left the pool (secede())
        self.n_task_threads = 0
        self.control_thread: threading.Thread | None = None
        self.told: queue.SimpleQueue = queue.SimpleQueue()  # see tell()

    # -- life cycle
    def serve(self) -> None:
        self.control_thread = threading.current_thread()
        kind, sys_path, cwd, authkey, options = loads_control(self.control.recv_bytes())
        assert kind == "setup", kind
        if not self.in_process:
            sys.path[:] = list(sys_path)
            try:
                os.chdir(cwd)
            except OSError:
                pass
        self.authkey = authkey
        self.name = options.get("name", self.name)
        worker_of_thread.worker = self
        self.fetcher = DataFetcher(authkey)
        self.socket_dir = options.get("socket_dir")
        self.server = listen(self.socket_dir)
        self.configure_memory(options)
        self.start_thread(self.accept_peers, "data-server")
        self.start_thread(self.flush_reports_periodically, "flusher")
        self.start_thread(self.send_told, "teller")
        for _ in range(options["threads"]):
            self.add_task_thread()
        if self.memory_limit and not self.in_process:
            self.start_thread(self.monitor_memory, "memory")
        self.start_thread(self.send_heartbeats, "heartbeat")
        self.sampler.start()
        self.send(("ready", os.getpid(), self.server.getsockname()))
        try:
            self.handle_control_messages()
        finally:
            self.shut_down()

    def remove_files(self) -> None:
        """Spilled results, and the cluster's socket directory (others' sockets are dead too)."""
        if self.store._spill_dir is not None:
            shutil.rmtree(self.store._spill_dir, ignore_errors=True)
        if self.socket_dir and os.path.basename(self.socket_dir).startswith("lazycell-cluster-"):
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def start_thread(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=f"lazycell-worker-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def handle_control_messages(self) -> None:
        while True:
            try:
                message = loads_control(self.control.recv_bytes())
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "compute":
                _, batch_id, batch = message
                try:
                    items = loads_control(batch)
                except Exception as exc:  # e.g. a function from a module not importable here
                    self.send(("broken", batch_id, f"{type(exc).__name__}: {exc}"))
                    continue
                for item in items:
                    self.tasks.put(item)
            elif kind == "release":
                for key in message[1]:
                    self.store.delete(key)
            elif kind == "call":
                _, request_id, payload = message
                self.answer_call(request_id, self.run_function, payload)
            elif kind == "plugin":
                _, request_id, name, payload = message
                self.answer_call(request_id, self.add_plugin, name, payload)
            elif kind == "remove-plugin":
                _, request_id, name = message
                self.answer_call(request_id, self.remove_plugin, name)
            elif kind == "gather-from":
                _, request_id, keys_by_address = message
                threading.Thread(
                    target=self.gather_from_peers,
                    args=(request_id, keys_by_address),
                    name="lazycell-worker-mover",
                    daemon=True,
                ).start()
            elif kind == "client-reply":
                _, request_id, ok, value = message
                if ok and self.task_client is not None and _holds_future_key(value):
                    value = self.task_client.adopt_keys(value)  # before any "key-settled"
                slot = self.replies.pop(request_id, None)
                if slot is not None:
                    slot.put((ok, value))
            elif kind == "key-settled":
                if self.task_client is not None:
                    self.task_client.key_settled(*message[1:])
            elif kind == "stop":
                self.told_to_stop = True
                return

    # -- requests of tasks to the scheduler (get_client(), Lock, Event, Queue, ...)
    def request(self, kind: str, *args, timeout: float | None = None):
        """Ask the scheduler (``("client-request", id, kind, args)``) and wait for its answer.

        An error the scheduler sends back is raised here; so is TimeoutError after
        ``timeout`` seconds (None: no limit), and RuntimeError if this worker stops
        meanwhile: a task never waits on a scheduler that is gone.
        """
        if threading.current_thread() is self.control_thread:  # it reads the answers
            raise RuntimeError(
                f"{kind!r} cannot be asked from a worker's control thread (a plugin's "
                "setup, a client.run function, or unpickling a task): ask from a task"
            )
        request_id = next(self.request_ids)
        payload = dumps_control(("client-request", request_id, kind, args))  # errors raise here
        slot: queue.SimpleQueue = queue.SimpleQueue()
        self.replies[request_id] = slot
        self.told.put(payload)  # after what was told before it (see send_told)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    ok, value = slot.get(timeout=0.1)
                    break
                except queue.Empty:
                    if self.stopping:
                        raise RuntimeError(
                            f"{self.name} is stopping: the scheduler did not answer {kind!r}"
                        ) from None
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the scheduler did not answer {kind!r} within {timeout} s"
                        ) from None
        finally:
            self.replies.pop(request_id, None)
        if not ok:
            raise value.rebuild() if isinstance(value, PickledFailure) else value
        return value

    def tell(self, kind: str, *args) -> None:
        """A request that needs no answer (releasing futures, say). Sent by the teller
        thread: it may be called from a Future's ``__del__``, in the middle of a send."""
        self.told.put(dumps_control(("client-request", None, kind, args)))

    def send_told(self) -> None:
        """Send the requests of tasks' clients, told and asked alike, in the order made:
        the scheduler must see a key's release before a later submit of that key."""
        while True:
            payload = self.told.get()
            if payload is None:
                return
            self.send_payload(payload)

    # -- the pool of task threads, and tasks that leave it while they wait (secede)
    def add_task_thread(self) -> None:
        self.n_task_threads += 1
        self.start_thread(self.run_tasks, f"task-{self.n_task_threads - 1}")

    def secede(self) -> None:
        """The calling task thread leaves the pool; a new thread takes its place, so a
        task that waits on other tasks holds no thread of the pool."""
        ident = threading.get_ident()
        if ident in self.seceded:
            return
        self.seceded.add(ident)
        self.busy.idents.discard(ident)
        self.add_task_thread()
        key = getattr(_running, "key", None)
        if key is not None:  # the scheduler stops counting it against this worker's room
            self.report(("seceded", key))

    def rejoin(self) -> None:
        """The calling seceded thread counts in the pool again: the first task thread
        to go idle leaves instead, so the pool is back to its size."""
        ident = threading.get_ident()
        if ident not in self.seceded:
            return
        self.seceded.discard(ident)
        self.busy.idents.add(ident)
        self.tasks.put(_LEAVE_POOL)

    # -- calls, plugins and moves (from client.run, register_plugin, retiring workers)
    def answer_call(self, request_id, func, *args) -> None:
        try:
            reply = ("call-result", request_id, True, func(*args))
        except BaseException as exc:  # noqa: B036 - a SystemExit in user code must not stop us
            reply = ("call-result", request_id, False, PickledFailure.from_exception(exc))
        try:
            payload = dumps_control(reply)
            loads_control(payload)  # one that cannot be unpickled would be lost on the way
        except BaseException as exc:  # noqa: B036 - whatever unpickling the value raises
            value = reply[3]
            message = (
                f"the result of type {type_name_of(type(value))} "
                f"cannot be sent back (pickled and unpickled): {exc!r}"
            )
            failure = PickledFailure.of(Failure.serialization(message))
            payload = dumps_control(("call-result", request_id, False, failure))
        if request_id is not None:
            with self.send_lock:
                try:
                    self.control.send_bytes(payload)
                except (OSError, ValueError):
                    pass
        elif not reply[2]:
            failure = reply[3]
            print(
                f"lazycell: {self.name}: {failure.type_name}: {failure.message}\n"
                f"{failure.traceback}",
                file=sys.stderr,
            )

    def run_function(self, payload: bytes):
        return loads_control(payload)(self)

    def add_plugin(self, name: str, payload: bytes) -> None:
        plugin = loads_control(payload)
        if name in self.plugins:  # registered again under the same name: replace it
            self.remove_plugin(name)
        self.plugins[name] = plugin
        setup = getattr(plugin, "setup", None)
        if setup is not None:
            setup(self)

    def remove_plugin(self, name: str) -> None:
        plugin = self.plugins.pop(name, None)
        teardown = getattr(plugin, "teardown", None)
        if teardown is not None:
            teardown(self)

    def teardown_plugins(self) -> None:
        for name in reversed(list(self.plugins)):
            try:
                self.remove_plugin(name)
            except Exception as exc:
                print(
                    f"lazycell: {self.name}: plugin {name!r} teardown failed: {exc!r}",
                    file=sys.stderr,
                )

    def gather_from_peers(self, request_id, keys_by_address: dict) -> None:
        """Copy results held by other workers here (a retiring worker's, before it stops)."""
        moved = {}
        try:
            for address, keys in keys_by_address.items():
                for key, value in self.fetcher.fetch(address, keys).items():
                    moved[key] = self.store.put(key, value)
            reply = ("gathered", request_id, moved, None)
        except Exception as exc:
            reply = ("gathered", request_id, moved, f"{type(exc).__name__}: {exc}")
        self.send(reply)

    def shut_down(self) -> None:
        if self.told_to_stop:
            self.teardown_plugins()
        self.stopping = True
        self.sampler.stop()
        self.unpaused.set()
        for _ in range(self.n_task_threads):
            self.tasks.put(None)
        try:
            self.server.close()
        except OSError:
            pass
        self.fetcher.close()
        self.store.clear()
        self.reports_pending.set()
        self.told.put(None)
        for slot in list(self.replies.values()):  # tasks waiting on the scheduler: no answer
            slot.put((False, RuntimeError(f"{self.name} stopped before the scheduler answered")))

    # -- running tasks
    def run_tasks(self) -> None:
        worker_of_thread.worker = self
        busy, ident = self.busy.idents, threading.get_ident()
        seceded = self.seceded
        running = _running
        while True:
            item = self.tasks.get()
            if item is None or item is _LEAVE_POOL:
                return
            self.unpaused.wait()
            busy.add(ident)  # for the stack sampler (a set: atomic under the GIL, no lock)
            running.key = item[0]
            try:
                self.run_one(*item)
            except BaseException as exc:  # noqa: B036 - nothing a task does may end this loop
                self.fail_task_with_escaped_error(item[0], exc)
            finally:
                busy.discard(ident)
            if seceded and ident in seceded:  # its place was taken by a new thread
                seceded.discard(ident)
                return

    def run_one(self, key, spec, where) -> None:
        try:
            inputs = self.gather_inputs(spec.deps, where)
        except MissingData as missing:
            self.report(("missing", key, str(missing)))
            return
        except Exception as exc:  # an input that cannot be sent here, or unpickled here
            if isinstance(exc, UnsendableResult):
                why = (
                    f"input {exc}; use such a value within one task, or run the tasks "
                    "that take it where it is made (workers=[...])"
                )
            else:
                why = f"an input could not be received: {type(exc).__name__}: {exc}"
            message = f"{describe_task(key, spec)} cannot run on {self.name}: {why}"
            failure = PickledFailure.of(Failure.serialization(message))
            now = time.perf_counter()
            self.report(("erred", key, failure, now, now))
            return
        start = time.perf_counter()
        try:
            result = run_task(spec, inputs)
        except BaseException as exc:  # noqa: B036 - SystemExit in a task must not kill us
            stop = time.perf_counter()
            self.report(("erred", key, PickledFailure.from_exception(exc), start, stop))
            return
        stop = time.perf_counter()
        del inputs
        nbytes = self.store.put(key, result)
        self.report(("finished", key, nbytes, start, stop))

    def fail_task_with_escaped_error(self, key, exc: BaseException) -> None:
        """Something escaped the handling of task ``key`` (not its function: that is
        caught in ``run_one``): the task fails with it, and its thread carries on."""
        now = time.perf_counter()
        self.report(("erred", key, PickledFailure.from_exception(exc), now, now))

    def gather_inputs(self, deps: tuple, where: dict) -> dict:
        inputs = {}
        by_address: dict = {}
        for dep in deps:
            address = where.get(dep)
            if address is not None:
                by_address.setdefault(address, []).append(dep)
                continue
            try:
                inputs[dep] = self.store.get(dep)
            except KeyError:
                raise MissingData(f"input {dep!r} is not held here") from None
        for address, keys in by_address.items():
            inputs.update(self.fetcher.fetch(address, keys))
        return inputs

    # -- reporting
    def report(self, item: tuple) -> None:
        with self.outbox_lock:
            self.outbox.append(item)
        if self.tasks.empty():
            self.flush_reports()
        else:
            self.reports_pending.set()

    def flush_reports(self) -> None:
        with self.outbox_lock:
            items, self.outbox = self.outbox, []
        if items:
            self.send(("reports", items))

    def flush_reports_periodically(self) -> None:
        while not self.stopping:
            self.reports_pending.wait()
            time.sleep(FLUSH_INTERVAL)
            self.reports_pending.clear()
            self.flush_reports()

    def send(self, message) -> None:
        self.send_payload(dumps_control(message))

    def send_payload(self, payload: bytes) -> None:
        with self.send_lock:
            try:
                self.control.send_bytes(payload)
            except (OSError, ValueError):  # the scheduler is gone; we are stopping
                pass

    # -- serving data to peers and the client
    def accept_peers(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(
                target=self.serve_peer, args=(sock,), name="lazycell-worker-peer", daemon=True
            ).start()

    def serve_peer(self, sock) -> None:
        channel = accept_authenticated(sock, self.authkey)
        if channel is None:  # refused: wrong or no key; nothing was unpickled
            return
        try:
            while True:
                _, keys = channel.recv()
                self.send_values(channel, keys)
        except (OSError, EOFError):
            pass
        finally:
            channel.close()

    def send_values(self, channel, keys: list) -> None:
        """Answer ``("get", keys)``: the results in memory in one frame, then each spilled
        one from its file, unread (see ``protocol.py``)."""
        store = self.store
        in_memory = {}
        spilled = []
        missing = None
        with store.lock:
            for key in keys:
                entry = store.in_memory.get(key)
                if entry is not None:
                    in_memory[key] = entry[0]
                    store.in_memory.move_to_end(key)  # just used: spilled last
                elif key in store.on_disk:
                    spilled.append(key)
                else:
                    missing = key
                    break
        if missing is not None:
            channel.send(("missing", missing))
            return
        try:
            channel.send(("data", in_memory, spilled))
        except OSError:
            raise
        except Exception as exc:  # pickling fails before a byte is sent: the stream is intact
            channel.send(("error", self.describe_unsendable(in_memory, exc)))
            return
        del in_memory
        for key in spilled:
            try:
                found = store.value_or_spill_file(key)
            except KeyError:  # released meanwhile
                channel.send(Gone(key))
                continue
            if found[0] == "memory":  # loaded back by a task meanwhile
                channel.send(found[1])
                continue
            _, f, size = found
            with f:
                channel.send_file(f, size)

    def describe_unsendable(self, values: dict, exc: Exception) -> str:
        """Which result could not be pickled to send it, of what type, from where."""
        for key, value in values.items():
            try:
                cloudpickle.dumps(value, protocol=5, buffer_callback=lambda _: None)
            except Exception as culprit:
                return (
                    f"{key!r} of type {type_name_of(type(value))} could not be sent "
                    f"from {self.name}: {culprit}"
                )
        return f"{', '.join(map(repr, values))} could not be sent from {self.name}: {exc}"

    # -- memory
    def send_heartbeats(self) -> None:
        import psutil

        process = psutil.Process()
        process.cpu_percent()  # the first call only starts the measurement
        while not self.stopping:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                rss = process.memory_info().rss
                cpu = process.cpu_percent()
            except psutil.Error:
                return
            store = self.store
            self.send(
                (
                    "heartbeat",
                    {
                        "rss": rss,
                        "cpu": cpu,
                        "managed": store.memory_bytes,
                        "spilled": store.spilled_bytes,
                        "n_spilled": store.n_spilled,
                        "time": time.time(),
                    },
                )
            )

    def configure_memory(self, options: dict) -> None:
        self.memory_limit = options.get("memory_limit")
        self.thresholds = options.get("thresholds") or {}
        if options.get("spill_dir"):  # made by the scheduler, which removes it when we end
            os.makedirs(options["spill_dir"], exist_ok=True)
            self.store = ResultStore(spill_dir=options["spill_dir"])
        elif options.get("local_directory"):
            os.makedirs(options["local_directory"], exist_ok=True)
            self.store = ResultStore(
                spill_dir=tempfile.mkdtemp(prefix="lazycell-spill-", dir=options["local_directory"])
            )
        spill = self.thresholds.get("spill", float("inf"))
        if self.memory_limit and spill != float("inf"):
            self.store.spill_bytes = int(self.memory_limit * spill)

    def monitor_memory(self) -> None:
        import psutil

        process = psutil.Process()
        limit = self.memory_limit
        paused = False
        while not self.stopping:
            time.sleep(MEMORY_SAMPLE_SECONDS)
            rss = process.memory_info().rss
            if rss > limit * self.thresholds["spill"] and self.store.memory_bytes:
                excess = rss - int(limit * self.thresholds["spill"])
                self.store.spill_least_recently_used(
                    target=max(0, self.store.memory_bytes - excess)
                )
                rss = process.memory_info().rss
            if rss > limit * self.thresholds["terminate"]:
                self.flush_reports()
                self.send(("restarting", rss))
                os._exit(1)
            should_pause = rss > limit * self.thresholds["pause"]
            if should_pause != paused:
                paused = should_pause
                if paused:
                    self.unpaused.clear()
                else:
                    self.unpaused.set()
                self.send(("paused", paused, rss))


def exit_when_orphaned(worker: Worker, parent_pid: int) -> None:
    """The kernel died without closing the cluster: remove our files and exit."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    worker.remove_files()
    os._exit(0)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(sys.argv[1])
    parent_pid = int(sys.argv[2])
    worker = Worker(Connection(fd))
    threading.Thread(target=exit_when_orphaned, args=(worker, parent_pid), daemon=True).start()
    worker.serve()
    if not worker.told_to_stop:  # the control socket closed: did the kernel die?
        deadline = time.monotonic() + 2
        while os.getppid() == parent_pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.getppid() != parent_pid:
            worker.remove_files()


if __name__ == "__main__":
    main()
