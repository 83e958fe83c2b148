"""The progress display of a ``%%compute`` cell.

::

    %%compute ──► cell_progress_display(shell)
                    └─ lazycell.widgets.choose_progress_display: the live panel
                       where widgets show, else the text bar on stdout, hidden
                       for computes under SHOW_BAR_AFTER_SECONDS

    with display:            the display subscribes to the event stream on enter,
        run the cell         draws at the stream's deliveries, and stops on exit
                             (normal end, error or interrupt alike)

The text bar stays quiet while a debugger has stopped the cell's thread
(``breakpoint()`` in a task on the sync scheduler), so redraws never land in
the middle of a pdb session.
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager

from lazycell.widgets.display_choice import choose_progress_display

# Computes shorter than this show no bar: quick cells stay uncluttered.
SHOW_BAR_AFTER_SECONDS = 0.5


def cell_progress_display(shell=None) -> AbstractContextManager:
    """The progress display for one cell in ``shell`` (a kernel or terminal IPython)."""
    return choose_progress_display(
        shell, minimum=SHOW_BAR_AFTER_SECONDS, out=StdoutUnlessDebugging()
    )


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
