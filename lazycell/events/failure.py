"""A failed task as it travels between processes: the :class:`Failure` record.

A task that raises in a worker process (the processes pool, a cluster
worker) is sent back as a ``Failure``: the exception itself when it pickles,
and always its type's name, its message and the worker's traceback text, so
the kernel can show the user's own exception even when the object itself
could not make the trip. ``Failure.rebuild()`` turns it back into the
exception to raise; ``Failure.label()`` is the short form for logs and the
cluster's bookkeeping.

The error types a compute may raise besides the user's own live here too:
:class:`TaskError`, :class:`SerializationError`, :class:`WorkerDiedError`.
"""

from __future__ import annotations

import importlib
import os
import pickle
import traceback
from typing import NamedTuple


class TaskError(Exception):
    """A task failed with an exception that could not be brought back as itself."""


class SerializationError(TypeError):
    """A task's function, argument or result could not be pickled for another process."""


class WorkerDiedError(RuntimeError):
    """A worker process died while running tasks of this compute."""


class RemoteTraceback(Exception):
    """Carries the text of a traceback from a worker process (shown as the cause)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n--- traceback in the worker ---\n" + self.text.rstrip()


# Frames of lazycell's own code are left out of worker tracebacks.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Failure(NamedTuple):
    """Why a task failed, in a form that crosses process boundaries."""

    exception: BaseException | None  # the exception itself when it pickles, else None
    traceback: str  # the worker's traceback text, lazycell's frames left out ("" if none)
    type_name: str  # "module.QualName" of the exception's type
    message: str  # str(exception), or what could be said when str() itself fails

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        """The record of ``exc``, caught in a worker; never raises."""
        try:
            pickle.dumps(exc)
            picklable: BaseException | None = exc
        except Exception:
            picklable = None
        return cls(picklable, user_traceback(exc), type_name_of(exc), message_of(exc))

    @classmethod
    def reported(cls, error_type: type[BaseException], message: str) -> Failure:
        """A failure lazycell itself reports (a dead worker, a closed cluster...)."""
        return cls(None, "", type_name_of(error_type), message)

    @classmethod
    def serialization(cls, message: str) -> Failure:
        """A failure lazycell itself reports: something could not be pickled."""
        return cls.reported(SerializationError, message)

    def label(self) -> BaseException:
        """The exception when it came back, else a RuntimeError naming its type and message."""
        if self.exception is not None:
            return self.exception
        return RuntimeError(f"{self.type_name}: {self.message}")

    def rebuild(self) -> BaseException:
        """The user's exception, to raise in the kernel.

        It comes back as itself when it pickled; otherwise as the same type
        rebuilt from its message when that works, else as :class:`TaskError`.
        The remote traceback is attached as the cause, the way
        ``concurrent.futures`` shows errors from process pools.
        """
        exc = self.exception
        if exc is None:
            exc = _same_type_from_message(self.type_name, self.message)
        # tblib (installed by dask) pickles the worker's frames too; the remote
        # traceback text below already shows them, and twice is noise.
        exc = exc.with_traceback(None)
        try:
            exc.lazycell_in_worker = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
        if self.traceback:
            exc.__cause__ = RemoteTraceback(self.traceback)
            try:
                exc.lazycell_remote_traceback = self.traceback  # type: ignore[attr-defined]
            except AttributeError:
                pass
        return exc


def type_name_of(exc_or_type) -> str:
    """``"module.QualName"`` of an exception or exception type."""
    cls = exc_or_type if isinstance(exc_or_type, type) else type(exc_or_type)
    return f"{cls.__module__}.{cls.__qualname__}"


def message_of(exc: BaseException) -> str:
    """``str(exc)``, or a note saying it could not be had: a broken ``__str__`` must not
    turn one failed task into a dead worker thread."""
    try:
        return str(exc)
    except BaseException as str_failed:  # noqa: B036 - even a SystemExit from a __str__
        return f"<str() of the exception failed: {type(str_failed).__name__}>"


def user_traceback(exc: BaseException) -> str:
    """The traceback from the user's code on: frames of this package left out."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # noqa: B036 - a broken __str__ again: keep the frames, say so
        lines = traceback.format_tb(tb)
        return "".join(lines) + f"{type_name_of(exc)}: {message_of(exc)}\n"


def _same_type_from_message(type_name: str, message: str) -> BaseException:
    module_name, _, qualname = type_name.rpartition(".")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj(message)
    except Exception:
        pass
    return TaskError(f"{type_name}: {message}")
