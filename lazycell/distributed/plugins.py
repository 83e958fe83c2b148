"""``WorkerPlugin`` and ``get_worker``: code that runs on every worker of a cluster.

A plugin is pickled in the kernel and sent to each worker: ``setup(worker)``
runs there on every running worker when it is registered and on every worker
that starts later (after a crash, ``scale``, ``adapt`` or ``restart``) before
its first task; ``teardown(worker)`` runs when the worker stops (cluster
closed, worker retired or restarted) or the plugin is unregistered.
"""

from __future__ import annotations

import threading

worker_of_thread = threading.local()  # .worker: the Worker whose thread this is


def get_worker():
    """The cluster worker running the calling task (or ``client.run`` function, or plugin).

    >>> def query(sql):
    ...     return lc.get_worker().namespace["db"].execute(sql).fetchall()

    ``worker.name`` names it; ``worker.namespace`` is a dict for resources
    shared by the tasks of this worker (see :class:`WorkerPlugin`).
    """
    worker = getattr(worker_of_thread, "worker", None)
    if worker is None:
        raise ValueError(
            "get_worker() works only inside a task, a client.run function or a plugin "
            "running on a lazycell cluster worker"
        )
    return worker


class WorkerPlugin:
    """Base class for per-worker setup and teardown; override either method.

    >>> class Database(lc.WorkerPlugin):
    ...     name = "database"
    ...     def setup(self, worker):
    ...         worker.namespace["db"] = sqlite3.connect("data.db")
    ...     def teardown(self, worker):
    ...         worker.namespace.pop("db").close()
    >>> client.register_plugin(Database())
    {'worker-0': 'OK', 'worker-1': 'OK'}
    >>> def count_rows(table):                        # a task using the connection
    ...     db = lc.get_worker().namespace["db"]
    ...     return db.execute(f"select count(*) from {table}").fetchone()[0]

    ``worker.name`` names the worker, ``worker.namespace`` is a dict shared
    by the tasks of that worker. A plugin registered again under the same
    ``name`` replaces the old one (whose ``teardown`` runs first). Plugins
    run on the worker's control thread, in order with its tasks' arrival.
    """

    name: str | None = None

    def setup(self, worker) -> None:
        """Runs once on each worker, before it runs any task after registration."""

    def teardown(self, worker) -> None:
        """Runs once on each worker when it stops or the plugin is unregistered."""
