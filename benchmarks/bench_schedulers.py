"""lazycell vs dask, same machine, same run: scheduler overhead, parallel speedup, peak memory.

What is measured (every number for lazycell has its dask counterpart beside it):

1. Per-task overhead, in microseconds per task (median of several runs), for three
   plain dask-style dict graphs given unchanged to both ``lazycell.get(dsk, key,
   scheduler=NAME)`` and dask's get-functions (``dask.local.get_sync``,
   ``dask.threaded.get``, ``dask.multiprocessing.get``):

   - tree:   10,000 ``inc(i)`` tasks summed by a tree of ``(sum, [keys])`` with fan-in 8;
   - chain:  ``x{i+1} = (inc, x{i})``, 10,000 long;
   - gather: 10,000 independent ``inc`` tasks and one ``(sum, [all keys])``.

   One untimed run of each (system, scheduler, graph) warms the pools; every run is
   checked against the known answer. Runs of lazycell and dask are interleaved, so
   noise from a shared machine hits both alike. The "sequential call floor" row is
   the cost of just calling the tree's functions in a precomputed order: no scheduler.

   dask's processes rows use ``dask.multiprocessing.get`` as ``scheduler="processes"``
   does: a fresh spawn pool per call (its start-up time is printed and is included),
   with ``optimize_graph=False``: the default ``fuse`` turns the 10,000-long chain into
   one deeply nested task that overflows the recursion limit, and neither the other
   dask get-functions nor lazycell fuse.

2. Speedup over synchronous on this machine: a NumPy workload that releases the GIL
   on the threads scheduler (element-wise ufuncs, so no multithreaded BLAS can make the
   synchronous baseline parallel), and a pure-Python loop on the processes scheduler.
   Each task is calibrated at start-up to a fixed duration. Speedup = sync / parallel,
   each the best of a few runs (the one least disturbed by other load). The "plain
   pool" column runs the same tasks through ``concurrent.futures`` ``executor.map``:
   the speedup this machine allows at the moment, with no scheduler involved.

3. Peak memory of a reduction over 100 chunks of 40 MB (``load(i)`` -> ``chunk_sum``
   -> ``sum``) on the sync and threads schedulers: the process RSS is sampled every
   5 ms by a background thread; the peak minus the RSS just before the compute (after
   ``gc.collect()``) is reported, the largest of the runs.

Targets from the spec are printed beside the results for information; the script
never fails on a miss (it fails only if lazycell and dask disagree on an answer).

Run::

    make bench                                  # .venv/bin/python benchmarks/bench_schedulers.py
    python benchmarks/bench_schedulers.py --quick       # smoke run, well under a minute
    python benchmarks/bench_schedulers.py --repeats 3   # fewer repeats (both systems)
    python benchmarks/bench_schedulers.py --markdown    # only the README-ready tables

The default run takes about 2-3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import dask
import dask.local
import dask.multiprocessing
import dask.threaded
import numpy as np
import psutil

import lazycell

SCHEDULERS = ("sync", "threads", "processes")
OVERHEAD_TARGETS = {"sync": 0.10, "threads": 0.25, "processes": 0.5}
SPEEDUP_TARGET = 1.7
MEMORY_RATIO_TARGET = 1.5
RSS_SAMPLE_SECONDS = 0.005
MB = 1e6


@dataclass
class Settings:
    n_tasks: int = 10_000
    fan_in: int = 8
    lazycell_repeats: int = 7
    dask_repeats: int = 5
    numpy_tasks: int = 8
    numpy_task_seconds: float = 0.15
    python_tasks: int = 8
    python_task_seconds: float = 0.2
    speedup_repeats: int = 3
    n_chunks: int = 100
    chunk_len: int = 5_000_000  # float64: 40 MB
    memory_runs: int = 2


QUICK = Settings(
    n_tasks=2_000,
    lazycell_repeats=3,
    dask_repeats=2,
    numpy_tasks=8,
    numpy_task_seconds=0.08,
    python_tasks=8,
    python_task_seconds=0.08,
    speedup_repeats=1,
    n_chunks=25,
    memory_runs=1,
)


# ----------------------------------------------------------- task functions
# Module level, so worker processes (lazycell's and dask's spawned ones) find them.


def inc(x):
    return x + 1


def numpy_work(seed: int, passes: int) -> float:
    """Element-wise ufuncs on 1M floats: NumPy releases the GIL inside each pass."""
    x = np.linspace(0.0, 1.0, 1_000_000) + seed
    for _ in range(passes):
        np.sin(x, out=x)
        np.sqrt(np.abs(x, out=x), out=x)
    return float(x[0])


def python_work(seed: int, loops: int) -> int:
    """Pure-Python arithmetic that holds the GIL the whole time."""
    total = seed
    for i in range(loops):
        total += i * i % 7
    return total


def load(i: int, length: int) -> np.ndarray:
    return np.full(length, i, dtype=np.float64)


def chunk_sum(chunk: np.ndarray) -> float:
    return float(chunk.sum())


# ------------------------------------------------------------------- graphs


def tree_graph(n: int, fan_in: int) -> tuple[dict, tuple]:
    """``n`` inc tasks, then levels of ``(sum, [up to fan_in keys below])`` down to one."""
    dsk: dict = {("x", 0, i): (inc, i) for i in range(n)}
    level, width = 0, n
    while width > 1:
        parents = -(-width // fan_in)
        for j in range(parents):
            below = range(j * fan_in, min(width, (j + 1) * fan_in))
            dsk[("x", level + 1, j)] = (sum, [("x", level, k) for k in below])
        level, width = level + 1, parents
    return dsk, ("x", level, 0)


def chain_graph(n: int) -> tuple[dict, str]:
    dsk: dict = {"x0": 0}
    for i in range(n):
        dsk[f"x{i + 1}"] = (inc, f"x{i}")
    return dsk, f"x{n}"


def gather_graph(n: int) -> tuple[dict, str]:
    dsk: dict = {("inc", i): (inc, i) for i in range(n)}
    dsk["total"] = (sum, [("inc", i) for i in range(n)])
    return dsk, "total"


def independent_tasks_graph(func: Callable, args: tuple, n: int) -> tuple[dict, str]:
    """``n`` tasks ``func(i, *args)`` and one task listing their results."""
    dsk: dict = {("work", i): (func, i, *args) for i in range(n)}
    dsk["all"] = (list, [("work", i) for i in range(n)])
    return dsk, "all"


def reduction_graph(n_chunks: int, length: int) -> tuple[dict, str]:
    dsk: dict = {}
    for i in range(n_chunks):
        dsk[("load", i)] = (load, i, length)
        dsk[("chunk_sum", i)] = (chunk_sum, ("load", i))
    dsk["total"] = (sum, [("chunk_sum", i) for i in range(n_chunks)])
    return dsk, "total"


# ------------------------------------------------------------ get-functions


def dask_processes_get(dsk, key):
    return dask.multiprocessing.get(dsk, key, optimize_graph=False)


DASK_GETS = {
    "sync": dask.local.get_sync,
    "threads": dask.threaded.get,
    "processes": dask_processes_get,
}


def lazycell_getter(scheduler: str) -> Callable:
    def get(dsk, key):
        return lazycell.get(dsk, key, scheduler=scheduler)

    return get


# ------------------------------------------------------------------- timing


def time_call(fn: Callable, *args) -> float:
    """Seconds for one call, after a full garbage collection."""
    gc.collect()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def interleaved_medians(a: Callable, b: Callable, repeats_a: int, repeats_b: int) -> tuple:
    """Median seconds of ``a`` and ``b``, their runs alternated (a, b, a, b, ...)."""
    times_a: list = []
    times_b: list = []
    for i in range(max(repeats_a, repeats_b)):
        if i < repeats_a:
            times_a.append(time_call(a))
        if i < repeats_b:
            times_b.append(time_call(b))
    return statistics.median(times_a), statistics.median(times_b)


def rss() -> int:
    return psutil.Process().memory_info().rss


class PeakRSS:
    """Context manager: the peak RSS increase (bytes) over the RSS at entry."""

    def __init__(self, interval: float = RSS_SAMPLE_SECONDS):
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.baseline = self.peak = rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def increase(self) -> int:
        return self.peak - self.baseline


# --------------------------------------------------- 1. per-task overhead


@dataclass
class OverheadRow:
    graph: str
    n_tasks: int
    scheduler: str
    lazycell_us: float
    dask_us: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.lazycell_us / self.dask_us if self.dask_us else None

    @property
    def target(self) -> float | None:
        return OVERHEAD_TARGETS.get(self.scheduler) if self.graph == "tree" else None


def overhead_graphs(settings: Settings) -> dict:
    return {
        "tree": tree_graph(settings.n_tasks, settings.fan_in),
        "chain": chain_graph(settings.n_tasks),
        "gather": gather_graph(settings.n_tasks),
    }


def checked(get: Callable, dsk: dict, key, expected, label: str) -> Callable[[], None]:
    """A zero-argument run of ``get`` that fails loudly on a wrong answer."""

    def run() -> None:
        result = get(dsk, key)
        assert result == expected, f"{label}: got {result!r}, expected {expected!r}"

    return run


def measure_overhead(graph_name: str, dsk: dict, key, scheduler: str, settings) -> OverheadRow:
    expected = sum(range(1, settings.n_tasks + 1)) if graph_name != "chain" else settings.n_tasks
    run_lazycell = checked(lazycell_getter(scheduler), dsk, key, expected, f"lazycell {scheduler}")
    run_dask = checked(DASK_GETS[scheduler], dsk, key, expected, f"dask {scheduler}")
    # One untimed run each warms the pools. dask's processes get starts a new pool on
    # every call, so it has nothing to warm: its timed runs are checked all the same.
    run_lazycell()
    if scheduler != "processes":
        run_dask()
    lazycell_s, dask_s = interleaved_medians(
        run_lazycell, run_dask, settings.lazycell_repeats, settings.dask_repeats
    )
    n = len(dsk)
    return OverheadRow(graph_name, n, scheduler, lazycell_s / n * 1e6, dask_s / n * 1e6)


def sequential_floor_us(dsk: dict, repeats: int) -> float:
    """Calling the tree's functions in a precomputed order, results kept in a dict."""
    steps = []
    for key, (func, arg) in dsk.items():  # the tree is built in dependency order
        steps.append((key, func, arg, isinstance(arg, list)))

    def run() -> dict:
        data: dict = {}
        for key, func, arg, takes_keys in steps:
            data[key] = func([data[k] for k in arg]) if takes_keys else func(arg)
        return data

    best = statistics.median(time_call(run) for _ in range(repeats))
    return best / len(steps) * 1e6


def dask_pool_startup_seconds() -> float:
    """What a fresh ``dask.multiprocessing.get`` pool costs: a one-task graph."""
    return time_call(dask_processes_get, {"one": (inc, 1)}, "one")


def run_overhead_section(settings: Settings) -> list[OverheadRow]:
    rows = []
    for graph_name, (dsk, key) in overhead_graphs(settings).items():
        for scheduler in SCHEDULERS:
            rows.append(measure_overhead(graph_name, dsk, key, scheduler, settings))
            progress(f"overhead {graph_name}/{scheduler}")
        if graph_name == "tree":
            floor = sequential_floor_us(dsk, settings.lazycell_repeats)
            rows.append(OverheadRow(graph_name, len(dsk), "sequential call floor", floor))
    return rows


# ------------------------------------------------------------ 2. speedups


@dataclass
class SpeedupRow:
    workload: str
    scheduler: str
    seconds: dict  # "lazycell sync", "lazycell parallel", "dask ...", "plain ..." -> best time

    def speedup(self, system: str) -> float:
        return self.seconds[f"{system} sync"] / self.seconds[f"{system} parallel"]


def calibrate(run_with: Callable[[int], object], start: int, seconds: float) -> int:
    """The work amount ``n`` for which ``run_with(n)`` takes about ``seconds``."""
    run_with(start)  # warm caches and allocator
    elapsed = min(time_call(run_with, start) for _ in range(3))
    return max(1, round(start * seconds / elapsed))


def plain_loop(func: Callable, args: tuple, n: int) -> list:
    return [func(i, *args) for i in range(n)]


def plain_pool_map(executor: Executor, func: Callable, args: tuple, n: int) -> list:
    """The same tasks through ``executor.map``: the machine's ceiling, no scheduler."""
    columns = [[a] * n for a in args]
    return list(executor.map(func, range(n), *columns))


def plain_executor(scheduler: str) -> Executor:
    workers = os.cpu_count() or 1
    if scheduler == "threads":
        return ThreadPoolExecutor(workers)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def measure_speedup(workload: str, func: Callable, args: tuple, n: int, scheduler: str, settings):
    """Best-of-N seconds of each variant, the variants' runs taken in turn."""
    dsk, key = independent_tasks_graph(func, args, n)
    with plain_executor(scheduler) as executor:
        variants = {
            "lazycell sync": lambda: lazycell.get(dsk, key, scheduler="sync"),
            "lazycell parallel": lambda: lazycell.get(dsk, key, scheduler=scheduler),
            "dask sync": lambda: DASK_GETS["sync"](dsk, key),
            "dask parallel": lambda: DASK_GETS[scheduler](dsk, key),
            "plain sync": lambda: plain_loop(func, args, n),
            "plain parallel": lambda: plain_pool_map(executor, func, args, n),
        }
        answers = {name: variants[name]() for name in variants if "parallel" in name}  # warm
        assert len({repr(a) for a in answers.values()}) == 1, answers
        times: dict = {name: [] for name in variants}
        for _ in range(settings.speedup_repeats):
            for name, run in variants.items():
                times[name].append(time_call(run))
    return SpeedupRow(workload, scheduler, {name: min(t) for name, t in times.items()})


def run_speedup_section(settings: Settings) -> list[SpeedupRow]:
    passes = calibrate(lambda p: numpy_work(0, p), 4, settings.numpy_task_seconds)
    loops = calibrate(lambda n: python_work(0, n), 200_000, settings.python_task_seconds)
    numpy_ms = settings.numpy_task_seconds * 1000
    python_ms = settings.python_task_seconds * 1000
    n_numpy, n_python = settings.numpy_tasks, settings.python_tasks
    rows = [
        measure_speedup(
            f"NumPy ufuncs, GIL released ({n_numpy} x {numpy_ms:.0f} ms)",
            *(numpy_work, (passes,), n_numpy, "threads", settings),
        )
    ]
    progress("speedup numpy/threads")
    rows.append(
        measure_speedup(
            f"pure-Python loop ({n_python} x {python_ms:.0f} ms)",
            *(python_work, (loops,), n_python, "processes", settings),
        )
    )
    progress("speedup python/processes")
    return rows


# ------------------------------------------------------------ 3. memory


@dataclass
class MemoryRow:
    scheduler: str
    lazycell_mb: float
    dask_mb: float

    @property
    def ratio(self) -> float:
        return self.lazycell_mb / self.dask_mb if self.dask_mb else float("inf")


def peak_increase_mb(get: Callable, dsk: dict, key, expected) -> float:
    with PeakRSS() as peak:
        result = get(dsk, key)
    assert result == expected, (result, expected)
    return peak.increase / MB


def run_memory_section(settings: Settings) -> list[MemoryRow]:
    dsk, key = reduction_graph(settings.n_chunks, settings.chunk_len)
    expected = float(sum(i * settings.chunk_len for i in range(settings.n_chunks)))
    rows = []
    for scheduler in ("sync", "threads"):
        lazycell_get, dask_get = lazycell_getter(scheduler), DASK_GETS[scheduler]
        ours: list = []
        theirs: list = []
        for _ in range(settings.memory_runs):
            ours.append(peak_increase_mb(lazycell_get, dsk, key, expected))
            theirs.append(peak_increase_mb(dask_get, dsk, key, expected))
        rows.append(MemoryRow(scheduler, max(ours), max(theirs)))
        progress(f"memory {scheduler}")
    return rows


# ------------------------------------------------------------------ output


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"  [{time.perf_counter() - _STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns: text left, numbers right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def is_number(cell: str) -> bool:
        return cell.lstrip("-").replace(".", "").replace(",", "").rstrip("x").isdigit()

    def line(cells) -> str:
        parts = [
            cell.rjust(width) if is_number(cell) else cell.ljust(width)
            for cell, width in zip(cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def overhead_cells(rows: list[OverheadRow]) -> tuple[list[str], list[list[str]]]:
    headers = ["graph", "tasks", "scheduler", "lazycell us/task", "dask us/task"]
    headers += ["lazycell/dask", "target", "meets target"]
    cells = []
    for r in rows:
        met = None if r.target is None or r.ratio is None else r.ratio <= r.target
        target = "-" if r.target is None else f"<= {r.target:.2f}"
        cells.append(
            [r.graph, f"{r.n_tasks:,}", r.scheduler, fmt(r.lazycell_us), fmt(r.dask_us)]
            + [fmt(r.ratio, ".3f"), target, verdict(met)]
        )
    return headers, cells


def speedup_cells(rows: list[SpeedupRow]) -> tuple[list[str], list[list[str]]]:
    headers = ["workload", "scheduler", "lazycell sync s", "lazycell par s", "lazycell speedup"]
    headers += ["dask sync s", "dask par s", "dask speedup", "plain pool speedup", "target"]
    headers += ["meets target"]
    cells = []
    for r in rows:
        t = r.seconds
        lazycell_speedup = r.speedup("lazycell")
        cells.append(
            [r.workload, r.scheduler, f"{t['lazycell sync']:.2f}", f"{t['lazycell parallel']:.2f}"]
            + [f"{lazycell_speedup:.2f}x", f"{t['dask sync']:.2f}", f"{t['dask parallel']:.2f}"]
            + [f"{r.speedup('dask'):.2f}x", f"{r.speedup('plain'):.2f}x"]
            + [f">= {SPEEDUP_TARGET}x", verdict(lazycell_speedup >= SPEEDUP_TARGET)]
        )
    return headers, cells


def memory_cells(rows: list[MemoryRow]) -> tuple[list[str], list[list[str]]]:
    headers = ["scheduler", "lazycell peak MB", "dask peak MB", "lazycell/dask", "target"]
    headers += ["meets target"]
    cells = [
        [r.scheduler, f"{r.lazycell_mb:.0f}", f"{r.dask_mb:.0f}", f"{r.ratio:.2f}"]
        + [f"<= {MEMORY_RATIO_TARGET}", verdict(r.ratio <= MEMORY_RATIO_TARGET)]
        for r in rows
    ]
    return headers, cells


def machine_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, load average {load}; Python {platform.python_version()} "
        f"on {platform.system()} {platform.machine()}; lazycell {lazycell.__version__}, "
        f"dask {dask.__version__}, NumPy {np.__version__}"
    )


@dataclass
class Results:
    settings: Settings
    machine: str
    dask_pool_startup: float
    overhead: list[OverheadRow]
    speedup: list[SpeedupRow]
    memory: list[MemoryRow]


def print_text_report(res: Results) -> None:
    s = res.settings
    print(f"lazycell vs dask schedulers -- {res.machine}\n")
    print(
        f"1. Per-task overhead: median of {s.lazycell_repeats} lazycell / {s.dask_repeats} "
        "dask runs, after one untimed warm-up run (targets apply to the tree graph)"
    )
    print(text_table(*overhead_cells(res.overhead)))
    print(
        f"   dask processes: a fresh spawn pool per call, start-up "
        f"{res.dask_pool_startup:.2f} s (1-task graph), included above; optimize_graph=False."
    )
    runs = (
        f"best of {s.speedup_repeats} runs each, the least disturbed by other load"
        if s.speedup_repeats > 1
        else "one run each"
    )
    print(f"\n2. Speedup over sync on {os.cpu_count()} cores: {runs}")
    print(text_table(*speedup_cells(res.speedup)))
    print(
        "   plain pool = the same tasks through concurrent.futures executor.map (warm pool):\n"
        "   what this machine allows right now. dask processes includes its pool start-up,\n"
        "   and sends ready tasks 6 at a time (its default chunksize): a few long tasks\n"
        "   spread unevenly over the workers."
    )
    chunk_mb = s.chunk_len * 8 / MB
    print(
        f"\n3. Peak RSS increase, sum over {s.n_chunks} chunks of {chunk_mb:.0f} MB "
        f"(largest of {s.memory_runs} run(s), sampled every {RSS_SAMPLE_SECONDS * 1000:.0f} ms)"
    )
    print(text_table(*memory_cells(res.memory)))


def without_columns(table: tuple[list[str], list[list[str]]], drop: set) -> tuple:
    headers, rows = table
    keep = [i for i, h in enumerate(headers) if h not in drop]
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]


def print_markdown_report(res: Results) -> None:
    """The same results, fewer columns: ready to paste into a README."""
    seconds_columns = {"lazycell sync s", "lazycell par s", "dask sync s", "dask par s"}
    print(f"Measured with `benchmarks/bench_schedulers.py` on {res.machine}.\n")
    print(markdown_table(*without_columns(overhead_cells(res.overhead), {"tasks"})) + "\n")
    print(markdown_table(*without_columns(speedup_cells(res.speedup), seconds_columns)) + "\n")
    print(markdown_table(*memory_cells(res.memory)))


# -------------------------------------------------------------------- main


def parse_settings(argv: list[str] | None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small graphs, few repeats")
    parser.add_argument(
        "--repeats", type=int, help="timed runs per overhead row, both systems (default 7 / 5)"
    )
    parser.add_argument("--dask-repeats", type=int, help="timed runs for dask (default 5)")
    parser.add_argument("--markdown", action="store_true", help="print only the markdown tables")
    args = parser.parse_args(argv)
    settings = Settings(**vars(QUICK)) if args.quick else Settings()
    if args.repeats is not None:
        settings.lazycell_repeats = settings.dask_repeats = max(1, args.repeats)
    if args.dask_repeats is not None:
        settings.dask_repeats = max(1, args.dask_repeats)
    return settings, args.markdown


def main(argv: list[str] | None = None) -> None:
    settings, markdown_only = parse_settings(argv)
    machine = machine_line()
    started = time.perf_counter()
    results = Results(
        settings=settings,
        machine=machine,
        dask_pool_startup=dask_pool_startup_seconds(),
        overhead=run_overhead_section(settings),
        speedup=run_speedup_section(settings),
        memory=run_memory_section(settings),
    )
    if not markdown_only:
        print_text_report(results)
        print(f"\n(total benchmark time {time.perf_counter() - started:.0f} s)\n")
        print("Markdown:\n")
    print_markdown_report(results)


if __name__ == "__main__":
    main()
