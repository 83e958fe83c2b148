"""Worker memory: one bar per worker process, its RSS against its share of memory.

::

    kernel      [#######                   ]  1.2 GB / 7.8 GB
    process-0   [###                       ]  310 MB / 3.9 GB   (processes scheduler)
    worker-0    [####::::////              ]  98 MB / 1.0 GB · results 60 MB · …  (cluster)

One rule for the limit of every bar (``diagnostics.workers.bar_limit``): the
process's memory limit if it has one (a cluster worker's), else the machine's
memory, the same for the kernel under every scheduler. Each bar's tooltip
states it. Bars turn orange at ``WARN_FRACTION`` and red at
``DANGER_FRACTION`` of that limit.

A cluster worker's bar (:class:`ClusterMemoryRow`) is drawn against its
memory limit and stacks, apart, the results it holds (solid), the rest of its
memory (pale) and what it spilled to disk (grey stripes), from the cluster's
``scheduler_info()``; the client's panel (``cluster_view.py``) draws the same.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from lazycell.diagnostics.workers import (
    DANGER_FRACTION,
    WARN_FRACTION,
    WorkerMemory,
    format_bytes,
    limit_rule,
)
from lazycell.widgets.rows import BarNamedRow, reuse_rows

NAME_WIDTH = "150px"


def memory_bar_style(fraction: float) -> str:
    """ipywidgets ``bar_style`` for a bar this full: success, warning or danger."""
    if fraction >= DANGER_FRACTION:
        return "danger"
    if fraction >= WARN_FRACTION:
        return "warning"
    return "success"


class MemoryRow(BarNamedRow):
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
        """``rss`` against the machine's memory ``limit`` (see the module docstring)."""
        fraction = rss / limit if limit else 0.0
        with self.bar.hold_sync():
            self.bar.value = min(fraction, 1.0)
            self.bar.bar_style = memory_bar_style(fraction)
            self.bar.tooltip = f"{self.bar.description}: {limit_rule(limit, has_limit=False)}"
        self.text.value = f"{format_bytes(rss)} / {format_bytes(limit)}"


# Jupyter's theme colours (with fallbacks outside JupyterLab), as the bar styles use.
BAR_COLOURS = {
    "success": "var(--jp-success-color1, #4caf50)",
    "warning": "var(--jp-warn-color1, #ff9800)",
    "danger": "var(--jp-error-color1, #f44336)",
}
SPILLED_PATTERN = "repeating-linear-gradient(45deg, #9e9e9e 0 4px, #c4c4c4 4px 8px)"


def _percent(part: int, limit: int) -> str:
    return f"{100 * min(max(part / limit, 0.0), 1.0):.2f}%" if limit else "0%"


def stacked_memory_bar(memory: WorkerMemory, title: str = "") -> str:
    """HTML of a cluster worker's bar: results, unmanaged and spilled memory apart."""
    colour = BAR_COLOURS[memory_bar_style(memory.in_memory / memory.limit if memory.limit else 0)]
    segments = (
        (memory.managed, f"background:{colour}", "results in memory"),
        (memory.unmanaged, f"background:{colour};opacity:0.45", "unmanaged memory"),
        (memory.spilled, f"background:{SPILLED_PATTERN}", "spilled to disk"),
    )
    spans = "".join(
        f'<span title="{what}: {format_bytes(part)}" '
        f'style="width:{_percent(part, memory.limit)};{style}"></span>'
        for part, style, what in segments
    )
    return (
        f'<div title="{html.escape(title)}" style="display:flex;width:100%;height:16px;'
        f'background:var(--jp-layout-color2, #eee);border-radius:3px;overflow:hidden">'
        f"{spans}</div>"
    )


def memory_text(memory: WorkerMemory) -> str:
    """``"98.0 MB / 1.0 GB · results 60.0 MB · unmanaged 38.0 MB"`` (+ spilled if any)."""
    text = (
        f"{format_bytes(memory.in_memory)} / {format_bytes(memory.limit)}"
        f" · results {format_bytes(memory.managed)} · unmanaged {format_bytes(memory.unmanaged)}"
    )
    if memory.spilled:
        text += f" · spilled {format_bytes(memory.spilled)}"
    return text


class ClusterMemoryRow(BarNamedRow):
    """A cluster worker's name, stacked bar (see ``stacked_memory_bar``) and numbers."""

    def __init__(self, name: str):
        self.bar = widgets.HTML(
            description=name,
            style={"description_width": NAME_WIDTH},
            # narrower than a process's bar (its numbers are longer), and never squeezed by them
            layout=widgets.Layout(width="45%", flex="0 0 auto"),
        )
        self.bar.add_class("lazycell-memory-bar")
        self.bar.add_class("lazycell-cluster-memory-bar")
        self.text = widgets.Label()
        # In a narrow notebook the numbers wrap under the bar instead of being cut.
        self.widget = widgets.HBox(
            [self.bar, self.text], layout=widgets.Layout(flex_flow="row wrap")
        )

    def show(self, memory: WorkerMemory, extra: str = "") -> None:
        """Draw ``memory``; ``extra`` goes first (the client's panel puts task counts there)."""
        text = memory_text(memory)
        rule = limit_rule(memory.limit, memory.has_limit)
        self.bar.value = stacked_memory_bar(memory, title=f"{self.bar.description}: {text}; {rule}")
        self.text.value = f"{extra} · {text}" if extra else text


class MemoryView:
    """The memory tab: one row per process (``show``) or per cluster worker (``show_cluster``)."""

    def __init__(self):
        self.rows: dict[str, MemoryRow | ClusterMemoryRow] = {}
        self.widget = widgets.VBox()
        # Spare rows by kind (see rows.py); the kernel's row is in every local compute.
        self._spares: dict[type, list] = {MemoryRow: [MemoryRow("kernel")], ClusterMemoryRow: []}

    def _set_rows(self, names, row_class) -> None:
        names = list(names)
        same_kind = all(isinstance(row, row_class) for row in self.rows.values())
        if names != list(self.rows) or not same_kind:
            rows = self.rows
            if not same_kind:
                for row in rows.values():
                    self._spares[type(row)].append(row)
                rows = {}
            self.rows = reuse_rows(rows, names, self._spares[row_class], row_class)
            self.widget.children = [row.widget for row in self.rows.values()]

    def spare_rows(self) -> list[widgets.Widget]:
        """The rows built but not shown (to close them with the panel)."""
        return [row.widget for rows in self._spares.values() for row in rows]

    def show(self, processes: dict[str, int], rss_by_pid: dict, total_memory: int) -> None:
        """A bar per process: its RSS against the machine's memory, ``total_memory``."""
        self._set_rows(processes, MemoryRow)
        for name, pid in processes.items():
            self.rows[name].show(rss_by_pid.get(pid, 0), total_memory)

    def show_cluster(self, workers: dict[str, WorkerMemory]) -> None:
        """A stacked bar per cluster worker (see :func:`stacked_memory_bar`)."""
        self._set_rows(workers, ClusterMemoryRow)
        for name, memory in workers.items():
            self.rows[name].show(memory)
