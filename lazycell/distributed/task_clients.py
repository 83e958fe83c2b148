"""The kernel's side of ``get_client()`` in tasks: the futures tasks hold, per worker.

::

    worker (a task's WorkerClient)        scheduler thread                 callbacks thread
    ──────────────────────────────        ────────────────                 ────────────────
    ("client-request", id, "submit", …) ► TaskClients.handle: the kernel's
                                           Client submits; one Future per
                                           key this worker holds (``held``)
    ("client-reply", id, True, None)   ◄── answered at once
                                           a held Future settles ────────► push(): "to-worker"
    ("key-settled", key, status, …)    ◄── sent by the scheduler thread ◄─ command
    "release" / "cancel" / "retry" /  ──►  drop / cancel / retry the held Futures
    "resend" / "fire-and-forget"
    the worker dies                   ──►  worker_gone: its held Futures are dropped

Everything here runs on the scheduler thread except ``push``, which only puts
a command on the scheduler's queue. The kernel's Client keeps one reference
count per key for all its holders, the user's futures and the tasks' alike.
"""

from __future__ import annotations

from lazycell.distributed.scheduler import transitions

VALUE_REQUESTS = ("variable-set", "queue-put")  # their second argument is a value


class FutureKey:
    """A Future on its way between a task and the scheduler (a Variable's or Queue's
    value): its key. Each side turns it into a future of its own for that key."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __reduce__(self):
        return (FutureKey, (self.key,))


class TaskClients:
    """The futures held by the tasks of each worker, through the kernel's ``client``."""

    def __init__(self, client):
        self.client = client
        self.held: dict[str, dict] = {}  # worker name -> {key: the kernel's Future}

    def handle(self, worker_name: str, kind: str, args: tuple):
        """Answer one request of a task's client (the value, or raise)."""
        held = self.held.setdefault(worker_name, {})
        if kind == "submit":
            graph, keys, new_keys, restrictions, options = args
            if options:  # one TaskOptions for the whole submit / map, checked as the kernel's
                opts = next(iter(options.values()))
                self.client._task_options(
                    opts.retries,
                    opts.priority,
                    opts.resources,
                    opts.loose_restrictions,
                    restrictions,
                )
            futures = self.client._submit_graph(graph, keys, None, restrictions, options)
            new_keys = set(new_keys)  # a map's keys: looked up once per key
            for key, future in zip(keys, futures):
                if key in new_keys or key not in held:
                    held[key] = future
                    self.watch(worker_name, future)
            return None
        if kind == "release":
            for key in args[0]:
                held.pop(key, None)
            return None
        if kind == "cancel":
            keys = [key for key in args[0] if held.pop(key, None) is not None]
            self.client._cancel_keys(keys)
            return None
        if kind == "retry":
            transitions.retry(self.client.scheduler, [k for k in args[0] if k in held])
            for key in args[0]:
                if key in held:
                    self.watch(worker_name, held[key])
            return None
        if kind == "resend":  # the worker found a result gone: tell it when it is back
            for key in args[0]:
                if key in held:
                    self.watch(worker_name, held[key])
            return None
        if kind == "fire-and-forget":
            for key in args[0]:
                if key in held:
                    self.client._keep_until_done(held[key])
            return None
        raise ValueError(f"unknown request from a task's client: {kind!r}")

    def watch(self, worker_name: str, future) -> None:
        """Tell the worker when ``future`` settles."""
        scheduler = self.client.scheduler

        def push(future):
            status = future._status
            message = (
                "key-settled",
                future.key,
                status.status,
                status.address,
                status.worker_name,
                status.error,
                status.erred_key,
                status.erred_spec,
            )
            scheduler.submit_command("to-worker", worker_name, message)

        future.add_done_callback(push)

    def import_value(self, worker_name: str, kind: str, args: tuple) -> tuple:
        """A task put a future in a Variable or Queue: the kernel holds it there."""
        if kind not in VALUE_REQUESTS or type(args[1]) is not FutureKey:
            return args
        key = args[1].key
        future = self.held.get(worker_name, {}).get(key)
        if future is not None:  # another future of the key: held as long as the value is
            (future,) = self.client._submit_graph({}, [key])
            return (args[0], future, *args[2:])
        raise ValueError(
            f"the future {key!r} is not held by this task's client; pass a future "
            "the task made or received"
        )

    def export_value(self, worker_name: str, value):
        """An answer to a task holding kernel futures: their keys, each held for the
        worker until its task's client releases it."""
        if isinstance(value, list):
            return [self.export_value(worker_name, item) for item in value]
        if type(value) is not self.client.future_type:
            return value
        held = self.held.setdefault(worker_name, {})
        if value.key not in held:
            held[value.key] = value
            self.watch(worker_name, value)
        return FutureKey(value.key)

    def worker_gone(self, worker_name: str) -> None:
        """A worker died or stopped: the futures its tasks held are dropped."""
        self.held.pop(worker_name, None)
