"""Which progress display a ``%%compute`` cell gets: the seam for notebook panels.

::

    %%compute ──► choose_progress_display(shell)
                    ├─ each registered factory in turn (newest first): factory(shell)
                    │   returns a display, or None to pass ("not my front end")
                    └─ else text_progress_bar(): lc.diagnostics.ProgressBar on stdout

    with display:            the display subscribes to the event stream on enter,
        run the cell         draws on its own thread, and stops on exit
                             (normal end, error or interrupt alike)

A display is any context manager. The widgets issue registers a factory that
returns a notebook panel when the front end can show widgets::

    from lazycell.kernel_ext.progress_display import register_progress_display
    register_progress_display(panel_if_widgets_available)

The text bar stays quiet while a debugger has stopped the cell's thread
(``breakpoint()`` in a task on the sync scheduler), so redraws never land in
the middle of a pdb session.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from lazycell.diagnostics.progress import ProgressBar

ProgressDisplayFactory = Callable[[Any], "AbstractContextManager | None"]

# Computes shorter than this show no bar: quick cells stay uncluttered.
SHOW_BAR_AFTER_SECONDS = 0.5

_factories: list[ProgressDisplayFactory] = []


def register_progress_display(factory: ProgressDisplayFactory) -> Callable[[], None]:
    """Offer ``factory(shell)`` a say in every cell's display; returns an unregister function.

    The newest factory is asked first; returning ``None`` passes to the next,
    and to the text bar at the end.
    """
    _factories.insert(0, factory)

    def unregister() -> None:
        if factory in _factories:
            _factories.remove(factory)

    return unregister


def choose_progress_display(shell=None) -> AbstractContextManager:
    """The progress display for one cell in ``shell`` (a kernel or terminal IPython)."""
    for factory in list(_factories):
        display = factory(shell)
        if display is not None:
            return display
    return text_progress_bar()


def text_progress_bar() -> ProgressBar:
    """``lc.diagnostics.ProgressBar`` on the current stdout, quiet while debugging."""
    return ProgressBar(minimum=SHOW_BAR_AFTER_SECONDS, out=StdoutUnlessDebugging())


class StdoutUnlessDebugging:
    """``sys.stdout`` (looked up at each write) for the progress bar.

    Writes from other threads (the bar's redraws) are dropped while a
    debugger traces the thread that created this object; the final line,
    written by that thread when its compute ends, always goes through.
    """

    def __init__(self) -> None:
        self.owner = threading.get_ident()

    def write(self, text: str) -> int:
        if threading.get_ident() != self.owner and thread_is_being_debugged(self.owner):
            return 0
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def thread_is_being_debugged(thread_id: int) -> bool:
    """Whether a debugger (pdb, ``breakpoint()``) traces any frame of that thread."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_trace is not None:
            return True
        frame = frame.f_back
    return False
