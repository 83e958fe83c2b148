"""The event stream: what every scheduler emits and every view consumes.

- ``types``: the events (:class:`GraphSubmitted`, :class:`TaskStarted`,
  :class:`TaskFinished`, :class:`TaskErred`, :class:`ComputeFinished`);
- ``failure``: the :class:`Failure` record a failed task travels as, and the
  error types a compute raises besides the user's own;
- ``recording``: how a scheduler records a compute on its hot path;
- ``groups``: naming the task group of every key, cheaply;
- ``bus``: who delivers recorded events to the listeners, and when
  (``BUS``, :func:`subscribe`).

This package knows nothing of schedulers or views: schedulers record into it,
views listen to it (see ``docs/architecture.md``).
"""

from lazycell.events.bus import BUS, EventBus, Subscription, subscribe
from lazycell.events.failure import (
    Failure,
    RemoteTraceback,
    SerializationError,
    TaskError,
    WorkerDiedError,
)
from lazycell.events.groups import group_keys
from lazycell.events.recording import (
    ERRED_ROW,
    ComputeRecorder,
    LaneRows,
    RawBatch,
    WorkerLane,
    estimate_nbytes,
)
from lazycell.events.types import (
    ComputeFinished,
    Event,
    GraphSubmitted,
    Listener,
    TaskErred,
    TaskFinished,
    TaskStarted,
)

__all__ = [
    "BUS",
    "ERRED_ROW",
    "ComputeFinished",
    "ComputeRecorder",
    "Event",
    "EventBus",
    "Failure",
    "GraphSubmitted",
    "LaneRows",
    "Listener",
    "RawBatch",
    "RemoteTraceback",
    "SerializationError",
    "Subscription",
    "TaskErred",
    "TaskError",
    "TaskFinished",
    "TaskStarted",
    "WorkerDiedError",
    "WorkerLane",
    "estimate_nbytes",
    "group_keys",
    "subscribe",
]
