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
Each line prints the median wall time of the runs and the ratio to ``no
panel``; the target from the spec is a ratio of at most 1.05 for the panel.

Where it stands (2026-11-26, 2 cores, median of 11): on ``100 us`` the panel
adds about 6-7 %, the same as the event stream alone (a listener that drops
every batch); the 5 % target is not met yet. The panel itself now costs next
to nothing on top of the stream: it folds the bus's raw tuples (0.75 us per
event) and renders and samples on the bus's wake-ups instead of threads of
its own. What is left, per task, all Python on the GIL the worker threads
also need: recording two events on the hot path (about 1 us), naming each
key's group when the compute starts (about 0.9 us), the dispatcher's pass
over the tuples, and its wake-ups taking the GIL from busy workers. On
``empty`` tasks (about 6 us each) any per-task Python work of that size is
a large fraction; that case is shown as the worst case, not as the target.

Run::

    .venv/bin/python benchmarks/bench_panel.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/bench_panel.py --repeats 5
"""

from __future__ import annotations

import argparse
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


def time_modes(total: lc.Delayed, repeats: int) -> dict[str, list[float]]:
    expected = total.compute(scheduler="threads")  # warm the pool
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(repeats):
        for mode, make in MODES.items():
            with make():
                start = time.perf_counter()
                result = total.compute(scheduler="threads")
                times[mode].append(time.perf_counter() - start)
            assert result == expected, (mode, result, expected)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"{N_TASKS:,}-task threads compute, median of {args.repeats} runs each")
    print(f"{'workload':<10} {'mode':<16} {'median s':>9} {'ratio':>7}")
    for work, label in ((empty, "empty"), (busy_100us, "100 us")):
        times = time_modes(graph(work), args.repeats)
        base = statistics.median(times["no panel"])
        for mode, runs in times.items():
            median = statistics.median(runs)
            note = f"   (target <= {TARGET_RATIO})" if mode == "panel" else ""
            print(f"{label:<10} {mode:<16} {median:>9.3f} {median / base:>7.3f}{note}")


if __name__ == "__main__":
    main()
