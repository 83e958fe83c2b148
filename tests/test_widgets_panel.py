"""ComputePanel built in a plain process (ipywidgets need no kernel): widget state."""

import json
import math
import re
import subprocess
import sys
import time

import pytest

import lazycell as lc
from lazycell.widgets import choose_progress_display
from lazycell.widgets.panel import LIVE_TASK_STREAM_BARS, ComputePanel


def inc(x):
    return x + 1


def nap(x):
    time.sleep(0.02)
    return x


def fail_on_two(x):
    if x == 2:
        raise ValueError("two")
    return x


def tree(n=10):
    return lc.delayed(sum, name="total")([lc.delayed(inc, name="leaf")(i) for i in range(n)])


def run_in_panel(compute, **kwargs) -> ComputePanel:
    with ComputePanel(display=False, **kwargs) as panel:
        compute()
    return panel


def test_bars_show_the_finished_totals_per_group(scheduler):
    panel = run_in_panel(lambda: tree().compute(scheduler=scheduler))
    overall = panel.progress.overall.bar
    assert (overall.value, overall.max) == (11, 11)
    rows = {name: (row.bar.value, row.bar.max) for name, row in panel.progress.rows.items()}
    assert rows == {"leaf": (10, 10), "total": (1, 1)}
    assert panel.progress.rows["leaf"].counts.value == "10 / 10"


def test_one_panel_over_computes_with_other_groups_names_each_row_after_its_group():
    # Rows are reused and renamed between computes (and some built ahead): what
    # shows must be exactly the latest compute's groups, in order, with its counts.
    def shown(panel):
        box = [child.children[0] for child in panel.progress.group_box.children]
        return [(bar.description, bar.value, bar.max) for bar in box]

    five_groups = [lc.delayed(inc, name=f"g{i}")(i) for i in range(4)]
    with ComputePanel(display=False) as panel:
        tree(3).compute(scheduler="threads")
        assert shown(panel) == [("leaf", 3, 3), ("total", 1, 1)]
        lc.delayed(sum, name="sum5")(five_groups).compute(scheduler="threads")
        assert shown(panel) == [(f"g{i}", 1, 1) for i in range(4)] + [("sum5", 1, 1)]
        tree(2).compute(scheduler="sync")
        assert shown(panel) == [("leaf", 2, 2), ("total", 1, 1)]
    assert list(panel.progress.rows) == ["leaf", "total"]


def test_erred_group_bar_turns_red_and_counts_the_failure():
    parts = [lc.delayed(fail_on_two, name="check")(i) for i in range(4)]
    with ComputePanel(display=False) as panel:
        with pytest.raises(ValueError):
            lc.delayed(sum, name="total")(parts).compute(scheduler="sync")
    check = panel.progress.rows["check"]
    assert check.bar.bar_style == "danger"
    assert check.counts.value.endswith("1 erred")
    assert panel.progress.timing.value.startswith(
        "✖ 1 of 5 tasks failed (check) · 2 done · 2 not run"
    )
    # What finished is not what failed: the overall bar stays out of red.
    assert panel.progress.overall.bar.bar_style != "danger"
    assert panel.progress.rows["total"].bar.bar_style != "danger"


def test_summary_line_is_kept_at_the_end():
    panel = run_in_panel(lambda: tree().compute(scheduler="threads", num_workers=2))
    assert panel.progress.timing.value == panel.summary()
    assert panel.summary().startswith("✔ 11 tasks in ")
    assert panel.summary().endswith("threads · 2 workers")


def test_memory_bars_are_the_kernel_for_threads_and_each_pool_process_for_processes():
    threads = run_in_panel(lambda: tree().compute(scheduler="threads", num_workers=2))
    assert list(threads.memory.rows) == ["kernel"]
    processes = run_in_panel(lambda: tree().compute(scheduler="processes", num_workers=2))
    assert list(processes.memory.rows) == ["kernel", "process-0", "process-1"]
    for row in processes.memory.rows.values():
        assert 0 < row.bar.value < 1 and row.bar.bar_style == "success"
        assert " / " in row.text.value


def test_one_panel_over_schedulers_shows_each_computes_own_memory_bars():
    def shown(panel):
        return [box.children[0].description for box in panel.memory.widget.children]

    with ComputePanel(display=False) as panel:
        tree().compute(scheduler="processes", num_workers=2)
        assert shown(panel) == ["kernel", "process-0", "process-1"]
        tree().compute(scheduler="threads")
        assert shown(panel) == ["kernel"]
        tree().compute(scheduler="processes", num_workers=3)
        assert shown(panel) == ["kernel", "process-0", "process-1", "process-2"]
    for row in panel.memory.rows.values():
        assert 0 < row.bar.value < 1 and " / " in row.text.value


def rects(markup: str) -> int:
    """How many task bars a task-stream chart draws."""
    return markup.count("<rect ")


def test_task_stream_chart_has_a_bar_per_task_and_a_legend_entry_per_group():
    panel = run_in_panel(lambda: tree().compute(scheduler="threads"))
    markup = panel.task_stream.markup
    assert rects(markup) == 11
    assert ">leaf</span>" in markup and ">total</span>" in markup


def test_resources_chart_draws_cpu_and_memory_lines_over_a_sampled_compute():
    panel = run_in_panel(
        lambda: lc.compute([lc.delayed(nap)(i) for i in range(30)], scheduler="threads"),
        resource_interval=0.05,
    )
    lines = re.findall(
        r'<polyline class="lazycell-series" points="([^"]*)"', panel.resources.markup
    )
    assert len(lines) == 2  # CPU and memory
    assert all(len(points.split()) >= 3 for points in lines)


def test_a_compute_too_short_to_sample_says_so_instead_of_bare_axes():
    panel = run_in_panel(lambda: tree().compute(scheduler="sync"), resource_interval=5.0)
    markup = panel.resources.markup
    assert "Too short to sample" in markup and "sampled every 5.00 s" in markup
    assert "<polyline" not in markup


def test_erred_tasks_are_drawn_in_the_themes_error_colour():
    parts = [lc.delayed(fail_on_two, name="check")(i) for i in range(4)]
    with ComputePanel(display=False) as panel:
        with pytest.raises(ValueError):
            lc.delayed(sum, name="total")(parts).compute(scheduler="sync")
    markup = panel.task_stream.markup
    erred = re.search(
        r'<g class="lazycell-bars" style="fill:(var\(--jp-error-color1[^;]*);', markup
    )
    assert erred is not None
    assert ">erred</span>" in markup


def test_charts_take_their_colours_from_the_theme_and_their_width_from_the_cell():
    panel = run_in_panel(
        lambda: lc.compute([lc.delayed(nap)(i) for i in range(20)], scheduler="threads"),
        resource_interval=0.05,
    )
    for markup in (panel.resources.markup, panel.task_stream.markup):
        # Text, grid and axes follow JupyterLab's theme variables (fallbacks elsewhere)...
        assert "fill:var(--jp-ui-font-color2" in markup and "stroke:var(--jp-border-color" in markup
        # ...and nothing has a fixed width but the axis-label columns: the plot takes the rest.
        assert 'class="lazycell-plot" width="100%"' in markup
        widths = re.findall(r'<svg width="([\d.]+)"', markup)
        assert widths and all(float(w) <= 150 for w in widths)
        xs = re.findall(r'<rect x="([^"]+)"', markup)
        assert all(x.endswith("%") for x in xs)


def widget_tree(root) -> list:
    """Every widget under ``root``, once each (children, layouts, styles)."""
    import ipywidgets

    seen, stack = {}, [root]
    while stack:
        widget = stack.pop()
        if widget.model_id in seen:
            continue
        seen[widget.model_id] = widget
        for name in widget.keys:
            value = getattr(widget, name, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in values if isinstance(v, ipywidgets.Widget))
    return list(seen.values())


def test_a_panels_widget_state_is_kilobytes_even_for_a_thousand_tasks():
    # What a front end saves with the notebook ("save widget state"): every model's
    # state. plotly's FigureWidgets put plotly.js (5 MB) in each of the two charts.
    panel = run_in_panel(
        lambda: lc.compute([lc.delayed(nap)(i) for i in range(1000)], scheduler="threads"),
    )
    state_bytes = sum(
        len(json.dumps(w.get_state(), default=str)) for w in widget_tree(panel.widget)
    )
    print(f"widget state of one panel after 1,000 tasks: {state_bytes / 1e3:.1f} kB")
    assert 0 < rects(panel.task_stream.markup) <= LIVE_TASK_STREAM_BARS
    assert state_bytes < 150_000


def test_the_panel_loads_no_plotly():
    code = """
import sys
import lazycell as lc
from lazycell.widgets.panel import LIVE_TASK_STREAM_BARS, ComputePanel

with ComputePanel(display=False):
    lc.delayed(sum)([lc.delayed(abs)(-i) for i in range(5)]).compute(scheduler="threads")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("plotly", "anywidget")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_outside_a_kernel_the_display_is_the_text_bar():
    display = choose_progress_display(None, minimum=0.5)
    assert isinstance(display, lc.diagnostics.ProgressBar) and display.minimum == 0.5


def test_live_outside_a_notebook_shows_the_text_bar(capsys):
    with lc.live() as display:
        tree().compute(scheduler="sync")
    assert isinstance(display, lc.diagnostics.ProgressBar)
    assert "11/11 tasks" in capsys.readouterr().out


def charts_drawn(panel: ComputePanel) -> list:
    """Spy on the panel's chart draws: (compute finished?, tasks done) of each."""
    drawn = []
    draw = panel._show_charts

    def spy(state):
        drawn.append((state.finished, state.done))
        draw(state)

    panel._show_charts = spy
    return drawn


def test_charts_are_redrawn_during_a_compute_longer_than_the_chart_interval():
    panel = ComputePanel(display=False, interval=0.05, chart_interval=0.1)
    drawn = charts_drawn(panel)
    with panel:
        lc.compute([lc.delayed(nap)(i) for i in range(60)], scheduler="threads", num_workers=2)
    live = [done for finished, done in drawn if not finished]
    assert live and 0 < live[0] < 60
    assert drawn[-1] == (True, 60)


def test_a_compute_shorter_than_the_chart_interval_gets_its_charts_at_the_end():
    panel = ComputePanel(display=False, interval=0.05, chart_interval=60)
    drawn = charts_drawn(panel)
    with panel:
        lc.compute([lc.delayed(nap)(i) for i in range(30)], scheduler="threads", num_workers=2)
    assert drawn == [(True, 30)]
    assert rects(panel.task_stream.markup) == 30


def test_the_panel_and_its_charts_work_without_numpy():
    # numpy is not a dependency of lazycell: the panel must not need it.
    code = """
import sys
sys.modules["numpy"] = None  # import numpy now raises ImportError
import lazycell as lc
from lazycell.widgets.panel import LIVE_TASK_STREAM_BARS, ComputePanel

panel = ComputePanel(display=False)
with panel:
    lc.delayed(sum)([lc.delayed(abs)(-i) for i in range(5)]).compute(scheduler="threads")
print(panel.task_stream.markup.count("<rect "), "numpy" in sys.modules and sys.modules["numpy"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "None"]


# -- the charts' markup, from hand-made bars


def test_task_stream_rows_are_workers_in_natural_order_with_long_names_cut_and_whole_in_a_tooltip():
    from lazycell.diagnostics.compute_state import TaskBar
    from lazycell.widgets.svg_charts import task_stream_chart

    long_name = "tcp://127.0.0.1:40123/a-very-long-worker-name-indeed"
    workers = ["thread-10", "thread-2", long_name]
    bars = [
        TaskBar(worker, 0.1 * i, 0.1 * i + 0.05, "g", False) for i, worker in enumerate(workers)
    ]
    markup = task_stream_chart(bars, ["g"], duration=0.5)
    labels = re.findall(r'text-anchor="end"><title>([^<]*)</title>([^<]*)</text>', markup)
    assert [full for full, _ in labels] == [long_name, "thread-2", "thread-10"]
    shown = dict(labels)
    assert shown["thread-2"] == "thread-2"
    assert shown[long_name].endswith("…") and len(shown[long_name]) < len(long_name)


def test_chart_text_is_escaped():
    from lazycell.diagnostics.compute_state import TaskBar
    from lazycell.widgets.svg_charts import task_stream_chart

    markup = task_stream_chart([TaskBar("<w>", 0.0, 1.0, "<b>x</b>", False)], ["<b>x</b>"], 1.0)
    assert "<b>x</b>" not in markup and "&lt;b&gt;x&lt;/b&gt;" in markup
    assert "<w>" not in markup


@pytest.mark.parametrize("duration", [0.004, 0.37, 1.0, 2.6, 75.0])
def test_time_axis_ticks_are_round_steps_from_zero_within_the_compute(duration):
    from lazycell.widgets.svg_charts import time_ticks

    ticks = time_ticks(duration)
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0 and ticks[-1] <= duration * (1 + 1e-9)
    assert 3 <= len(ticks) <= 7  # readable at 600 px
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))


def test_a_task_stream_of_many_workers_and_groups_stays_a_readable_size():
    from lazycell.diagnostics.compute_state import TaskBar
    from lazycell.widgets.svg_charts import MAX_LEGEND_ITEMS, task_stream_chart

    groups = [f"group-{i}" for i in range(40)]
    bars = [
        TaskBar(f"worker-{i % 100}", i / 400, i / 400 + 0.002, groups[i % 40], False)
        for i in range(400)
    ]
    markup = task_stream_chart(bars, groups, duration=1.0)
    heights = [float(h) for h in re.findall(r'<svg [^>]*height="([\d.]+)"', markup)]
    assert max(heights) < 450  # 100 rows shrink to fit, not 100 x 22 px
    legend = re.findall(r'vertical-align:-1px;background:[^"]*"></span>([^<]*)</span>', markup)
    assert legend == groups[:MAX_LEGEND_ITEMS]
    assert f"and {40 - MAX_LEGEND_ITEMS} more" in markup
    assert rects(markup) == 400
