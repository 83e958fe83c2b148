"""Plotly figures of a compute: task stream, progress over time, resources.

Plain functions of a :class:`ComputeState` (and resource samples) returning
plotly traces as plain dicts (no validation: building them stays cheap at a
few Hz); the live panel copies them into its
``FigureWidget``s and the performance report writes them to HTML, so both
draw the same picture.
"""

from __future__ import annotations

import plotly.colors
import plotly.graph_objects as go

from lazycell.diagnostics.compute_state import ComputeState, TaskBar
from lazycell.diagnostics.resources import ResourceSample

ERRED_COLOUR = "#d62728"
CHART_HEIGHT = 260
PALETTE = plotly.colors.qualitative.Plotly


def group_colours(group_names) -> dict[str, str]:
    """A stable colour per task group, in the order the groups were announced."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(group_names)}


def task_stream_traces(state: ComputeState, max_bars: int | None = None) -> list[dict]:
    """One horizontal-bar trace per group: a bar per task, a row per worker; erred in red.

    ``max_bars`` thins further (every k-th bar) for a live chart.
    """
    bars = state.task_stream
    if max_bars is not None and len(bars) > max_bars:
        bars = bars[:: -(-len(bars) // max_bars)]
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


# plotly's default template is large, and every figure copies and checks it
# (about 25 ms a figure, paid by each panel in each cell): this small one keeps
# its look.
CHART_TEMPLATE = go.layout.Template(
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
    return go.Layout(
        template=CHART_TEMPLATE,
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
    return go.Figure(task_stream_traces(state), task_stream_layout())


def progress_figure(state: ComputeState) -> go.Figure:
    return go.Figure([progress_trace(state)], progress_layout())


def resource_figure(samples: list[ResourceSample], origin: float) -> go.Figure:
    return go.Figure(resource_traces(samples, origin), resource_layout())
