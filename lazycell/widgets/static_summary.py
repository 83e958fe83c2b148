"""What a panel leaves in the notebook once its cell ends: a static summary.

::

    ComputePanel.__exit__ (the cell's thread, the computes over)
      tracker.states ──► static_bundle(states) ──► display_handle.update(data, metadata)
                                                   (replaces the live widget's output)

A live widget needs its kernel: saved, the notebook would show it on GitHub,
in nbviewer, in ``jupyter nbconvert --to html`` or in a notebook reopened
without the kernel as an empty box or "Loading widget...". So when the cell
ends, the panel's output becomes plain data every front end reads:

- ``text/html``: the summary line and a table of the task groups, each with
  a bar (no script, no style sheet: inline styles only, in colours that read
  on light and dark backgrounds; text inherits the page's colour). A group's
  full name is its row's tooltip.
- ``text/plain``: the summary line and one line per group.
- ``metadata["lazycell"]``: the numbers (:func:`summary_numbers`), for
  tools that read a saved notebook without a kernel (``nbformat``).

Why the bars are ``div``s with inline styles and not inline SVG: JupyterLab
sanitises the HTML of a notebook it did not run itself (reopened from disk,
untrusted) and drops ``<svg>`` whole, while it keeps ``style`` attributes;
``div`` bars show the same in nbconvert, nbviewer and VS Code.

One section per compute the panel saw (a cell may compute more than once),
oldest first; the metadata's top level is the latest compute, and
``computes`` lists them all.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from lazycell.diagnostics.compute_state import (
    ComputeState,
    GroupProgress,
    LabelledGroup,
    groups_by_label,
)

# The metadata's shape; bump when a field changes meaning.
METADATA_VERSION = 1
BAR_WIDTH = 160
BAR_HEIGHT = 12
# Mid-tone colours, readable on a white and a black page alike.
DONE_COLOUR = "#43a047"
ERRED_COLOUR = "#e53935"
PARTIAL_COLOUR = "#1e88e5"
# The bar's track: a grey that shows on white and on black.
TRACK_COLOUR = "rgba(128,128,128,0.25)"
NO_COMPUTE_TEXT = "lazycell: no compute ran in this cell"


def summary_numbers(state: ComputeState) -> dict:
    """One compute's numbers, as ``metadata["lazycell"]`` stores them (plain JSON data).

    ``{"status": "ok", "summary": "✔ 41 tasks in 0.05 s · threads · 2 workers",
    "scheduler": "threads", "workers": 2, "tasks": 41, "done": 41, "erred": 0,
    "not_run": 0, "duration": 0.05, "groups": {"leaf": {"total": 40, "done": 40,
    "erred": 0, "seconds": 0.01}, ...}, "tasks_per_worker": {...}}``. Groups
    are keyed by their full names; ``duration`` and ``seconds`` are seconds.
    """
    not_run = max(state.n_tasks - state.done - state.erred, 0)
    return {
        "status": state.status,
        "summary": state.summary(),
        "scheduler": state.scheduler,
        "workers": state.n_workers,
        "tasks": state.n_tasks,
        "done": state.done,
        "erred": state.erred,
        "not_run": not_run,
        "duration": round(state.elapsed(), 6),
        "groups": {
            name: {
                "total": group.total,
                "done": group.done,
                "erred": group.erred,
                "seconds": round(group.seconds, 6),
            }
            for name, group in state.groups.items()
        },
        "tasks_per_worker": dict(state.tasks_per_worker),
    }


def static_bundle(
    states: Iterable[ComputeState], hints: dict[int, str] | None = None
) -> tuple[dict, dict]:
    """``(data, metadata)`` of the static output for these computes (see module docstring).

    ``hints``: the scheduler advisor's hint line per compute id, shown under
    that compute's summary and kept in its numbers as ``hint``.
    """
    states = list(states)
    hints = hints or {}
    if not states:
        return (
            {"text/plain": NO_COMPUTE_TEXT, "text/html": f"<p>{html.escape(NO_COMPUTE_TEXT)}</p>"},
            {"lazycell": {"version": METADATA_VERSION, "computes": []}},
        )
    numbers = [summary_numbers(state) for state in states]
    for state, entry in zip(states, numbers):
        if state.compute_id in hints:
            entry["hint"] = hints[state.compute_id]
    metadata = {"version": METADATA_VERSION, **numbers[-1], "computes": numbers}
    data = {
        "text/plain": "\n".join(
            static_text(state) + hint_text(hints.get(state.compute_id)) for state in states
        ),
        "text/html": "".join(
            static_html(state) + hint_html(hints.get(state.compute_id)) for state in states
        ),
    }
    return data, {"lazycell": metadata}


def hint_text(hint: str | None) -> str:
    """The advisor's hint as the text summary's last line ('' without one)."""
    return f"\nhint: {hint}" if hint else ""


def hint_html(hint: str | None) -> str:
    """The advisor's hint under a compute's table ('' without one)."""
    if not hint:
        return ""
    return f'<div class="lazycell-hint" style="opacity:0.85">hint: {html.escape(hint)}</div>'


def static_text(state: ComputeState) -> str:
    """The summary line, then ``  name  done / total`` per group (``· n erred`` if any)."""
    rows = groups_by_label(state.groups)
    width = max((len(label) for label in rows), default=0)
    lines = [state.summary()]
    for label, row in rows.items():
        lines.append(f"  {label.ljust(width)}  {_counts_text(row.progress)}")
    return "\n".join(lines)


def static_html(state: ComputeState) -> str:
    """The summary line and a table of the groups with their bars; no script, inline styles only."""
    rows = "".join(_group_row(label, row) for label, row in groups_by_label(state.groups).items())
    overall = GroupProgress(total=state.n_tasks, done=state.done, erred=state.erred)
    total_row = _row("all tasks", "all tasks", overall, red_on_error=False, bold=True)
    return (
        '<div class="lazycell-static-summary" style="font-size:13px;line-height:1.5">'
        f'<div class="lazycell-static-summary-line">{html.escape(state.summary())}</div>'
        # color and font inherit explicitly: a page in quirks mode resets them in tables
        '<table style="border-collapse:collapse;margin:2px 0;color:inherit;font:inherit">'
        f"<tbody>{total_row}{rows}</tbody></table></div>"
    )


def _counts_text(group: GroupProgress) -> str:
    text = f"{group.done:,} / {group.total:,}"
    if group.erred:
        text += f" · {group.erred:,} erred"
    return text


def _group_row(label: str, row: LabelledGroup) -> str:
    return _row(label, row.tooltip, row.progress, red_on_error=True)


def _row(label: str, tooltip: str, group: GroupProgress, red_on_error: bool, bold=False) -> str:
    cell = 'style="padding:1px 8px 1px 0;text-align:left;white-space:nowrap"'
    counts = 'style="padding:1px 8px 1px 0;text-align:right;white-space:nowrap"'
    name = html.escape(label)
    if bold:
        name = f"<b>{name}</b>"
    return (
        f'<tr class="lazycell-static-group" title="{html.escape(tooltip)}">'
        f"<td {cell}>{name}</td>"
        f"<td {cell}>{_bar_html(group, red_on_error)}</td>"
        f"<td {counts}>{html.escape(_counts_text(group))}</td>"
        "</tr>"
    )


def _bar_html(group: GroupProgress, red_on_error: bool) -> str:
    """A progress bar: done (green, or blue while partial), erred (red) on a faint track.

    ``red_on_error=False`` (the "all tasks" bar) keeps the finished part green
    and shows the erred part red beside it, never the whole bar.
    """
    total = max(group.total, 1)
    done_width = BAR_WIDTH * min(group.done, total) / total
    erred_width = BAR_WIDTH * min(group.erred, total - min(group.done, total)) / total
    if group.erred and red_on_error:
        done_colour = ERRED_COLOUR
    elif group.done >= group.total:
        done_colour = DONE_COLOUR
    else:
        done_colour = PARTIAL_COLOUR
    part = f"flex:0 0 auto;height:{BAR_HEIGHT}px"
    return (
        f'<div class="lazycell-static-bar" role="img" '
        f'aria-label="{html.escape(_counts_text(group))}" '
        f'style="display:inline-flex;width:{BAR_WIDTH}px;height:{BAR_HEIGHT}px;'
        f"vertical-align:middle;overflow:hidden;border-radius:2px;"
        f'background-color:{TRACK_COLOUR}">'
        f'<div style="{part};width:{done_width:.1f}px;background-color:{done_colour}"></div>'
        f'<div style="{part};width:{erred_width:.1f}px;background-color:{ERRED_COLOUR}"></div>'
        "</div>"
    )
