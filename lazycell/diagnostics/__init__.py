"""Observing computations: the views built on the event stream.

- :func:`subscribe` — receive batches of events from every compute;
- :class:`ProgressBar` — a text progress bar for the terminal;
- :func:`live` — the live notebook panel for computes in a ``with`` block
  (``lazycell.widgets.live``, also ``lc.live``);
- :class:`performance_report` — an offline HTML report of computes in a ``with`` block;
- the event types: :class:`GraphSubmitted`, :class:`TaskStarted`,
  :class:`TaskFinished`, :class:`TaskErred`, :class:`ComputeFinished`
  (from ``lazycell.events``).

plotly loads when a report is first written, not with this package.
"""

from lazycell.diagnostics.progress import ProgressBar
from lazycell.events import (
    BUS,
    ComputeFinished,
    Event,
    GraphSubmitted,
    Subscription,
    TaskErred,
    TaskFinished,
    TaskStarted,
    subscribe,
)


def __getattr__(name: str):
    if name == "performance_report":  # plotly loads with the report, on first use
        from lazycell.diagnostics.report import performance_report

        return performance_report
    raise AttributeError(f"module 'lazycell.diagnostics' has no attribute {name!r}")


__all__ = [
    "BUS",
    "ComputeFinished",
    "Event",
    "GraphSubmitted",
    "ProgressBar",
    "Subscription",
    "TaskErred",
    "TaskFinished",
    "TaskStarted",
    "live",
    "performance_report",
    "subscribe",
]
