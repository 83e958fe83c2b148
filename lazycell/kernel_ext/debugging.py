"""Where a failed cell meets IPython: the traceback shown, ``sys.last_*``, and pdb.

::

    %%compute cell fails ──► InlineDebugging.prepare_to_raise(exc, debug=--debug)
      │  interrupted (KeyboardInterrupt)? one line: "■ interrupted: 230/401 tasks done"
      │  worker frames of notebook functions ("<dynamic-code>"): the cell's name and line
      │  debugging now (%pdb on, or --debug)?  yes: failures.debuggable_failure()
      │                                           (re-runs a remote task here, main thread)
      │                                        no:  failures.short_failure(); a remote
      │                                           failure is remembered for %debug
      │  attach a one-shot ``_render_traceback_`` to the exception, then the magic raises it
      ▼
    IPython's run_code catches it ──► showtraceback()
      │  our renderer: the short traceback (the cell's and the user's frames, the
      │  worker's traceback as the cause) and sys.last_* pointed at it
      ▼
    if shell.call_pdb: IPython opens its debugger on sys.last_value, exactly once
      (--debug turns call_pdb on until the cell ends; a re-run that did not fail
       turns it off until the cell ends: nothing to step into)

    next cell is ``%debug`` after a remote failure that was not re-run
      ──► pre_run_cell hook: re-run now and point sys.last_* at the re-run's frames

    breakpoint() in a task while a cell runs ──► breakpoint_opens_pdb(): ipykernel
      installs debugpy's breakpoint hook, which does nothing unless a front-end
      debugger is attached (ipykernel issue #897); then IPython's pdb opens instead

IPython opens the debugger itself (``showtraceback`` → ``debugger``), so the
extension never does: one failure, one debugger session.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from lazycell.diagnostics.code_locations import CodeLocator
from lazycell.kernel_ext.failures import (
    DebuggableFailure,
    can_rerun_here,
    debuggable_failure,
    locate_worker_frames,
    set_last_failure,
    short_failure,
    task_description,
)
from lazycell.kernel_ext.progress_display import last_cell_progress

# A cell that is only ``%debug`` (or ``debug`` with automagic): post-mortem debugging.
POST_MORTEM_DEBUG_CELL = re.compile(r"^\s*%?debug\s*$")


class InlineDebugging:
    """Per-shell state for showing and debugging failed ``%%compute`` cells."""

    def __init__(self, shell):
        self.shell = shell
        self.remote_failure_not_rerun: BaseException | None = None
        self._restore_call_pdb = None

    # -- lifetime
    def start(self) -> None:
        self.shell.events.register("pre_run_cell", self.rerun_before_post_mortem_debug)

    def stop(self) -> None:
        if self.rerun_before_post_mortem_debug in self.shell.events.callbacks["pre_run_cell"]:
            self.shell.events.unregister("pre_run_cell", self.rerun_before_post_mortem_debug)
        if self._restore_call_pdb is not None:
            self._restore_call_pdb()
        self.remote_failure_not_rerun = None

    # -- a failed cell
    def prepare_to_raise(self, exc: BaseException, debug: bool = False) -> BaseException:
        """The exception the magic should raise for ``exc``, set up to show and debug well.

        ``debug`` is ``--debug``: open the debugger for this failure even
        without ``%pdb on``.
        """
        if isinstance(exc, KeyboardInterrupt):
            self.remote_failure_not_rerun = None
            return interrupted(exc)
        locate_worker_frames(exc, CodeLocator([self.shell.user_ns], self.shell.compile))
        debugging_now = debug or self.shell.call_pdb
        if debugging_now:
            failure = debuggable_failure(exc)
            self.remote_failure_not_rerun = None
        else:
            failure = short_failure(exc)
            self.remote_failure_not_rerun = exc if can_rerun_here(exc) else None
        if failure.message:
            print(failure.message, file=sys.stderr, flush=True)
        if debugging_now and not failure.frames_reach_the_task:
            self._set_call_pdb_until_cell_ends(False)
        elif debug and not self.shell.call_pdb:
            self._set_call_pdb_until_cell_ends(True)
        show_short_traceback(self.shell, failure)
        return failure.exception

    def _set_call_pdb_until_cell_ends(self, value: bool) -> None:
        if self._restore_call_pdb is None:
            shell = self.shell
            previous = shell.call_pdb

            def restore_call_pdb(*_result) -> None:
                shell.call_pdb = previous
                if restore_call_pdb in shell.events.callbacks["post_run_cell"]:
                    shell.events.unregister("post_run_cell", restore_call_pdb)
                self._restore_call_pdb = None

            shell.events.register("post_run_cell", restore_call_pdb)
            self._restore_call_pdb = restore_call_pdb
        self.shell.call_pdb = value

    # -- %debug after a remote failure
    def rerun_before_post_mortem_debug(self, info=None) -> None:
        """``pre_run_cell``: before a ``%debug`` cell, re-run the remote task that failed."""
        exc = self.remote_failure_not_rerun
        raw_cell = getattr(info, "raw_cell", "") or ""
        if exc is None or not POST_MORTEM_DEBUG_CELL.match(raw_cell):
            return
        self.remote_failure_not_rerun = None
        if sys.last_value is not exc:  # another error came since
            return
        print(
            f"lazycell: {task_description(exc)} failed in a worker process; re-running it "
            "here with the same inputs to debug it",
            file=sys.stderr,
            flush=True,
        )
        failure = debuggable_failure(exc)
        if failure.message:
            print(failure.message, file=sys.stderr, flush=True)
        set_last_failure(failure.exception, failure.traceback)


def interrupted(exc: KeyboardInterrupt) -> KeyboardInterrupt:
    """An interrupted cell shows one line, ``■ interrupted: 230/401 tasks done``: its
    frames are only lazycell's waits for the workers (``threading.py``), nothing of
    the user's to look at."""
    line = last_cell_progress().interrupted_text()

    def render_one_line() -> list[str]:
        exc.__dict__.pop("_render_traceback_", None)
        return [line]

    try:
        exc._render_traceback_ = render_one_line  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return exc


def show_short_traceback(shell, failure: DebuggableFailure) -> None:
    """Have IPython show ``failure`` with its short traceback when the exception is raised.

    IPython calls an exception's ``_render_traceback_`` (the hook it offers
    exceptions to render themselves; ipyparallel uses it for remote errors)
    after setting ``sys.last_*`` and before opening ``%pdb``'s debugger; the
    renderer points ``sys.last_*`` at the short traceback, so the debugger
    and a later ``%debug`` land in the user's frames. It removes itself after
    one use.
    """
    exc = failure.exception

    def render_short_traceback() -> list[str]:
        exc.__dict__.pop("_render_traceback_", None)
        set_last_failure(exc, failure.traceback)
        return shell.InteractiveTB.structured_traceback(
            type(exc), exc, failure.traceback, tb_offset=0
        )

    try:
        exc._render_traceback_ = render_short_traceback
    except AttributeError:  # an exception type that takes no attributes: IPython's own display
        exc.__traceback__ = failure.traceback


@contextmanager
def breakpoint_opens_pdb() -> Iterator[None]:
    """Inside the block, ``breakpoint()`` opens IPython's pdb where debugpy would ignore it.

    Only debugpy's hook with no debugger client attached is replaced: a
    JupyterLab visual debugger session, a ``PYTHONBREAKPOINT`` setting and any
    other hook keep working as they would.
    """
    original = sys.breakpointhook
    if not getattr(original, "__module__", "").startswith(("debugpy", "pydevd")):
        yield
        return

    def breakpoint_hook(*args, **kwargs):
        if _debugpy_client_connected():
            return original(*args, **kwargs)
        if os.environ.get("PYTHONBREAKPOINT"):
            return sys.__breakpointhook__(*args, **kwargs)
        from IPython.core.debugger import set_trace

        set_trace(sys._getframe(1))

    sys.breakpointhook = breakpoint_hook
    try:
        yield
    finally:
        if sys.breakpointhook is breakpoint_hook:
            sys.breakpointhook = original


def _debugpy_client_connected() -> bool:
    try:
        import debugpy

        return bool(debugpy.is_client_connected())
    except Exception:
        return False
