"""Worker memory: one bar per worker process, its RSS against its share of memory.

::

    kernel      [#######                   ]  1.2 GB / 7.8 GB
    process-0   [###                       ]  310 MB / 3.9 GB   (processes scheduler)

The limit of a bar is the machine's memory divided among the processes that
share it (the kernel and, for the processes scheduler, each pool worker): the
point past which they would together exhaust it. Bars turn orange at
``WARN_FRACTION`` and red at ``DANGER_FRACTION`` of that limit.
"""

from __future__ import annotations

import ipywidgets as widgets

WARN_FRACTION = 0.6
DANGER_FRACTION = 0.85
NAME_WIDTH = "150px"


def format_bytes(n: float) -> str:
    """``1234567 -> "1.2 MB"``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def memory_bar_style(fraction: float) -> str:
    """ipywidgets ``bar_style`` for a bar this full: success, warning or danger."""
    if fraction >= DANGER_FRACTION:
        return "danger"
    if fraction >= WARN_FRACTION:
        return "warning"
    return "success"


class MemoryRow:
    def __init__(self, name: str):
        self.bar = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description=name,
            style={"description_width": NAME_WIDTH},
            layout=widgets.Layout(width="65%"),
        )
        self.bar.add_class("lazycell-memory-bar")
        self.text = widgets.Label()
        self.widget = widgets.HBox([self.bar, self.text])

    def show(self, rss: int, limit: int) -> None:
        fraction = rss / limit if limit else 0.0
        with self.bar.hold_sync():
            self.bar.value = min(fraction, 1.0)
            self.bar.bar_style = memory_bar_style(fraction)
        self.text.value = f"{format_bytes(rss)} / {format_bytes(limit)}"


class MemoryView:
    """The memory tab: a function of ``{worker: pid}``, the latest RSS by pid, and memory."""

    def __init__(self):
        self.rows: dict[str, MemoryRow] = {}
        self.widget = widgets.VBox()

    def show(self, processes: dict[str, int], rss_by_pid: dict, total_memory: int) -> None:
        if list(processes) != list(self.rows):
            self.rows = {name: self.rows.get(name) or MemoryRow(name) for name in processes}
            self.widget.children = [row.widget for row in self.rows.values()]
        limit = total_memory // max(len(processes), 1)
        for name, pid in processes.items():
            self.rows[name].show(rss_by_pid.get(pid, 0), limit)
