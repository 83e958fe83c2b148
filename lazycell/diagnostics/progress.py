"""A text progress bar for terminals and logs, fed only by the event stream.

::

    [########################################] | 100% Completed | 11400/11400 tasks | 1.2s
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from lazycell.diagnostics.events import (
    BUS,
    ComputeFinished,
    GraphSubmitted,
    TaskErred,
    TaskFinished,
)


class ProgressBar:
    """Show a text progress bar for every compute inside a ``with`` block.

    >>> with lc.diagnostics.ProgressBar():
    ...     total.compute()
    [########################################] | 100% Completed | 11400/11400 tasks | 1.2s

    ``minimum`` hides the bar for computes shorter than that many seconds;
    ``width`` is the bar's width in characters; ``dt`` the redraw interval.
    """

    def __init__(
        self, minimum: float = 0.0, width: int = 40, dt: float = 0.1, out: TextIO | None = None
    ):
        self.minimum = minimum
        self.width = width
        self.dt = dt
        self.out = out
        self._lock = threading.Lock()
        self._computes: dict[int, dict] = {}
        self._subscription = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_line = ""

    # -- event side (the delivering thread, see events.py; the computing thread at the end)
    def _on_events(self, events: list) -> None:
        with self._lock:
            for event in events:
                if isinstance(event, GraphSubmitted):
                    self._computes[event.compute_id] = {
                        "total": event.n_tasks,
                        "done": 0,
                        "erred": 0,
                        # The event's own clock: a short compute's first and last
                        # events can reach us in one delivery, at its end.
                        "start": event.time,
                        "shown": False,
                    }
                    continue
                state = self._computes.get(event.compute_id)
                if state is None:
                    continue
                if isinstance(event, TaskFinished):
                    state["done"] += 1
                elif isinstance(event, TaskErred):
                    state["erred"] += 1
                elif isinstance(event, ComputeFinished):
                    self._draw(state, final=True, status=event.status, now=event.time)
                    del self._computes[event.compute_id]

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

    def _tick(self) -> None:
        while not self._stop.wait(self.dt):
            with self._lock:
                for state in self._computes.values():
                    self._draw(state)

    # -- context manager
    def __enter__(self) -> ProgressBar:
        self._stop.clear()
        self._subscription = BUS.subscribe(self._on_events)
        self._ticker = threading.Thread(target=self._tick, name="lazycell-progress", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._subscription is not None:
            self._subscription.close()
        if self._ticker is not None:
            self._ticker.join()

    register = __enter__

    def unregister(self) -> None:
        self.__exit__(None, None, None)
