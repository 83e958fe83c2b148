"""``lc.diagnostics.live()``: the live panel for every compute in a ``with`` block.

In a notebook kernel it shows :class:`lazycell.widgets.ComputePanel` in the
cell's output; elsewhere (terminal IPython, plain ``python``) it shows the
text :class:`~lazycell.diagnostics.ProgressBar`, so the same code runs
everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lazycell.diagnostics.progress import ProgressBar


@contextmanager
def live(interval: float = 0.25, resource_interval: float = 0.5) -> Iterator[object]:
    """Show progress, worker memory, resources and the task stream of computes inside.

    >>> with lc.diagnostics.live():
    ...     total.compute(scheduler="processes")

    ``interval``: seconds between panel updates; ``resource_interval``: between
    CPU / memory samples. Yields the panel (or the text bar outside notebooks).
    """
    # Imported here: diagnostics never needs the widget stack unless a panel is shown.
    from lazycell.widgets.front_end import can_show_widgets, current_shell

    if can_show_widgets(current_shell()):
        from lazycell.widgets.panel import ComputePanel

        display = ComputePanel(interval=interval, resource_interval=resource_interval)
    else:
        display = ProgressBar(dt=interval)
    with display:
        yield display
