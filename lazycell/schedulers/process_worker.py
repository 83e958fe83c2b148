"""Main program of one worker process of the processes scheduler.

::

    kernel (processes.ProcessPool)                 this process
    ──────────────────────────────                 ────────────
    ("setup", sys_path, cwd)            ─────────► adopt the kernel's import path
    ("tasks", batch_id, [(key, spec, inputs)]) ──► run each task in order
                                        ◄───────── ("results", batch_id, done, [item, ...])
    ("stop",)                           ─────────► exit

Each result item is ``(key, ok, payload, start, stop)``; ``payload`` is the
result, or for a failure a :class:`lazycell.events.Failure`. Results of a
batch are sent as they accumulate, at least every 50 ms, so the kernel's
progress moves during long batches.

Started as ``python -m lazycell.schedulers.process_worker FD`` (not through
``multiprocessing``), so the user's ``__main__`` is never re-imported and no
``if __name__ == "__main__"`` guard is needed. The worker ignores SIGINT — the
kernel decides what an interrupt stops — and exits by itself when its parent
goes away.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from lazycell.events.failure import Failure

FLUSH_INTERVAL = 0.05


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _send_results(conn: Connection, dumps, batch_id, done: bool, items: list) -> None:
    try:
        conn.send_bytes(dumps(("results", batch_id, done, items)))
        return
    except Exception:
        pass
    # Something in the batch does not pickle: send item by item, turning the
    # offending results into failures that say what could not be pickled.
    safe = []
    for key, ok, payload, start, stop in items:
        try:
            dumps(payload)
            safe.append((key, ok, payload, start, stop))
        except Exception as exc:
            message = (
                f"the result of type {type(payload).__module__}.{type(payload).__qualname__} "
                f"cannot be pickled to send it back from the worker process ({exc}); "
                "return picklable data, or use the threads scheduler"
            )
            safe.append((key, False, Failure.serialization(message), start, stop))
    conn.send_bytes(dumps(("results", batch_id, done, safe)))


def serve(conn: Connection) -> None:
    import cloudpickle

    from lazycell.graph.spec import run_task

    dumps = cloudpickle.dumps
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        except Exception as exc:  # a batch that cannot be unpickled here
            conn.send_bytes(dumps(("broken", f"{type(exc).__name__}: {exc}")))
            continue
        kind = message[0]
        if kind == "tasks":
            _, batch_id, tasks = message
            items: list = []
            last_flush = time.perf_counter()
            for key, spec, inputs in tasks:
                start = time.perf_counter()
                try:
                    result = run_task(spec, inputs)
                    items.append((key, True, result, start, time.perf_counter()))
                except Exception as exc:
                    failure = Failure.from_exception(exc)
                    items.append((key, False, failure, start, time.perf_counter()))
                    break  # the kernel stops the compute at the first failure
                now = time.perf_counter()
                if now - last_flush > FLUSH_INTERVAL and len(items) < len(tasks):
                    _send_results(conn, dumps, batch_id, False, items)
                    items = []
                    last_flush = now
            _send_results(conn, dumps, batch_id, True, items)
        elif kind == "setup":
            _, sys_path, cwd = message
            sys.path[:] = [p for p in sys_path]
            try:
                os.chdir(cwd)
            except OSError:
                pass
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
