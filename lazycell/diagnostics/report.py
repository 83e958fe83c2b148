"""``lc.performance_report("report.html")``: what a computation did, in one offline file.

::

    with performance_report(path):      ComputeTracker  (folds events, per compute)
        ...computes...                  ResourceSampler (own thread, CPU % + RSS)
    on exit ──► report_html(...) ──► path: plotly.js embedded once, then per compute
                                          a summary, the scheduler and its settings,
                                          time and count per function, the task
                                          stream, progress over time; the resource
                                          timeline of the whole block; and the data
                                          as JSON (``<script id="lazycell-data">``)

The file needs no network: plotly.js comes from the installed plotly package.
"""

from __future__ import annotations

import html
import json
import os
import platform
import time
from pathlib import Path

import plotly.io
import plotly.offline

from lazycell import config
from lazycell._version import __version__
from lazycell.diagnostics.compute_state import ComputeState, ComputeTracker, format_seconds
from lazycell.diagnostics.figures import progress_figure, resource_figure, task_stream_figure
from lazycell.diagnostics.resources import DEFAULT_INTERVAL, ResourceSampler, total_memory


class performance_report:  # noqa: N801 - reads as a function in ``with lc.performance_report(...)``
    """Write an HTML report of every compute inside the ``with`` block to ``filename``.

    >>> with lc.performance_report("report.html"):
    ...     total.compute(scheduler="threads")

    The file is written when the block ends, also when it ends with an error.
    ``interval`` is the resource sampling period in seconds.
    """

    def __init__(self, filename: str | os.PathLike = "lazycell-report.html", interval=None):
        self.filename = Path(filename)
        self.tracker = ComputeTracker()
        self.sampler = ResourceSampler(interval or DEFAULT_INTERVAL)

    def __enter__(self) -> performance_report:
        self.sampler.start()
        self.tracker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.tracker.stop()
        self.sampler.stop()
        states = list(self.tracker.states.values())
        origin = self.sampler.samples[0].time if self.sampler.samples else time.perf_counter()
        self.filename.write_text(report_html(states, self.sampler.samples, origin))


def report_html(states: list[ComputeState], samples: list, origin: float) -> str:
    """The whole report as one HTML document (see module docstring)."""
    sections = [_compute_section(i, state) for i, state in enumerate(states, 1)]
    if not sections:
        sections = ["<p>No computation ran inside the report's <code>with</code> block.</p>"]
    resources = _figure_html(resource_figure(samples, origin))
    data = json.dumps(report_data(states, samples, origin)).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lazycell performance report</title>
<style>{STYLE}</style>
<script>{plotly.offline.get_plotlyjs()}</script>
</head><body>
<h1>lazycell performance report</h1>
<p class="meta">{html.escape(_environment_line())}</p>
{"".join(sections)}
<h2>Resources during the block</h2>
{resources}
<script type="application/json" id="lazycell-data">{data}</script>
</body></html>
"""


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.meta { color: #666; } .erred { color: #d62728; }
"""


def _environment_line() -> str:
    return (
        f"lazycell {__version__} · Python {platform.python_version()} · "
        f"{os.cpu_count()} cores · {total_memory() / 1e9:.1f} GB memory · "
        f"written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )


def _compute_section(number: int, state: ComputeState) -> str:
    settings = {
        "scheduler": state.scheduler,
        "workers": state.n_workers,
        "tasks": state.n_tasks,
        "status": state.status,
        "wall time": format_seconds(state.elapsed()),
        "config scheduler": config.get("scheduler"),
        "config num_workers": config.get("num_workers"),
    }
    errors = "".join(f"<li class='erred'>{html.escape(e)}</li>" for e in state.errors[:20])
    return f"""
<h2>Compute {number}: {html.escape(state.summary())}</h2>
<h3>Scheduler and settings</h3>
{_table(["setting", "value"], settings.items())}
<h3>Time and count per function</h3>
{_table(["function", "tasks", "done", "erred", "total s", "mean ms"], _group_rows(state))}
{f"<ul>{errors}</ul>" if errors else ""}
{_figure_html(task_stream_figure(state))}
{_figure_html(progress_figure(state))}
"""


def _group_rows(state: ComputeState) -> list[tuple]:
    rows = []
    for name, group in sorted(state.groups.items(), key=lambda item: -item[1].seconds):
        ran = group.done + group.erred
        mean_ms = 1000 * group.seconds / ran if ran else 0.0
        rows.append(
            (name, group.total, group.done, group.erred, f"{group.seconds:.3f}", f"{mean_ms:.3f}")
        )
    return rows


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure_html(figure) -> str:
    return plotly.io.to_html(figure, include_plotlyjs=False, full_html=False)


def report_data(states: list[ComputeState], samples: list, origin: float) -> dict:
    """The report's numbers as plain JSON-able data (also embedded in the file)."""
    return {
        "computes": [
            {
                "scheduler": state.scheduler,
                "n_workers": state.n_workers,
                "n_tasks": state.n_tasks,
                "status": state.status,
                "wall_seconds": state.elapsed(),
                "done": state.done,
                "erred": state.erred,
                "groups": {
                    name: {
                        "total": g.total,
                        "done": g.done,
                        "erred": g.erred,
                        "seconds": g.seconds,
                    }
                    for name, g in state.groups.items()
                },
                "tasks_per_worker": state.tasks_per_worker,
                "task_stream": [bar._asdict() for bar in state.task_stream],
                "progress": state.progress_timeline,
                "errors": state.errors,
            }
            for state in states
        ],
        "resources": [
            {"seconds": s.time - origin, "cpu_percent": s.cpu_percent, "rss": s.rss}
            for s in samples
        ],
    }
