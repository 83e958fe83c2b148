"""``lc.live()``: the live panel for every compute in a ``with`` block.

In a notebook kernel it shows :class:`lazycell.widgets.ComputePanel` in the
cell's output; elsewhere (terminal IPython, plain ``python``) it shows the
text :class:`~lazycell.diagnostics.ProgressBar`, so the same code runs
everywhere. Which one is decided in ``lazycell.widgets.display_choice``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lazycell.widgets.display_choice import choose_progress_display
from lazycell.widgets.front_end import current_shell


@contextmanager
def live(interval: float = 0.25, resource_interval: float = 0.5) -> Iterator[object]:
    """Show progress, worker memory, resources and the task stream of computes inside.

    >>> with lc.live():
    ...     total.compute(scheduler="processes")

    ``interval``: seconds between panel updates; ``resource_interval``: between
    CPU / memory samples. Yields the panel (or the text bar outside notebooks).
    Also available as ``lc.diagnostics.live``.
    """
    display = choose_progress_display(
        current_shell(), interval=interval, resource_interval=resource_interval
    )
    with display:
        yield display
