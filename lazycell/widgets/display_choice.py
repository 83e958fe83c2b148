"""The one place that decides how a compute's progress is shown: panel or text bar.

::

    choose_progress_display(shell, ...)
      ├─ each registered factory in turn (newest first): factory(shell)
      │   returns a display, or None to pass ("not my front end")
      ├─ a notebook kernel with ipywidgets: the live ComputePanel
      └─ else (terminal IPython, plain python): the text ProgressBar

A display is a context manager that subscribes to the event stream on enter
and stops on exit. ``%%compute`` cells (``lazycell.kernel_ext``) and
``lc.live()`` both ask here, so they always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TextIO

from lazycell.diagnostics.progress import ProgressBar
from lazycell.diagnostics.resources import DEFAULT_INTERVAL
from lazycell.widgets.front_end import can_show_widgets

ProgressDisplayFactory = Callable[[Any], "AbstractContextManager | None"]

_factories: list[ProgressDisplayFactory] = []


def register_progress_display(factory: ProgressDisplayFactory) -> Callable[[], None]:
    """Offer ``factory(shell)`` a say before the built-in choice; returns an unregister function.

    The newest factory is asked first; returning ``None`` passes to the next,
    and to the panel or text bar at the end.
    """
    _factories.insert(0, factory)

    def unregister() -> None:
        if factory in _factories:
            _factories.remove(factory)

    return unregister


def choose_progress_display(
    shell=None,
    *,
    interval: float | None = None,
    resource_interval: float = DEFAULT_INTERVAL,
    minimum: float = 0.0,
    out: TextIO | None = None,
) -> AbstractContextManager:
    """The progress display for computes run from ``shell`` (None: plain Python).

    ``interval``: seconds between redraws (None: each display's own
    default, 0.25 s for the panel, 0.1 s for the text bar); ``resource_interval``: between the
    panel's CPU / memory samples; ``minimum`` and ``out``: the text bar hides
    computes shorter than ``minimum`` seconds and writes to ``out`` (stdout).
    """
    for factory in list(_factories):
        display = factory(shell)
        if display is not None:
            return display
    if can_show_widgets(shell):
        # Imported here: ipywidgets loads only when a panel is shown.
        from lazycell.widgets.panel import ComputePanel

        panel_timing = {} if interval is None else {"interval": interval}
        return ComputePanel(resource_interval=resource_interval, **panel_timing)
    bar_timing = {} if interval is None else {"dt": interval}
    return ProgressBar(minimum=minimum, out=out, **bar_timing)
