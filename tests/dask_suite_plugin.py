"""A pytest plugin that routes dask's schedulers to lazycell, for running dask's own tests.

Loaded with ``-p dask_suite_plugin`` (``tests/`` on the path) in a pytest run
of a test file from the installed dask package; ``tests/test_dask_suites.py``
runs each suite twice, once per engine, and compares the outcomes. Set by
environment variables:

- ``LAZYCELL_DASK_SUITE_ENGINE``: ``lazycell`` routes dask's named schedulers
  (``"sync"``, ``"threads"``, ``"processes"`` and their aliases, which
  ``assert_eq`` and ``.compute(scheduler=...)`` use) and each collection's
  default scheduler (``__dask_scheduler__``: threads for arrays, dataframes
  and delayed, processes for bags) to ``lc.get_scheduler(...)``'s
  get-functions; ``dask`` leaves dask's own (the reference run).
- ``LAZYCELL_DASK_SUITE_ROUTE``: ``named`` (default) keeps each name on its
  counterpart; ``processes`` sends every name and every default to the
  engine's processes scheduler, to run a whole suite on processes.
- ``LAZYCELL_DASK_SUITE_REPORT``: a path; the plugin writes there, as JSON,
  each test's outcome and how many graphs each engine's get-functions ran (so
  the gate knows lazycell really ran the tests, and dask's did not).
"""

from __future__ import annotations

import json
import os
from collections import Counter

ENGINE_VARIABLE = "LAZYCELL_DASK_SUITE_ENGINE"
ROUTE_VARIABLE = "LAZYCELL_DASK_SUITE_ROUTE"
REPORT_VARIABLE = "LAZYCELL_DASK_SUITE_REPORT"

# dask's names for each local scheduler (dask.base.named_schedulers).
NAMES = {
    "sync": ("sync", "synchronous", "single-threaded"),
    "threads": ("threads", "threading"),
    "processes": ("processes", "multiprocessing"),
}

outcomes: dict[str, str] = {}
graphs_run: Counter = Counter()  # by get-function
graphs_by_test: Counter = Counter()
current_test = [""]


def counted(get, label: str):
    """``get``, counting each graph it runs under ``label``."""

    def counted_get(dsk, keys, **kwargs):
        graphs_run[label] += 1
        graphs_by_test[current_test[0]] += 1
        return get(dsk, keys, **kwargs)

    counted_get.__name__ = f"counted_{label}"
    return counted_get


def get_functions(engine: str, route: str) -> dict:
    """The get-function each local scheduler's name goes to."""
    if engine == "lazycell":
        import lazycell as lc

        gets = {name: counted(lc.get_scheduler(name), f"lazycell-{name}") for name in NAMES}
    else:
        import dask.local
        import dask.multiprocessing
        import dask.threaded

        gets = {
            "sync": counted(dask.local.get_sync, "dask-sync"),
            "threads": counted(dask.threaded.get, "dask-threads"),
            "processes": counted(dask.multiprocessing.get, "dask-processes"),
        }
    if route == "processes":
        gets = dict.fromkeys(NAMES, gets["processes"])
    return gets


def route_dask_schedulers(gets: dict) -> None:
    """Point dask's named schedulers and its collections' defaults at ``gets``."""
    import importlib

    import dask.array.core
    import dask.bag.core
    import dask.base
    import dask.local
    import dask.multiprocessing
    import dask.threaded

    # The module: ``dask.delayed`` the attribute is the function of that name.
    delayed_module = importlib.import_module("dask.delayed")
    for name, aliases in NAMES.items():
        for alias in aliases:
            dask.base.named_schedulers[alias] = gets[name]
    default_of = {
        dask.threaded.get: gets["threads"],
        dask.multiprocessing.get: gets["processes"],
        dask.local.get_sync: gets["sync"],
    }
    classes = [dask.array.core.Array, dask.bag.core.Bag, dask.bag.core.Item, delayed_module.Delayed]
    try:
        from dask.dataframe.dask_expr._collection import FrameBase

        classes.append(FrameBase)
    except ImportError:  # dask without dataframe support
        pass
    try:
        from dask.array._array_expr._collection import Array as ExprArray

        classes.append(ExprArray)
    except ImportError:
        pass
    for cls in classes:
        default = cls.__dict__.get("__dask_scheduler__")
        if default is not None and default.__func__ in default_of:
            cls.__dask_scheduler__ = staticmethod(default_of[default.__func__])
    for module in (dask.array.core, dask.bag.core, delayed_module):
        if getattr(module, "DEFAULT_GET", None) in default_of:
            module.DEFAULT_GET = default_of[module.DEFAULT_GET]


def pytest_configure(config) -> None:
    engine = os.environ.get(ENGINE_VARIABLE, "lazycell")
    route = os.environ.get(ROUTE_VARIABLE, "named")
    if engine not in ("lazycell", "dask") or route not in ("named", "processes"):
        raise ValueError(
            f"{ENGINE_VARIABLE}={engine!r} / {ROUTE_VARIABLE}={route!r}: the engine is "
            "'lazycell' or 'dask', the route 'named' or 'processes'"
        )
    if engine == "dask" and route == "named":
        return  # the reference run: dask exactly as installed
    route_dask_schedulers(get_functions(engine, route))


def pytest_runtest_setup(item) -> None:
    current_test[0] = item.nodeid


def pytest_runtest_logreport(report) -> None:
    """Each test's outcome: its call's, or "error" when its set-up or tear-down failed."""
    nodeid = report.nodeid
    if report.when == "call":
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        if outcomes.get(nodeid) != "error":
            outcomes[nodeid] = outcome
    elif report.failed:
        outcomes[nodeid] = "error"
    elif report.skipped:
        outcomes[nodeid] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_sessionfinish(session, exitstatus) -> None:
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        with open(path, "w") as f:
            report = {
                "outcomes": outcomes,
                "graphs_run": dict(graphs_run),
                "graphs_by_test": dict(graphs_by_test),
            }
            json.dump(report, f, indent=1)
