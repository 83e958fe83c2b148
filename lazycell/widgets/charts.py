"""The panel's live plotly charts: resource timeline and task stream.

Each chart is a ``plotly.graph_objects.FigureWidget`` whose traces' data is
replaced, in one ``batch_update`` message, by that of the ones
``lazycell.diagnostics.figures`` draws for the report, so the live chart and
the report agree. plotly's FigureWidget is an anywidget; without the
``anywidget`` package a chart is a one-line note instead and the rest of the
panel still works.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

try:  # optional: plotly takes numpy arrays whole, lists item by item (both work)
    import numpy as np
except ImportError:
    np = None


def figure_widget_available() -> bool:
    try:
        go.FigureWidget()
    except ImportError:
        return False
    return True


DATA_PROPERTIES = ("x", "y", "base")


class LiveChart:
    """A FigureWidget (or a note, see module docstring) shown with ``show(traces)``."""

    def __init__(self, layout: go.Layout, dom_class: str):
        try:
            self.figure = go.FigureWidget(layout=layout)
            self.widget = self.figure
        except ImportError:
            self.figure = None
            self.widget = widgets.HTML(
                "<i>Charts need the <code>anywidget</code> package: "
                "<code>pip install anywidget</code>.</i>"
            )
        self.widget.add_class(dom_class)

    def show(self, traces: list[dict]) -> None:
        figure = self.figure
        if figure is None:
            return
        if np is not None:
            # As numpy arrays, plotly checks and copies the data whole, not item by item.
            traces = [
                {
                    name: np.asarray(value) if name in DATA_PROPERTIES else value
                    for name, value in t.items()
                }
                for t in traces
            ]
        if [t.name for t in figure.data] != [t["name"] for t in traces]:
            with figure.batch_update():
                figure.data = ()
                figure.add_traces(traces)
            return
        # Same traces as before: only their data changes. Assigning the arrays
        # alone is several times cheaper than validating whole new traces.
        with figure.batch_update():
            for old, new in zip(figure.data, traces):
                for name in DATA_PROPERTIES:
                    if name in new:
                        old[name] = new[name]
