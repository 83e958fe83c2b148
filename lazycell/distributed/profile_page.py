"""The HTML page of a profile (``client.profile(filename=...)``): one self-contained file.

Apart from ``profiler.py`` because it runs only in the kernel: the workers,
which import ``profiler.py`` to sample, never pay for importing plotly.
"""

from __future__ import annotations

import html
import json
import time

import plotly.graph_objects as go
import plotly.io
import plotly.offline

from lazycell.diagnostics.report import STYLE
from lazycell.distributed.profiler import call_tree, function_table, hidden_share, line_table

# -- the HTML page
MAX_TABLE_ROWS = 200
MAX_CHART_NODES = 3000


def profile_html(profile: dict, title: str = "lazycell profile") -> str:
    """One self-contained HTML page of a (merged) profile; plotly.js is embedded.

    The page holds the totals, an icicle chart of the call tree (click to
    zoom), a bar chart of the functions with the most time, the tables per
    function and per line, and the profile itself as JSON
    (``<script type="application/json" id="lazycell-profile-data">``).
    Every name, file and line from the profiled code is HTML-escaped.
    """
    functions = function_table(profile)
    lines = line_table(profile)
    if profile["samples"]:
        icicle = _figure_html(_icicle_figure(profile))
        bars = _figure_html(_top_functions_figure(functions))
    else:
        icicle = "<p>No samples: no task was running while the profiler sampled.</p>"
        bars = ""
    data = json.dumps(profile).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script>{plotly.offline.get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
{_totals_html(profile)}
<h2>Call tree</h2>
{icicle}
<h2>Time per function</h2>
{bars}
<p class="meta">{_shown(functions)}<i>own</i>: the function is the innermost frame;
<i>total</i>: it is anywhere on the stack. Sorted by own time.</p>
{_html_table(["function", "file", "line", *TIME_COLUMNS], _time_rows(functions))}
<h2>Time per line</h2>
<p class="meta">{_shown(lines)}<i>own</i>: on the line itself;
<i>total</i>: with the calls made from the line.</p>
{_html_table(["function", "file", "line", *TIME_COLUMNS], _time_rows(lines))}
<script type="application/json" id="lazycell-profile-data">{data}</script>
</body></html>
"""


TIME_COLUMNS = ["own s", "own samples", "own %", "total s", "samples", "total %"]


def _time_rows(table: list[dict]) -> list[tuple]:
    return [
        (
            r["function"],
            r["file"],
            r["line"],
            f"{r['own_seconds']:.3f}",
            r["own_samples"],
            f"{100 * r['own_share']:.1f}",
            f"{r['seconds']:.3f}",
            r["samples"],
            f"{100 * r['share']:.1f}",
        )
        for r in table[:MAX_TABLE_ROWS]
    ]


def _totals_html(profile: dict) -> str:
    def clock(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    workers = profile["workers"]
    totals = [
        ("workers", len(workers) or 1),
        ("samples", profile["samples"]),
        ("task thread seconds", f"{profile['seconds']:.3f}"),
        ("sampling interval", f"{1000 * profile['interval']:.1f} ms (measured mean)"),
        ("window", f"{clock(profile['start'])} to {clock(profile['stop'])}"),
        ("window seconds", f"{profile['stop'] - profile['start']:.1f}"),
        ("sampler's own time", f"{profile['sampler_seconds']:.3f} s"),
        # the tables and charts leave these frames out (profiler.py's docstring says why)
        ("only in lazycell or Python's stdlib (hidden)", f"{100 * hidden_share(profile):.1f} %"),
    ]
    per_worker = ""
    if workers:
        rows = [
            (name, w["samples"], f"{w['seconds']:.3f}", f"{1000 * w['interval']:.1f}")
            for name, w in sorted(workers.items())
        ]
        per_worker = _html_table(["worker", "samples", "seconds", "interval ms"], rows)
    return _html_table(["total", "value"], totals) + per_worker


def _shown(rows: list) -> str:
    if len(rows) > MAX_TABLE_ROWS:
        return f"The {MAX_TABLE_ROWS} with the most own time of {len(rows)}. "
    return ""


def _html_table(header: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure_html(figure: go.Figure) -> str:
    return plotly.io.to_html(figure, include_plotlyjs=False, full_html=False)


def _icicle_figure(profile: dict) -> go.Figure:
    # Per function, not per line: a flame-graph reader looks for functions.
    root = call_tree(profile, lines=False)
    ids, labels, parents, values, hover = [], [], [], [], []
    minimum = root["samples"] / MAX_CHART_NODES  # tiny nodes would only slow the chart
    pending = [(root, "")]
    while pending:
        node, parent = pending.pop()
        if node["samples"] < minimum:
            continue
        node_id = str(len(ids))
        ids.append(node_id)
        parents.append(parent)
        values.append(node["samples"])
        # plotly renders a subset of HTML in labels: escape, so names read as written.
        labels.append(html.escape(node["function"]))
        where = f"{node['file']}:{node['first_line']}" if node["file"] else "all task threads"
        share = node["samples"] / root["samples"]
        hover.append(
            f"{html.escape(where)}<br>{node['samples']} samples, "
            f"{node['seconds']:.3f} s, {100 * share:.1f}%"
        )
        pending.extend((child, node_id) for child in reversed(node["children"]))
    figure = go.Figure(
        go.Icicle(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            customdata=hover,
            hovertemplate="<b>%{label}</b><br>%{customdata}<extra></extra>",
            maxdepth=12,
            tiling={"orientation": "v"},
        )
    )
    figure.update_layout(title="Call tree (click a box to zoom)", height=600, margin=dict(t=40))
    return figure


def _top_functions_figure(functions: list[dict], top: int = 20) -> go.Figure:
    rows = functions[:top][::-1]  # plotly draws the first bar at the bottom
    figure = go.Figure(
        [
            go.Bar(
                name="total (with calls)",
                x=[r["seconds"] for r in rows],
                y=[html.escape(f"{r['function']} ({_short(r['file'])}:{r['line']})") for r in rows],
                orientation="h",
            ),
            go.Bar(
                name="own",
                x=[r["own_seconds"] for r in rows],
                y=[html.escape(f"{r['function']} ({_short(r['file'])}:{r['line']})") for r in rows],
                orientation="h",
            ),
        ]
    )
    figure.update_layout(
        title=f"Top {len(rows)} functions by own time",
        xaxis_title="seconds",
        barmode="group",
        height=max(300, 40 * len(rows)),
        margin=dict(l=10, t=40),
        yaxis=dict(automargin=True),
    )
    return figure


def _short(file: str) -> str:
    return file.rsplit("/", 1)[-1]
