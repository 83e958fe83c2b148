"""The live panel's overhead on a 10,000-task threads compute, against no panel.

Three ways to run the same compute, interleaved run by run so noise from a
shared machine hits all alike:

- ``no panel``: nobody listens, so the schedulers record no events at all;
- ``event bus only``: a listener that drops every batch: the cost of the event
  stream itself (recording, the dispatcher thread), which any view pays;
- ``panel``: :class:`lazycell.widgets.ComputePanel` without a front end (the
  widgets are built in this plain process, as ipywidgets allows), so event
  folding, resource sampling, and every widget trait and chart update are
  paid, minus only the socket write a kernel would add.

Two workloads of 10,000 ``work(i)`` tasks summed by one task: ``empty``
(``x + 1``: pure scheduler cost, the worst case for any per-task overhead) and
``100 us`` (each task busy for about 100 microseconds, a small real task).
Each line prints the median wall time of the runs, its ratio to ``no panel``,
and the quartiles of the single runs as ratios to that same median (their
spread); the target from the spec is a median ratio of at most 1.05 for the
panel.

Where it stands (2026-11-26, 2 cores): with a ``gc.collect()`` before every
timed run (so a full collection owed to earlier runs is not charged to
whichever mode trips it), the median of 31 interleaved runs on ``100 us``
gives the panel 1.054 (single runs' quartiles 1.044-1.072) and the event
stream alone 1.069; medians of 11 ranged 1.03-1.08 over a dozen runs of the
same code. So the panel adds about 5 % and the 5 % target is not reliably
met: what remains is mostly the event stream itself (a raw listener that
does nothing costs 2-5 % in the same runs), and the run-to-run spread here
is as large as the distance to the target. ``empty`` is 1.5-1.9x (was 2.6x).

What changed today and why, measured:

- The garbage collector was the largest hidden cost. Every recorded tuple
  (two per task) was a new object it tracks, alive until the dispatcher read
  it: a compute triggered ~30 extra young collections, and so, every few
  computes, a full one, which walks the whole heap (about 100 ms in this
  process, with plotly and ipywidgets loaded). Pool threads now record into
  per-thread columns (``events.WorkerLane``: four list appends, no tuple),
  and the fold builds only the task-stream bars it keeps, choosing the stride
  from the task count up front. A panel compute now runs about as many
  collections as one without (15 against 14); a plain ``subscribe`` listener
  still gets 20,000 Event objects, which is why its line is above the panel's.
- Recording a task costs about 0.6 us of CPU instead of 0.8 us, and leaves
  nothing for the collector; the dispatcher's fold of 10,000 tasks about 3 ms
  instead of 16 ms (in isolation; columns folded with map / count / fsum in
  C); ``running`` counts come from each lane's current task, a snapshot, not
  from a start event per task.
- Resource samples found the kernel's children with psutil's
  ``children(recursive=True)``, which reads every process's stat file on the
  machine (1.4 ms per sample here); ``/proc/<pid>/task/*/children`` takes
  0.3 ms. ``total_memory()`` is read once. Live charts copy numpy arrays
  (plotly checks lists item by item: 4.8 -> 1.9 ms per redraw), and a
  compute's first live charts come ``chart_interval`` (2 s) into it, not at
  its first 0.2 s, so this 1.2 s compute draws them only at its end.

What is left, per compute of 10,000 tasks, CPU on the GIL the workers need
(``time.thread_time`` around each part, inside the benchmark): naming each
key's group when the compute starts about 6 ms (``events.group_keys``; keys
that all end in a token take a path of C loops), the panel's work on the
dispatcher 12 ms (fold ~4-5 ms, 3-4 renders ~1.5 ms each, the first one
building the group rows' widgets for 3 ms; 1-2 samples), recording ~6 ms,
and the dispatcher's six wake-ups, each a GIL hand-off from a busy worker.
A full collection still lands in some run now and then (as in any mode); it
costs ~8 % of that run.

Next steps: name groups from the task specs' functions instead of parsing
every key; record a task without building the lane's ``current`` tuple; the
~10,000 lists ``GraphRun`` builds per compute (they drive full collections in
every mode, panel or not); the text ProgressBar could ride on the raw stream
and the bus's wake-ups like the panel instead of its own ticker thread.

Run::

    .venv/bin/python benchmarks/bench_panel.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/bench_panel.py --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from contextlib import nullcontext

import lazycell as lc
from lazycell.widgets.panel import ComputePanel

N_TASKS = 10_000
TARGET_RATIO = 1.05


def empty(x):
    return x + 1


def busy_100us(x):
    deadline = time.perf_counter() + 100e-6
    while time.perf_counter() < deadline:
        pass
    return x + 1


def graph(work) -> lc.Delayed:
    leaves = [lc.delayed(work, name=work.__name__)(i) for i in range(N_TASKS)]
    return lc.delayed(sum, name="total")(leaves)


def no_panel():
    return nullcontext()


def bus_only():
    return lc.diagnostics.subscribe(lambda events: None)


def panel():
    return ComputePanel(display=False)


MODES = {"no panel": no_panel, "event bus only": bus_only, "panel": panel}


def time_modes(total: lc.Delayed, repeats: int) -> tuple[dict, dict]:
    """Per mode, each run's compute time and its view's set-up + close time, interleaved."""
    expected = total.compute(scheduler="threads")  # warm the pool
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    fixed: dict[str, list[float]] = {mode: [] for mode in MODES}
    for repeat in range(repeats):
        # Every other round backwards: no mode always runs right after another.
        order = list(MODES.items())[:: -1 if repeat % 2 else 1]
        for mode, make in order:
            set_up_start = time.perf_counter()
            view = make()  # a panel builds its widgets here: timed apart, per cell
            set_up = time.perf_counter() - set_up_start
            # Start each run with an empty collector, as timeit and pyperf do, so a
            # full collection owed to earlier runs is not charged to whichever mode
            # trips it; collections a run causes itself still count.
            gc.collect()
            with view:
                start = time.perf_counter()
                result = total.compute(scheduler="threads")
                stop = time.perf_counter()
            times[mode].append(stop - start)
            fixed[mode].append(set_up + time.perf_counter() - stop)
            assert result == expected, (mode, result, expected)
    return times, fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{N_TASKS:,}-task threads compute, {args.repeats} interleaved runs of each mode")
    print(
        f"{'workload':<10} {'mode':<16} {'median s':>9} {'ratio':>7} "
        f"{'paired, quartiles':>23} {'set-up+close':>13}"
    )
    for work, label in ((empty, "empty"), (busy_100us, "100 us")):
        times, fixed = time_modes(graph(work), args.repeats)
        base = times["no panel"]
        for mode, runs in times.items():
            median = statistics.median(runs)
            # Each run against the no-panel run of its own round: a shared machine's
            # slow spells then hit both sides of a ratio alike.
            paired = [run / base_run for run, base_run in zip(runs, base)]
            low, mid, high = (
                statistics.quantiles(paired, n=4, method="inclusive")
                if len(paired) > 1
                else (paired[0],) * 3
            )
            spread = f"{mid:.3f} ({low:.3f}-{high:.3f})"
            set_up = f"{statistics.median(fixed[mode]) * 1e3:.0f} ms"
            note = f"   (target <= {TARGET_RATIO})" if mode == "panel" else ""
            print(
                f"{label:<10} {mode:<16} {median:>9.3f} {median / statistics.median(base):>7.3f} "
                f"{spread:>23} {set_up:>13}{note}"
            )


if __name__ == "__main__":
    main()
