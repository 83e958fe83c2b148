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

``CountingDisplay`` also notes, at each of the stream's deliveries, how many
tasks the cell's latest compute has done (``last_cell_progress``), so an
interrupted cell can say ``■ interrupted: 230/401 tasks done`` in one line
instead of showing the frames that waited for the workers.
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass

from lazycell.diagnostics.compute_state import plural
from lazycell.events import BUS
from lazycell.events.bus import Subscription
from lazycell.widgets.display_choice import choose_progress_display

# Computes shorter than this show no bar: quick cells stay uncluttered.
SHOW_BAR_AFTER_SECONDS = 0.5


def cell_progress_display(shell=None) -> AbstractContextManager:
    """The progress display for one cell in ``shell`` (a kernel or terminal IPython)."""
    return CountingDisplay(
        choose_progress_display(shell, minimum=SHOW_BAR_AFTER_SECONDS, out=StdoutUnlessDebugging())
    )


@dataclass
class CellProgress:
    """The latest compute of a cell: tasks done and in all (None before its first)."""

    done: int | None = None
    total: int | None = None

    def interrupted_text(self) -> str:
        """``"■ interrupted: 230/401 tasks done"`` (``"■ interrupted"`` with no compute seen)."""
        if self.total is None:
            return "■ interrupted"
        return f"■ interrupted: {self.done:,}/{plural(self.total, 'task')} done"


_last = [CellProgress()]


def last_cell_progress() -> CellProgress:
    """What the last cell's display saw (see the module docstring)."""
    return _last[0]


class CountingDisplay:
    """A progress display that also notes the tasks done of the cell's latest compute."""

    def __init__(self, display: AbstractContextManager):
        self.display = display
        self.progress = CellProgress()
        self._subscription: Subscription | None = None

    def _on_raw(self, recorder, batch) -> None:
        # a few times a second: two attribute reads
        self.progress.done = recorder.n_done
        self.progress.total = len(recorder.groups_of)

    def __enter__(self):
        _last[0] = self.progress
        entered = self.display.__enter__()
        self._subscription = BUS.subscribe(self._on_raw, raw=True)
        return entered

    def __exit__(self, *exc):
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        return self.display.__exit__(*exc)


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
