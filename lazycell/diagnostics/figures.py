"""Plotly figures of a compute: task stream, progress over time, resources.

Plain functions of a :class:`ComputeState` (and resource samples) returning
plotly traces as plain dicts (no validation: building them stays cheap at a
few Hz); the performance report writes them to HTML and the cluster's
dashboard draws its charts with these layouts. The notebook panel draws its
own small SVG charts (``lazycell.widgets.svg_charts``) with the same colours
(``PALETTE``, ``group_colours``) and the same thinning (``thinned_bars``).

This module imports plotly only inside the functions that build plotly
objects, so the panel can take the colours without loading plotly.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from lazycell.diagnostics.compute_state import ComputeState, TaskBar
from lazycell.diagnostics.resources import ResourceSample

if TYPE_CHECKING:
    import plotly.graph_objects as go

ERRED_COLOUR = "#d62728"
CHART_HEIGHT = 260
# plotly's qualitative "Plotly" palette, written out so using it loads no plotly.
PALETTE = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)


def group_colours(group_names) -> dict[str, str]:
    """A stable colour per task group, in the order the groups were announced."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(group_names)}


def thinned_bars(bars: list[TaskBar], max_bars: int | None) -> list[TaskBar]:
    """At most ``max_bars`` of ``bars`` (every k-th), spread over the whole compute."""
    if max_bars is not None and len(bars) > max_bars:
        return bars[:: -(-len(bars) // max_bars)]
    return bars


def task_stream_traces(state: ComputeState, max_bars: int | None = None) -> list[dict]:
    """One horizontal-bar trace per group: a bar per task, a row per worker; erred in red.

    ``max_bars`` thins further (every k-th bar) for a live chart.
    """
    bars = thinned_bars(state.task_stream, max_bars)
    by_group: dict[str, list[TaskBar]] = {}
    for bar in bars:
        by_group.setdefault("erred" if bar.erred else bar.group, []).append(bar)
    colours = group_colours(state.groups)
    colours["erred"] = ERRED_COLOUR
    return [
        {
            "type": "bar",
            "name": group,
            "orientation": "h",
            "y": [bar.worker for bar in group_bars],
            "base": [bar.start for bar in group_bars],
            "x": [max(bar.stop - bar.start, 1e-6) for bar in group_bars],
            "marker": {"color": colours.get(group)},
            "hovertemplate": f"{group}<br>%{{base:.3f}} s + %{{x:.4f}} s<extra>%{{y}}</extra>",
        }
        for group, group_bars in by_group.items()
    ]


def progress_trace(state: ComputeState) -> dict:
    """Tasks done against seconds since the start."""
    seconds, done = zip(*state.progress_timeline) if state.progress_timeline else ((), ())
    return {
        "type": "scatter",
        "x": list(seconds),
        "y": list(done),
        "mode": "lines",
        "name": "tasks done",
    }


def resource_traces(samples: list[ResourceSample], origin: float) -> list[dict]:
    """CPU % (left axis) and memory in MB (right axis), seconds since ``origin``."""
    seconds = [sample.time - origin for sample in samples]
    return [
        {
            "type": "scatter",
            "x": seconds,
            "y": [s.cpu_percent for s in samples],
            "name": "CPU %",
            "mode": "lines",
        },
        {
            "type": "scatter",
            "x": seconds,
            "y": [s.rss / 1e6 for s in samples],
            "name": "memory MB",
            "mode": "lines",
            "yaxis": "y2",
        },
    ]


@cache
def chart_template() -> go.layout.Template:
    """plotly's default template is large, and every figure copies and checks it
    (about 25 ms a figure): this small one keeps its look."""
    import plotly.graph_objects as go

    return go.layout.Template(
        layout={
            "colorway": PALETTE,
            "font": {"color": "#2a3f5f"},
            "paper_bgcolor": "white",
            "plot_bgcolor": "#E5ECF6",
            "hovermode": "closest",
            "xaxis": {"gridcolor": "white", "zerolinecolor": "white", "automargin": True},
            "yaxis": {"gridcolor": "white", "zerolinecolor": "white", "automargin": True},
        }
    )


def base_layout(title: str, **axes) -> go.Layout:
    import plotly.graph_objects as go

    return go.Layout(
        template=chart_template(),
        title={"text": title, "font": {"size": 13}},
        height=CHART_HEIGHT,
        margin={"l": 60, "r": 60, "t": 36, "b": 36},
        legend={"orientation": "h", "y": -0.25},
        **axes,
    )


def task_stream_layout() -> go.Layout:
    return base_layout(
        "Task stream",
        barmode="overlay",
        xaxis={"title": "seconds"},
        yaxis={"type": "category", "categoryorder": "category ascending"},
    )


def progress_layout() -> go.Layout:
    return base_layout("Progress", xaxis={"title": "seconds"}, yaxis={"title": "tasks done"})


def resource_layout() -> go.Layout:
    return base_layout(
        "Resources (kernel + child processes)",
        xaxis={"title": "seconds"},
        yaxis={"title": "CPU %", "rangemode": "tozero"},
        yaxis2={"title": "memory MB", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )


def task_stream_figure(state: ComputeState) -> go.Figure:
    import plotly.graph_objects as go

    return go.Figure(task_stream_traces(state), task_stream_layout())


def progress_figure(state: ComputeState) -> go.Figure:
    import plotly.graph_objects as go

    return go.Figure([progress_trace(state)], progress_layout())


def resource_figure(samples: list[ResourceSample], origin: float) -> go.Figure:
    import plotly.graph_objects as go

    return go.Figure(resource_traces(samples, origin), resource_layout())
