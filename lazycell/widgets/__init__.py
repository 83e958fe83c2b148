"""Notebook panels (ipywidgets, charts drawn as inline SVG), fed only by the event stream.

- :class:`ComputePanel` — the live panel: task progress per group, worker
  memory, a resource timeline and the task stream (``lazycell.widgets.panel``);
- :func:`choose_progress_display` — the one place that picks the panel or
  the text bar for a compute (``lazycell.widgets.display_choice``);
- :func:`live` — that display for every compute in a ``with`` block.

The heavy import (ipywidgets) happens when a panel is first made,
not when this package is imported.
"""

from __future__ import annotations

from lazycell.widgets.display_choice import choose_progress_display, register_progress_display
from lazycell.widgets.front_end import can_show_widgets, current_shell
from lazycell.widgets.live import live


def __getattr__(name: str):
    if name == "ComputePanel":  # the widget stack loads on first use
        from lazycell.widgets.panel import ComputePanel

        return ComputePanel
    raise AttributeError(f"module 'lazycell.widgets' has no attribute {name!r}")


__all__ = [
    "ComputePanel",
    "can_show_widgets",
    "choose_progress_display",
    "current_shell",
    "live",
    "register_progress_display",
]
