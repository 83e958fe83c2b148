"""The live notebook panel: progress, worker memory, resources and task stream.

::

    delivering thread (every 0.2-0.3 s while a compute runs, events or not:
    a pool thread between tasks, else the bus's dispatcher; see events.py)
    ────────────────────────────────────────────────────────────────────────
    raw batches ──► ComputeTracker folds them into ComputeState
               ──► _on_change: sample resources if due (every resource_interval),
                   render the latest state if due (every ``interval``; the
                   charts every ``chart_interval``, from ``chart_interval``
                   into the compute)
    computing thread, compute's end:
    final batch ──► render the bars at once, so the finished totals reach the
                    front end before the compute returns
    leaving ``with``: the output becomes a static summary (static_summary.py:
    what a saved notebook shows without its kernel) and the widgets close; or,
    with ``keep_live``, a last sample and render, charts included, before the
    cell's reply

Why no thread of its own: every thread that wakes during a compute takes the
GIL from busy worker threads. Riding on the bus's deliveries, the panel adds
none.

- ``ComputePanel``: the context manager. ``widget`` is the ipywidgets tree;
  ``tracker`` the folded state; ``sampler`` the resource samples.
- Every view (``ProgressView``, ``MemoryView``, the two ``LiveChart``s) is a
  function of that state: ``show(...)`` sets traits and nothing else. The
  charts are markup (``svg_charts``): no plotly, nothing for the browser to
  load before it paints them.
- ``render_lock``: one render at a time; renders read the state under the
  tracker's lock, so they never see half a batch.

Why throttled: each trait change is a comm message to the browser. At most a
few renders per second keep a 10,000-task compute's overhead small, and a
render sends only the traits that changed (ipywidgets drops equal values).
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets

from lazycell import config
from lazycell.diagnostics import advisor
from lazycell.diagnostics.compute_state import ComputeState, ComputeTracker
from lazycell.diagnostics.figures import thinned_bars
from lazycell.diagnostics.resources import DEFAULT_INTERVAL, ResourceSampler, total_memory
from lazycell.diagnostics.workers import WorkerMemory, worker_memory_from_info, worker_processes
from lazycell.widgets.charts import LiveChart
from lazycell.widgets.memory_view import MemoryView
from lazycell.widgets.progress_view import ProgressView
from lazycell.widgets.static_summary import static_bundle
from lazycell.widgets.svg_charts import note, resources_chart, task_stream_chart

WAITING_TEXT = "lazycell: waiting for a compute…"
# The live task stream draws at most this many bars; the report draws them all.
LIVE_TASK_STREAM_BARS = 500
CHARTS_LATER = "Charts appear a moment into the compute."


class ComputePanel:
    """Show a live panel for every compute inside the ``with`` block (see module docstring).

    >>> with ComputePanel():          # in a notebook cell
    ...     total.compute()

    ``interval``: seconds between renders; ``chart_interval``: between chart
    redraws; ``resource_interval``: between resource samples; ``display``:
    whether entering shows the panel in the cell's output (off for benchmarks).
    """

    def __init__(
        self,
        interval: float = 0.25,
        chart_interval: float = 2.0,
        resource_interval: float = DEFAULT_INTERVAL,
        display: bool = True,
    ):
        self.interval = interval
        self.chart_interval = chart_interval
        self.display = display
        # Keeping more bars than the chart draws would only cost folding time.
        self.tracker = ComputeTracker(on_change=self._on_change, stream_limit=LIVE_TASK_STREAM_BARS)
        self.sampler = ResourceSampler(resource_interval)
        self.progress = ProgressView()
        self.memory = MemoryView()
        self.resources = LiveChart("lazycell-resources-chart", note("Resources", CHARTS_LATER))
        self.task_stream = LiveChart(
            "lazycell-task-stream-chart", note("Task stream", CHARTS_LATER)
        )
        self.widget = self._layout()
        self.render_lock = threading.Lock()
        self._rendered_at = 0.0
        self._charts_drawn_at = 0.0
        self._charts_compute_id: int | None = None
        self._processes: dict[int, dict[str, int]] = {}  # compute id -> {worker: pid}
        self._display_handle = None
        self.hints: dict[int, str] = {}  # compute id -> the advisor's hint line

    def _layout(self) -> widgets.Widget:
        self.progress.timing.value = WAITING_TEXT
        self.hint = widgets.HTML(layout=widgets.Layout(display="none"))
        self.hint.add_class("lazycell-hint")
        charts = widgets.Tab(
            children=[self.resources.widget, self.task_stream.widget],
            titles=("Resources", "Task stream"),
        )
        memory = widgets.VBox([widgets.HTML("<b>Worker memory</b>"), self.memory.widget])
        panel = widgets.VBox([self.progress.widget, self.hint, memory, charts])
        panel.add_class("lazycell-panel")
        return panel

    # -- rendering: a function of the tracker's latest state
    def render(self, charts: bool | None = None) -> None:
        """Show the latest state; ``charts``: True / False forces, None throttles them."""
        with self.render_lock:
            latest = self.tracker.latest
            # Asked before taking the tracker's lock: scheduler_info() is a round trip
            # to the cluster, and the delivering thread needs the lock meanwhile to fold.
            cluster_memory = (
                cluster_worker_memory()
                if latest is not None and latest.scheduler == "distributed"
                else None
            )
            with self.tracker.lock:
                self._render_locked(charts, cluster_memory)

    def _render_locked(
        self, charts: bool | None, cluster_memory: dict[str, WorkerMemory] | None
    ) -> None:
        states = self.tracker.states
        state = next(reversed(states.values()), None) if states else None
        if state is None:
            return
        self.progress.show(state)
        self._show_memory(state, cluster_memory)
        now = time.monotonic()
        if state.compute_id != self._charts_compute_id:
            # A compute's first live charts come chart_interval after it started
            # (a shorter one gets them at its end): a chart of its first fraction
            # of a second would show little, and drawing one costs milliseconds.
            self._charts_compute_id = state.compute_id
            self._charts_drawn_at = now - state.elapsed()
        if charts or (charts is None and now - self._charts_drawn_at >= self.chart_interval):
            self._charts_drawn_at = now
            self._show_charts(state)

    def _show_memory(
        self, state: ComputeState, cluster_memory: dict[str, WorkerMemory] | None
    ) -> None:
        if state.scheduler == "distributed":  # the cluster's workers, as it accounts for them
            # None: a compute that started since render asked; ask now
            self.memory.show_cluster(
                cluster_memory if cluster_memory is not None else cluster_worker_memory()
            )
            return
        processes = self._processes.get(state.compute_id)
        if processes is None:
            processes = self._processes[state.compute_id] = worker_processes(state)
        latest = self.sampler.latest
        self.memory.show(processes, latest.rss_by_pid if latest else {}, total_memory())

    def _show_charts(self, state: ComputeState) -> None:
        # Both charts span the compute, 0 to its elapsed time; the samples just
        # outside it let the lines reach the edges.
        interval = self.sampler.interval
        duration = state.elapsed()
        start, end = state.started_at - interval, state.started_at + duration + interval
        samples = [s for s in self.sampler.samples if start <= s.time <= end]
        self.resources.show(resources_chart(samples, state.started_at, duration, interval))
        bars = thinned_bars(state.task_stream, LIVE_TASK_STREAM_BARS)
        self.task_stream.show(
            task_stream_chart(bars, state.groups, duration, running=not state.finished)
        )

    def _show_hint(self, state: ComputeState) -> None:
        # The advisor listens before the panel (it subscribed first), so it has
        # the compute's final batch by now.
        hint = advisor.hint_for(state)
        if hint:
            self.hints[state.compute_id] = hint
            self.hint.value = f"hint: {html.escape(hint)}"
            self.hint.layout.display = None
        else:
            self.hint.layout.display = "none"

    def summary(self) -> str:
        """The latest compute's one-line summary (``WAITING_TEXT`` before the first)."""
        state = self.tracker.latest
        return state.summary() if state is not None else WAITING_TEXT

    # -- threads
    def _on_change(self, state: ComputeState) -> None:
        # Called with the tracker's lock released, on the thread that delivered the batch.
        if state.finished:  # on the computing thread: the bars are final before it returns
            self._show_hint(state)
            self.render(charts=False)
            return
        self.sampler.sample_if_due()
        now = time.monotonic()
        if now - self._rendered_at >= self.interval:
            self._rendered_at = now
            self.render()

    # -- context manager
    # Leave the live widget in the output when the block ends (True), or replace it
    # with a static summary (False, see static_summary.py); None: the setting
    # ``panel.keep_live`` (``%%compute --keep-live`` sets it for one cell).
    keep_live: bool | None = None

    def __enter__(self) -> ComputePanel:
        if self.display:
            self._show_in_output()
        self.sampler.sample()  # the baseline; later samples ride on the bus's wake-ups
        advisor.ADVISOR.acquire()  # measures what the panel shows, for its hint
        self.tracker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.tracker.stop()
        advisor.ADVISOR.release()
        if self._display_handle is not None and not self._keeps_live():
            # What a saved notebook shows without its kernel; the widgets, no
            # longer shown, are closed (a front end saving widget state drops them).
            data, metadata = self.static_bundle()
            self._display_handle.update(data, metadata=metadata, raw=True)
            close_widget_tree(self.widget, *self.progress.spare_rows(), *self.memory.spare_rows())
            return
        self.sampler.sample()
        self.render(charts=True)
        if self._display_handle is not None:
            self._display_handle.update(self._mime_bundle(), raw=True)

    def _keeps_live(self) -> bool:
        if self.keep_live is not None:
            return self.keep_live
        return bool(config.get("panel.keep_live"))

    def static_bundle(self) -> tuple[dict, dict]:
        """``(data, metadata)`` of the static summary of every compute the panel saw."""
        with self.tracker.lock:
            states = list(self.tracker.states.values())
        return static_bundle(states, self.hints)

    def _show_in_output(self) -> None:
        from IPython.display import display

        self._display_handle = display(self._mime_bundle(), raw=True, display_id=True)

    def _mime_bundle(self) -> dict:
        # The text is what front ends without widgets (and saved text outputs) show.
        return {
            "text/plain": self.summary(),
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.widget.model_id,
            },
        }


def close_widget_tree(*roots: widgets.Widget) -> None:
    """Close ``roots`` and every widget they hold (children, layouts, styles), once each."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        for name in widget.keys:
            value = getattr(widget, name, None)
            if isinstance(value, widgets.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, widgets.Widget))
        widget.close()


def cluster_worker_memory() -> dict[str, WorkerMemory]:
    """``{worker name: WorkerMemory}`` of the current client's cluster; {} without one."""
    # Imported here: the cluster's modules load only once a compute ran on it.
    from lazycell.distributed.client import current_client

    try:
        info = current_client().scheduler_info()
    except (ValueError, RuntimeError):  # no open client, or it closed meanwhile
        return {}
    return worker_memory_from_info(info)
