"""lazycell and dask together: dask-style graphs in, dask collections in and out.

- ``lc.get`` runs dask graphs (legacy tuples, ``dask._task_spec`` nodes,
  ``HighLevelGraph``); dask's own ``GetFunctionTestMixin`` is the spec.
- ``lc.get_scheduler`` gives a get-callable for dask's ``scheduler=``.
- ``lc.compute`` / ``lc.persist`` take dask collections, mixed with lazycell
  objects and nested in containers.
- ``import lazycell`` never imports dask.
"""

from __future__ import annotations

import collections
import functools
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import dask.local
import numpy as np
import pandas as pd
import pytest
from dask._task_spec import (
    Alias,
    DataNode,
    Dict,
    List,
    Set,
    Task,
    TaskRef,
    Tuple,
    convert_legacy_graph,
)
from dask.highlevelgraph import HighLevelGraph
from dask.utils_test import GetFunctionTestMixin, add, inc

import lazycell as lc
from lazycell import config

SCHEDULERS = ["sync", "threads", "processes"]

# Computing dask arrays/dataframes (expression-backed) together with bags/delayed
# (graph-backed) makes dask itself warn; that is dask's message, not ours.
mixed_collections_warning = pytest.mark.filterwarnings(
    "ignore:Computing mixed collections:UserWarning"
)


@pytest.fixture(autouse=True)
def clean_config(monkeypatch, tmp_path):
    """No user config file, no LAZYCELL_* variables, no lc.config.set left over."""
    for var in ("LAZYCELL_SCHEDULER", "LAZYCELL_NUM_WORKERS", "LAZYCELL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config.reset()
    yield
    config.reset()


# ------------------------------------------------------------------ helpers (picklable)


def where_am_i(_=None):
    """(pid, runs in the main thread?) of the task that calls it."""
    return os.getpid(), threading.current_thread() is threading.main_thread()


def observed_scheduler(pid_and_main) -> str:
    pid, in_main_thread = pid_and_main
    if pid != os.getpid():
        return "processes"
    return "sync" if in_main_thread else "threads"


def double(x):
    return 2 * x


def total_plus(array, scalar):
    return int(array.sum()) + int(scalar)


def describe(value):
    return type(value).__name__, value


def make_pdf() -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(24, dtype="int64"), "b": np.arange(24, dtype="int64") % 4})


def make_array():
    return da.arange(60, chunks=7).reshape(6, 10).rechunk((4, 3))


def make_ddf():
    return dd.from_pandas(make_pdf(), npartitions=4)


def make_bag():
    return db.from_sequence(range(20), npartitions=3)


def get_on(name: str):
    """``lc.get`` bound to one scheduler, with a ``__name__`` for the mixin's messages."""
    get = functools.partial(lc.get, scheduler=name)
    get.__name__ = f"lc.get[scheduler={name}]"
    return get


# ------------------------------------------------- lc.get: dask's executable spec


class TestGetFunctionSync(GetFunctionTestMixin):
    get = staticmethod(get_on("sync"))


class TestGetFunctionThreads(GetFunctionTestMixin):
    get = staticmethod(get_on("threads"))


class TestGetFunctionProcesses(GetFunctionTestMixin):
    get = staticmethod(get_on("processes"))


def test_mixin_classes_call_lc_get_with_their_scheduler():
    # The mixin calls self.get(dsk, key): each class must reach lc.get on its scheduler.
    d = {"w": (where_am_i,)}
    assert observed_scheduler(TestGetFunctionSync.get(d, "w")) == "sync"
    assert observed_scheduler(TestGetFunctionThreads.get(d, "w")) == "threads"
    assert observed_scheduler(TestGetFunctionProcesses.get(d, "w")) == "processes"


# ------------------------------------------------- lc.get: dask._task_spec nodes


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_runs_task_nodes_with_taskrefs(scheduler):
    dsk = {
        "x": DataNode("x", 1),
        "y": Task("y", inc, TaskRef("x")),
        "z": Task("z", add, TaskRef("x"), TaskRef("y")),
    }
    assert lc.get(dsk, "z", scheduler=scheduler) == 3


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_returns_datanode_value(scheduler):
    dsk = {"x": DataNode("x", [1, 2, 3])}
    assert lc.get(dsk, "x", scheduler=scheduler) == [1, 2, 3]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_follows_alias_nodes(scheduler):
    dsk = {
        "x": DataNode("x", 5),
        "y": Alias("y", "x"),
        "z": Alias("z", "y"),
        "w": Task("w", inc, TaskRef("z")),
    }
    assert lc.get(dsk, ["y", "z", "w"], scheduler=scheduler) == (5, 5, 6)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_builds_list_and_dict_nodes(scheduler):
    dsk = {
        "x": DataNode("x", 1),
        "lst": Task("lst", list, List(TaskRef("x"), 2, Task(None, inc, TaskRef("x")))),
        "dct": Task("dct", dict, Dict({"a": TaskRef("x"), "b": 3})),
    }
    assert lc.get(dsk, ["lst", "dct"], scheduler=scheduler) == ([1, 2, 2], {"a": 1, "b": 3})


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_builds_tuple_and_set_nodes(scheduler):
    dsk = {
        "x": DataNode("x", 1),
        "tup": Task("tup", tuple, Tuple(TaskRef("x"), 2)),
        "srt": Task("srt", sorted, Set(TaskRef("x"), 5)),
    }
    assert lc.get(dsk, ["tup", "srt"], scheduler=scheduler) == ((1, 2), [1, 5])


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_matches_dask_get_on_converted_legacy_graph(scheduler):
    legacy = {"x": 1, "y": (inc, "x"), "z": [(inc, "y"), "x"], "w": (sum, "z")}
    dsk = convert_legacy_graph(legacy)
    assert lc.get(dsk, ["z", "w"], scheduler=scheduler) == dask.get(dsk, ["z", "w"])
    assert lc.get(dsk, ["z", "w"], scheduler=scheduler) == ([3, 1], 4)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_passes_task_node_kwargs(scheduler):
    dsk = {"x": DataNode("x", 10), "y": Task("y", add, 1, y=TaskRef("x"))}
    assert lc.get(dsk, "y", scheduler=scheduler) == 11


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_runs_inner_task_nodes(scheduler):
    dsk = {"x": DataNode("x", 1), "z": Task("z", add, Task(None, inc, TaskRef("x")), 10)}
    assert lc.get(dsk, "z", scheduler=scheduler) == 12


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_mixes_legacy_tuples_and_task_nodes(scheduler):
    dsk = {
        "x": 1,
        "y": Task("y", inc, TaskRef("x")),
        "z": (add, "x", "y"),
        "w": (add, Task(None, inc, TaskRef("z")), 100),
    }
    assert lc.get(dsk, ["z", "w"], scheduler=scheduler) == (3, 104)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_references_tuple_keys_in_legacy_tasks(scheduler):
    dsk = {("a", 0): 3, ("a", 1): (inc, ("a", 0)), "s": (sum, [("a", 0), ("a", 1)])}
    assert lc.get(dsk, "s", scheduler=scheduler) == 7


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_nested_key_lists_give_nested_tuples_for_task_nodes(scheduler):
    dsk = {"x": DataNode("x", 1), "y": Task("y", inc, TaskRef("x"))}
    assert lc.get(dsk, [["x"], ["y", ["x", "y"]]], scheduler=scheduler) == ((1,), (2, (1, 2)))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_missing_key_in_task_node_graph_raises_keyerror(scheduler):
    dsk = {"x": DataNode("x", 1), "y": Task("y", inc, TaskRef("x"))}
    with pytest.raises(KeyError):
        lc.get(dsk, ["y", ["missing"]], scheduler=scheduler)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_runs_10000_deep_task_node_chain(scheduler):
    n = 10_000
    dsk = {f"x{i + 1}": Task(f"x{i + 1}", inc, TaskRef(f"x{i}")) for i in range(n)}
    dsk["x0"] = DataNode("x0", 0)
    assert lc.get(dsk, f"x{n}", scheduler=scheduler) == n


def test_get_runs_10000_deep_alias_chain():
    n = 10_000
    dsk = {f"x{i + 1}": Alias(f"x{i + 1}", f"x{i}") for i in range(n)}
    dsk["x0"] = DataNode("x0", "bottom")
    assert lc.get(dsk, f"x{n}", scheduler="sync") == "bottom"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_runs_highlevelgraph_of_task_nodes(scheduler):
    layers = {
        "a": {"x": DataNode("x", 1), "y": Task("y", inc, TaskRef("x"))},
        "b": {"z": Task("z", add, TaskRef("x"), TaskRef("y"))},
    }
    graph = HighLevelGraph(layers, {"a": set(), "b": {"a"}})
    assert lc.get(graph, "z", scheduler=scheduler) == 3


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_runs_dask_array_graph_with_nested_chunk_keys(scheduler):
    x = make_array() + 1
    chunks = lc.get(x.__dask_graph__(), x.__dask_keys__(), scheduler=scheduler)
    assert isinstance(chunks, tuple) and all(isinstance(row, tuple) for row in chunks)
    expected = np.arange(60).reshape(6, 10) + 1
    np.testing.assert_array_equal(np.block([list(row) for row in chunks]), expected)


# ------------------------------------------------- lc.get_scheduler inside dask


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_computes_dask_array_like_dask(scheduler):
    x = make_array()
    expr = (x * 2 + 1).sum(axis=0)
    expected = expr.compute(scheduler="sync")
    np.testing.assert_array_equal(expr.compute(scheduler=lc.get_scheduler(scheduler)), expected)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_computes_dask_array_reduction_like_dask(scheduler):
    x = make_array()
    assert x.sum().compute(scheduler=lc.get_scheduler(scheduler)) == x.sum().compute(
        scheduler="sync"
    )


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_computes_dask_dataframe_like_dask(scheduler):
    ddf = make_ddf()
    expr = ddf[ddf.a > 3].groupby("b").a.sum()
    expected = expr.compute(scheduler="sync")
    assert expected.sum() > 0
    pd.testing.assert_series_equal(expr.compute(scheduler=lc.get_scheduler(scheduler)), expected)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_computes_whole_dask_dataframe_like_dask(scheduler):
    ddf = make_ddf().assign(c=lambda df: df.a * 10)
    expected = ddf.compute(scheduler="sync")
    pd.testing.assert_frame_equal(ddf.compute(scheduler=lc.get_scheduler(scheduler)), expected)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_computes_dask_bag_like_dask(scheduler):
    bag = make_bag().map(double).filter(lambda v: v % 3 != 0)
    expected = bag.compute(scheduler="sync")
    assert bag.compute(scheduler=lc.get_scheduler(scheduler)) == expected
    assert bag.sum().compute(scheduler=lc.get_scheduler(scheduler)) == sum(expected)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_computes_dask_delayed_like_dask(scheduler):
    parts = [dask.delayed(inc)(i) for i in range(5)]
    total = dask.delayed(sum)(parts)
    assert total.compute(scheduler=lc.get_scheduler(scheduler)) == total.compute(scheduler="sync")


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_get_scheduler_runs_dask_tasks_on_that_scheduler(scheduler):
    task = dask.delayed(where_am_i)(0)
    assert observed_scheduler(task.compute(scheduler=lc.get_scheduler(scheduler))) == scheduler


@mixed_collections_warning
def test_get_scheduler_works_for_dask_compute_of_several_collections():
    x = make_array()
    bag = make_bag()
    got = dask.compute(x.sum(), bag.count(), scheduler=lc.get_scheduler("threads"))
    assert got == (x.sum().compute(scheduler="sync"), 20)


def test_get_scheduler_works_as_dask_config_default():
    task = dask.delayed(where_am_i)(0)
    with dask.config.set(scheduler=lc.get_scheduler("processes")):
        assert observed_scheduler(task.compute()) == "processes"


def test_get_scheduler_accepts_an_executor():
    with ThreadPoolExecutor(2, thread_name_prefix="interop-pool") as pool:
        task = dask.delayed(lambda _: threading.current_thread().name)(0)
        assert task.compute(scheduler=lc.get_scheduler(pool)).startswith("interop-pool")


def test_get_scheduler_none_uses_configured_scheduler():
    task = dask.delayed(where_am_i)(0)
    get = lc.get_scheduler()
    with config.set(scheduler="sync"):
        assert observed_scheduler(task.compute(scheduler=get)) == "sync"


# ------------------------------------------------- lc.compute with dask collections


COLLECTIONS = {
    "array": (lambda: make_array().sum(axis=1), np.arange(60).reshape(6, 10).sum(axis=1)),
    "dataframe": (lambda: make_ddf().a.sum(), int(make_pdf().a.sum())),
    "bag": (lambda: make_bag().map(double), [2 * i for i in range(20)]),
    "delayed": (lambda: dask.delayed(sum)([dask.delayed(inc)(i) for i in range(4)]), 10),
}


def assert_same(got, expected):
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("kind", sorted(COLLECTIONS))
def test_compute_accepts_dask_collection(kind, scheduler):
    build, expected = COLLECTIONS[kind]
    result = lc.compute(build(), scheduler=scheduler)
    assert isinstance(result, tuple) and len(result) == 1
    assert_same(result[0], expected)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_compute_returns_whole_dask_dataframe_as_pandas(scheduler):
    (got,) = lc.compute(make_ddf(), scheduler=scheduler)
    pd.testing.assert_frame_equal(got, make_pdf())


@mixed_collections_warning
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_compute_mixes_dask_collections_and_lazycell_objects(scheduler):
    lazy_inc = lc.delayed(inc)
    args = [COLLECTIONS[k][0]() for k in sorted(COLLECTIONS)]
    results = lc.compute(lazy_inc(1), *args, lazy_inc(lazy_inc(5)), scheduler=scheduler)
    assert len(results) == 6
    assert results[0] == 2 and results[-1] == 7
    for got, kind in zip(results[1:-1], sorted(COLLECTIONS), strict=True):
        assert_same(got, COLLECTIONS[kind][1])


@mixed_collections_warning
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_compute_keeps_nested_structure_of_dask_and_lazycell_objects(scheduler):
    x = make_array()
    ddf = make_ddf()
    structure = [
        x.sum(),
        {"df": (ddf.a.max(), lc.delayed(inc)(2)), "plain": "text"},
        (dask.delayed(add)(1, 2), [make_bag().count()]),
    ]
    result = lc.compute(structure, 42, scheduler=scheduler)
    assert result == ([1770, {"df": (23, 3), "plain": "text"}, (3, [20])], 42)
    assert type(result[0]) is list and type(result[0][1]["df"]) is tuple
    assert type(result[0][2]) is tuple and type(result[0][2][1]) is list


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_lazycell_function_receives_computed_dask_array(scheduler):
    x = make_array()
    (got,) = lc.compute(lc.delayed(describe)(x), scheduler=scheduler)
    assert got[0] == "ndarray"
    np.testing.assert_array_equal(got[1], np.arange(60).reshape(6, 10))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_lazycell_function_receives_computed_dask_dataframe(scheduler):
    (got,) = lc.compute(lc.delayed(describe)(make_ddf()), scheduler=scheduler)
    assert got[0] == "DataFrame"
    pd.testing.assert_frame_equal(got[1], make_pdf())


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_lazycell_function_receives_computed_dask_bag_and_delayed(scheduler):
    total = lc.delayed(add)(make_bag(), [dask.delayed(inc)(0)])
    assert total.compute(scheduler=scheduler) == [*range(20), 1]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_lazycell_function_mixes_dask_and_lazycell_arguments(scheduler):
    x = make_array()
    result = lc.delayed(total_plus)(x, scalar=lc.delayed(inc)(make_ddf().a.sum()))
    assert result.compute(scheduler=scheduler) == 1770 + 277


# ------------------------------------------------- lc.persist with dask collections


def filtered(ddf):
    return ddf[ddf.a > 5]


PERSISTABLE = {
    "array": lambda: make_array() * 2,
    "dataframe": lambda: filtered(make_ddf()),
    "bag": lambda: make_bag().map(double),
    "delayed": lambda: dask.delayed(sum)([dask.delayed(inc)(i) for i in range(4)]),
}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("kind", sorted(PERSISTABLE))
def test_persist_dask_collection_returns_same_kind_with_same_value(kind, scheduler):
    coll = PERSISTABLE[kind]()
    expected = coll.compute(scheduler="sync")
    (persisted,) = lc.persist(coll, scheduler=scheduler)
    assert dask.is_dask_collection(persisted)
    assert type(persisted) is type(coll)
    got = persisted.compute(scheduler="sync")
    if kind == "array":
        np.testing.assert_array_equal(got, expected)
    elif kind == "dataframe":
        pd.testing.assert_frame_equal(got, expected)
    else:
        assert got == expected


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_persist_dask_collection_does_not_recompute_later(scheduler):
    calls = []

    def record(v):
        calls.append(v)
        return v * 10

    bag = db.from_sequence(range(6), npartitions=2).map(record)
    (persisted,) = lc.persist(bag, scheduler=scheduler)
    assert sorted(calls) == list(range(6))
    assert persisted.compute(scheduler="sync") == [v * 10 for v in range(6)]
    assert sorted(calls) == list(range(6))


def test_persist_passes_non_lazy_values_through():
    marker = object()
    x = make_array()
    persisted, same = lc.persist(x, marker, scheduler="sync")
    assert same is marker
    np.testing.assert_array_equal(persisted.compute(scheduler="sync"), x.compute(scheduler="sync"))


# ------------------------------------------------- unknown scheduler names


VALID_NAMES = ("sync", "threads", "processes")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: lc.get({"x": 1}, "x", scheduler="bogus"), id="get"),
        pytest.param(lambda: lc.get_scheduler("bogus"), id="get_scheduler"),
        pytest.param(lambda: lc.compute(make_array().sum(), scheduler="bogus"), id="compute"),
        pytest.param(lambda: lc.persist(make_array(), scheduler="bogus"), id="persist"),
        pytest.param(lambda: lc.delayed(inc)(1).compute(scheduler="bogus"), id="delayed"),
    ],
)
def test_unknown_scheduler_name_raises_valueerror_listing_valid_names(call):
    with pytest.raises(ValueError, match="bogus") as info:
        call()
    message = str(info.value)
    for name in VALID_NAMES:
        assert name in message


# ------------------------------------------------- dask stays unimported


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYCELL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_import_lazycell_does_not_import_dask():
    proc = run_python(
        """
        import sys
        import lazycell
        assert "dask" not in sys.modules, sorted(m for m in sys.modules if "dask" in m)
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_computing_plain_lazycell_graph_does_not_import_dask(scheduler):
    proc = run_python(
        f"""
        import operator, sys
        import lazycell as lc
        inc = lc.delayed(operator.add)
        parts = [inc(i, 1) for i in range(4)]
        result = lc.compute(lc.delayed(sum)(parts), parts[0], scheduler={scheduler!r})
        assert result == (10, 1), result
        assert lc.get({{"x": 1, "y": (operator.neg, "x")}}, ["y"], scheduler={scheduler!r}) == (-1,)
        assert "dask" not in sys.modules, sorted(m for m in sys.modules if "dask" in m)
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def _identity_args(*args):
    return args


_Pair = collections.namedtuple("_Pair", "x y")


@pytest.mark.parametrize(
    "graph",
    [
        {"a": 1, "b": (_identity_args, ("a", 2))},
        {"a": 1, "b": (_identity_args, {"a", 2})},
        {"a": 1, "b": (_identity_args, frozenset({"a", 3}))},
        {"a": 1, "b": (_identity_args, ((inc, "a"), 2))},
        {"a": 1, "b": (_identity_args, {"k": "a"})},
        {"a": 1, "b": (_identity_args, _Pair("a", 3))},
        {"a": 1, "b": ("a", 5)},
        {"a": 1, "b": ["a", (inc, "a"), ("a", ["a"])]},
    ],
    ids=[
        "tuple",
        "set",
        "frozenset",
        "inner-task",
        "dict-literal",
        "namedtuple",
        "top-tuple",
        "top-list",
    ],
)
def test_legacy_containers_are_read_as_current_dask_reads_them(graph, scheduler):
    assert lc.get(graph, "b", scheduler=scheduler) == dask.local.get_sync(graph, "b")


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_a_dask_taskref_as_a_graph_value_is_the_value_it_names(scheduler):
    from dask._task_spec import TaskRef

    assert lc.get({"a": 1, "b": TaskRef("a")}, "b", scheduler=scheduler) == 1
    assert lc.get({"a": 1, "b": (add, TaskRef("a"), 10)}, "b", scheduler=scheduler) == 11


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_dask_delayed_of_a_dask_collection_computes_on_lazycell(scheduler):
    import dask
    import dask.array as da

    x = dask.delayed(da.ones(4, chunks=2))
    result = x.compute(scheduler=lc.get_scheduler(scheduler))
    assert result.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert lc.compute(x, scheduler=scheduler)[0].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_dask_keywords_the_get_function_cannot_honour_are_an_error_not_dropped():
    import dask

    x = dask.delayed(inc)(1)
    with pytest.raises(TypeError, match="cannot honour cache="):
        x.compute(scheduler=lc.get_scheduler("threads"), cache={})
    with pytest.raises(TypeError, match="got get_id, which it cannot honour"):
        x.compute(scheduler=lc.get_scheduler("threads"), get_id=lambda: 1)


def test_a_pool_passed_through_dask_runs_the_graph_on_that_pool():
    import dask

    names = []

    def where(x):
        names.append(threading.current_thread().name)
        return x

    with ThreadPoolExecutor(2, thread_name_prefix="users-pool") as pool:
        total = dask.delayed(sum)([dask.delayed(where)(i) for i in range(6)])
        assert total.compute(scheduler=lc.get_scheduler("sync"), pool=pool) == 15
    assert names and all(name.startswith("users-pool") for name in names)
