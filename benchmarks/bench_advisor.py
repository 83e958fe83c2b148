"""The scheduler advisor against the stopwatch: its pick and ``auto`` vs the fastest measured.

Each workload runs on every local scheduler (sync, threads, processes; pools
warm, the advisor listening to every run), best of ``--repeats`` runs each.
Then:

- the advisor's **pick** is its advice after a run on ``threads`` (the
  default: what a user sees first; the advice most rounds gave), and the
  table gives the measured time of the pick over the best (target: ≤ 1.10);
- ``scheduler="auto"`` runs the same workload in each round too, once the
  advisor has measured these functions, and the table gives its time over the
  best (target: ≤ 1.15, and never the slowest).

Rounds interleave the schedulers and auto; each one's time is its best round,
so a burst of other load on a shared machine does not decide the table.

Workloads (sized for a few seconds each on 2 cores):

- pure-Python: a CPU loop that holds the GIL;
- NumPy ufuncs: element-wise math on arrays made in the task (releases the GIL);
- sleep I/O: ``time.sleep`` tasks;
- tiny tasks: thousands of additions;
- large arrays: 24 MB arrays made, passed to a second task (NumPy math) and reduced;
- mixed: per chunk a sleep (I/O), a NumPy step and a pure-Python step, then a sum.

A last table measures what the advisor's sampling costs on the hot path: a
10,000-task compute on sync and on threads with the advisor listening,
sampling on (as shipped) and off (``SAMPLE_FIRST = 0``, ``SAMPLE_EVERY``
huge), in pairs of runs in alternating order; the median of the pairs' ratios.

Run::

    .venv/bin/python benchmarks/bench_advisor.py            # about 3-4 minutes on 2 cores
    .venv/bin/python benchmarks/bench_advisor.py --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from tables import print_table

import lazycell as lc
from lazycell.diagnostics import advisor
from lazycell.events import recording
from lazycell.schedulers import sync as sync_module
from lazycell.schedulers import threads as threads_module
from lazycell.schedulers.registry import last_auto_choice

SCHEDULERS = ("sync", "threads", "processes")


# ------------------------------------------------------------------ the task functions


def python_loop(i: int, n: int) -> int:
    total = 0
    for j in range(n):
        total += (j * j + i) % 7
    return total


def numpy_ufuncs(i: int, n: int) -> float:
    # In place, as benchmarks/bench_schedulers.py: NumPy releases the GIL inside each
    # ufunc, and no 8 MB temporary per call (whose page faults threads would share).
    a = np.linspace(0, 1 + i, 1_000_000)
    for _ in range(n):
        np.sin(a, out=a)
        np.sqrt(np.abs(a, out=a), out=a)
    return float(a[::1000].sum())


def sleep_io(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


def add_one(i: int) -> int:
    return i + 1


def make_array(i: int, mb: int) -> np.ndarray:
    return np.full(mb * 1_000_000 // 8, float(i))


def scale(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sin(a) ** 2 + 1.0)


def total_of(parts) -> float:
    return float(sum(float(np.asarray(p).sum()) if hasattr(p, "sum") else p for p in parts))


def fetch(i: int) -> np.ndarray:
    time.sleep(0.02)
    return np.arange(200_000, dtype=float) + i


def smooth(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    for _ in range(12):
        np.sin(a, out=a)
        np.sqrt(np.abs(a, out=a), out=a)
    return a


def crunch(a: np.ndarray, n: int) -> float:
    return python_loop(int(a[0]), n) + float(a[0])


# ------------------------------------------------------------------ the workloads


def calibrate_loop(target: float) -> int:
    """Iterations of python_loop that take about ``target`` CPU seconds here.

    CPU time (``thread_time``), so other load on the machine does not skew the size.
    """
    n = 20_000
    while True:
        start = time.thread_time()
        python_loop(0, n)
        took = time.thread_time() - start
        if took > 0.02:
            return max(int(n * target / took), 1000)
        n *= 2


def calibrate_ufuncs(target: float) -> int:
    start = time.thread_time()
    numpy_ufuncs(0, 4)
    took = (time.thread_time() - start) / 4
    return max(int(target / took), 1)


def workloads(quick: bool) -> dict:
    scale_n = 0.5 if quick else 1.0
    loop = calibrate_loop(0.06 * scale_n)
    ufunc = calibrate_ufuncs(0.06 * scale_n)
    d = lc.delayed

    def pure_python():
        return [d(python_loop)(i, loop) for i in range(16)]

    def numpy_work():
        return [d(numpy_ufuncs)(i, ufunc) for i in range(16)]

    def sleep_work():
        return [d(sleep_io)(i, 0.02) for i in range(int(48 * scale_n))]

    def tiny():
        return d(sum)([d(add_one)(i) for i in range(int(20_000 * scale_n))])

    def large_arrays():
        return d(total_of)([d(scale)(d(make_array)(i, 24)) for i in range(8)])

    def mixed():
        parts = [d(crunch)(d(smooth)(d(fetch)(i)), loop // 2) for i in range(12)]
        return d(sum)(parts)

    return {
        "pure-Python loop (16 × 60 ms)": pure_python,
        "NumPy ufuncs (16 × 60 ms)": numpy_work,
        "time.sleep I/O (48 × 20 ms)": sleep_work,
        "tiny tasks (20,000 additions)": tiny,
        "large arrays (8 × 24 MB, passed on)": large_arrays,
        "mixed (sleep, NumPy, Python per chunk)": mixed,
    }


def timed(build, scheduler: str) -> float:
    graph = build()
    start = time.perf_counter()
    lc.compute(graph, scheduler=scheduler)
    return time.perf_counter() - start


def run_workload(name: str, build, repeats: int) -> dict:
    """Each scheduler, then auto, once per round; a scheduler's time is its best round.

    Rounds interleave the schedulers, so a burst of other load on a shared
    machine hits them alike. The pick is the advice most threads runs gave.
    """
    for scheduler in SCHEDULERS:
        timed(build, scheduler)  # warm: pools, imports, the advisor's profile
    runs: dict[str, list[float]] = {s: [] for s in (*SCHEDULERS, "auto")}
    picks = []
    for _ in range(repeats):
        for scheduler in (*SCHEDULERS, "auto"):
            runs[scheduler].append(timed(build, scheduler))
            if scheduler == "threads":
                picks.append(advisor.advice_for_last_compute().pick)
    times = {s: min(values) for s, values in runs.items()}
    auto = times.pop("auto")
    choice = last_auto_choice()
    pick = max(picks, key=picks.count)  # the advice of most rounds
    best = min(times, key=times.__getitem__)
    worst = max(times.values())
    return {
        "workload": name,
        **{s: times[s] for s in SCHEDULERS},
        "best": best,
        "pick": pick,
        "picks": picks,
        "pick/best": times[pick] / times[best],
        "auto": auto,
        "auto picked": choice.scheduler if choice else "?",
        "auto/best": auto / times[best],
        # the same scheduler run as itself: what is left is noise and the choosing
        "auto/its pick": auto / times[choice.scheduler] if choice else float("nan"),
        "auto worst": auto >= worst and times[best] < worst * 0.9,
    }


# ------------------------------------------------------------------ the sampling cost


def set_sampling(on: bool) -> None:
    first, every = (recording.SAMPLE_FIRST, recording.SAMPLE_EVERY) if on else (0, 1 << 40)
    for module in (threads_module, sync_module):
        module.SAMPLE_FIRST, module.SAMPLE_EVERY = first, every


def sampling_cost(rounds: int) -> list[list]:
    """Paired runs, sampling off and on in alternating order; the median of their ratios."""
    d = lc.delayed
    rows = []
    for scheduler in ("sync", "threads"):
        ratios, on_runs, off_runs = [], [], []
        for index in range(rounds):
            result = {}
            for on in (True, False) if index % 2 else (False, True):
                set_sampling(on)
                graph = d(sum)([d(add_one)(i) for i in range(10_000)])
                start = time.perf_counter()
                lc.compute(graph, scheduler=scheduler)
                result[on] = (time.perf_counter() - start) / 10_001 * 1e6
            ratios.append(result[True] / result[False])
            on_runs.append(result[True])
            off_runs.append(result[False])
        set_sampling(True)
        low, _, high = statistics.quantiles(ratios, n=4)
        rows.append(
            [
                f"10,001 tiny tasks, {scheduler}, advisor listening",
                f"{statistics.median(off_runs):.2f}",
                f"{statistics.median(on_runs):.2f}",
                f"{statistics.median(ratios):.3f} ({low:.3f}–{high:.3f})",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    advisor.ADVISOR.start()  # measure every compute of the run
    lc.compute(lc.delayed(add_one)(1), scheduler="processes")  # the pools start warm
    print(f"cores: {advisor.core_count()}, load average: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for name, build in workloads(args.quick).items():
        row = run_workload(name, build, args.repeats)
        rows.append(row)
        print(f"  {name}: {row}", file=sys.stderr, flush=True)
    print_table(
        [
            "workload",
            "sync",
            "threads",
            "processes",
            "advisor's pick (from threads)",
            "measured best",
            "pick / best",
            "auto",
            "auto picked",
            "auto / best",
            "auto / its pick run as itself",
        ],
        [
            [
                r["workload"],
                *(f"{r[s]:.2f} s" for s in SCHEDULERS),
                r["pick"],
                r["best"],
                f"{r['pick/best']:.2f}",
                f"{r['auto']:.2f} s",
                r["auto picked"],
                f"{r['auto/best']:.2f}" + (" (slowest!)" if r["auto worst"] else ""),
                f"{r['auto/its pick']:.2f}",
            ]
            for r in rows
        ],
    )
    ok_pick = all(r["pick/best"] <= 1.10 for r in rows)
    ok_auto = all(r["auto/best"] <= 1.15 and not r["auto worst"] for r in rows)
    print(f"pick within 10 % of the best on every workload: {'yes' if ok_pick else 'NO'}")
    print(f"auto within 15 % of the best and never the slowest: {'yes' if ok_auto else 'NO'}")
    print()
    print_table(
        [
            "hot path",
            "µs/task, sampling off",
            "µs/task, sampling on",
            "on / off, median of paired runs (quartiles)",
        ],
        sampling_cost(11 if args.quick else 41),
    )


if __name__ == "__main__":
    main()
