"""The magics in an in-process ``InteractiveShell``: options, results, failures, lifetime."""

import os
import re
import sys
from types import SimpleNamespace

import kernel_helpers_tasks as tasks
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import lazycell as lc
from lazycell.diagnostics import GraphSubmitted
from lazycell.kernel_ext import scheduler_choice
from lazycell.kernel_ext.failures import traceback_entries
from lazycell.widgets import register_progress_display


@pytest.fixture(scope="module")
def ipython(tmp_path_factory):
    """One InteractiveShell for the module, leaving the interpreter as it found it."""
    saved = (sys.modules["__main__"], sys.displayhook, sys.excepthook, sys.breakpointhook)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        config.InteractiveShell.colors = "nocolor"
        shell = InteractiveShell.instance(config=config)
        yield shell
    InteractiveShell.clear_instance()
    sys.modules["__main__"], sys.displayhook, sys.excepthook, sys.breakpointhook = saved
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        sys.__dict__.pop(name, None)  # the failures of these tests, with their frames


@pytest.fixture
def shell(ipython):
    """The shell with lazycell loaded and the test tasks in its namespace."""
    ipython.run_cell("%load_ext lazycell")
    public = {name: getattr(tasks, name) for name in dir(tasks) if not name.startswith("_")}
    ipython.user_ns.update(lc=lc, tasks=tasks, **public)
    yield ipython
    ipython.run_cell("%unload_ext lazycell")
    ipython.call_pdb = False


def run(shell, cell):
    """Run a cell; returns its ExecutionResult."""
    return shell.run_cell(cell, store_history=True)


def graphs_submitted_by(shell, cell):
    events = []
    with lc.diagnostics.subscribe(events.extend):
        result = run(shell, cell)
    assert result.success, result.error_in_exec
    return [event for event in events if isinstance(event, GraphSubmitted)]


# ------------------------------------------------------------------------- lifetime


def test_load_ext_registers_the_three_magics(shell):
    magics = shell.magics_manager.magics
    assert "compute" in magics["cell"]
    assert {"compute", "scheduler"} <= set(magics["line"])


def test_loading_twice_is_harmless(shell):
    lc.load_ipython_extension(shell)
    hooks = [f for f in shell.events.callbacks["pre_run_cell"] if "lazycell" in repr(f)]
    assert len(hooks) == 1
    assert run(shell, "%%compute -s sync\nlc.delayed(add)(1, 2)").result == 3


def test_unload_ext_removes_the_magics_and_hooks(shell):
    run(shell, "%unload_ext lazycell")
    magics = shell.magics_manager.magics
    assert "compute" not in magics["cell"] and "scheduler" not in magics["line"]
    assert not [f for f in shell.events.callbacks["pre_run_cell"] if "lazycell" in repr(f)]
    assert isinstance(run(shell, "%%compute\n1").error_in_exec, UsageError)


def test_unload_stops_the_progress_displays_still_running(shell):
    closed_while_the_cell_ran = []

    class Panel:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            closed_while_the_cell_ran.append("cell_finished" not in shell.user_ns)

    shell.user_ns.pop("cell_finished", None)
    unregister = register_progress_display(lambda shell: Panel())
    try:
        run(
            shell,
            "%%compute\nget_ipython().run_line_magic('unload_ext', 'lazycell')\ncell_finished = 1",
        )
    finally:
        unregister()
    assert closed_while_the_cell_ran[:1] == [True]


# ---------------------------------------------------------------------- %%compute


def test_cell_output_is_the_computed_last_expression(shell):
    result = run(shell, "%%compute -s sync\na = lc.delayed(add)(1, 2)\nlc.delayed(add)(a, 10)")
    assert result.result == 13


def test_lazy_objects_nested_in_containers_are_computed_in_one_graph(shell):
    cell = (
        "%%compute -s threads\n"
        "a = lc.delayed(add)(1, 2)\n"
        "[a, (lc.delayed(add)(a, 1), 'text'), {'k': lc.delayed(add)(a, 2)}]"
    )
    graphs = graphs_submitted_by(shell, cell)
    assert shell.user_ns["_"] == [3, (4, "text"), {"k": 5}]
    assert len(graphs) == 1


def test_out_and_underscore_hold_the_computed_value(shell):
    run(shell, "%%compute -s sync\nlc.delayed(add)(20, 22)")
    assert shell.user_ns["_"] == 42
    assert shell.user_ns["Out"][shell.execution_count - 1] == 42


def test_out_option_also_stores_the_result(shell):
    run(shell, "%%compute -s sync --out answer\nlc.delayed(add)(20, 22)")
    assert shell.user_ns["answer"] == 42


def test_semicolon_hides_the_output_but_the_value_is_still_computed(shell):
    result = run(shell, "%%compute -s sync -o answer\nlc.delayed(add)(1, 1);")
    assert result.result is None
    assert shell.user_ns["answer"] == 2


def test_every_compute_in_the_cell_uses_the_chosen_scheduler(shell):
    cell = (
        "%%compute -s sync\n"
        "first = lc.delayed(add)(1, 2).compute()\n"
        "second, = lc.compute(lc.delayed(add)(3, 4))\n"
        "lc.delayed(add)(first, second)"
    )
    graphs = graphs_submitted_by(shell, cell)
    assert [g.scheduler for g in graphs] == ["sync", "sync", "sync"]


def test_workers_option_sets_the_pool_size(shell):
    (graph,) = graphs_submitted_by(shell, "%%compute -s threads -n 3\nlc.delayed(add)(1, 2)")
    assert (graph.scheduler, graph.n_workers) == ("threads", 3)


def test_processes_scheduler_runs_tasks_in_other_processes(shell):
    pid, _ = run(shell, "%%compute -s processes -n 2\nlc.delayed(where)()").result
    assert pid != os.getpid()


def test_session_settings_come_back_after_the_cell(shell):
    run(shell, "%%compute -s processes -n 2\nlc.delayed(add)(1, 2)")
    assert (lc.config.get("scheduler"), lc.config.get("num_workers")) == ("threads", None)


def test_session_settings_come_back_after_a_failing_cell(shell):
    run(shell, "%%compute -s sync\nlc.delayed(fail_on)(1, 1)")
    assert lc.config.get("scheduler") == "threads"


def test_without_scheduler_option_the_session_scheduler_is_used(shell):
    lc.config.set(scheduler="sync")
    (graph,) = graphs_submitted_by(shell, "%%compute\nlc.delayed(add)(1, 2)")
    assert graph.scheduler == "sync"


def test_cell_ending_in_a_statement_shows_nothing(shell):
    result = run(shell, "%%compute -s sync\nvalue = lc.delayed(add)(1, 2).compute()")
    assert result.result is None and shell.user_ns["value"] == 3


@pytest.mark.parametrize(
    "options, message",
    [
        ("-s sync -n 2", "--workers does not apply to the sync scheduler"),
        ("-s threads -n 0", "positive whole number"),
        ("-s threads -n two", "invalid int value"),
        (
            "-s processes --threads-per-worker 2",
            r"--threads-per-worker applies only to a local cluster \(--scheduler distributed\)",
        ),
        ("-s threads --memory-limit 4GB", "--memory-limit applies only to a local cluster"),
        ("-s distributed --memory-limit lots", "--memory-limit: memory_limit 'lots' is not a size"),
        ("-s tcp://127.0.0.1:1", "cannot reach a dask scheduler at 'tcp://127.0.0.1:1'"),
        ("-s gpu", "unknown scheduler 'gpu'"),
        ("--fast", "unrecognized arguments: --fast"),
        ("-o 2x", "--out takes a variable name"),
        ("-s sync stray", "takes only options on its first line"),
    ],
)
def test_bad_option_is_a_usage_error_and_runs_nothing(shell, capsys, monkeypatch, options, message):
    monkeypatch.setattr(scheduler_choice, "CONNECT_TIMEOUT", 1)  # for the unreachable address
    shell.user_ns.pop("ran", None)
    result = run(shell, f"%%compute {options}\nran = True\nlc.delayed(add)(1, 2)")
    assert isinstance(result.error_in_exec, UsageError)
    assert re.search(message, str(result.error_in_exec))
    assert "UsageError" in capsys.readouterr().err
    assert "ran" not in shell.user_ns


def test_out_option_needs_a_last_expression(shell):
    result = run(shell, "%%compute -s sync -o answer\nran = True")
    assert "does not end in an expression" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns


def test_help_lists_every_option(shell):
    help_text = shell.find_cell_magic("compute").__doc__
    for option in ("--scheduler", "--workers", "--threads-per-worker", "--memory-limit"):
        assert option in help_text
    for option in ("--out", "--quiet", "--debug"):
        assert option in help_text


def test_progress_bar_is_shown_for_a_slow_compute(shell, capsys):
    run(shell, "%%compute -s threads\n[lc.delayed(slow)(i) for i in range(2)]")
    assert "100% Completed | 2/2 tasks" in capsys.readouterr().out


def test_quiet_shows_no_progress(shell, capsys):
    run(shell, "%%compute -s threads --quiet\n[lc.delayed(slow)(i) for i in range(2)]")
    assert "Completed" not in capsys.readouterr().out


# ----------------------------------------------------------------------- %compute


def test_line_form_computes_one_expression_with_options(shell):
    (graph,) = graphs_submitted_by(shell, "answer = %compute -s sync lc.delayed(add)(40, 2)")
    assert shell.user_ns["answer"] == 42 and graph.scheduler == "sync"


def test_line_form_keeps_the_expression_text_as_written(shell):
    result = run(shell, "%compute -s sync {'text': lc.delayed(add)('a  ', \"b\")}")
    assert result.result == {"text": "a  b"}


def test_line_form_takes_an_expression_starting_with_a_minus_after_double_dash(shell):
    assert run(shell, "%compute -s sync -- -lc.delayed(add)(1, 2)").result == -3


def test_line_form_sees_the_local_variables_of_a_function(shell):
    cell = (
        "def f():\n"
        "    local = lc.delayed(add)(1, 2)\n"
        "    value = %compute -s sync local\n"
        "    return value\n"
        "f()"
    )
    assert run(shell, cell).result == 3


def test_line_form_without_an_expression_is_a_usage_error(shell):
    result = run(shell, "%compute -s sync")
    assert "needs an expression" in str(result.error_in_exec)


# ---------------------------------------------------------------------- %scheduler


def test_scheduler_shows_the_session_scheduler_and_its_settings(shell, capsys):
    lc.config.set(scheduler="processes", num_workers=3)
    run(shell, "%scheduler")
    assert "processes (3 worker processes)" in capsys.readouterr().out


def test_scheduler_name_sets_it_for_the_session(shell):
    run(shell, "%scheduler processes --workers 2")
    assert (lc.config.get("scheduler"), lc.config.get("num_workers")) == ("processes", 2)


def test_scheduler_name_without_workers_returns_to_one_worker_per_core(shell):
    run(shell, "%scheduler threads -n 8")
    run(shell, "%scheduler processes")
    assert lc.config.get("num_workers") is None


def test_scheduler_list_says_when_to_use_each_one(shell, capsys):
    run(shell, "%scheduler --list")
    out = capsys.readouterr().out
    for name, hint in [("sync", "debugging"), ("threads", "GIL"), ("processes", "pure-Python")]:
        assert any(line.split()[:1] == [name] and hint in line for line in out.splitlines())
    assert "(coming)" not in out
    assert any(line.split()[:1] == ["ADDRESS"] and "tcp://" in line for line in out.splitlines())
    assert any(
        line.split()[:1] == ["distributed"] and "lc.Client" in line for line in out.splitlines()
    )


def test_cluster_options_start_a_local_cluster_of_that_shape_for_the_cell(shell):
    from lazycell.distributed.client import current_client

    try:
        result = run(
            shell,
            "%%compute -s distributed -n 1 --threads-per-worker 2 --memory-limit 300MB\n"
            "lc.delayed(add)(1, 2)",
        )
        assert result.result == 3
        cluster = current_client().cluster
        assert (cluster.n_workers, cluster.threads_per_worker, cluster.memory_limit) == (
            1,
            2,
            300_000_000,
        )
        assert lc.config.get("scheduler") == "threads"
    finally:
        current_client().close()


@pytest.mark.parametrize(
    "line, message",
    [
        ("%scheduler tcp://127.0.0.1:1", "cannot reach a dask scheduler"),
        ("%scheduler sync -n 2", "--workers does not apply"),
        ("%scheduler -n 2", "name the scheduler"),
        ("%scheduler --list threads", "takes no other argument"),
    ],
)
def test_scheduler_bad_arguments_are_usage_errors_that_change_nothing(
    shell, monkeypatch, line, message
):
    monkeypatch.setattr(scheduler_choice, "CONNECT_TIMEOUT", 1)  # for the unreachable address
    result = run(shell, line)
    assert isinstance(result.error_in_exec, UsageError) and message in str(result.error_in_exec)
    assert lc.config.get("scheduler") == "threads"


# -------------------------------------------------------------------------- dask


def test_dask_collections_in_the_last_expression_are_computed(shell):
    pytest.importorskip("dask.array")
    cell = (
        "%%compute -s sync\n"
        "import dask, dask.array as da\n"
        "{'array': da.arange(10, chunks=3).sum(), 'delayed': dask.delayed(sum)([1, 2])}"
    )
    assert run(shell, cell).result == {"array": 45, "delayed": 3}


def test_dask_compute_inside_the_cell_runs_on_the_chosen_scheduler(shell):
    pytest.importorskip("dask")
    run(shell, "import dask")
    cell = "%%compute -s processes -n 2\ndask.delayed(where)().compute()"
    pid, _ = run(shell, cell).result
    assert pid != os.getpid()


# ------------------------------------------------------------------------ failures


def test_failure_keeps_the_users_exception_type_and_names_the_task(shell):
    result = run(shell, "%%compute -s threads\nlc.delayed(fail_on)(3, 3)")
    exc = result.error_in_exec
    assert isinstance(exc, ZeroDivisionError)
    assert exc.lazycell_function == "fail_on"
    assert any("function fail_on" in note for note in exc.__notes__)


def test_user_code_in_the_cell_catches_the_users_exception_type(shell):
    cell = (
        "%%compute -s processes\n"
        "try:\n"
        "    lc.delayed(fail_on)(3, 3).compute()\n"
        "except ZeroDivisionError:\n"
        "    caught = True\n"
        "caught"
    )
    assert run(shell, cell).result is True


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_traceback_shows_the_task_and_the_users_lines_not_scheduler_internals(
    shell, capsys, scheduler
):
    run(shell, f"%%compute -s {scheduler}\nlc.delayed(fail_on)(3, 3)")
    shown = capsys.readouterr().out
    assert f"failed on the {scheduler} scheduler" in shown
    assert "return 1 / 0" in shown
    assert "lazycell/schedulers" not in shown and "lazycell/graph" not in shown
    assert "interactiveshell.py" not in shown


def test_remote_failure_shows_the_worker_traceback(shell, capsys):
    run(shell, "%%compute -s processes\nlc.delayed(fail_on)(3, 3)")
    assert "traceback in the worker" in capsys.readouterr().out


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_last_traceback_reaches_the_task_frame_with_its_real_inputs(shell, scheduler):
    run(shell, f"%%compute -s {scheduler}\nlc.delayed(outer)(lc.delayed(add)(40, 2))")
    entries = traceback_entries(sys.last_traceback)
    assert [e.tb_frame.f_code.co_name for e in entries] == ["<module>", "outer", "inner"]
    assert entries[1].tb_frame.f_locals["x"] == 42
    assert sys.last_value.__traceback__ is sys.last_traceback


def debug_cell_is_about_to_run(shell):
    shell.events.trigger("pre_run_cell", SimpleNamespace(raw_cell="%debug\n"))


def test_debug_after_a_remote_failure_reruns_the_task_here_with_its_real_inputs(shell):
    run(shell, "%%compute -s processes\nlc.delayed(outer)(lc.delayed(add)(40, 2))")
    debug_cell_is_about_to_run(shell)
    entries = traceback_entries(sys.last_traceback)
    assert [e.tb_frame.f_code.co_name for e in entries] == ["<module>", "outer", "inner"]
    assert entries[1].tb_frame.f_locals["x"] == 42
    assert entries[1].tb_frame.f_globals is tasks.__dict__  # re-run in this process


def test_cells_other_than_debug_never_rerun_a_remote_failure(shell):
    run(shell, "%%compute -s processes\nlc.delayed(outer)(21)")
    before = sys.last_traceback
    shell.events.trigger("pre_run_cell", SimpleNamespace(raw_cell="print('hello')\n"))
    assert sys.last_traceback is before


def test_report_option_writes_an_offline_html_report_of_the_cell(shell, tmp_path):
    path = tmp_path / "cell-report.html"
    run(shell, "parts = [lc.delayed(abs, name='absval')(-i) for i in range(12)]")
    result = run(shell, f"%%compute --report {path} -s threads\nlc.delayed(sum)(parts)")
    assert result.result == sum(range(12))
    html = path.read_text()
    assert "absval" in html and "threads" in html
    assert "<script" in html and "plotly" in html.lower()


def report_cell(path, body="ran = True\nlc.delayed(add)(1, 2)"):
    return f"%%compute --report {path} -s sync\n{body}"


def test_report_in_a_missing_folder_is_a_usage_error_before_the_cell_runs(shell, tmp_path):
    path = tmp_path / "missing" / "report.html"
    shell.user_ns.pop("ran", None)
    result = run(shell, report_cell(path))
    assert isinstance(result.error_in_exec, UsageError)
    assert f"the folder {path.parent} does not exist" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["''", "'   '", '""'])
def test_report_with_an_empty_or_blank_name_is_a_usage_error(shell, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    shell.user_ns.pop("ran", None)
    result = run(shell, report_cell(name))
    assert isinstance(result.error_in_exec, UsageError)
    assert "--report takes a file name" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns
    assert list(tmp_path.iterdir()) == []


def test_report_path_that_is_a_folder_is_a_usage_error(shell, tmp_path):
    shell.user_ns.pop("ran", None)
    result = run(shell, report_cell(tmp_path))
    assert isinstance(result.error_in_exec, UsageError)
    assert "is a folder" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns
    assert list(tmp_path.iterdir()) == []


def test_report_name_in_quotes_may_hold_spaces(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(shell, report_cell("'my report.html'"))
    assert result.result == 3
    assert [p.name for p in tmp_path.iterdir()] == ["my report.html"]


def test_report_that_cannot_be_written_at_the_end_keeps_the_result(shell, tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    path = folder / "report.html"
    body = f"import shutil\nshutil.rmtree({str(folder)!r})\nlc.delayed(add)(1, 2)"
    result = run(shell, f"%%compute --report {path} -s sync -o kept\n{body}")
    assert result.success and result.result == 3
    assert shell.user_ns["Out"][result.execution_count] == 3 and shell.user_ns["kept"] == 3
    err = capsys.readouterr().err
    (warning,) = [line for line in err.splitlines() if str(path) in line]
    assert warning.startswith("Warning: --report: could not write the report")
    assert "Traceback" not in err


def test_report_that_cannot_be_written_leaves_the_cells_own_failure(shell, tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    body = f"import shutil\nshutil.rmtree({str(folder)!r})\nlc.delayed(fail_on)(1, 1)"
    result = run(shell, report_cell(folder / "report.html", body))
    assert isinstance(result.error_in_exec, ZeroDivisionError)


@pytest.mark.parametrize(
    "cell, message",
    [
        (
            '%%compute -s "sync\nran = True\nlc.delayed(add)(1, 2)',
            '%%compute: unbalanced quote in the options: -s "sync',
        ),
        (
            'ran = %compute -s "sync lc.delayed(add)(1, 2)',
            '%compute: unbalanced quote in the options: -s "sync',
        ),
        ("%scheduler 'processes", "%scheduler: unbalanced quote in the options: 'processes"),
    ],
    ids=["cell", "line", "scheduler"],
)
def test_an_unbalanced_quote_is_a_one_line_usage_error(shell, capsys, cell, message):
    shell.user_ns.pop("ran", None)
    before = lc.config.get("scheduler")
    result = run(shell, cell)
    assert isinstance(result.error_in_exec, UsageError)
    assert str(result.error_in_exec) == message
    assert capsys.readouterr().err.strip().splitlines() == [f"UsageError: {message}"]
    assert "ran" not in shell.user_ns and lc.config.get("scheduler") == before


def test_a_failing_cells_traceback_names_its_own_cell_number(shell):
    # "Cell In[N]" must be the number the cell ran as, as a plain IPython error says.
    result = run(shell, "%%compute -s sync\nlc.delayed(fail_on)(1, 1)")
    assert result.error_in_exec is not None
    shown = "".join(
        shell.InteractiveTB.structured_traceback(
            type(result.error_in_exec), result.error_in_exec, result.error_in_exec.__traceback__
        )
    )
    cells = set(re.findall(r"Cell In\[(\d+)\]", re.sub(r"\x1b\[[0-9;]*m", "", shown)))
    assert str(result.execution_count) in cells
    assert str(result.execution_count + 1) not in cells
