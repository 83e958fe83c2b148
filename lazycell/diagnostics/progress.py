"""A text progress bar for terminals and logs, fed only by the event stream.

::

    [########################################] | 100% Completed | 11400/11400 tasks | 1.2s
    hint: 'fib' holds the GIL (...) — --scheduler processes would take ≈ 1.1 s instead of 2.1 s

The hint line is the scheduler advisor's (``diagnostics/advisor.py``), printed
after the bar ends when another scheduler would clearly do better; config
``advisor = False`` (or ``ProgressBar(advise=False)``) leaves it out.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from lazycell.diagnostics import advisor
from lazycell.diagnostics.compute_state import ComputeState, ComputeTracker


class ProgressBar:
    """Show a text progress bar for every compute inside a ``with`` block.

    >>> with lc.diagnostics.ProgressBar():
    ...     total.compute()
    [########################################] | 100% Completed | 11400/11400 tasks | 1.2s

    ``minimum`` hides the bar for computes shorter than that many seconds;
    ``width`` is the bar's width in characters; ``dt`` the least time between
    redraws (they come with the event stream's deliveries, a few a second);
    ``advise``: print the advisor's hint after a compute that has one.

    It reads the same fold of the event stream as the notebook panel
    (:class:`~lazycell.diagnostics.compute_state.ComputeTracker`, keeping no
    task-stream bars), and has no thread of its own: one would take the GIL
    from the compute's workers.
    """

    def __init__(
        self,
        minimum: float = 0.0,
        width: int = 40,
        dt: float = 0.1,
        out: TextIO | None = None,
        advise: bool = True,
    ):
        self.minimum = minimum
        self.advise = advise
        self.width = width
        self.dt = dt
        self.out = out
        # A text bar draws no task stream: keep one bar, not thousands.
        self.tracker = ComputeTracker(on_change=self._on_change, stream_limit=1)
        self._drawn_at: dict[int, float] = {}  # compute id -> when last drawn (perf clock)
        self._shown: set[int] = set()
        self.last_line = ""
        self.last_hint: str | None = None

    # -- event side (the delivering thread, see lazycell.events.bus; the computing
    #    thread at the end)
    def _on_change(self, state: ComputeState) -> None:
        compute_id = state.compute_id
        if state.finished:
            self._draw(state, final=True)
            self.tracker.forget(compute_id)
            self._drawn_at.pop(compute_id, None)
            self._shown.discard(compute_id)
            return
        now = time.perf_counter()
        if now - self._drawn_at.get(compute_id, 0.0) >= self.dt:
            self._drawn_at[compute_id] = now
            self._draw(state)

    # -- drawing
    def _stream(self) -> TextIO:
        return self.out if self.out is not None else sys.stdout

    def _draw(self, state: ComputeState, final: bool = False) -> None:
        # The compute's own clock (GraphSubmitted to ComputeFinished): a short
        # compute's first and last events can reach us in one delivery, at its end.
        elapsed = state.elapsed()
        if elapsed < self.minimum and state.compute_id not in self._shown:
            return
        total = max(state.n_tasks, 1)
        fraction = min(state.done / total, 1.0)
        filled = int(round(self.width * fraction))
        bar = "#" * filled + " " * (self.width - filled)
        word = "Completed"
        if final:
            word = {"ok": "Completed", "error": "Failed", "cancelled": "Interrupted"}.get(
                state.status, state.status
            )
        line = (
            f"[{bar}] | {fraction * 100:3.0f}% {word} | "
            f"{state.done}/{state.n_tasks} tasks | {elapsed:.1f}s"
        )
        if state.erred:
            line += f" | {state.erred} erred"
        stream = self._stream()
        stream.write("\r" + line + ("\n" if final else ""))
        stream.flush()
        self._shown.add(state.compute_id)
        self.last_line = line
        if final and self.advise:
            hint = advisor.hint_for(state)
            if hint:
                stream.write(f"hint: {hint}\n")
                stream.flush()
                self.last_hint = hint

    # -- context manager
    def __enter__(self) -> ProgressBar:
        if self.advise:
            advisor.ADVISOR.acquire()  # measures what the bar shows, for its hint
        self.tracker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.tracker.stop()
        if self.advise:
            advisor.ADVISOR.release()

    register = __enter__

    def unregister(self) -> None:
        self.__exit__(None, None, None)
