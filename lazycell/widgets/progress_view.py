"""Task progress: an overall bar and one bar per task group, drawn from a ComputeState.

::

    summary line   ✔ 10,001 tasks in 1.24 s · threads · 2 workers
    all tasks      [##########################]  10,001 / 10,001
    inc            [##########################]  10,000 / 10,000
    total          [##########################]       1 / 1

A group's bar turns red once one of its tasks erred; the "all tasks" bar
counts what finished and stays out of red (the failing group's row and the
summary line say what failed). Only the first
``MAX_GROUP_ROWS`` groups get a row (dask graphs can have hundreds); the
rest are summed in one "other groups" row.
"""

from __future__ import annotations

import ipywidgets as widgets

from lazycell.diagnostics.compute_state import (
    ComputeState,
    GroupProgress,
    LabelledGroup,
    format_seconds,
    groups_by_label,
)
from lazycell.widgets.rows import BarNamedRow, reuse_rows

MAX_GROUP_ROWS = 12
# Group rows built with the panel (see rows.py): most graphs have one or two groups.
SPARE_GROUP_ROWS = 2
NAME_WIDTH = "150px"
OTHER_GROUPS = "other groups"


def progress_text(done: int, total: int, running: int, erred: int) -> str:
    """``"7 / 10 · 2 running · 1 erred"`` (parts that are zero left out)."""
    text = f"{done:,} / {total:,}"
    if running:
        text += f" · {running:,} running"
    if erred:
        text += f" · {erred:,} erred"
    return text


def timing_text(state: ComputeState) -> str:
    """``"elapsed 3.20 s · about 1.60 s left"``, or the final summary once finished."""
    if state.finished:
        return state.summary()
    text = f"running · elapsed {format_seconds(state.elapsed())}"
    eta = state.eta()
    if eta is not None:
        text += f" · about {format_seconds(eta)} left"
    return text


class ProgressRow(BarNamedRow):
    """Name, bar and counts of one group (or of all tasks)."""

    def __init__(self, name: str, dom_class: str):
        self.bar = widgets.IntProgress(
            value=0,
            min=0,
            max=1,
            description=name,
            style={"description_width": NAME_WIDTH},
            layout=widgets.Layout(width="65%"),
        )
        self.bar.add_class(dom_class)
        self.counts = widgets.Label()
        self.widget = widgets.HBox([self.bar, self.counts])

    def show(self, done: int, total: int, running: int, erred: int, red_on_error=True) -> None:
        """Draw the counts; ``red_on_error=False`` keeps the bar's colour to what finished."""
        with self.bar.hold_sync():
            self.bar.max = max(total, 1)
            self.bar.value = min(done, self.bar.max)
            failed = erred and red_on_error
            self.bar.bar_style = "danger" if failed else ("success" if done >= total else "")
        self.counts.value = progress_text(done, total, running, erred)


class ProgressView:
    """The progress tab: a function of :class:`ComputeState` (``show``)."""

    def __init__(self):
        self.timing = widgets.Label()
        self.timing.add_class("lazycell-timing")
        self.overall = ProgressRow("all tasks", "lazycell-overall-bar")
        self.rows: dict[str, ProgressRow] = {}
        self._spare_rows = [self._new_row("") for _ in range(SPARE_GROUP_ROWS)]
        self.group_box = widgets.VBox()
        self.widget = widgets.VBox([self.timing, self.overall.widget, self.group_box])

    def show(self, state: ComputeState) -> None:
        self.timing.value = timing_text(state)
        self.overall.show(state.done, state.n_tasks, state.running, state.erred, red_on_error=False)
        shown = shown_groups(state.groups)
        if list(shown) != list(self.rows):
            self._set_rows(list(shown))
        for label, labelled in shown.items():
            group = labelled.progress
            row = self.rows[label]
            row.show(group.done, group.total, group.running, group.erred)
            row.bar.tooltip = labelled.tooltip

    def spare_rows(self) -> list[widgets.Widget]:
        """The rows built but not shown (to close them with the panel)."""
        return [row.widget for row in self._spare_rows]

    def _set_rows(self, names: list[str]) -> None:
        self.rows = reuse_rows(self.rows, names, self._spare_rows, self._new_row)
        self.group_box.children = [row.widget for row in self.rows.values()]

    @staticmethod
    def _new_row(name: str) -> ProgressRow:
        return ProgressRow(name, "lazycell-group-bar")


def shown_groups(groups: dict[str, GroupProgress]) -> dict[str, LabelledGroup]:
    """The rows: ``{label: LabelledGroup}`` of the groups by dask's name for them
    (:func:`~lazycell.diagnostics.compute_state.group_label`), the first ones,
    and the rest summed in one."""
    labelled = groups_by_label(groups)
    labels = list(labelled)
    if len(labels) <= MAX_GROUP_ROWS:
        return labelled
    shown = {label: labelled[label] for label in labels[: MAX_GROUP_ROWS - 1]}
    rest = [labelled[label] for label in labels[MAX_GROUP_ROWS - 1 :]]
    shown[OTHER_GROUPS] = LabelledGroup(
        GroupProgress(
            total=sum(g.progress.total for g in rest),
            done=sum(g.progress.done for g in rest),
            running=sum(g.progress.running for g in rest),
            erred=sum(g.progress.erred for g in rest),
        ),
        tuple(name for g in rest for name in g.names),
    )
    return shown
