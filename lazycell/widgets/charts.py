"""A chart of the live panel: an ``ipywidgets.HTML`` holding markup from ``svg_charts``.

The markup is the chart: no script and no module to load, so the chart
paints with the rest of the panel, comes back whole after a page reload (its
value is the widget's state), and weighs kilobytes in a saved notebook
(``svg_charts``' docstring says why the panel no longer uses plotly).
"""

from __future__ import annotations

import ipywidgets as widgets


class LiveChart:
    """One chart: ``show(markup)`` replaces what it shows (sent only when it changed)."""

    def __init__(self, dom_class: str, placeholder: str = ""):
        # No margin: the HTML widget's default 2 px each side would overflow a 100 % width.
        self.widget = widgets.HTML(placeholder, layout=widgets.Layout(width="100%", margin="0"))
        self.widget.add_class("lazycell-chart")
        self.widget.add_class(dom_class)

    @property
    def markup(self) -> str:
        """What the chart shows now."""
        return self.widget.value

    def show(self, markup: str) -> None:
        self.widget.value = markup  # ipywidgets sends nothing when the value is the same
