"""lazycell's LocalCluster vs dask.distributed's, same machine, same run.

What is measured (each lazycell number has its dask.distributed counterpart):

1. Start-up: seconds from nothing to a 2-worker cluster (one thread each, worker
   processes) with a client that can compute; median of a few starts. dask:
   ``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
   dashboard_address=None)`` + ``Client`` + ``wait_for_workers(2)``.
2. Per-task overhead on the tree graph of ``bench_schedulers.py`` (10,000
   ``inc`` tasks summed by a fan-in-8 tree: ~11,400 tasks), microseconds per
   task, median of several runs on warm clusters, runs of the two systems
   interleaved. lazycell: ``lc.get(dsk, key, scheduler=client)``; dask:
   ``client.get(dsk, key)``.
3. Moving a 200 MB NumPy array between two workers: the array is made on worker
   A, then a task restricted to worker B takes it as input; GB/s = 200 MB / the
   time of that second task end to end (scheduling included), best of a few.
4. A reduction over data 3x larger than the cluster's total memory limit
   (2 workers x 250 MB; 30 blocks of 50 MB persisted, then summed): completes
   only by spilling to disk. Seconds, one run each.

Targets from the issue are printed beside the results; the script never fails
on a miss (only on a wrong answer).

Run::

    .venv/bin/python benchmarks/bench_cluster.py            # about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_cluster.py --quick    # smoke run
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_schedulers import tree_graph  # noqa: E402
from tables import cluster_bench_start, print_table  # noqa: E402

import lazycell as lc  # noqa: E402

MB = 1_000_000


@dataclass
class Settings:
    n_tasks: int = 10_000
    lazycell_repeats: int = 5
    dask_repeats: int = 2
    startups: int = 3
    move_bytes: int = 200 * MB
    moves: int = 3
    spill_blocks: int = 30
    spill_block_bytes: int = 50 * MB
    spill_limit: str = "250MB"


QUICK = Settings(
    n_tasks=2_000,
    lazycell_repeats=3,
    dask_repeats=1,
    startups=2,
    moves=2,
)


# ------------------------------------------------------------------ task functions


def make_array(nbytes: int, seed: int = 0) -> np.ndarray:
    return np.full(nbytes // 8, float(seed))


def first_item(x: np.ndarray) -> float:
    return float(x[0])


def block_sum(x: np.ndarray) -> float:
    return float(x.sum())


def total(values: list) -> float:
    return float(sum(values))


# ------------------------------------------------------------------------- clusters


def start_lazycell() -> lc.Client:
    cluster = lc.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=None)
    return lc.Client(cluster)


def stop_lazycell(client) -> None:
    client.close()
    client.cluster.close()


def start_dask(memory_limit="auto"):
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit=memory_limit,
    )
    client = distributed.Client(cluster)
    client.wait_for_workers(2)
    return client


def stop_dask(client) -> None:
    cluster = client.cluster
    client.close()
    cluster.close()


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------- measurements


def measure_startup(settings: Settings) -> tuple[float, float]:
    def lazycell_once():
        start = time.perf_counter()
        client = start_lazycell()
        elapsed = time.perf_counter() - start
        stop_lazycell(client)
        return elapsed

    def dask_once():
        start = time.perf_counter()
        client = start_dask()
        elapsed = time.perf_counter() - start
        stop_dask(client)
        return elapsed

    ours, theirs = [], []
    for _ in range(settings.startups):
        ours.append(lazycell_once())
        theirs.append(dask_once())
    return statistics.median(ours), statistics.median(theirs)


def measure_overhead(settings: Settings, ours, theirs) -> tuple[int, float, float]:
    dsk, key = tree_graph(settings.n_tasks, 8)
    expected = sum(range(1, settings.n_tasks + 1))

    def run_lazycell():
        assert lc.get(dsk, key, scheduler=ours) == expected

    def run_dask():
        assert theirs.get(dsk, key) == expected

    run_lazycell()
    run_dask()
    times_ours, times_theirs = [], []
    for i in range(max(settings.lazycell_repeats, settings.dask_repeats)):
        if i < settings.lazycell_repeats:
            times_ours.append(median_seconds(run_lazycell, 1))
        if i < settings.dask_repeats:
            times_theirs.append(median_seconds(run_dask, 1))
    n = len(dsk)
    return n, statistics.median(times_ours) / n * 1e6, statistics.median(times_theirs) / n * 1e6


def measure_move_lazycell(settings: Settings, client) -> float:
    first, second = [w["name"] for w in client.workers()]
    best = float("inf")
    for i in range(settings.moves):
        made = client.submit(make_array, settings.move_bytes, i, workers=first, pure=False)
        lc.wait([made])
        start = time.perf_counter()
        assert client.submit(first_item, made, workers=second).result() == float(i)
        best = min(best, time.perf_counter() - start)
        del made
    return settings.move_bytes / best / 1e9


def measure_move_dask(settings: Settings, client) -> float:
    first, second = list(client.scheduler_info()["workers"])
    best = float("inf")
    for i in range(settings.moves):
        made = client.submit(make_array, settings.move_bytes, i, workers=[first], pure=False)
        client.gather(client.submit(lambda _: None, made, workers=[first]))  # wait, no fetch
        start = time.perf_counter()
        assert client.submit(first_item, made, workers=[second]).result() == float(i)
        best = min(best, time.perf_counter() - start)
        del made
    return settings.move_bytes / best / 1e9


def spilling_reduction(settings: Settings, persist, compute) -> float:
    blocks = [
        lc.delayed(make_array)(settings.spill_block_bytes, i) for i in range(settings.spill_blocks)
    ]
    expected = sum(
        float(i) * (settings.spill_block_bytes // 8) for i in range(settings.spill_blocks)
    )
    start = time.perf_counter()
    held = persist(blocks)
    result = compute(lc.delayed(total)([lc.delayed(block_sum)(b) for b in held]))
    elapsed = time.perf_counter() - start
    assert result == expected, (result, expected)
    return elapsed


def measure_spill_lazycell(settings: Settings) -> float:
    with tempfile.TemporaryDirectory() as spill_dir:
        cluster = lc.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            memory_limit=settings.spill_limit,
            local_directory=spill_dir,
        )
        with cluster, lc.Client(cluster) as client:
            return spilling_reduction(
                settings,
                client.persist,
                lambda obj: client.compute(obj).result(),
            )


def measure_spill_dask(settings: Settings) -> float:
    import dask

    client = start_dask(memory_limit=settings.spill_limit)
    try:
        blocks = [
            dask.delayed(make_array)(settings.spill_block_bytes, i)
            for i in range(settings.spill_blocks)
        ]
        expected = sum(
            float(i) * (settings.spill_block_bytes // 8) for i in range(settings.spill_blocks)
        )
        start = time.perf_counter()
        held = client.persist(blocks)
        result = client.compute(
            dask.delayed(total)([dask.delayed(block_sum)(b) for b in held])
        ).result()
        elapsed = time.perf_counter() - start
        assert result == expected, (result, expected)
        return elapsed
    finally:
        stop_dask(client)


# ---------------------------------------------------------------------------- report


HEADER = ("measure", "lazycell", "dask.distributed", "ratio", "target")


def main() -> None:
    settings, machine = cluster_bench_start(__doc__, QUICK, Settings)
    print(machine + "\n")
    rows = []
    start_ours, start_theirs = measure_startup(settings)
    rows.append(
        (
            "start-up, 2 workers (s)",
            f"{start_ours:.2f}",
            f"{start_theirs:.2f}",
            f"{start_ours / start_theirs:.2f}x",
            "<= 1x",
        )
    )
    ours, theirs = start_lazycell(), start_dask()
    try:
        n, us_ours, us_theirs = measure_overhead(settings, ours, theirs)
        rows.append(
            (
                f"per-task overhead, tree of {n:,} (us/task)",
                f"{us_ours:.1f}",
                f"{us_theirs:.1f}",
                f"{us_ours / us_theirs:.3f}x",
                "<= 0.1x",
            )
        )
        gbps_ours = measure_move_lazycell(settings, ours)
        gbps_theirs = measure_move_dask(settings, theirs)
        rows.append(
            (
                f"move {settings.move_bytes // MB} MB array worker->worker (GB/s)",
                f"{gbps_ours:.2f}",
                f"{gbps_theirs:.2f}",
                f"{gbps_ours / gbps_theirs:.2f}x",
                ">= 1 GB/s",
            )
        )
    finally:
        stop_lazycell(ours)
        stop_dask(theirs)
    data_mb = settings.spill_blocks * settings.spill_block_bytes // MB
    spill_ours = measure_spill_lazycell(settings)
    try:
        spill_theirs = measure_spill_dask(settings)
        theirs_text = f"{spill_theirs:.2f}"
        ratio_text = f"{spill_ours / spill_theirs:.2f}x"
    except Exception as exc:  # dask's workers may exceed the same small limit and die
        theirs_text = f"failed ({type(exc).__name__})"
        ratio_text = "-"
    rows.append(
        (
            f"reduction over {data_mb} MB, 2 x {settings.spill_limit} limit (s)",
            f"{spill_ours:.2f}",
            theirs_text,
            ratio_text,
            "completes",
        )
    )
    print_table(HEADER, rows)


if __name__ == "__main__":
    main()
