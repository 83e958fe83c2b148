"""The client in a notebook: a live panel of the cluster's workers (a table elsewhere).

::

    lazycell Client · LocalCluster · 2 workers · 2 threads · Dashboard ↗
    5 results held · 2 running · 6 queued · memory 197 MB / 2.0 GB
    worker-0   [####::::    ]  3 held · 1 running · 3 queued · 1 thread · 98 MB / 1.0 GB · …
    worker-1   [###:::      ]  2 held · 1 running · 3 queued · 1 thread · 99 MB / 1.0 GB · …

"running" never exceeds the threads: a task sent to a worker whose threads
are all busy is queued there (``diagnostics.workers.task_slots``).

- :func:`client_mimebundle`: what ``Client._repr_mimebundle_`` returns: the
  live widget where widgets can be shown (an IPython kernel), else
  ``text/plain`` and a static ``text/html`` table; a closed client says so.
- :class:`ClusterView`: the widget, a function of ``client.scheduler_info()``
  (``show(info)``); ``start()`` refreshes it every ``interval`` seconds on a
  daemon thread, which ends when the client or the widget is closed.

Why one view per client, reused: each display of ``client`` would otherwise
start another refresh thread; displaying the same widget twice shows two
views of one model, both live. The view holds its client weakly, so keeping
it in ``_views`` (keyed weakly by the client) keeps no client alive.
"""

from __future__ import annotations

import html
import threading
import weakref

import ipywidgets as widgets

from lazycell.diagnostics.compute_state import plural
from lazycell.diagnostics.workers import cluster_task_slots, task_slots, worker_memory_from_info
from lazycell.widgets.front_end import can_show_widgets, current_shell
from lazycell.widgets.memory_view import ClusterMemoryRow, format_bytes, memory_text

REFRESH_SECONDS = 1.0

_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> ClusterView
_views_lock = threading.Lock()


def client_mimebundle(client) -> dict:
    """The client's display: a live widget in a kernel, else text and an HTML table."""
    if client.closed:
        return client_mimebundle_closed()
    try:
        info = client.scheduler_info()
    except RuntimeError:  # closed meanwhile
        return client_mimebundle_closed()
    if can_show_widgets(current_shell()):
        view = _live_view(client)
        view.show(info)
        bundle = dict(view.widget._repr_mimebundle_())
        bundle["text/plain"] = summary_text(info, client.dashboard_link)
        return bundle
    return {
        "text/plain": summary_text(info, client.dashboard_link),
        "text/html": static_html(info, client.dashboard_link),
    }


def client_mimebundle_closed() -> dict:
    """What a closed client shows: that it is closed."""
    text = "<lazycell Client: closed>"
    return {"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}


def _live_view(client) -> ClusterView:
    with _views_lock:
        view = _views.get(client)
        if view is None or view.stopped:
            view = _views[client] = ClusterView(client)
            view.start()
        return view


# -- text


def summary_text(info: dict, dashboard_link: str | None) -> str:
    """``"<lazycell Client: 2 workers, 2 threads, memory 197 MB / 2.0 GB, 5 results held,
    2 running, 6 queued>"``."""
    totals = info["totals"]
    limit = totals.get("memory_limit")
    memory = format_bytes(totals["memory"]) + (f" / {format_bytes(limit)}" if limit else "")
    slots = cluster_task_slots(info)
    text = (
        f"<lazycell Client: {plural(totals['workers'], 'worker')}, "
        f"{plural(totals['threads'], 'thread')}, memory {memory}, "
        f"{plural(totals['n_results'], 'result')} held, {slots.running:,} running, "
        f"{slots.queued:,} queued>"
    )
    if dashboard_link:
        text += f"\ndashboard: {dashboard_link}"
    return text


def _dashboard_anchor(dashboard_link: str | None) -> str:
    if not dashboard_link:
        return ""
    return (
        f'<a class="lazycell-dashboard-link" href="{html.escape(dashboard_link)}" '
        'target="_blank" rel="noopener noreferrer">Dashboard ↗</a>'
    )


def _title_html(info: dict, dashboard_link: str | None) -> str:
    totals = info["totals"]
    parts = [
        "<b>lazycell Client</b>",
        html.escape(str(info.get("type", "cluster"))),
        plural(totals["workers"], "worker"),
        plural(totals["threads"], "thread"),
    ]
    anchor = _dashboard_anchor(dashboard_link)
    return " · ".join(parts) + (f" · {anchor}" if anchor else "")


def _totals_text(info: dict) -> str:
    totals = info["totals"]
    limit = totals.get("memory_limit")
    memory = format_bytes(totals["memory"]) + (f" / {format_bytes(limit)}" if limit else "")
    slots = cluster_task_slots(info)
    text = f"{plural(totals['n_results'], 'result')} held · {slots.running:,} running"
    text += f" · {slots.queued:,} queued · memory {memory}"
    if totals.get("spilled_bytes"):
        text += f" · spilled {format_bytes(totals['spilled_bytes'])}"
    return text


def _tasks_text(worker: dict) -> str:
    slots = task_slots(worker["n_processing"], worker["threads"])
    text = f"{worker['n_results']:,} held · {slots.running:,} running"
    if slots.queued:
        text += f" · {slots.queued:,} queued"
    text += f" · {plural(worker['threads'], 'thread')}"
    return text + (" · paused" if worker.get("paused") else "")


def static_html(info: dict, dashboard_link: str | None) -> str:
    """A table of the workers (for front ends without widgets, and saved notebooks)."""
    memory = worker_memory_from_info(info)
    rows = ""
    for name, worker in info["workers"].items():
        slots = task_slots(worker["n_processing"], worker["threads"])
        rows += (
            "<tr>"
            f"<td>{html.escape(name)}</td>"
            f"<td>{worker['threads']}</td>"
            f"<td>{html.escape(memory_text(memory[name]))}</td>"
            f"<td>{worker['n_results']:,}</td>"
            f"<td>{slots.running:,}</td>"
            f"<td>{slots.queued:,}</td>"
            "</tr>"
        )
    return (
        '<div class="lazycell-cluster">'
        f"<p>{_title_html(info, dashboard_link)}<br>{html.escape(_totals_text(info))}</p>"
        "<table><thead><tr><th>worker</th><th>threads</th><th>memory</th>"
        "<th>results held</th><th>running</th><th>queued</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


# -- the live widget


class ClusterView:
    """The client's live panel (see the module docstring).

    >>> view = ClusterView(client)
    >>> view.show(client.scheduler_info())   # or view.start() to follow it
    """

    def __init__(self, client, interval: float = REFRESH_SECONDS):
        self._client = weakref.ref(client)
        self.interval = interval
        self.title = widgets.HTML()
        self.title.add_class("lazycell-cluster-title")
        self.totals = widgets.Label()
        self.totals.add_class("lazycell-cluster-totals")
        self.workers_box = widgets.VBox()
        self.rows: dict = {}  # worker name -> ClusterMemoryRow
        self.widget = widgets.VBox([self.title, self.totals, self.workers_box])
        self.widget.add_class("lazycell-cluster")
        self.stopped = False
        self._draw_lock = threading.Lock()  # the refresh thread and a new display both draw
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def client(self):
        """The client shown, or None once it is gone."""
        return self._client()

    def show(self, info: dict) -> None:
        """Draw ``info`` (``client.scheduler_info()``)."""
        with self._draw_lock:
            self._draw(info)

    def _draw(self, info: dict) -> None:
        client = self.client
        self.title.value = _title_html(info, client.dashboard_link if client else None)
        self.totals.value = _totals_text(info)
        workers = info["workers"]
        if list(workers) != list(self.rows):
            self.rows = {name: self.rows.get(name) or self._new_row(name) for name in workers}
            self.workers_box.children = [row.widget for row in self.rows.values()]
        memory = worker_memory_from_info(info)
        for name, worker in workers.items():
            self.rows[name].show(memory[name], extra=_tasks_text(worker))

    def _new_row(self, name: str):
        row = ClusterMemoryRow(name)
        row.widget.add_class("lazycell-cluster-worker")
        return row

    def show_closed(self) -> None:
        """Say the client is closed, and show no workers."""
        with self._draw_lock:
            self.title.value = "<b>lazycell Client</b> · closed"
            self.totals.value = "the client is closed"
            self.rows = {}
            self.workers_box.children = []

    def refresh(self) -> bool:
        """Redraw from the cluster; False once the client or the widget is closed."""
        if self.widget.comm is None:  # the widget was closed
            return False
        client = self.client
        if client is None or client.closed:
            self.show_closed()
            return False
        try:
            info = client.scheduler_info()
        except RuntimeError:  # closed meanwhile
            self.show_closed()
            return False
        self.show(info)
        return True

    def start(self) -> ClusterView:
        """Refresh every ``interval`` seconds on a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="lazycell-cluster-view", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                if not self.refresh():
                    break
        except Exception:  # a panel must never take the kernel down with it
            pass
        finally:
            self.stopped = True

    def stop(self) -> None:
        """Stop refreshing (the widget keeps what it shows)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.stopped = True
