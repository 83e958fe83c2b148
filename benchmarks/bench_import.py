"""``import lazycell`` vs ``import dask``: cold import time in a fresh interpreter, same run.

What is measured (each in a new ``python`` process, so nothing is imported yet):

1. Wall time of ``python -c "import X"`` minus that of ``python -c "pass"`` (the
   interpreter's own start-up), median of ``--runs`` runs each. Runs of ``pass``,
   lazycell and dask are interleaved, the order rotating every round, so load on a
   shared machine hits all three alike. One untimed run of each first warms the
   OS file cache and writes the ``.pyc`` files: "cold" means a fresh interpreter,
   not a cold disk.
2. The cumulative time ``python -X importtime`` reports for the top-level module,
   median of the same number of runs: the import alone, without start-up or exit.
3. What the import brings in: how many modules it adds to ``sys.modules``, and which
   of the heavy ones (plotly, ipywidgets, IPython, numpy, anywidget, pandas) it
   loads. docs/architecture.md says that ``import lazycell`` load none of them: they come with
   the first panel, report or magic.

The script never fails on a slow import or a heavy module; it prints them.

Run::

    make bench                                    # after bench_schedulers.py
    .venv/bin/python benchmarks/bench_import.py   # about 10 seconds
    .venv/bin/python benchmarks/bench_import.py --runs 31
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_schedulers import machine_line, text_table  # noqa: E402

MODULES = ("lazycell", "dask")
HEAVY = ("plotly", "ipywidgets", "IPython", "numpy", "anywidget", "pandas")
# The repository root: `python -c` puts the working directory first on sys.path,
# so the children import this checkout's lazycell even without an install.
ROOT = Path(__file__).resolve().parent.parent

# Run in the child after the import: what it added and which heavy modules are among them.
INVENTORY = """\
import json, sys
before = set(sys.modules)
import {module}
added = set(sys.modules) - before
print(json.dumps({{"added": len(added), "heavy": [m for m in {heavy!r} if m in added]}}))
"""


def run_python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )


def wall_seconds(code: str) -> float:
    started = time.perf_counter()
    run_python("-c", code)
    return time.perf_counter() - started


def importtime_seconds(module: str) -> float:
    """The cumulative time ``-X importtime`` gives the top-level ``module``."""
    stderr = run_python("-X", "importtime", "-c", f"import {module}").stderr
    for line in stderr.splitlines():
        # "import time:   self [us] | cumulative | name", nested modules indented
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == f" {module}":
            return int(parts[1]) / 1e6
    raise RuntimeError(f"no -X importtime line for {module!r}")


@dataclass
class ImportRow:
    module: str
    wall_s: float  # median wall time, start-up subtracted
    importtime_s: float  # median -X importtime cumulative
    modules_added: int
    heavy: list[str]


def measure(runs: int) -> tuple[float, list[ImportRow]]:
    codes = {"pass": "pass", **{m: f"import {m}" for m in MODULES}}
    for code in codes.values():  # warm-up: file cache and .pyc files
        run_python("-c", code)
    walls: dict[str, list[float]] = {name: [] for name in codes}
    importtimes: dict[str, list[float]] = {m: [] for m in MODULES}
    names = list(codes)
    for i in range(runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            walls[name].append(wall_seconds(codes[name]))
            if name in importtimes:
                importtimes[name].append(importtime_seconds(name))
        progress(f"round {i + 1}/{runs}")
    startup = statistics.median(walls["pass"])
    rows = []
    for module in MODULES:
        inventory = json.loads(
            run_python("-c", INVENTORY.format(module=module, heavy=HEAVY)).stdout
        )
        rows.append(
            ImportRow(
                module=module,
                wall_s=statistics.median(walls[module]) - startup,
                importtime_s=statistics.median(importtimes[module]),
                modules_added=inventory["added"],
                heavy=inventory["heavy"],
            )
        )
    return startup, rows


# ------------------------------------------------------------------ output


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"  [{time.perf_counter() - _STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def print_report(startup: float, rows: list[ImportRow], runs: int) -> None:
    ours, theirs = rows
    headers = ["import", "wall ms (minus start-up)", "-X importtime ms", "modules added"]
    headers += ["heavy modules loaded"]
    cells = [
        [r.module, f"{r.wall_s * 1e3:.1f}", f"{r.importtime_s * 1e3:.1f}", str(r.modules_added)]
        + [", ".join(r.heavy) or "none"]
        for r in rows
    ]
    cells.append(
        [f"{ours.module}/{theirs.module}", f"{ours.wall_s / theirs.wall_s:.2f}x"]
        + [f"{ours.importtime_s / theirs.importtime_s:.2f}x", "", ""]
    )
    print(f"Cold import, a fresh interpreter per run -- {machine_line()}\n")
    print(
        f"Median of {runs} interleaved runs each; interpreter start-up "
        f"(python -c pass, {startup * 1e3:.1f} ms) subtracted from the wall times."
    )
    print(text_table(headers, cells))
    print(f"   heavy modules looked for: {', '.join(HEAVY)}")
    if ours.heavy:
        print(
            f"   `import lazycell` loads {', '.join(ours.heavy)}: docs/architecture.md asks "
            "for none (they should load with the first panel, report or magic)."
        )
    else:
        print("   `import lazycell` loads none of them, as docs/architecture.md says.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per import (default 15)")
    args = parser.parse_args(argv)
    startup, rows = measure(max(1, args.runs))
    print_report(startup, rows, max(1, args.runs))


if __name__ == "__main__":
    main()
