"""Notebooks executed end to end in a real kernel (nbclient): every magic and option.

Each module-scoped fixture executes one notebook once; each test then reads
the outputs of the cells it is about, found by their tag. Cells tagged
``raises-exception`` are expected to fail and nbclient lets them.
"""

import ast
import re

import nbformat
import pytest
from kernel_helpers import REPO_DIR, execute_notebook, strip_ansi
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = pytest.mark.slow

QUICKSTART = REPO_DIR / "notebooks" / "quickstart.ipynb"

FEATURE_CELLS = [
    (
        "setup",
        "%load_ext lazycell\n"
        "%load_ext lazycell\n"
        "import os\n"
        "import lazycell as lc\n"
        "from kernel_helpers_tasks import add, fail_on, outer, slow, where\n"
        "import lazycell.kernel_ext.scheduler_choice as choice\n"
        "choice.CONNECT_TIMEOUT = 1  # for the unreachable address below\n"
        "print(f'kernel pid {os.getpid()}')",
    ),
    ("sync", "%%compute --scheduler sync\n[lc.delayed(where)(i) for i in range(4)]"),
    (
        "threads",
        "%%compute --scheduler threads --workers 2\n[lc.delayed(where)(i) for i in range(8)]",
    ),
    ("processes", "%%compute -s processes -n 2\n[lc.delayed(where)(i) for i in range(8)]"),
    (
        "nested",
        "%%compute -s threads\n{'a': [lc.delayed(add)(1, 2)], 'b': (lc.delayed(add)(3, 4), 'x')}",
    ),
    ("value", "%%compute -s sync\nlc.delayed(add)(20, 22)"),
    ("underscore", "_ + 1"),
    ("out-option", "%%compute -s sync --out stored\nlc.delayed(add)(1, 2)"),
    ("out-variable", "stored * 100"),
    ("progress", "%%compute -s threads\n[lc.delayed(slow)(i) for i in range(2)]"),
    ("quiet", "%%compute -s threads --quiet\n[lc.delayed(slow)(i) for i in range(2)]"),
    ("line-form", "%compute -s processes lc.delayed(where)()"),
    ("inside-cell", "%%compute -s processes\nfirst = lc.delayed(where)().compute()\nfirst"),
    ("scheduler-set", "%scheduler processes --workers 2\n%scheduler"),
    ("session-default", "%%compute\nlc.delayed(where)()"),
    ("scheduler-list", "%scheduler --list"),
    ("scheduler-reset", "%scheduler threads"),
    ("bad-workers-sync", "%%compute -s sync -n 2\nran_bad = True"),
    ("bad-threads-per-worker", "%%compute -s threads --threads-per-worker 2\nran_bad = True"),
    ("bad-memory-limit", "%%compute -s processes --memory-limit 2GB\nran_bad = True"),
    ("bad-distributed", "%%compute -s distributed --memory-limit lots\nran_bad = True"),
    ("bad-address", "%%compute -s tcp://127.0.0.1:1\nran_bad = True"),
    ("bad-unknown-option", "%%compute --fast\nran_bad = True"),
    ("bad-workers-value", "%%compute -s threads -n many\nran_bad = True"),
    ("nothing-ran", "'ran_bad' in globals()"),
    ("dask-import", "import dask\nimport dask.array as da"),
    (
        "dask-last-expression",
        "%%compute -s processes\n"
        "{'array': da.arange(10, chunks=3).sum(), 'delayed': dask.delayed(add)(1, 2)}",
    ),
    ("dask-values", "{key: int(value) for key, value in _.items()}"),
    ("dask-inside-cell", "%%compute -s processes\ndask.delayed(where)().compute()"),
    ("fail-sync", "%%compute -s sync\nlc.delayed(outer)(lc.delayed(add)(40, 2))"),
    ("fail-threads", "%%compute -s threads\nlc.delayed(outer)(lc.delayed(add)(40, 2))"),
    ("fail-processes", "%%compute -s processes\nlc.delayed(outer)(lc.delayed(add)(40, 2))"),
    (
        "catch-in-cell",
        "%%compute -s processes\n"
        "try:\n"
        "    lc.delayed(fail_on)(1, 1).compute()\n"
        "except ZeroDivisionError as exc:\n"
        "    caught = type(exc).__name__\n"
        "caught",
    ),
    ("unload", "%unload_ext lazycell"),
    ("after-unload", "%%compute\n1"),
]
EXPECTED_TO_FAIL = {"after-unload"} | {
    name for name, _ in FEATURE_CELLS if name.startswith(("bad-", "fail-"))
}


def execute(nb, tmp_path_factory, cwd):
    execute_notebook(nb, cwd, tmp_path_factory.mktemp("ipython"))
    return {tag: cell for cell in nb.cells for tag in cell.metadata.get("tags", [])}


@pytest.fixture(scope="module")
def feature_cells(tmp_path_factory):
    cells = []
    for name, source in FEATURE_CELLS:
        tags = [name] + (["raises-exception"] if name in EXPECTED_TO_FAIL else [])
        cells.append(new_code_cell(source, metadata={"tags": tags}))
    return execute(new_notebook(cells=cells), tmp_path_factory, tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="module")
def quickstart_cells(tmp_path_factory):
    nb = nbformat.read(QUICKSTART, as_version=4)
    return execute(nb, tmp_path_factory, QUICKSTART.parent)


def value(cell):
    """The cell's output value (its execute_result, parsed as a Python literal)."""
    (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return ast.literal_eval(result.data["text/plain"])


def text(cell, name="stdout") -> str:
    return strip_ansi("".join(o.text for o in cell.outputs if o.get("name") == name))


def error(cell):
    (err,) = [o for o in cell.outputs if o.output_type == "error"]
    return err.ename, strip_ansi("\n".join(err.traceback))


def kernel_pid(cells) -> int:
    (line,) = [line for line in text(cells["setup"]).splitlines() if "kernel pid" in line]
    return int(line.split()[-1])


# ------------------------------------------------------------------- feature notebook


def test_sync_runs_every_task_in_the_kernels_main_thread(feature_cells):
    assert set(value(feature_cells["sync"])) == {(kernel_pid(feature_cells), "MainThread")}


def test_threads_run_tasks_on_pool_threads_of_the_kernel(feature_cells):
    places = set(value(feature_cells["threads"]))
    assert {pid for pid, _ in places} == {kernel_pid(feature_cells)}
    assert {name for _, name in places} <= {"lazycell-thread-0", "lazycell-thread-1"}


def test_processes_run_tasks_in_other_processes(feature_cells):
    pids = {pid for pid, _ in value(feature_cells["processes"])}
    assert kernel_pid(feature_cells) not in pids and 1 <= len(pids) <= 2


def test_lazy_values_nested_in_containers_are_computed(feature_cells):
    assert value(feature_cells["nested"]) == {"a": [3], "b": (7, "x")}


def test_the_result_is_the_cells_output_and_underscore_holds_it(feature_cells):
    assert value(feature_cells["value"]) == 42
    assert value(feature_cells["underscore"]) == 43


def test_out_option_stores_the_result_in_a_variable(feature_cells):
    assert value(feature_cells["out-variable"]) == 300


def panel_outputs(cell) -> list:
    return [
        o
        for o in cell.outputs
        if o.output_type == "display_data"
        and "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]


def test_in_a_kernel_a_finished_compute_leaves_its_panels_static_summary(feature_cells):
    assert panel_outputs(feature_cells["progress"]) == []  # the live widget was replaced
    (panel,) = [o for o in feature_cells["progress"].outputs if "lazycell" in o.metadata]
    assert "2 tasks" in panel.data["text/plain"] and "threads" in panel.data["text/plain"]
    assert value(feature_cells["progress"]) == [0, 1]


def test_quiet_shows_no_progress(feature_cells):
    assert text(feature_cells["quiet"]) == ""
    assert panel_outputs(feature_cells["quiet"]) == []


def test_line_form_computes_one_expression_on_the_chosen_scheduler(feature_cells):
    pid, _ = value(feature_cells["line-form"])
    assert pid != kernel_pid(feature_cells)


def test_compute_calls_inside_the_cell_use_the_cells_scheduler(feature_cells):
    pid, _ = value(feature_cells["inside-cell"])
    assert pid != kernel_pid(feature_cells)


def test_scheduler_magic_sets_and_shows_the_session_scheduler(feature_cells):
    assert "processes (2 worker processes)" in text(feature_cells["scheduler-set"])
    pid, _ = value(feature_cells["session-default"])
    assert pid != kernel_pid(feature_cells)


def test_scheduler_list_is_the_decision_matrix(feature_cells):
    listing = text(feature_cells["scheduler-list"])
    for word in ("sync", "threads", "processes", "distributed", "dask", "ADDRESS"):
        assert word in listing
    assert "(coming)" not in listing


@pytest.mark.parametrize(
    "name, message",
    [
        ("bad-workers-sync", "--workers does not apply to the sync scheduler"),
        ("bad-threads-per-worker", "--threads-per-worker applies only to a local cluster"),
        ("bad-memory-limit", "--memory-limit applies only to a local cluster"),
        ("bad-distributed", "--memory-limit: memory_limit 'lots' is not a size"),
        ("bad-address", "cannot reach a dask scheduler at 'tcp://127.0.0.1:1'"),
        ("bad-unknown-option", "unrecognized arguments: --fast"),
        ("bad-workers-value", "invalid int value: 'many'"),
    ],
)
def test_bad_options_print_a_usage_error(feature_cells, name, message):
    shown = text(feature_cells[name], "stderr")
    assert "UsageError: " in shown and re.search(message, shown), shown


def test_bad_options_run_nothing_of_the_cell(feature_cells):
    assert value(feature_cells["nothing-ran"]) is False


def test_dask_collections_in_the_last_expression_are_computed(feature_cells):
    assert value(feature_cells["dask-values"]) == {"array": 45, "delayed": 3}


def test_dask_compute_inside_the_cell_runs_on_lazycells_scheduler(feature_cells):
    pid, _ = value(feature_cells["dask-inside-cell"])
    assert pid != kernel_pid(feature_cells)


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_failure_shows_the_task_and_the_users_lines_not_scheduler_internals(
    feature_cells, scheduler
):
    ename, traceback = error(feature_cells[f"fail-{scheduler}"])
    assert ename == "ZeroDivisionError"
    assert f"(function outer) failed on the {scheduler} scheduler" in traceback
    assert "return 1 / (y - y)" in traceback
    assert "lazycell/schedulers" not in traceback and "interactiveshell" not in traceback


def test_failure_in_a_worker_shows_the_worker_traceback(feature_cells):
    _, traceback = error(feature_cells["fail-processes"])
    assert "traceback in the worker" in traceback


def test_user_code_catches_the_users_exception_type(feature_cells):
    assert value(feature_cells["catch-in-cell"]) == "ZeroDivisionError"


def test_unload_removes_the_magics(feature_cells):
    assert "Cell magic `%%compute` not found" in text(feature_cells["after-unload"], "stderr")


# ------------------------------------------------------------------------ quickstart


def test_quickstart_runs_unattended_with_only_the_marked_cell_failing(quickstart_cells):
    cells = {id(cell): cell for cell in quickstart_cells.values()}.values()
    failed = [
        cell.metadata["tags"]
        for cell in cells
        if any(o.output_type == "error" for o in cell.outputs)
    ]
    assert failed == [["raises-exception", "failing-task"]]


def test_quickstart_computes_the_same_summary_on_every_scheduler(quickstart_cells):
    results = [
        value(quickstart_cells[tag])
        for tag in ("compute-default", "compute-sync", "compute-threads", "compute-processes")
    ]
    assert results[0]["count"] > 0
    assert all(result == results[0] for result in results)


def test_quickstart_stores_and_shows_results(quickstart_cells):
    assert value(quickstart_cells["out-variable"]) is True
    assert value(quickstart_cells["compute-line"]) == [100, 101, 103, 104, 106]


def test_quickstart_failing_task_is_named_with_the_worker_traceback(quickstart_cells):
    ename, traceback = error(quickstart_cells["failing-task"])
    assert ename == "ZeroDivisionError"
    assert "(function ratio) failed on the processes scheduler" in traceback
    assert "traceback in the worker" in traceback


def test_quickstart_rerun_shows_the_failing_tasks_real_inputs(quickstart_cells):
    assert "with {'x': 3, 'y': 0, 'scaled': 30}" in text(quickstart_cells["rerun-by-hand"])
