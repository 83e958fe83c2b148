"""The ``lazycell`` comm: the JupyterLab extension's one line into the kernel.

No server extension and no port: the side panel and status bar item
(``labextension/``) talk to the kernel over the comm channel the notebook
already uses, so they work wherever the notebook works (JupyterHub, proxies,
SSH tunnels).

::

    browser (labextension/)                   kernel
    ───────────────────────                   ──────
                                              %load_ext lazycell: LabChannel.start registers
                                              the comm target "lazycell" and opens a comm
                                              to the front end (it may be open already)
    opens "lazycell" on connect / reload ───► on_comm_open ─► comms (newest last)
    {"request": "snapshot"} ────────────────► main thread: send state + the whole history
                                              while a comm is open, ComputeTracker folds
                                              every compute (see compute_state.py):
                                              delivering thread, a few Hz ─► _on_change:
                                                sample resources if due; send state at
                                                most every ``interval`` s
                                              computing thread, the compute's end ─►
                                                send state at once, and its history entry
                                              heartbeat thread, every ``idle_interval`` s
                                              while no compute runs: workers, resources
    ◄── IOPub: every page of the kernel sees each comm message

Why each message goes out on one comm only: a comm message is an IOPub
broadcast, so every page connected to the kernel sees it, whichever comm it
names, and the front end listens to IOPub for lazycell's messages rather than
to its own comm alone. That is how a page reloaded mid-compute recovers at
once: its own comm_open waits on the shell channel until the running cell
ends, but the state keeps arriving.

Why it tracks only while a comm is open: with no front end listening (a
front end without the extension closes the kernel's comm at once), the
extension adds nothing to a compute. The kernel keeps the history (the last
``MAX_HISTORY`` computes), so a reloaded page gets it back.

Messages: see ``lab_messages.py`` (and ``labextension/src/protocol.ts``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

from lazycell import config
from lazycell._version import __version__
from lazycell.diagnostics.compute_state import ComputeState, ComputeTracker
from lazycell.diagnostics.resources import ResourceSampler, total_memory
from lazycell.diagnostics.workers import worker_processes
from lazycell.kernel_ext.lab_messages import (
    NO_CELL,
    TASK_STREAM_BARS,
    CellOfCompute,
    cluster_workers,
    compute_message,
    dask_cluster_workers,
    history_entry,
    local_workers,
    resource_points,
    task_stream_message,
)
from lazycell.kernel_ext.magics import running_cell_number

COMM_TARGET = "lazycell"
MAX_HISTORY = 500
# A cluster is asked for its workers at most this often (it is a round trip).
CLUSTER_INFO_SECONDS = 1.0
# The task stream is the largest part of a state message: sent this often, and at the end.
TASK_STREAM_SECONDS = 2.0


class LabChannel:
    """The comm target and the state it sends, in one kernel (see the module docstring).

    ``interval``: least seconds between two state messages during a compute;
    ``idle_interval``: seconds between state messages while no compute runs.
    """

    def __init__(self, shell, interval: float = 0.25, idle_interval: float = 2.0):
        self.shell = shell
        self.interval = interval
        self.idle_interval = idle_interval
        self.comms: list = []  # open comms, the newest last; messages go out on the newest
        self.history: deque[dict] = deque(maxlen=MAX_HISTORY)
        self.tracker = ComputeTracker(on_change=self._on_change, stream_limit=TASK_STREAM_BARS)
        self.sampler = ResourceSampler()
        self.cells: dict[int, CellOfCompute] = {}  # compute id -> where it ran
        self.started = False
        self._cell_running = False
        self._cell_id: str | None = None
        self._recorded: set[int] = set()  # compute ids in the history
        self._processes: dict[int, dict[str, int]] = {}  # compute id -> {worker: pid}
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()  # see send_state
        self._sent_at = 0.0
        self._cluster_cache: tuple[float, dict | None] = (0.0, None)
        self._stream_sent: tuple[int, float] = (-1, 0.0)  # compute id, when its stream was sent
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- lifetime
    def start(self) -> bool:
        """Register the comm target and offer a comm to the front end; False outside a kernel."""
        if self.started:
            return True
        if getattr(self.shell, "kernel", None) is None:  # terminal IPython, plain shells
            return False
        from comm import create_comm, get_comm_manager

        get_comm_manager().register_target(COMM_TARGET, self.on_comm_open)
        self.shell.events.register("pre_run_cell", self._pre_run_cell)
        self.shell.events.register("post_run_cell", self._post_run_cell)
        self.started = True
        # A front end with the extension answers with a snapshot request; one
        # without it closes the comm, and nothing is tracked.
        comm = create_comm(target_name=COMM_TARGET, data={"lazycell": __version__, "type": "hello"})
        self._adopt(comm)
        return True

    def stop(self) -> None:
        """Close every comm, stop tracking and the heartbeat, unregister the target."""
        if not self.started:
            return
        self.started = False
        for comm in list(self.comms):
            try:
                comm.close()
            except Exception:  # a closed kernel socket; nothing left to tell
                pass
        self.comms.clear()
        self._stop_tracking()
        from comm import get_comm_manager

        get_comm_manager().unregister_target(COMM_TARGET, self.on_comm_open)
        for name, hook in (
            ("pre_run_cell", self._pre_run_cell),
            ("post_run_cell", self._post_run_cell),
        ):
            if hook in self.shell.events.callbacks[name]:
                self.shell.events.unregister(name, hook)

    # -- comms
    def on_comm_open(self, comm, message: dict) -> None:
        """The comm target: a front end opened a ``lazycell`` comm."""
        self._adopt(comm)
        self._on_message(comm, message)

    def _adopt(self, comm) -> None:
        comm.on_msg(lambda message: self._on_message(comm, message))
        comm.on_close(lambda _message: self._drop(comm))
        self.comms.append(comm)
        self._start_tracking()

    def _drop(self, comm) -> None:
        if comm in self.comms:
            self.comms.remove(comm)
        if not self.comms:
            self._stop_tracking()

    def _on_message(self, comm, message: dict) -> None:
        data = (message.get("content") or {}).get("data") or {}
        request = data.get("request")
        if request is None:
            return
        if request == "snapshot":
            with self._state_lock:  # not lost to a state being built on another thread
                self._stream_sent = (-1, 0.0)  # this page has no task stream yet
            self.send_state()
            self.send_history()
        elif request == "history":
            self.send_history()
        elif request in ("scale", "adapt"):
            self._resize_cluster(request, data)
        else:
            self._send(
                {
                    "type": "error",
                    "message": f"unknown request {request!r}; the kernel answers "
                    "'snapshot', 'history', 'scale' and 'adapt' (are the kernel's lazycell "
                    "and the JupyterLab extension the same version?)",
                }
            )

    def _resize_cluster(self, request: str, data: dict) -> None:
        """The panel's scale / adapt controls, on the open cluster; an error message if none."""
        try:
            client = _open_cluster_client()
            if client is None:
                raise ValueError(
                    "no cluster is open in this kernel: lc.Client(n_workers=2) starts one"
                )
            target = getattr(client, "cluster", None)  # lazycell: the LocalCluster scales
            target = target if hasattr(target, "scale") else client  # dask: the client does
            if request == "scale":
                target.scale(_count(data.get("workers"), "workers"))
            else:
                minimum = _count(data.get("minimum", 0), "minimum")
                maximum = _count(data.get("maximum"), "maximum")
                if maximum < minimum:
                    raise ValueError(f"maximum {maximum} is below minimum {minimum}")
                target.adapt(minimum=minimum, maximum=maximum)
        except Exception as exc:  # said in the panel; the kernel carries on
            self._send({"type": "error", "message": f"{request}: {exc}"})
        self._cluster_cache = (0.0, None)
        self.send_state()

    def _send(self, data: dict) -> None:
        self._drop_closed(self._send_on_newest(data))

    def _send_on_newest(self, data: dict) -> list:
        """Send ``data`` on the newest comm that takes it; the comms found closed."""
        data["lazycell"] = __version__
        closed = []
        with self._send_lock:
            for comm in reversed(list(self.comms)):
                try:
                    comm.send(data)
                    break
                except Exception:  # closed under us: try the next one
                    closed.append(comm)
        return closed

    def _drop_closed(self, closed: list) -> None:
        for comm in closed:  # outside the locks: dropping the last one joins the heartbeat
            self._drop(comm)

    def send_state(self) -> None:
        """Send the latest compute, the workers and the resources now.

        Built and sent under ``_state_lock``, one at a time: a state built
        earlier on another thread (asking a cluster takes a round trip) never
        goes out after a later one, whose front end would then keep the stale
        compute and task stream (a finished compute's stream is sent once).
        """
        with self._state_lock:
            self._sent_at = time.monotonic()
            closed = self._send_on_newest(self.state_message())
        self._drop_closed(closed)

    def send_history(self) -> None:
        """Send the whole history (a page that connects or reloads asks for it)."""
        self._send({"type": "history", "computes": list(self.history), "replace": True})

    # -- tracking
    def _start_tracking(self) -> None:
        if self._heartbeat is not None:
            return
        self.sampler.sample()  # the CPU baseline
        self.tracker.start()
        self._stop_heartbeat.clear()
        self._heartbeat = threading.Thread(
            target=self._run_heartbeat, name="lazycell-lab", daemon=True
        )
        self._heartbeat.start()

    def _stop_tracking(self) -> None:
        self.tracker.stop()
        self._stop_heartbeat.set()
        thread, self._heartbeat = self._heartbeat, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run_heartbeat(self) -> None:
        while not self._stop_heartbeat.wait(self.idle_interval):
            try:
                latest = self.tracker.latest
                quiet_for = time.monotonic() - self._sent_at
                if latest is None or latest.finished or quiet_for > 4 * self.idle_interval:
                    self.sampler.sample()
                    self.send_state()
            except Exception:  # a panel must never take the kernel down with it
                pass

    def _pre_run_cell(self, info=None) -> None:
        self._cell_running = True
        self._cell_id = getattr(info, "cell_id", None)

    def _post_run_cell(self, _result=None) -> None:
        self._cell_running = False
        self._cell_id = None

    def _cell_now(self) -> CellOfCompute:
        if not self._cell_running:
            return NO_CELL
        return CellOfCompute(running_cell_number(self.shell), self._cell_id)

    def _on_change(self, state: ComputeState) -> None:
        # On the delivering thread (or the computing thread for the final batch).
        try:
            if state.compute_id not in self.cells:
                self.cells[state.compute_id] = self._cell_now()
            if state.finished:
                self._compute_ended(state)
                return
            self.sampler.sample_if_due()
            if time.monotonic() - self._sent_at >= self.interval:
                self.send_state()
        except Exception:  # never let the panel fail a compute
            pass

    def _compute_ended(self, state: ComputeState) -> None:
        if state.compute_id in self._recorded:
            return
        self._recorded.add(state.compute_id)
        with self.tracker.lock:
            entry = history_entry(state, self.cells.get(state.compute_id, NO_CELL))
        self.history.append(entry)
        self.sampler.sample()
        self.send_state()
        self._send({"type": "history", "computes": [entry], "replace": False})
        # Only the latest compute is shown: let the older ones go.
        for compute_id in list(self.tracker.states)[:-1]:
            self.tracker.forget(compute_id)
            self.cells.pop(compute_id, None)
            self._processes.pop(compute_id, None)
        if len(self._recorded) > 2 * MAX_HISTORY:
            self._recorded = {entry["id"] for entry in self.history}

    # -- the state message
    def state_message(self) -> dict:
        """The latest compute (or None), the workers, the cluster, the recent resources."""
        with self.tracker.lock:
            states = self.tracker.states
            state = next(reversed(states.values()), None) if states else None
            compute = (
                compute_message(state, self.cells.get(state.compute_id, NO_CELL))
                if state is not None
                else None
            )
            stream = self._task_stream_due(state)
            running_locally = (
                state is not None
                and not state.finished
                and state.scheduler not in ("distributed", "dask")
            )
            prefer_dask = state is not None and state.scheduler == "dask"
        # Outside the tracker's lock: asking a cluster is a round trip, and the
        # delivering thread needs the lock to fold the next batch meanwhile.
        workers, cluster = None, None
        if not running_locally:
            workers, cluster = self._cluster(prefer_dask)
        if workers is None:
            with self.tracker.lock:
                processes = (
                    self._local_processes(state) if state is not None else {"kernel": os.getpid()}
                )
                workers = local_workers(state, processes, self.sampler.latest, total_memory())
        return {
            "type": "state",
            "scheduler": self._default_scheduler(),
            "compute": compute,
            "workers": workers,
            "cluster": cluster,
            "stream": stream,
            "resources": resource_points(list(self.sampler.samples)),
            "version": __version__,
        }

    def _task_stream_due(self, state: ComputeState | None) -> dict | None:
        """The task stream when due: every TASK_STREAM_SECONDS, at the end, once per request."""
        if state is None:
            return None
        compute_id, sent_at = self._stream_sent
        now = time.monotonic()
        if compute_id == state.compute_id:
            if sent_at == float("inf"):
                return None  # the finished compute's stream went out already
            if not state.finished and now - sent_at < TASK_STREAM_SECONDS:
                return None
        self._stream_sent = (state.compute_id, float("inf") if state.finished else now)
        return task_stream_message(state)

    def _local_processes(self, state: ComputeState) -> dict[str, int]:
        processes = self._processes.get(state.compute_id)
        if processes is None:
            processes = self._processes[state.compute_id] = worker_processes(state)
        return processes

    def _cluster(self, prefer_dask: bool) -> tuple[list | None, dict | None]:
        """The open cluster's workers and ``{kind, dashboard}``; (None, None) without one."""
        fetched_at, cached = self._cluster_cache
        if time.monotonic() - fetched_at < CLUSTER_INFO_SECONDS:
            return (cached["workers"], cached["cluster"]) if cached else (None, None)
        found = None
        for kind in ("dask", "distributed") if prefer_dask else ("distributed", "dask"):
            found = _cluster_of_kind(kind)
            if found is not None:
                break
        self._cluster_cache = (time.monotonic(), found)
        return (found["workers"], found["cluster"]) if found else (None, None)

    @staticmethod
    def _default_scheduler() -> str:
        try:
            return str(config.get("scheduler"))
        except Exception:  # a bad setting: the magics say what is wrong with it
            return "?"


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def _open_cluster_client():
    """The open lazycell client, else the open dask-cluster connection, else None."""
    for module_name in ("lazycell.distributed.client", "lazycell.dask_cluster.client"):
        module = sys.modules.get(module_name)
        if module is None:
            continue
        try:
            return module.current_client()
        except (ValueError, RuntimeError):
            continue
    return None


def _cluster_of_kind(kind: str) -> dict | None:
    """A lazycell cluster ("distributed") or a dask one ("dask"), if this kernel has one open.

    Only looks: a cluster's modules are loaded already when one is open.
    """
    try:
        if kind == "distributed":
            module = sys.modules.get("lazycell.distributed.client")
            if module is None:
                return None
            client = module.current_client()
            info = client.scheduler_info()
            workers = cluster_workers(info)
            name = str(info.get("type", "LocalCluster"))
            scalable = hasattr(getattr(client, "cluster", None), "scale")
            adaptive = info.get("adaptive")
        else:
            module = sys.modules.get("lazycell.dask_cluster.client")
            if module is None:
                return None
            client = module.current_client()
            info = client.scheduler_info()
            workers = dask_cluster_workers(info, total_memory())
            name = "dask cluster"
            scalable = getattr(client, "cluster", None) is not None
            adaptive = None
    except Exception:  # none open, it closed meanwhile, or it failed: the panel shows none
        return None
    adaptive = (
        {"minimum": adaptive.get("minimum"), "maximum": adaptive.get("maximum")}
        if isinstance(adaptive, dict)
        else None
    )
    cluster = {
        "kind": name,
        "dashboard": client.dashboard_link,
        "scalable": scalable,
        "adaptive": adaptive,
    }
    return {"workers": workers, "cluster": cluster}
