"""Observing computations: the event stream and the views built on it.

- :func:`subscribe` — receive batches of events from every compute;
- :class:`ProgressBar` — a text progress bar for the terminal;
- :func:`live` — the live notebook panel for computes in a ``with`` block;
- :class:`performance_report` — an offline HTML report of computes in a ``with`` block;
- the event types: :class:`GraphSubmitted`, :class:`TaskStarted`,
  :class:`TaskFinished`, :class:`TaskErred`, :class:`ComputeFinished`.
"""

from lazycell.diagnostics.events import (
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
from lazycell.diagnostics.live import live
from lazycell.diagnostics.progress import ProgressBar
from lazycell.diagnostics.report import performance_report

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
