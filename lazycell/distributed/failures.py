"""A task's failure as the cluster carries it: :class:`PickledFailure`.

::

    worker                         scheduler thread               client (user's thread)
    ──────                         ────────────────               ──────────────────────
    a task raises exc
    PickledFailure.from_exception ► ("erred", key, failure) ─────► KeyStatus.error
      type name, message and         kept as it came; unpickled     rebuild(): unpickles the
      traceback text, and            only to label the event        exception afresh, or makes
      pickle.dumps(exc) as bytes     (guarded)                      it from its type name and
                                                                    message

Why the exception travels as bytes: an exception can pickle in the worker and
still fail to unpickle in the kernel (a custom ``__init__`` that takes two
arguments, a class the kernel cannot import). Inside a worker's batch of
reports it would make the whole batch unreadable, and with it every other
task's report. As bytes inside a record that always unpickles, it is
unpickled only where it is used, guarded: if that fails, the user gets the
original type name and message (the type itself when it can be made from the
message, else :class:`~lazycell.events.TaskError`).

Why afresh for every raise: a raised exception collects a traceback whose
frames hold the caller's locals, futures among them. One stored exception,
raised once, would keep those futures (and their results on the workers)
alive for as long as the cluster remembers the failure.
"""

from __future__ import annotations

import pickle
from typing import NamedTuple

from lazycell.events.failure import Failure, message_of, type_name_of, user_traceback


class PickledFailure(NamedTuple):
    """Why a task (or a function sent to a worker) failed, with its exception kept as bytes."""

    failure: Failure  # type name, message and traceback text; its exception is always None
    pickled_exception: bytes | None = None  # pickle.dumps of the exception, None if it did not

    @classmethod
    def from_exception(cls, exc: BaseException) -> PickledFailure:
        """The record of ``exc``, caught in a worker; never raises."""
        try:
            pickled: bytes | None = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: B036 - whatever __reduce__ raises, the task just failed
            pickled = None
        # user_traceback and message_of never raise, whatever the exception's __str__ does.
        failure = Failure(None, user_traceback(exc), type_name_of(exc), message_of(exc))
        return cls(failure, pickled)

    @classmethod
    def of(cls, failure: Failure) -> PickledFailure:
        """A failure lazycell itself reports (a dead worker, an unpicklable task, ...)."""
        exc = failure.exception
        if exc is None:
            return cls(failure, None)
        return cls.from_exception(exc)._replace(failure=failure._replace(exception=None))

    @property
    def type_name(self) -> str:
        return self.failure.type_name

    @property
    def message(self) -> str:
        return self.failure.message

    @property
    def traceback(self) -> str:
        return self.failure.traceback

    def unpickled(self) -> Failure:
        """The :class:`Failure` with a new copy of the exception, or without it if that
        cannot be unpickled here."""
        if self.pickled_exception is None:
            return self.failure
        try:
            exc = pickle.loads(self.pickled_exception)
        except BaseException:  # noqa: B036 - not even SystemExit from an __init__ may get out
            return self.failure
        if not isinstance(exc, BaseException):
            return self.failure
        return self.failure._replace(exception=exc)

    def rebuild(self) -> BaseException:
        """A new exception to raise in the kernel for every call (see the module docstring)."""
        return self.unpickled().rebuild()

    def label(self) -> BaseException:
        """The exception, or a RuntimeError naming its type and message (for the event stream).

        Only an exception whose ``str()`` works: the scheduler thread formats it.
        """
        failure = self.unpickled()
        if failure.exception is not None:
            try:
                str(failure.exception)
            except BaseException:  # noqa: B036 - even SystemExit
                return self.failure.label()
        return failure.label()
