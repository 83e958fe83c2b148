"""The extension in terminal IPython, driven by a script piped into its stdin.

In ``--simple-prompt`` mode a cell ends at a blank line and a cell magic at
two; answers for pdb are the next lines of the script.
"""

import textwrap

import pytest
from kernel_helpers import run_terminal_ipython

pytestmark = pytest.mark.slow

SETUP = textwrap.dedent(
    """
    %load_ext lazycell
    import lazycell as lc
    from kernel_helpers_tasks import add, outer, slow
    """
)


@pytest.fixture
def ipython_dir(tmp_path):
    (tmp_path / "ipython").mkdir()
    return tmp_path / "ipython"


def terminal(script: str, ipython_dir, cwd) -> str:
    return run_terminal_ipython(textwrap.dedent(script), ipython_dir=ipython_dir, cwd=cwd)


def test_compute_in_terminal_ipython_shows_a_text_progress_bar_and_the_result(
    ipython_dir, tmp_path
):
    out = terminal(
        SETUP
        + """
        %%compute --scheduler threads --workers 2
        [lc.delayed(slow)(i) for i in range(2)]


        """,
        ipython_dir,
        tmp_path,
    )
    assert "100% Completed | 2/2 tasks" in out
    assert "Out[4]: [0, 1]" in out


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_pdb_on_in_terminal_ipython_lands_in_the_tasks_frame_with_its_real_inputs(
    ipython_dir, tmp_path, scheduler
):
    out = terminal(
        SETUP
        + f"""
        %pdb on
        %%compute --scheduler {scheduler}
        lc.delayed(outer)(lc.delayed(add)(40, 2))


        p ('y', y)
        up
        p ('x', x)
        q
        """,
        ipython_dir,
        tmp_path,
    )
    assert "('y', 84)" in out and "('x', 42)" in out
    assert out.index("('y', 84)") < out.index("('x', 42)")


def test_debug_magic_in_terminal_ipython_after_a_worker_failure(ipython_dir, tmp_path):
    out = terminal(
        SETUP
        + """
        %%compute --scheduler processes
        lc.delayed(outer)(lc.delayed(add)(40, 2))


        %debug
        p ('y', y)
        q
        """,
        ipython_dir,
        tmp_path,
    )
    assert "traceback in the worker" in out
    assert "('y', 84)" in out


def test_breakpoint_in_a_sync_task_stops_in_terminal_ipython(ipython_dir, tmp_path):
    (tmp_path / "stopping.py").write_text(
        "def stop_here(x):\n    y = x + 1\n    breakpoint()\n    return x * 10\n"
    )
    out = terminal(
        SETUP
        + """
        from stopping import stop_here
        %%compute --scheduler sync
        lc.delayed(stop_here)(4)


        p ('x', x, 'y', y)
        c
        """,
        ipython_dir,
        tmp_path,
    )
    assert "('x', 4, 'y', 5)" in out
    assert "Out[5]: 40" in out


def test_extension_loads_from_ipython_config(ipython_dir, tmp_path):
    (ipython_dir / "profile_default").mkdir()
    (ipython_dir / "profile_default" / "ipython_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["lazycell"]\n'
    )
    out = terminal("%scheduler\n", ipython_dir, tmp_path)
    assert "lazycell scheduler for this session: threads" in out
