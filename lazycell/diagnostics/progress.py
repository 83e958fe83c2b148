"""A text progress bar for terminals and logs, fed only by the event stream.

::

    [########################################] | 100% Completed | 11400/11400 tasks | 1.2s
"""

from __future__ import annotations

import sys
import time
from operator import itemgetter
from typing import TextIO

from lazycell.diagnostics.events import BUS, RawBatch


class ProgressBar:
    """Show a text progress bar for every compute inside a ``with`` block.

    >>> with lc.diagnostics.ProgressBar():
    ...     total.compute()
    [########################################] | 100% Completed | 11400/11400 tasks | 1.2s

    ``minimum`` hides the bar for computes shorter than that many seconds;
    ``width`` is the bar's width in characters; ``dt`` the least time between
    redraws (they come with the event stream's deliveries, a few a second).

    It counts from the raw stream (see ``events.EventBus.subscribe``), with no
    Event object per task and no thread of its own: either would take the GIL
    from the compute's workers.
    """

    def __init__(
        self, minimum: float = 0.0, width: int = 40, dt: float = 0.1, out: TextIO | None = None
    ):
        self.minimum = minimum
        self.width = width
        self.dt = dt
        self.out = out
        self._computes: dict[int, dict] = {}
        self._subscription = None
        self.last_line = ""

    # -- event side (the delivering thread, see events.py; the computing thread at the end)
    def _on_raw(self, recorder, batch: RawBatch) -> None:
        submitted = batch.submitted
        if submitted is not None:
            self._computes[recorder.compute_id] = {
                "total": submitted.n_tasks,
                "done": 0,
                "erred": 0,
                # The event's own clock: a short compute's first and last events
                # can reach us in one delivery, at its end.
                "start": submitted.time,
                "shown": False,
                "drawn_at": 0.0,
            }
        state = self._computes.get(recorder.compute_id)
        if state is None:  # a compute that began before we subscribed
            return
        tags = list(map(itemgetter(0), batch.items))
        state["done"] += tags.count("f")
        state["erred"] += tags.count("e")
        for rows in batch.lanes:
            state["done"] += len(rows.keys)
        if batch.finished is not None:
            self._draw(state, final=True, status=batch.finished.status, now=batch.finished.time)
            del self._computes[recorder.compute_id]
            return
        now = time.time()
        if now - state["drawn_at"] >= self.dt:
            state["drawn_at"] = now
            self._draw(state, now=now)

    # -- drawing
    def _stream(self) -> TextIO:
        return self.out if self.out is not None else sys.stdout

    def _draw(
        self, state: dict, final: bool = False, status: str = "ok", now: float | None = None
    ) -> None:
        elapsed = (time.time() if now is None else now) - state["start"]
        if elapsed < self.minimum and not state["shown"]:
            return
        total = max(state["total"], 1)
        fraction = min(state["done"] / total, 1.0)
        filled = int(round(self.width * fraction))
        bar = "#" * filled + " " * (self.width - filled)
        word = {"ok": "Completed", "error": "Failed", "cancelled": "Interrupted"}.get(
            status, status
        )
        if not final:
            word = "Completed"
        line = (
            f"[{bar}] | {fraction * 100:3.0f}% {word} | "
            f"{state['done']}/{state['total']} tasks | {elapsed:.1f}s"
        )
        if state["erred"]:
            line += f" | {state['erred']} erred"
        stream = self._stream()
        stream.write("\r" + line + ("\n" if final else ""))
        stream.flush()
        state["shown"] = True
        self.last_line = line

    # -- context manager
    def __enter__(self) -> ProgressBar:
        self._subscription = BUS.subscribe(self._on_raw, raw=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    register = __enter__

    def unregister(self) -> None:
        self.__exit__(None, None, None)
