"""Main program of one worker process of the processes scheduler, and its messages.

::

    kernel (processes.ProcessPool)                 this process
    ──────────────────────────────                 ────────────
                                        ◄───────── ("ready", pid)
    ("setup", sys_path, cwd)            ─────────► adopt the kernel's import path
    ("initialize", initializer)         ─────────► run it once (dask's initializer config)
                                        ◄───────── ("initialized", []), or [item] if it raised
    ("tasks", batch_id, [(spec, inputs)]) ───────► run each task in order
                                        ◄───────── ("results", batch_id, done, [item, ...])
                                        ◄───────── or ("broken", why): the batch did not unpickle
    ("stop",)                           ─────────► exit

Kernel to worker: one ``cloudpickle`` pickle per message. Worker to kernel
(:func:`write_message` / :func:`read_message`): the payloads' pickles one
after another, then the header above as a plain ``pickle`` of built-in types,
then the header's offset (8 bytes, little-endian). Each payload is pickled on
its own, so one that cannot be unpickled in the kernel fails only its own
task, and the header — which batch, which tasks — can always be read. That is
what lets the kernel free the batch's slot and name the task whatever the
payload holds.

Each header item is ``(index, start, stop, end, failure)``: the task's index
in its batch, its run time (``perf_counter``), where its payload's pickle
ends, and ``None`` for a result or, for a failed task,
``(traceback, type_name, message)`` of its :class:`lazycell.events.Failure`
(the payload is then the exception itself, or None when it does not pickle).
A batch stops at its first failed task. A result that cannot be pickled here
is sent as a failure that says so. Results are sent as they accumulate, at
least every 50 ms, so the kernel's progress moves during long batches.

Lifetimes: the kernel holds each result for as long as the graph needs it
(``core.GraphRun``); the worker holds none. A result is pickled as soon as
its task ends and dropped before the next task starts, and a task's inputs go
with it, so an object whose finaliser has an effect (partd's ``File`` deletes
its directory) dies here before the kernel can start any dependent — never
while dependents, here or in other workers, use what it owned.

Started as ``python -m lazycell.schedulers.process_worker FD`` (not through
``multiprocessing``), so the user's ``__main__`` is never re-imported and no
``if __name__ == "__main__"`` guard is needed. The worker ignores SIGINT — the
kernel decides what an interrupt stops — and exits by itself when its parent
goes away.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

import cloudpickle

from lazycell.events.failure import Failure, type_name_of
from lazycell.graph.spec import run_task

FLUSH_INTERVAL = 0.05
PROTOCOL = pickle.HIGHEST_PROTOCOL
_OFFSET_BYTES = 8


def write_message(conn: Connection, header: tuple, payloads: io.BytesIO | None = None) -> None:
    """Send ``header`` after the payload pickles already in ``payloads`` (see the docstring)."""
    buffer = payloads if payloads is not None else io.BytesIO()
    header_at = buffer.tell()
    pickle.dump(header, buffer, protocol=PROTOCOL)
    buffer.write(header_at.to_bytes(_OFFSET_BYTES, "little"))
    conn.send_bytes(buffer.getbuffer())


def read_message(raw: bytes) -> tuple[tuple, memoryview]:
    """``(header, message)`` of a message from a worker; payload ``i`` is ``message[begin:end]``."""
    message = memoryview(raw)
    header_at = int.from_bytes(message[-_OFFSET_BYTES:], "little")
    return pickle.loads(message[header_at:-_OFFSET_BYTES]), message


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


class _PendingResults:
    """The results of a batch not sent yet, each already pickled on its own.

    A result is pickled as soon as its task ends, and the worker then drops it
    (see :func:`_run_batch`), so what waits here for the next flush is bytes,
    never the objects themselves.
    """

    def __init__(self) -> None:
        self.payloads = io.BytesIO()
        self.pickler = cloudpickle.Pickler(self.payloads, protocol=PROTOCOL)
        self.header: list = []

    def add(self, index: int, ok: bool, payload, start: float, stop: float) -> None:
        """Pickle a task's result (``ok``) or :class:`Failure` behind the ones before it."""
        payloads = self.payloads
        failure = None if ok else (payload.traceback, payload.type_name, payload.message)
        begin = payloads.tell()
        try:
            self.pickler.dump(payload if ok else payload.exception)
        except Exception as exc:
            payloads.seek(begin)
            payloads.truncate()
            # A pickler's state after a failed dump is unknown: take a fresh one.
            self.pickler = cloudpickle.Pickler(payloads, protocol=PROTOCOL)
            self.pickler.dump(None)
            if ok:
                failure = _unpicklable_result(payload, exc)
            # A failure whose exception does not pickle goes without it: its
            # type name, message and traceback still say what it was.
        self.pickler.clear_memo()  # each payload unpickles on its own
        self.header.append((index, start, stop, payloads.tell(), failure))

    def send(self, conn: Connection, batch_id: int, done: bool) -> None:
        """Send the pending results as one ``("results", ...)`` message."""
        write_message(conn, ("results", batch_id, done, self.header), self.payloads)


def _unpicklable_result(result, exc: Exception) -> tuple[str, str, str]:
    kind = type_name_of(type(result))
    failure = Failure.serialization(
        f"the result of type {kind} cannot be pickled to send it back from the worker "
        f"process ({exc}); return picklable data, or use the threads scheduler"
    )
    return failure.traceback, failure.type_name, failure.message


def _run_batch(conn: Connection, batch_id: int, tasks: list) -> None:
    """Run ``tasks`` in order and send their results; consumes the list.

    Nothing a task returns or takes outlives it here: its result is pickled
    and dropped before the next task starts (so before the kernel, which holds
    its own copy for as long as the graph says, can start a dependent), and
    its inputs are dropped with it. An object whose finaliser has an effect —
    partd's ``File`` deletes its directory — therefore dies in the worker
    right after its task, not while dependents use what it owned.
    """
    pending = _PendingResults()
    last_flush = time.perf_counter()
    n_tasks = len(tasks)
    for index in range(n_tasks):
        spec, inputs = tasks[index]
        tasks[index] = None
        start = time.perf_counter()
        try:
            result = run_task(spec, inputs)
        except Exception as exc:
            pending.add(index, False, Failure.from_exception(exc), start, time.perf_counter())
            break  # the kernel stops the compute at the first failure
        pending.add(index, True, result, start, time.perf_counter())
        del result, spec, inputs
        now = time.perf_counter()
        if now - last_flush > FLUSH_INTERVAL and index + 1 < n_tasks:
            pending.send(conn, batch_id, False)
            pending = _PendingResults()
            last_flush = now
    pending.send(conn, batch_id, True)


def _initialize(conn: Connection, initializer) -> None:
    """Run ``initializer()`` and reply; an exception travels as a failed task's would."""
    try:
        initializer()
    except Exception as exc:
        pending = _PendingResults()
        pending.add(0, False, Failure.from_exception(exc), 0.0, 0.0)
        write_message(conn, ("initialized", pending.header), pending.payloads)
    else:
        write_message(conn, ("initialized", []))


def serve(conn: Connection) -> None:
    write_message(conn, ("ready", os.getpid()))
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        except Exception as exc:  # a batch that cannot be unpickled here
            write_message(conn, ("broken", f"{type(exc).__name__}: {exc}"))
            continue
        kind = message[0]
        if kind == "tasks":
            _, batch_id, tasks = message
            del message  # _run_batch drops each task's inputs once it has run
            _run_batch(conn, batch_id, tasks)
            del tasks
        elif kind == "setup":
            _, sys_path, cwd = message
            sys.path[:] = [p for p in sys_path]
            try:
                os.chdir(cwd)
            except OSError:
                pass
        elif kind == "initialize":
            _initialize(conn, message[1])
        elif kind == "stop":
            return


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(sys.argv[1])
    parent_pid = int(sys.argv[2])
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    serve(Connection(fd))


if __name__ == "__main__":
    main()
