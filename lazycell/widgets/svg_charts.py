"""The panel's charts as plain HTML + inline SVG: resources over time and the task stream.

::

    ComputeState + resource samples ──► resources_chart(...) / task_stream_chart(...)
                                         (a string of markup, no script)
                                    ──► LiveChart.show(markup): an ipywidgets.HTML's value

Why not plotly's FigureWidget (the HTML report keeps plotly):

- it ships plotly.js (about 5 MB) in each chart's widget state, so a panel
  sent 10 MB to the browser, the browser waited for it before painting, and
  a notebook saved with widget state grew by 10 MB per panel;
- after a page reload with the kernel alive its charts came back empty: a
  FigureWidget keeps only its first data in its synced state (later data goes
  through one-shot messages), and anywidget gives each model 2 s to load its
  module, which a few 5 MB modules loading at once miss
  (``[anywidget] Failed to initialize model.``).

Markup has nothing to load or initialise: a reload restores it as it was,
and a panel's charts weigh kilobytes. How the charts do without a script:

- Width: x positions are percentages of the plot's width, so a chart reflows
  with the cell (600 px to full width). A line's points sit in a viewBox
  stretched to the plot, drawn with a stroke that does not stretch.
- Theme: every colour but a task group's own is a JupyterLab ``--jp-*`` CSS
  variable (with a fallback outside JupyterLab), so the charts follow the
  light, dark and high-contrast themes, also when the theme changes after
  they were drawn.
- Styles are inline (no ``<style>`` element, no stylesheet), so the same
  markup reads alike wherever HTML is shown.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence

from lazycell.diagnostics.compute_state import TaskBar, format_seconds
from lazycell.diagnostics.figures import group_colours
from lazycell.diagnostics.resources import ResourceSample

# Colours from JupyterLab's theme, with fallbacks for other front ends.
TEXT = "var(--jp-ui-font-color1, #212121)"
MUTED = "var(--jp-ui-font-color2, #616161)"
GRID = "var(--jp-border-color2, #e0e0e0)"
AXIS = "var(--jp-border-color1, #bdbdbd)"
CPU_COLOUR = "var(--jp-brand-color1, #1976d2)"
MEMORY_COLOUR = "var(--jp-warn-color1, #f57c00)"
ERRED_COLOUR = "var(--jp-error-color1, #d32f2f)"
FONT = (
    "font-family:var(--jp-ui-font-family, system-ui, sans-serif);"
    "font-size:var(--jp-ui-font-size1, 13px);line-height:1.3"
)
TICK_FONT = "font-size:var(--jp-ui-font-size0, 11px)"

PLOT_HEIGHT = 150  # px, the resources chart's plot area
TICK_BAND = 18  # px below a plot for the x axis' labels
VIEWBOX_WIDTH = 1000  # a line's x runs over 0..VIEWBOX_WIDTH, stretched to the plot's width
MAX_ROW_PITCH = 22  # px per worker row in the task stream
MIN_ROW_PITCH = 4
STREAM_ROWS_HEIGHT = 260  # px: rows shrink to fit this once there are many workers
LABEL_CHAR_WIDTH = 6.5  # px, about, for sizing the worker-name column
MAX_LEGEND_ITEMS = 12


def chart(title: str, body: str, legend: Sequence[tuple[str, str]] = ()) -> str:
    """A chart's frame: title, body, and a legend of ``(colour, name)`` that wraps
    (the first ``MAX_LEGEND_ITEMS``; dask graphs can have hundreds of groups)."""
    items = "".join(
        f'<span style="white-space:nowrap"><span style="display:inline-block;width:10px;'
        f'height:10px;margin-right:4px;vertical-align:-1px;background:{colour}"></span>'
        f"{html.escape(name)}</span>"
        for colour, name in legend[:MAX_LEGEND_ITEMS]
    )
    if len(legend) > MAX_LEGEND_ITEMS:
        items += f"<span>and {len(legend) - MAX_LEGEND_ITEMS:,} more</span>"
    legend_row = (
        f'<div style="display:flex;flex-wrap:wrap;gap:2px 14px;margin-top:4px;color:{MUTED}">'
        f"{items}</div>"
        if items
        else ""
    )
    return (
        f'<div class="lazycell-svg-chart" style="{FONT};color:{TEXT};width:100%;'
        f'box-sizing:border-box;padding:4px 16px 4px 0">'
        f'<div style="font-weight:600;margin-bottom:6px">{title}</div>{body}{legend_row}</div>'
    )


def note(title: str, text: str) -> str:
    """A chart with a sentence instead of axes (nothing to draw, or not yet)."""
    body = f'<div class="lazycell-chart-note" style="padding:18px 0;color:{MUTED}">{text}</div>'
    return chart(title, body)


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) cutting ``span`` in about ``count``."""
    raw = span / count if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)


def time_ticks(duration: float) -> list[float]:
    step = nice_step(duration, 5)
    return [i * step for i in range(int(duration / step + 1e-9) + 1)]


def seconds_label(value: float) -> str:
    return f"{round(value, 6):g} s"  # 0.25 s, 1 s, 1.5 s; rounding drops float noise


def percent(value: float, span: float) -> str:
    """``value`` as a percentage of ``span``, for an SVG x position or width."""
    return f"{100 * min(max(value / span, 0.0), 1.0):.2f}%"


def x_axis(duration: float, plot_height: float) -> str:
    """Vertical grid lines and labels at round seconds, and the axis line."""
    ticks = time_ticks(duration)
    lines, labels = [], []
    for tick in ticks:
        x = percent(tick, duration)
        lines.append(f'<line x1="{x}" x2="{x}" y1="0" y2="{plot_height}"/>')
        anchor = "start" if tick == 0 else "middle"
        labels.append(
            f'<text x="{x}" y="{plot_height + 13}" text-anchor="{anchor}">'
            f"{seconds_label(tick)}</text>"
        )
    return (
        f'<g style="stroke:{GRID};stroke-width:1">{"".join(lines)}</g>'
        f'<line x1="0" x2="100%" y1="{plot_height}" y2="{plot_height}" '
        f'style="stroke:{AXIS};stroke-width:1"/>'
        f'<g style="fill:{MUTED};{TICK_FONT}">{"".join(labels)}</g>'
    )


def plot_row(
    left: str, left_width: float, plot: str, height: float, right: str = "", right_width: float = 0
) -> str:
    """The y-axis labels, the plot (taking the rest of the width), and a right axis."""
    side = 'style="flex:none;overflow:visible"'
    parts = [f'<svg width="{left_width}" height="{height}" {side}>{left}</svg>']
    parts.append(
        f'<svg class="lazycell-plot" width="100%" height="{height}" '
        f'style="flex:1 1 0;min-width:0;overflow:visible">{plot}</svg>'
    )
    if right:
        parts.append(f'<svg width="{right_width}" height="{height}" {side}>{right}</svg>')
    return f'<div style="display:flex;align-items:flex-start">{"".join(parts)}</div>'


# -- resources over time


RESOURCES_TITLE = (
    'Resources <span style="font-weight:400;color:{muted}">(kernel + child processes)</span>'
)


def resources_chart(
    samples: Sequence[ResourceSample], origin: float, duration: float, interval: float
) -> str:
    """CPU % (left axis) and memory (right axis) of the kernel and its children over
    ``0..duration`` seconds since ``origin``; a sentence instead when the compute is
    shorter than the ``interval`` between samples."""
    title = RESOURCES_TITLE.format(muted=MUTED)
    points = [(s.time - origin, s.cpu_percent, s.rss / 1e6) for s in samples]
    if duration < interval or len(points) < 2:
        return note(
            title,
            f"Too short to sample: the compute took {format_seconds(duration)}; CPU and "
            f"memory are sampled every {format_seconds(interval)}.",
        )
    # A sample's CPU % is its process time since the sample before over the wall time
    # between them: a step over that span. Its memory is what it found: a point.
    times = [t for t, _, _ in points]
    cpu = [(t, c) for (_, c, _), t0, t1 in zip(points[1:], times, times[1:]) for t in (t0, t1)]
    memory = [(t, m) for t, _, m in points]
    cpu_step = nice_step(max(max(c for _, c in cpu), 100.0), 4)
    memory_step = nice_step(max(max(m for _, m in memory), 1.0), 4)
    height = PLOT_HEIGHT

    def line(values: list[tuple[float, float]], step: float, colour: str, what: str) -> str:
        top = 4 * step
        coordinates = " ".join(
            f"{VIEWBOX_WIDTH * t / duration:.1f},{height * (1 - v / top):.1f}" for t, v in values
        )
        return (
            f'<polyline class="lazycell-series" points="{coordinates}" style="fill:none;'
            f'stroke:{colour};stroke-width:2;vector-effect:non-scaling-stroke">'
            f"<title>{what}</title></polyline>"
        )

    rows = [height * i / 4 for i in range(5)]
    grid = "".join(f'<line x1="0" x2="100%" y1="{y:.1f}" y2="{y:.1f}"/>' for y in rows[:-1])
    plot = (
        f'<g style="stroke:{GRID};stroke-width:1">{grid}</g>'
        + x_axis(duration, height)
        + f'<svg width="100%" height="{height}" viewBox="0 0 {VIEWBOX_WIDTH} {height}" '
        f'preserveAspectRatio="none">'
        + line(cpu, cpu_step, CPU_COLOUR, f"CPU: peak {max(c for _, c in cpu):.0f} %")
        + line(
            memory, memory_step, MEMORY_COLOUR, f"memory: peak {max(m for _, m in memory):,.0f} MB"
        )
        + "</svg>"
    )

    def axis_labels(step: float, unit: str, x: float, anchor: str) -> str:
        labels = "".join(
            f'<text x="{x}" y="{min(max(height - i * height / 4 + 4, 9), height)}" '
            f'text-anchor="{anchor}">{i * step:,.4g}{unit}</text>'
            for i in range(5)
        )
        return f'<g style="fill:{MUTED};{TICK_FONT}">{labels}</g>'

    body = plot_row(
        axis_labels(cpu_step, " %", 44, "end"),
        50,
        plot,
        height + TICK_BAND,
        axis_labels(memory_step, " MB", 6, "start"),
        70,
    )
    return chart(title, body, [(CPU_COLOUR, "CPU % (left)"), (MEMORY_COLOUR, "memory (right)")])


# -- task stream


def natural_key(name: str) -> list:
    """``"thread-10"`` after ``"thread-9"``: digits compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def task_stream_chart(
    bars: Sequence[TaskBar], groups: Iterable[str], duration: float, running: bool = False
) -> str:
    """A bar per task over ``0..duration`` seconds, a row per worker, coloured by group
    (in the report's colours); erred tasks in the theme's error colour."""
    title = "Task stream"
    if not bars:
        waiting = "No task has finished yet." if running else "No tasks ran."
        return note(title, waiting)
    duration = max(duration, max(bar.stop for bar in bars), 1e-6)
    workers = sorted({bar.worker for bar in bars}, key=natural_key)
    row_of = {worker: i for i, worker in enumerate(workers)}
    pitch = max(MIN_ROW_PITCH, min(MAX_ROW_PITCH, STREAM_ROWS_HEIGHT / len(workers)))
    bar_height = max(pitch * 0.75, MIN_ROW_PITCH - 1)
    height = pitch * len(workers) + 2
    colours = group_colours(groups)

    by_colour: dict[str, list[str]] = {}
    legend: dict[str, str] = {}
    for bar in bars:
        name = "erred" if bar.erred else bar.group
        colour = ERRED_COLOUR if bar.erred else colours.get(bar.group, MUTED)
        legend.setdefault(name, colour)
        y = row_of[bar.worker] * pitch + (pitch - bar_height) / 2 + 1
        took = max(bar.stop - bar.start, 0.0)
        by_colour.setdefault(colour, []).append(
            f'<rect x="{percent(bar.start, duration)}" y="{y:.1f}" '
            f'width="{percent(took, duration)}" height="{bar_height:.1f}">'
            f"<title>{html.escape(name)} on {html.escape(bar.worker)}: "
            f"{bar.start:.3f} s + {took:.4f} s</title></rect>"
        )
    # A stroke of the bar's own colour keeps the shortest tasks a pixel wide.
    marks = "".join(
        f'<g class="lazycell-bars" style="fill:{colour};stroke:{colour};stroke-width:0.5">'
        f"{''.join(rects)}</g>"
        for colour, rects in by_colour.items()
    )
    plot = x_axis(duration, height) + marks

    longest = max(len(worker) for worker in workers)
    label_width = min(max(longest * LABEL_CHAR_WIDTH + 10, 40), 150)
    fits = int((label_width - 10) / LABEL_CHAR_WIDTH)
    every = max(1, math.ceil(12 / pitch))  # a label needs about 12 px of height
    labels = "".join(
        f'<text x="{label_width - 6}" y="{i * pitch + pitch / 2 + 5:.1f}" text-anchor="end">'
        f"<title>{html.escape(worker)}</title>"
        f"{html.escape(worker if len(worker) <= fits else worker[: fits - 1] + '…')}</text>"
        for i, worker in enumerate(workers)
        if i % every == 0
    )
    left = f'<g style="fill:{MUTED};{TICK_FONT}">{labels}</g>'
    body = plot_row(left, label_width, plot, height + TICK_BAND)
    return chart(title, body, [(colour, name) for name, colour in legend.items()])
