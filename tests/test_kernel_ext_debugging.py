"""Debugging failing tasks in a real kernel: pdb driven over the stdin channel.

The task functions are defined in a cell, the way a notebook user writes
them. ``outer(x)`` calls ``inner(x * 2)``, which divides by zero; computed as
``outer(add(40, 2))`` the real inputs are ``x == 42`` and ``y == 84``.
"""

import time

import pytest
from kernel_helpers import RunningKernel

pytestmark = pytest.mark.slow

SETUP = """
%load_ext lazycell
import os, time
import lazycell as lc

KERNEL_PID = os.getpid()

def add(a, b):
    return a + b

def outer(x):
    return inner(x * 2)

def inner(y):
    return 1 / (y - y)

def fails_only_in_a_worker(x):
    if os.getpid() != KERNEL_PID:
        raise RuntimeError("this fails only in a worker process")
    return x

def stop_here(x):
    y = x + 1
    breakpoint()
    return x * 10
"""

FAILING_CELL = """%%compute -s {scheduler}
marker = "the cell's frame"
lc.delayed(outer)(lc.delayed(add)(40, 2))
"""

SCHEDULERS = ["sync", "threads", "processes"]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    kernel = RunningKernel(
        cwd=tmp_path_factory.mktemp("cwd"), ipython_dir=tmp_path_factory.mktemp("ipython")
    )
    try:
        setup = kernel.run(SETUP)
        assert setup.status == "ok", setup.text
        yield kernel
    finally:
        kernel.shutdown()


@pytest.fixture
def pdb_on(kernel):
    kernel.run("%pdb on")
    yield
    kernel.run("%pdb off")


def in_order(text: str, *values: str) -> bool:
    """Whether every value appears in ``text``, in this order."""
    position = 0
    for value in values:
        position = text.find(value, position)
        if position < 0:
            return False
        position += len(value)
    return True


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_pdb_on_opens_the_debugger_in_the_failing_tasks_frame_with_its_real_inputs(
    kernel, pdb_on, scheduler
):
    cell = kernel.run(FAILING_CELL.format(scheduler=scheduler), ["p ('y', y)", "q"])
    assert cell.ename == "ZeroDivisionError"
    assert "('y', 84)" in cell.stdout
    assert (len(cell.prompts), cell.unexpected_prompts) == (2, 0)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_up_and_down_move_through_the_users_own_frames(kernel, pdb_on, scheduler):
    answers = ["up", "p ('x', x)", "up", "p ('marker', marker)", "down", "p ('x', x)", "q"]
    cell = kernel.run(FAILING_CELL.format(scheduler=scheduler), answers)
    assert in_order(cell.stdout, "('x', 42)", "('marker', \"the cell's frame\")", "('x', 42)"), (
        cell.stdout
    )


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_debug_magic_after_a_failed_cell_lands_in_the_tasks_frame(kernel, scheduler):
    failed = kernel.run(FAILING_CELL.format(scheduler=scheduler))
    assert failed.ename == "ZeroDivisionError" and not failed.prompts
    debug = kernel.run("%debug", ["p ('y', y)", "up", "p ('x', x)", "q"])
    assert in_order(debug.stdout, "('y', 84)", "('x', 42)"), debug.text


def test_debug_option_opens_the_debugger_without_pdb_on(kernel):
    cell = kernel.run("%%compute -s processes --debug\nlc.delayed(outer)(21)", ["p ('y', y)", "q"])
    assert "('y', 42)" in cell.stdout


def test_debug_option_does_not_leave_the_debugger_on_for_later_cells(kernel):
    kernel.run("%%compute -s sync --debug\nlc.delayed(outer)(21)", ["q"])
    later = kernel.run("%%compute -s sync\nlc.delayed(outer)(21)")
    assert later.ename == "ZeroDivisionError" and later.prompts == []


def test_the_debugger_opens_once_per_failure_with_pdb_on_and_debug_option(kernel, pdb_on):
    cell = kernel.run("%%compute -s processes --debug\nlc.delayed(outer)(21)", ["q"])
    assert (len(cell.prompts), cell.unexpected_prompts) == (1, 0)


def test_task_failing_only_in_the_worker_is_reported_plainly_without_a_debugger(kernel, pdb_on):
    cell = kernel.run("%%compute -s processes\nlc.delayed(fails_only_in_a_worker)(1)")
    assert cell.ename == "RuntimeError"
    assert "did not fail" in cell.stderr
    assert "traceback in the worker" in cell.traceback
    assert cell.prompts == []


def test_pdb_stays_on_after_a_failure_that_had_nothing_to_debug(kernel, pdb_on):
    kernel.run("%%compute -s processes\nlc.delayed(fails_only_in_a_worker)(1)")
    cell = kernel.run("%%compute -s sync\nlc.delayed(outer)(21)", ["p ('y', y)", "q"])
    assert "('y', 42)" in cell.stdout


def test_breakpoint_in_a_sync_task_stops_there_and_the_debugger_works(kernel):
    cell = kernel.run(
        "%%compute -s sync\nlc.delayed(stop_here)(lc.delayed(add)(2, 2))",
        ["p ('x', x, 'y', y)", "c"],
    )
    assert "('x', 4, 'y', 5)" in cell.stdout
    assert cell.result == "40"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_interrupting_a_running_compute_returns_control_and_the_kernel_stays_usable(
    kernel, scheduler
):
    kernel.drain_iopub()
    msg_id = kernel.start_running(
        f"%%compute -s {scheduler}\n"
        "print('STARTED', flush=True)\n"
        "[lc.delayed(time.sleep)(60 + i) for i in range(4)]"
    )
    kernel.wait_for_stdout("STARTED")
    time.sleep(1)  # let the tasks start; the assertions below do not depend on it
    kernel.manager.interrupt_kernel()
    reply = kernel.wait_for_reply(msg_id, timeout=60)
    assert (reply["status"], reply.get("ename")) == ("error", "KeyboardInterrupt")
    # (sync: the next compute on the threads scheduler would wait for the interrupted
    # tasks still sleeping in the pool threads; threads cannot be stopped)
    after = kernel.run("%%compute -s sync\nlc.delayed(add)(1, 2)")
    assert after.result == "3"


@pytest.fixture
def fresh_kernel_dirs(tmp_path):
    (tmp_path / "ipython" / "profile_default").mkdir(parents=True)
    return tmp_path / "ipython", tmp_path


def test_kernel_loads_the_extension_from_ipython_config(fresh_kernel_dirs):
    ipython_dir, cwd = fresh_kernel_dirs
    (ipython_dir / "profile_default" / "ipython_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["lazycell"]\n'
    )
    kernel = RunningKernel(cwd=cwd, ipython_dir=ipython_dir)
    try:
        cell = kernel.run("%scheduler")
    finally:
        kernel.shutdown()
    assert cell.status == "ok" and "lazycell scheduler for this session" in cell.stdout


def test_kernel_shutdown_leaves_no_worker_process_behind(fresh_kernel_dirs):
    ipython_dir, cwd = fresh_kernel_dirs
    kernel = RunningKernel(cwd=cwd, ipython_dir=ipython_dir)
    try:
        cell = kernel.run(
            "%load_ext lazycell\nimport lazycell as lc\n"
            "%compute -s processes -n 2 [lc.delayed(abs)(-1), lc.delayed(abs)(-2)]"
        )
        assert cell.result == "[1, 2]", cell.text
    finally:
        kernel.shutdown(stop_worker_pools_first=False)
    assert kernel.leftover_processes == []
