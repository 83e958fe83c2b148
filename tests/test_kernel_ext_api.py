"""The plain Python API under the magics: scheduler choice, cell code, failures, progress."""

import os
import sys
import threading

import pytest
from kernel_helpers_tasks import add, fail_on, fails_only_in_a_worker, outer

import lazycell as lc
from lazycell.distributed.client import current_client
from lazycell.kernel_ext import scheduler_choice
from lazycell.kernel_ext.cell_code import CellCode
from lazycell.kernel_ext.debugging import breakpoint_opens_pdb
from lazycell.kernel_ext.failures import (
    debuggable_failure,
    short_failure,
    traceback_entries,
    user_frames_only,
)
from lazycell.kernel_ext.magics import LazycellMagics, split_options_and_expression
from lazycell.kernel_ext.progress_display import StdoutUnlessDebugging, cell_progress_display
from lazycell.kernel_ext.scheduler_choice import (
    SchedulerChoice,
    SchedulerOptionError,
    scheduler_guide_text,
)
from lazycell.widgets import choose_progress_display, register_progress_display

# -------------------------------------------------------------------- SchedulerChoice


def test_scheduler_aliases_become_canonical_names():
    assert SchedulerChoice.from_options(scheduler="threading").scheduler == "threads"


def test_choice_applies_scheduler_and_workers_inside_the_block_only():
    choice = SchedulerChoice.from_options(scheduler="processes", workers=3)
    with choice.applied():
        inside = (lc.config.get("scheduler"), lc.config.get("num_workers"))
    assert inside == ("processes", 3)
    assert lc.config.get("scheduler") == "threads"


def test_choice_without_options_leaves_the_session_settings():
    lc.config.set(scheduler="sync")
    with SchedulerChoice.from_options().applied():
        assert lc.config.get("scheduler") == "sync"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scheduler": "sync", "workers": 2}, "--workers does not apply to the sync scheduler"),
        ({"scheduler": "threads", "workers": 0}, "positive whole number"),
        ({"scheduler": "threads", "threads_per_worker": 2}, "local cluster"),
        ({"scheduler": "processes", "memory_limit": "4GB"}, "local cluster"),
        ({"scheduler": "distributed", "memory_limit": "lots"}, "--memory-limit: memory_limit"),
        ({"scheduler": "distributed", "threads_per_worker": 0}, "positive whole number"),
        # nothing listens on port 1 of this machine
        (
            {"scheduler": "tcp://127.0.0.1:1"},
            "cannot reach a dask scheduler at 'tcp://127.0.0.1:1'",
        ),
        ({"scheduler": "localhost:1"}, "cannot reach a dask scheduler at 'localhost:1'"),
        ({"scheduler": "gpu"}, "unknown scheduler 'gpu'"),
    ],
)
def test_options_that_do_not_fit_are_errors_that_say_why(options, message, monkeypatch):
    monkeypatch.setattr(scheduler_choice, "CONNECT_TIMEOUT", 1)
    with pytest.raises(SchedulerOptionError, match=message):
        SchedulerChoice.from_options(**options)


def test_workers_with_a_sync_session_default_is_an_error():
    lc.config.set(scheduler="sync")
    with pytest.raises(SchedulerOptionError, match="this session's sync"):
        SchedulerChoice.from_options(workers=2)


def test_guide_lists_each_scheduler_once_and_how_to_name_a_dask_cluster():
    lines = scheduler_guide_text().splitlines()[1:]
    names = [line.split()[0] for line in lines]
    assert sorted(names) == sorted(
        ["sync", "threads", "processes", "auto", "distributed", "dask", "ADDRESS"]
    )
    assert not [line for line in lines if "(coming)" in line]
    (address,) = [line for line in lines if line.split()[0] == "ADDRESS"]
    assert "tcp://" in address and "dask" in address


def test_every_local_cluster_name_is_the_distributed_scheduler():
    for name in ("distributed", "cluster", "local-cluster", "LocalCluster"):
        assert SchedulerChoice.from_options(scheduler=name).scheduler == "distributed"


def test_a_cluster_choice_starts_a_cluster_of_its_shape_reuses_it_and_keeps_the_session_default():
    choice = SchedulerChoice.from_options(
        scheduler="distributed", workers=1, threads_per_worker=2, memory_limit="500MB"
    )
    try:
        with choice.applied():
            assert lc.delayed(sum)([1, 2]).compute() == 3
            client = current_client()
        cluster = client.cluster
        assert (cluster.n_workers, cluster.threads_per_worker, cluster.memory_limit) == (
            1,
            2,
            500_000_000,
        )
        assert lc.config.get("scheduler") == "threads"  # the cell's choice ended with it
        with SchedulerChoice.from_options(scheduler="distributed", workers=1).applied():
            assert current_client() is client  # same shape: reused
        with pytest.raises(SchedulerOptionError, match="has 1 worker × 2 threads.*close it"):
            SchedulerChoice.from_options(scheduler="distributed", workers=2)
    finally:
        current_client().close()


# -------------------------------------------------------------- options and expression

COMPUTE_PARSER = LazycellMagics.compute.parser


@pytest.mark.parametrize(
    "line, options, expression",
    [
        ("total", "", "total"),
        ("-s sync total", "-s sync", "total"),
        (
            "--scheduler=threads -n 2 --quiet f('a  b')",
            "--scheduler=threads -n 2 --quiet",
            "f('a  b')",
        ),
        ("-o out {'k': [x, y]}", "-o out", "{'k': [x, y]}"),
        ("-s sync -- -x", "-s sync", "-x"),
        ("--quiet --debug", "--quiet --debug", ""),
    ],
)
def test_options_are_split_from_an_untouched_expression(line, options, expression):
    assert split_options_and_expression(line, COMPUTE_PARSER) == (options, expression)


# ------------------------------------------------------------------------- CellCode


def test_cell_value_is_its_last_expression_computed():
    namespace = {"lc": lc, "add": add}
    code = CellCode.compile("a = lc.delayed(add)(1, 2)\n[a, {'b': lc.delayed(add)(a, 1)}]")
    assert code.run(namespace) == [3, {"b": 4}]


def test_cell_ending_in_a_statement_has_no_value_and_runs_its_statements():
    namespace = {}
    assert CellCode.compile("x = 41\nx += 1").run(namespace) is None
    assert namespace["x"] == 42


def test_plain_values_pass_through_unchanged():
    value = object()
    assert CellCode.compile("value").run({"value": value}) is value


def test_syntax_error_is_raised_when_compiling_before_anything_runs():
    with pytest.raises(SyntaxError):
        CellCode.compile("ran = True\nprint(")


def test_cell_lines_are_numbered_from_first_line():
    code = CellCode.compile("1 / 0", filename="<cell>", first_line=3)
    with pytest.raises(ZeroDivisionError) as info:
        code.run({})
    assert traceback_entries(info.value.__traceback__)[-1].tb_lineno == 3


# ------------------------------------------------------------------------- failures


def failure_from(scheduler, lazy):
    try:
        lazy.compute(scheduler=scheduler)
    except Exception as exc:
        return exc
    raise AssertionError("the compute did not fail")


def frame_names(tb):
    return [entry.tb_frame.f_code.co_name for entry in traceback_entries(tb)]


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_short_traceback_keeps_only_the_users_frames(scheduler):
    exc = failure_from(scheduler, lc.delayed(outer)(lc.delayed(add)(40, 2)))
    names = frame_names(user_frames_only(exc.__traceback__))
    assert names == ["failure_from", "outer", "inner"]


def test_failure_in_this_process_is_debuggable_without_a_rerun():
    exc = failure_from("threads", lc.delayed(outer)(21))
    failure = debuggable_failure(exc)
    assert failure.exception is exc
    assert failure.frames_reach_the_task


def test_failure_from_a_worker_process_is_rerun_here_with_its_real_inputs():
    exc = failure_from("processes", lc.delayed(outer)(lc.delayed(add)(40, 2)))
    failure = debuggable_failure(exc)
    entries = traceback_entries(failure.traceback)
    assert frame_names(failure.traceback) == ["failure_from", "outer", "inner"]
    assert entries[1].tb_frame.f_locals["x"] == 42
    assert entries[2].tb_frame.f_globals is outer.__globals__  # ran here, in this process


def test_rerun_keeps_the_users_type_the_task_and_the_worker_traceback():
    lazy = lc.delayed(fail_on)(3, 3)
    failure = debuggable_failure(failure_from("processes", lazy))
    exc = failure.exception
    assert isinstance(exc, ZeroDivisionError)
    assert exc.lazycell_task_key == lazy.key
    assert "return 1 / 0" in exc.lazycell_remote_traceback


def test_remote_failure_without_rerun_keeps_the_cell_frames_only():
    exc = failure_from("processes", lc.delayed(outer)(21))
    failure = short_failure(exc)
    assert frame_names(failure.traceback) == ["failure_from"]
    assert not failure.frames_reach_the_task


def test_rerun_that_does_not_fail_says_so_and_keeps_the_worker_failure():
    exc = failure_from("processes", lc.delayed(fails_only_in_a_worker)(1, home_pid=os.getpid()))
    failure = debuggable_failure(exc)
    assert failure.exception is exc
    assert "did not fail" in failure.message
    assert not failure.frames_reach_the_task


# ------------------------------------------------------------------- progress display


def test_text_progress_bar_is_the_default_display():
    display = choose_progress_display(None)
    assert isinstance(display, lc.diagnostics.ProgressBar)


def test_registered_display_factory_is_asked_first_and_can_pass():
    panel = cell_progress_display(None)
    unregister_panel = register_progress_display(lambda shell: panel)
    unregister_passing = register_progress_display(lambda shell: None)
    try:
        assert choose_progress_display(None) is panel
    finally:
        unregister_passing()
        unregister_panel()
    assert choose_progress_display(None) is not panel


def test_progress_redraws_from_other_threads_pause_while_the_cell_thread_is_debugged(capsys):
    stream = StdoutUnlessDebugging()
    frame = sys._getframe()

    def write_from_another_thread(text):
        thread = threading.Thread(target=stream.write, args=(text,))
        thread.start()
        thread.join()

    frame.f_trace = lambda *args: None  # what pdb sets on the frames it stops in
    try:
        write_from_another_thread("redraw while debugging|")
        stream.write("final line from the cell's thread|")
    finally:
        frame.f_trace = None
    write_from_another_thread("redraw after debugging|")
    assert capsys.readouterr().out == "final line from the cell's thread|redraw after debugging|"


def test_breakpoint_hook_other_than_debugpys_is_left_alone():
    before = sys.breakpointhook
    with breakpoint_opens_pdb():
        assert sys.breakpointhook is before
