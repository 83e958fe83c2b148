"""The advisor through the magics: the text bar's hint, ``%scheduler --advise``, ``auto``.

Two real front ends, one each for the module: terminal IPython (where
``%%compute`` draws the text bar, so the hint line is in its output) runs one
script whose sections the tests read; an ipykernel runs the cells of the
``--advise`` and ``auto`` tests. Workloads as in ``test_advisor``: 8 tasks of
about 0.12 s of CPU, a pure-Python loop (holds the GIL) or NumPy ufuncs (release it).
"""

import pytest
from kernel_helpers import RunningKernel, run_terminal_ipython

pytestmark = pytest.mark.slow

SETUP = """\
%load_ext lazycell
import lazycell as lc
from test_advisor import TASK_SECONDS, loop_iterations, python_loop, numpy_ufuncs, ufunc_iterations
LOOP, UFUNC = loop_iterations(TASK_SECONDS), ufunc_iterations(TASK_SECONDS)
lc.compute(lc.delayed(abs)(-1), scheduler="processes")
"""

GIL = "[lc.delayed(python_loop)(i, LOOP) for i in range(8)]"
# 16 tasks: about 1 s on 2 threads, above the text bar's 0.5 s (the GIL-bound 8 take 1 s too).
NUMPY = "[lc.delayed(numpy_ufuncs)(i, UFUNC) for i in range(16)]"


def section(title: str, magic: str, body: str) -> str:
    # A cell magic ends at two blank lines in --simple-prompt mode.
    return f'print("=== {title}")\n{magic}\n{body}\n\n\n'


@pytest.fixture(scope="module")
def terminal_output(tmp_path_factory) -> dict:
    """One terminal IPython session; its output split by section title."""
    cwd = tmp_path_factory.mktemp("terminal")
    (cwd / "ipython").mkdir()
    script = (
        SETUP
        + "\n"
        + section("gil on threads", "%%compute --scheduler threads --workers 2", GIL)
        + section("numpy on threads", "%%compute --scheduler threads --workers 2", NUMPY)
        + section("gil quiet", "%%compute --scheduler threads --workers 2 --quiet", GIL)
        + "lc.config.set(advisor=False)\n\n"
        + section("gil advisor off", "%%compute --scheduler threads --workers 2", GIL)
        + 'print("=== end")\n'
    )
    out = run_terminal_ipython(script, ipython_dir=cwd / "ipython", cwd=cwd, timeout=600)
    parts = out.split("=== ")
    return {part.splitlines()[0]: part for part in parts[1:]}


def test_the_text_bar_shows_a_hint_for_pure_python_on_threads(terminal_output):
    text = terminal_output["gil on threads"]
    assert "100% Completed | 8/8 tasks" in text
    assert "hint: 'python_loop' holds the GIL" in text
    assert "--scheduler processes would take ≈" in text


def test_the_text_bar_shows_no_hint_for_numpy_on_threads(terminal_output):
    text = terminal_output["numpy on threads"]
    assert "100% Completed | 16/16 tasks" in text
    assert "hint:" not in text, text


def test_quiet_silences_the_hint(terminal_output):
    text = terminal_output["gil quiet"]
    assert "Completed" not in text and "hint:" not in text


def test_config_advisor_false_silences_the_hint(terminal_output):
    text = terminal_output["gil advisor off"]
    assert "100% Completed | 8/8 tasks" in text
    assert "hint:" not in text
    assert "end" in terminal_output  # the session ran to its end


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("kernel")
    (cwd / "ipython").mkdir()
    running = RunningKernel(cwd, cwd / "ipython")
    setup = running.run(SETUP)
    assert setup.status == "ok", setup.text
    yield running
    running.shutdown()
    assert running.leftover_processes == []


def test_scheduler_advise_prints_the_reasoning_for_the_last_compute(kernel):
    ran = kernel.run(f"%%compute --scheduler threads --workers 2 --quiet\n{GIL}")
    assert ran.status == "ok", ran.text
    advice = kernel.run("%scheduler --advise")
    assert advice.status == "ok", advice.text
    text = advice.stdout
    for expected in (
        "on threads (2 workers): 8 tasks in",
        "Task group 'python_loop': 8 tasks",
        "CPU/wall",
        "GIL share 1.00",
        "in 0 B, out 28 B",
        "sync ≈",
        "threads ≈",
        "processes ≈",
        "Pick: processes",
        "Assumptions:",
        "hint: 'python_loop' holds the GIL",
    ):
        assert expected in text, (expected, text)


def lazycell_summary(run):
    """The static summary a finished %%compute cell left: (data, metadata["lazycell"])."""
    summaries = [(data, meta["lazycell"]) for data, meta in run.displays if "lazycell" in meta]
    assert summaries, run.displays
    return summaries[-1]


def test_the_panel_leaves_the_hint_under_a_pure_python_compute_on_threads(kernel):
    ran = kernel.run(f"%%compute --scheduler threads --workers 2\n{GIL}")
    assert ran.status == "ok", ran.text
    data, numbers = lazycell_summary(ran)
    assert numbers["tasks"] == 8
    assert "'python_loop' holds the GIL" in numbers["hint"]
    assert "--scheduler processes would take ≈" in numbers["hint"]
    assert "hint: 'python_loop' holds the GIL" in data["text/plain"]
    assert "hint: &#x27;python_loop&#x27; holds the GIL" in data["text/html"]


def test_the_panel_shows_no_hint_for_numpy_on_threads(kernel):
    ran = kernel.run(f"%%compute --scheduler threads --workers 2\n{NUMPY}")
    assert ran.status == "ok", ran.text
    data, numbers = lazycell_summary(ran)
    assert numbers["tasks"] == 16 and numbers["done"] == 16
    assert "hint" not in numbers
    assert "hint:" not in data["text/plain"]


def test_scheduler_advise_takes_no_other_argument(kernel):
    ran = kernel.run("%scheduler threads --advise")
    assert ran.status == "error"
    assert "%scheduler --advise takes no other argument" in ran.text


def test_compute_with_scheduler_auto_runs_a_gil_bound_function_seen_before_on_processes(kernel):
    ran = kernel.run(f"%%compute --scheduler threads --workers 2 --quiet\n{GIL}")
    assert ran.status == "ok", ran.text
    auto = kernel.run(f"%%compute --scheduler auto --quiet\n{GIL}")
    assert auto.status == "ok", auto.text
    advice = kernel.run("%scheduler --advise").stdout
    assert "on processes (2 workers): 8 tasks" in advice
    assert "scheduler='auto' last ran on processes: estimated from earlier computes" in advice


def test_scheduler_auto_becomes_the_sessions_scheduler(kernel):
    ran = kernel.run("%scheduler auto")
    assert ran.status == "ok", ran.text
    assert "lazycell scheduler for this session: auto (sync, threads or processes" in ran.stdout
    reset = kernel.run("%scheduler threads")
    assert reset.status == "ok", reset.text
