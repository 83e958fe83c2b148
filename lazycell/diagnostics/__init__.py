"""Observing computations: the event stream and the views built on it.

- :func:`subscribe` — receive batches of events from every compute;
- :class:`ProgressBar` — a text progress bar for the terminal;
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
from lazycell.diagnostics.progress import ProgressBar

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
    "subscribe",
]
