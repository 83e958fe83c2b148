"""lazycell's get-function inside dask, with and without dask's callbacks, beside dask.

What is measured, per scheduler (sync, threads, processes), in microseconds per
task (median of several interleaved runs), on a dask.delayed tree of 5,000
``inc`` tasks summed with fan-in 8, computed by dask's own ``.compute()``:

- ``none``:     no callback active: ``scheduler=lc.get_scheduler(name)`` against
                ``scheduler=name`` (dask's get-function). The hot path: lazycell's
                get-function must cost the same as ``lc.get`` with no callback.
- ``callback``: inside ``with Callback(pretask=..., posttask=...)`` (two no-op
                hooks), on both systems: what calling dask's hooks per task costs.
- ``progress``: inside ``with ProgressBar(out=io.StringIO())`` on both systems.

The ratio column is lazycell / dask (below 1: lazycell is faster). Every run is
checked against the known answer. One untimed run of each row warms the pools.

Run::

    .venv/bin/python benchmarks/bench_dask_callbacks.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/bench_dask_callbacks.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import dask
from dask.callbacks import Callback
from dask.diagnostics import ProgressBar
from tables import print_table

import lazycell as lc

SCHEDULERS = ("sync", "threads", "processes")


def inc(x):
    return x + 1


def tree(n_tasks: int, fan_in: int):
    """``n_tasks`` inc tasks summed by a tree of sums; returns (collection, expected, tasks)."""
    layer = [dask.delayed(inc, pure=False)(i) for i in range(n_tasks)]
    total_tasks = n_tasks
    while len(layer) > 1:
        layer = [
            dask.delayed(sum, pure=False)(layer[i : i + fan_in])
            for i in range(0, len(layer), fan_in)
        ]
        total_tasks += len(layer)
    return layer[0], sum(range(1, n_tasks + 1)), total_tasks


def no_op_callback():
    return Callback(pretask=lambda key, dsk, state: None, posttask=lambda *args: None)


CONTEXTS = {
    "none": contextlib.nullcontext,
    "callback": no_op_callback,
    "progress": lambda: ProgressBar(out=io.StringIO()),
}


def time_once(collection, expected, scheduler, context) -> float:
    with context():
        start = time.perf_counter()
        result = collection.compute(scheduler=scheduler, optimize_graph=False)
        elapsed = time.perf_counter() - start
    assert result == expected, (result, expected)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small graph, 1 repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5_000)
    args = parser.parse_args()
    n_tasks, repeats = (1_000, 1) if args.quick else (args.tasks, args.repeats)
    collection, expected, total_tasks = tree(n_tasks, 8)
    print(f"dask {dask.__version__}, lazycell {lc.__version__}; {total_tasks} tasks per graph")
    rows = []
    for name in SCHEDULERS:
        ours = lc.get_scheduler(name)
        for label, context in CONTEXTS.items():
            for scheduler in (ours, name):  # warm pools and imports
                time_once(collection, expected, scheduler, context)
            times: dict = {"lazycell": [], "dask": []}
            for _ in range(repeats):  # interleaved, so load on the machine hits both alike
                times["lazycell"].append(time_once(collection, expected, ours, context))
                times["dask"].append(time_once(collection, expected, name, context))
            per_task = {k: statistics.median(v) / total_tasks * 1e6 for k, v in times.items()}
            rows.append(
                (
                    name,
                    label,
                    f"{per_task['lazycell']:.1f}",
                    f"{per_task['dask']:.1f}",
                    f"{per_task['lazycell'] / per_task['dask']:.2f}",
                )
            )
    print_table(("scheduler", "callbacks", "lazycell µs/task", "dask µs/task", "ratio"), rows)


if __name__ == "__main__":
    main()
