"""``python -m lazycell.demo`` (or ``make demo``): one graph on every local scheduler.

Builds a small tree reduction with ``lc.delayed`` — 2,000 leaf tasks summed
with fan-in 8 — and computes it on the sync, threads and processes
schedulers, printing the result and the wall time of each run with a text
progress bar.
"""

from __future__ import annotations

import time

import lazycell as lc


@lc.delayed
def square(x: int) -> int:
    return x * x


@lc.delayed
def total(parts: list) -> int:
    return sum(parts)


def tree_sum(values: list, fan_in: int = 8):
    while len(values) > 1:
        values = [total(values[i : i + fan_in]) for i in range(0, len(values), fan_in)]
    return values[0]


def main() -> None:
    n = 2000
    result = tree_sum([square(i) for i in range(n)])
    expected = sum(i * i for i in range(n))
    print(
        f"lazycell {lc.__version__}: sum of squares below {n} as a graph of "
        f"{len(lc.graph_of(result))} tasks (expected {expected})"
    )
    for scheduler in ("sync", "threads", "processes"):
        print(f"\n--- scheduler={scheduler}")
        start = time.perf_counter()
        with lc.diagnostics.ProgressBar():
            value = result.compute(scheduler=scheduler)
        elapsed = time.perf_counter() - start
        status = "ok" if value == expected else "WRONG"
        print(f"result={value} [{status}] in {elapsed * 1000:.1f} ms")


if __name__ == "__main__":
    main()
