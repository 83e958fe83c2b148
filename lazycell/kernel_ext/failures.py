"""A failed task, made short to read and debuggable in the kernel.

::

    exception out of a cell
      │  user_frames_only(): drop lazycell's own frames (scheduler loops,
      │  graph walking) and keep the cell's and the user's functions' frames
      │
      ├─ raised in this process (sync, threads): the traceback already reaches
      │  the user's function with its real locals; pdb can land there as it is
      │
      └─ raised in a worker process (processes, executors of processes): the
         traceback stops at the cell. To debug, debuggable_failure() calls
         exc.lazycell_rerun() here, in the calling (main) thread, with the
         inputs the task failed on:
           ├─ it fails again: that exception, with the cell's frames followed
           │  by the re-run's frames of the user's function (spliced)
           └─ it does not fail (flaky, or the worker's environment differs):
              the original exception, and a message that says so plainly

Nothing here needs IPython: ``set_last_failure`` is what ``pdb.pm()`` and
IPython's ``%debug`` read.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import TracebackType

from lazycell.diagnostics.code_locations import DYNAMIC_CODE, CodeLocator

# lazycell's own folder: this file is lazycell/kernel_ext/failures.py.
LAZYCELL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_lazycell_frame(tb: TracebackType) -> bool:
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(LAZYCELL_DIR)


def traceback_entries(tb: TracebackType | None) -> list[TracebackType]:
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    return entries


def chain_traceback(entries: list[TracebackType]) -> TracebackType | None:
    """A new traceback through the frames of ``entries``, outermost first."""
    chained = None
    for entry in reversed(entries):
        chained = TracebackType(chained, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return chained


def user_frames_only(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without lazycell's own frames: the cell and the user's functions remain.

    The frames are the real ones, locals included, so ``pdb`` on the result
    shows the user's values and ``up`` / ``down`` move between the user's
    frames only. ``None`` if no frame is the user's.
    """
    return chain_traceback(
        [entry for entry in traceback_entries(tb) if not is_lazycell_frame(entry)]
    )


def calling_side_frames(tb: TracebackType | None) -> list[TracebackType]:
    """The user's frames that called into lazycell: those before its last frame.

    Frames after it belong to the worker: when dask is imported there,
    tblib pickles the worker's traceback along, and it arrives as frames
    without locals.
    """
    entries = traceback_entries(tb)
    last = max((i for i, entry in enumerate(entries) if is_lazycell_frame(entry)), default=-1)
    calling_side = entries[: last + 1] if last >= 0 else entries
    return [entry for entry in calling_side if not is_lazycell_frame(entry)]


def locate_worker_frames(exc: BaseException, locator: CodeLocator) -> None:
    """Put the real file (the cell, as IPython names it) and source line on each
    ``<dynamic-code>`` frame of ``exc``'s worker traceback, in place (see
    ``diagnostics/code_locations.py`` for why the worker cannot)."""
    remote = getattr(exc, "lazycell_remote_traceback", None)
    if isinstance(remote, str):
        try:
            exc.lazycell_remote_traceback = locator.fix_traceback_text(remote)  # type: ignore[attr-defined]
        except AttributeError:
            pass
    cause, seen = exc.__cause__, set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        # lazycell's RemoteTraceback keeps the text in .text, concurrent.futures' in .tb
        for name in ("text", "tb"):
            text = getattr(cause, name, None)
            if isinstance(text, str) and DYNAMIC_CODE in text:
                fixed = locator.fix_traceback_text(text)
                setattr(cause, name, fixed)
                cause.args = tuple(fixed if arg == text else arg for arg in cause.args)
        cause = cause.__cause__


def ran_in_another_process(exc: BaseException) -> bool:
    """Whether ``exc`` was raised in a worker process (its traceback stops at the kernel)."""
    if getattr(exc, "lazycell_in_worker", False):  # set by the core for its workers' failures
        return True
    # concurrent.futures process pools attach the worker's traceback as a cause
    if type(exc.__cause__).__name__.endswith("RemoteTraceback"):
        return True
    # an argument that could not be pickled on its way to a worker process
    return getattr(exc, "lazycell_scheduler", None) == "processes"


def can_rerun_here(exc: BaseException) -> bool:
    """A failure from another process whose task can run again here with its inputs."""
    return callable(getattr(exc, "lazycell_rerun", None)) and ran_in_another_process(exc)


def task_description(exc: BaseException) -> str:
    key = getattr(exc, "lazycell_task_key", None)
    function = getattr(exc, "lazycell_function", None)
    if key is None:
        return "the failed task"
    return f"task {key!r}" + (f" (function {function})" if function else "")


@dataclass
class DebuggableFailure:
    """What to show and debug for a failure: the exception, a short traceback, a message."""

    exception: BaseException
    traceback: TracebackType | None
    message: str | None = None  # for the user, when a re-run did not help
    frames_reach_the_task: bool = True  # False: only the cell's frames (nothing to step into)


def short_failure(exc: BaseException) -> DebuggableFailure:
    """The failure as it is, with lazycell's frames dropped (no re-run).

    For a failure from a worker process only the calling side's frames are
    kept: the worker's traceback is shown as the exception's cause.
    """
    if ran_in_another_process(exc):
        short = chain_traceback(calling_side_frames(exc.__traceback__))
    else:
        short = user_frames_only(exc.__traceback__)
    return DebuggableFailure(exc, short, frames_reach_the_task=not can_rerun_here(exc))


def debuggable_failure(exc: BaseException) -> DebuggableFailure:
    """The failure with frames of the user's function, re-running a remote task here.

    For a failure raised in this process this is :func:`short_failure`. For one
    from a worker process, the task runs again in this thread with the inputs
    it failed on; see the module docstring for the outcomes. A re-run that is
    interrupted (Ctrl-C) gives up and keeps the original failure.
    """
    if not can_rerun_here(exc):
        return short_failure(exc)
    what = task_description(exc)
    try:
        exc.lazycell_rerun()
    except Exception as local_exc:
        adopt_task_identity(local_exc, exc)
        cell_frames = calling_side_frames(exc.__traceback__)
        task_frames = [
            entry
            for entry in traceback_entries(local_exc.__traceback__)
            if not is_lazycell_frame(entry)
        ]
        return DebuggableFailure(local_exc, chain_traceback(cell_frames + task_frames))
    except KeyboardInterrupt:
        message = (
            f"lazycell: the re-run of {what} in the kernel was interrupted; "
            "the worker's traceback is below, there is no frame of the task to debug"
        )
    else:
        message = (
            f"lazycell: {what} failed in a worker process, but re-running it in the kernel "
            "with the same inputs did not fail: the error happened only in the worker "
            "(flaky, or it depends on the worker's environment). The worker's traceback "
            "is below; there is no frame of the task to debug here."
        )
    short = short_failure(exc)
    short.message = message
    short.frames_reach_the_task = False
    return short


def adopt_task_identity(local_exc: BaseException, original: BaseException) -> None:
    """Give the re-run's exception the original's task attributes and worker traceback."""
    for name in (
        "lazycell_task_key",
        "lazycell_function",
        "lazycell_scheduler",
        "lazycell_rerun",
        "lazycell_remote_traceback",
    ):
        if hasattr(original, name) and not hasattr(local_exc, name):
            try:
                setattr(local_exc, name, getattr(original, name))
            except AttributeError:
                pass
    if local_exc.__cause__ is None and original.__cause__ is not None:
        local_exc.__cause__ = original.__cause__
    if hasattr(local_exc, "add_note"):
        for note in getattr(original, "__notes__", []):
            if note.startswith("lazycell:") and note not in getattr(local_exc, "__notes__", []):
                local_exc.add_note(note)
        local_exc.add_note(
            "lazycell: re-ran in the kernel with the inputs it failed on in the worker; "
            "the frames above are from that re-run"
        )


def set_last_failure(exc: BaseException, tb: TracebackType | None) -> None:
    """Make ``exc`` with traceback ``tb`` the failure ``pdb.pm()`` and ``%debug`` open."""
    exc.__traceback__ = tb
    sys.last_type = type(exc)
    sys.last_value = exc
    sys.last_traceback = tb
    if sys.version_info >= (3, 12):
        sys.last_exc = exc
