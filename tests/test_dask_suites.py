"""dask's own test suites on lazycell: the regression gate for dask compatibility.

Each suite is a test file shipped in the installed dask package (with a ``-k``
selection), run twice in subprocess pytests, side by side:

- ``lazycell``: with ``tests/dask_suite_plugin.py`` routing dask's named
  schedulers (``"sync"``, ``"threads"``, ``"processes"``, which ``assert_eq``
  and ``.compute(scheduler=...)`` use) and each collection's default scheduler
  to ``lc.get_scheduler(...)``'s get-functions;
- ``dask``: dask's own schedulers (the same plugin, routing nothing unless the
  suite sends every name to processes, where it sends them to dask's).

Every test must end the same way on both (passed, failed, skipped, xfailed,
error), except the known differences listed with each suite, whose outcomes
on both sides are pinned too, with the reason. The lazycell run must have run
graphs through lazycell's get-functions, so a routing that silently stopped
working fails the gate instead of comparing dask with itself.

dask's processes scheduler starts a pool for every compute, so the suite that
runs on processes is a selection of array-core tests (store, locks,
stack, to_delayed) that keeps dask's side under a minute here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dask
import pytest

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).parent
DASK_DIR = Path(dask.__file__).parent
SUITE_TIMEOUT = 400  # seconds for one side of one suite; dask's processes side is the slowest
PER_TEST_TIMEOUT = 120

REFUSES_UNKNOWN_KEYWORDS = (
    "dask's get-functions ignore keywords they do not know (`x.compute(bogus_keyword=10)`); "
    "lazycell's refuses them with a TypeError naming the keyword, so none is silently dropped"
)


@dataclass(frozen=True)
class KnownDifference:
    """A test that ends differently on purpose: its outcome on each side, and why."""

    lazycell: str
    dask: str
    reason: str


@dataclass(frozen=True)
class Suite:
    """One dask test file (and selection) compared on lazycell and on dask."""

    name: str
    path: str  # inside the dask package
    select: str | None = None  # pytest -k
    route: str = "named"  # see dask_suite_plugin: "named" or "processes"
    known_differences: dict[str, KnownDifference] = field(default_factory=dict)
    min_lazycell_graphs: int = 10


SUITES = [
    Suite(
        "bag groupby (processes, bags' default)",
        "bag/tests/test_bag.py",
        select="groupby or msgpack",
    ),
    Suite(
        "delayed, with collections (threads, delayed's default; sync in assert_eq)",
        "tests/test_delayed.py",
        known_differences={
            "test_delayed_compute_forward_kwargs": KnownDifference(
                "failed", "passed", REFUSES_UNKNOWN_KEYWORDS
            ),
            "test_custom_delayed": KnownDifference(
                "failed",
                "passed",
                "the test's own collection names dask.threaded.get itself as its default "
                "scheduler and is computed together with a Delayed, whose default the plugin "
                "routes to lazycell; dask refuses two different defaults in one compute. A "
                "limit of routing defaults by patching the classes, not of lazycell",
            ),
        },
    ),
    Suite(
        "array core, every scheduler name on processes (a selection)",
        "array/tests/test_array_core.py",
        select=(
            "store or from_array_with_lock or from_array_getitem or compute_forward_kwargs "
            "or test_stack or test_to_delayed"
        ),
        route="processes",
        known_differences={
            "test_array_compute_forward_kwargs": KnownDifference(
                "failed", "passed", REFUSES_UNKNOWN_KEYWORDS
            ),
        },
    ),
]


def start_suite_run(suite: Suite, engine: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """Start one side's pytest of ``suite``; returns the process and its report's path."""
    report = tmp_path / f"{engine}.json"
    ini = tmp_path / "pytest.ini"  # not lazycell's pytest settings: dask's tests as shipped
    ini.write_text("[pytest]\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        "LAZYCELL_DASK_SUITE_ENGINE": engine,
        "LAZYCELL_DASK_SUITE_ROUTE": suite.route,
        "LAZYCELL_DASK_SUITE_REPORT": str(report),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ini),
        "--rootdir",
        str(DASK_DIR),
        "-p",
        "dask_suite_plugin",
        "-p",
        "no:cacheprovider",
        f"--timeout={PER_TEST_TIMEOUT}",
        "-q",
        str(DASK_DIR / suite.path),
    ]
    if suite.select:
        command += ["-k", suite.select]
    log = open(tmp_path / f"{engine}.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    process.log = log  # type: ignore[attr-defined]
    return process, report


def finish_suite_run(process: subprocess.Popen, report: Path, tmp_path: Path, engine: str) -> dict:
    try:
        process.wait(timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the {engine} side did not finish in {SUITE_TIMEOUT} s; see {tmp_path}")
    finally:
        process.log.close()  # type: ignore[attr-defined]
    if not report.exists():
        log = (tmp_path / f"{engine}.log").read_text()[-3000:]
        pytest.fail(f"the {engine} side wrote no report (exit code {process.returncode}):\n{log}")
    return json.loads(report.read_text())


def name_of_test(nodeid: str) -> str:
    """``test_store[True]`` -> ``test_store``: known differences name a test, not a case."""
    return nodeid.split("::")[-1].split("[")[0]


@pytest.mark.parametrize("suite", SUITES, ids=[suite.path for suite in SUITES])
def test_dask_suite_ends_the_same_on_lazycell_as_on_dask(suite: Suite, tmp_path):
    runs = {}
    for engine in ("lazycell", "dask"):
        side = tmp_path / engine
        side.mkdir()
        runs[engine] = (*start_suite_run(suite, engine, side), side)
    results = {
        engine: finish_suite_run(process, report, side, engine)
        for engine, (process, report, side) in runs.items()
    }
    on_lazycell = results["lazycell"]["outcomes"]
    on_dask = results["dask"]["outcomes"]

    lazycell_graphs = sum(
        n for label, n in results["lazycell"]["graphs_run"].items() if label.startswith("lazycell")
    )
    assert lazycell_graphs >= suite.min_lazycell_graphs, results["lazycell"]["graphs_run"]
    assert on_dask, "dask's side ran no test: the selection or the path is wrong"
    assert set(on_lazycell) == set(on_dask), "both sides must run the same tests"

    unexpected = []
    for nodeid, dask_outcome in sorted(on_dask.items()):
        known = suite.known_differences.get(name_of_test(nodeid))
        expected = (known.lazycell, known.dask) if known else (dask_outcome, dask_outcome)
        if (on_lazycell[nodeid], dask_outcome) != expected:
            unexpected.append(f"{nodeid}: lazycell {on_lazycell[nodeid]}, dask {dask_outcome}")
    summary = {
        engine: dict(Counter(outcomes.values()))
        for engine, outcomes in (("lazycell", on_lazycell), ("dask", on_dask))
    }
    assert not unexpected, f"{summary}\n" + "\n".join(unexpected)
    print(f"{suite.name}: {summary}")
