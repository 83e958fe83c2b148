"""lazycell graphs on a dask.distributed cluster vs dask.delayed on the same client, same run.

lazycell on a dask cluster (``lazycell.dask_cluster``) hands the engine's
work to dask; what it adds is converting the graph, the event feed (a
scheduler plugin) and waiting in slices. This measures that addition.

One ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` (worker
processes) and one ``distributed.Client`` serve every run. The graph: a sum
over N small delayed calls (``inc(i)``, N = 10,000), built once per system
outside the timed runs (building is the user's side, and dask.delayed's is
slow for functions defined in ``__main__``). Three ways to compute it,
interleaved round by round so that noise from a shared machine hits all alike:

- ``dask.delayed``: ``client.compute(total).result()`` (the reference);
- ``dask.delayed, no lazycell``: the same on a second client of the cluster,
  one lazycell never connected: the reference without lazycell's plugin on
  the scheduler (which watches the graphs of the client it was connected
  through, dask's own included);
- ``lazycell``: ``lc.compute(total, scheduler=runner)`` with nobody listening
  (the plugin sends task events all the same; nobody folds them);
- ``lazycell + listener``: the same with a ``lc.diagnostics.subscribe``
  listener counting events: the event stream's full cost (every task's
  TaskStarted and TaskFinished reach it).

Each line prints the median wall time of the runs and its ratio to dask's
median. Targets from the issue: lazycell at most 1.05x dask (it adds nothing on
top of dask), and the event stream at most 5 % more; printed for
information, the script never fails on a miss (only on a wrong answer).

Run::

    .venv/bin/python benchmarks/bench_dask_cluster.py            # a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_dask_cluster.py --quick    # smoke run
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

from tables import cluster_bench_start, print_table

import lazycell as lc
from lazycell import dask_cluster


@dataclass
class Settings:
    n_tasks: int = 10_000
    rounds: int = 5


QUICK = Settings(n_tasks=2_000, rounds=3)


def inc(x: int) -> int:
    return x + 1


def timed(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(settings: Settings, client, plain_client) -> dict:
    """Median seconds of each way, over interleaved rounds (after one warm-up round each)."""
    import dask

    n = settings.n_tasks
    expected = sum(range(1, n + 1))
    lazycell_total = lc.delayed(sum)([lc.delayed(inc)(i) for i in range(n)])
    dask_total = dask.delayed(sum)([dask.delayed(inc)(i) for i in range(n)])
    runner = dask_cluster.connect(client, set_as_default=False).graph_runner()
    events: list = []

    def run_dask():
        assert client.compute(dask_total).result() == expected

    def run_dask_alone():
        assert plain_client.compute(dask_total).result() == expected

    def run_lazycell():
        assert lc.compute(lazycell_total, scheduler=runner) == (expected,)

    def run_listened():
        with lc.diagnostics.subscribe(lambda batch: events.append(len(batch))):
            run_lazycell()

    ways = {
        "dask.delayed": run_dask,
        "dask.delayed, no lazycell": run_dask_alone,
        "lazycell": run_lazycell,
        "lazycell + listener": run_listened,
    }
    for run in ways.values():
        run()  # warm-up: imports, the workers' first unpickling of inc
    times: dict = {name: [] for name in ways}
    for _ in range(settings.rounds):
        for name, run in ways.items():
            times[name].append(timed(run))
    n_events = sum(events) // (settings.rounds + 1)
    assert n_events >= 2 * n, f"the listener heard {n_events} events a compute, not {2 * n}+"
    return {name: statistics.median(values) for name, values in times.items()}


HEADER = ("measure", "seconds", "ratio to dask.delayed", "target")


def main() -> None:
    settings, machine = cluster_bench_start(__doc__, QUICK, Settings)
    import distributed

    print(
        f"{machine}; {settings.n_tasks:,} tasks + 1, median of {settings.rounds} interleaved runs\n"
    )
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client, distributed.Client(cluster) as plain:
        client.wait_for_workers(2)
        medians = measure(settings, client, plain)
    dask_seconds = medians["dask.delayed"]
    targets = {"lazycell": "<= 1.05x", "lazycell + listener": "<= 1.05x"}
    rows = [
        (
            f"{name}, sum of {settings.n_tasks:,} calls",
            f"{seconds:.2f}",
            f"{seconds / dask_seconds:.3f}x",
            targets.get(name, ""),
        )
        for name, seconds in medians.items()
    ]
    print_table(HEADER, rows)
    stream = medians["lazycell + listener"] / medians["lazycell"] - 1
    print(f"\nthe event stream's cost (listener vs none): {stream:+.1%} (target <= 5 %)")


if __name__ == "__main__":
    main()
