"""What a user sees of lazycell's internals: a worker's frames of notebook functions, an
interrupt, a profile, the local-cluster notebook's output.

Unit tests send functions through cloudpickle by value, as the process
workers receive them (their code's file becomes ``<dynamic-code>``); the slow
tests run the same in a real kernel (one per module) and a notebook with nbclient.
"""

import linecache
import multiprocessing.connection
import threading
import time
import traceback

import cloudpickle
import nbformat
import pytest
from kernel_helpers import REPO_DIR, RunningKernel, execute_notebook

import lazycell.distributed.profiler
from lazycell.diagnostics.code_locations import DYNAMIC_CODE, CodeLocator
from lazycell.distributed.profiler import (
    TASK_THREAD_PREFIX,
    BusyThreads,
    StackSampler,
    call_tree,
    function_table,
    is_internal_file,
    merge_profiles,
)
from lazycell.kernel_ext.progress_display import CellProgress

CELL_FILE = "/tmp/ipykernel_0/4242.py"  # named as ipykernel names a cell; never on disk
CELL_SOURCE = """\
import statistics

def ratio(a, b):
    x = a
    y = b
    return x / y

def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        statistics.mean(range(200))
"""


@pytest.fixture
def cell_namespace():
    """A 'notebook cell' defining ratio() and busy(); its source in linecache, as IPython's."""
    lines = CELL_SOURCE.splitlines(keepends=True)
    linecache.cache[CELL_FILE] = (len(CELL_SOURCE), None, lines, CELL_FILE)
    namespace = {"__name__": "a_notebook_not_importable", "time": time}
    exec(compile(CELL_SOURCE, CELL_FILE, "exec"), namespace)
    yield namespace
    linecache.cache.pop(CELL_FILE, None)


def as_a_worker_gets_it(function):
    """The function after cloudpickle's round trip by value: its file is ``<dynamic-code>``."""
    received = cloudpickle.loads(cloudpickle.dumps(function))
    assert received.__code__.co_filename == DYNAMIC_CODE
    return received


def worker_traceback_of(function, *args) -> str:
    try:
        function(*args)
    except Exception as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError("expected a failure")


# -- tracebacks


def test_a_worker_frame_gets_the_cells_file_and_source_line(cell_namespace):
    text = worker_traceback_of(as_a_worker_gets_it(cell_namespace["ratio"]), 1, 0)
    assert 'File "<dynamic-code>", line 6, in ratio' in text

    fixed = CodeLocator([cell_namespace]).fix_traceback_text(text)
    assert DYNAMIC_CODE not in fixed
    assert f'  File "{CELL_FILE}", line 6, in ratio\n    return x / y\n' in fixed
    assert fixed.rstrip().endswith("ZeroDivisionError: division by zero")


def test_with_ipythons_compiler_the_frame_is_labelled_as_the_cell():
    class Compiler:  # IPython's CachingCompiler.format_code_name, for a cell run as In[7]
        @staticmethod
        def format_code_name(name):
            return ("Cell", "In[7]") if name == CELL_FILE else None

    locator = CodeLocator([], compiler=Compiler())
    assert locator.label(CELL_FILE) == "Cell In[7]"
    assert locator.label("/elsewhere.py") == 'File "/elsewhere.py"'


def test_an_unknown_function_keeps_its_frame_as_it_was(cell_namespace):
    text = 'Traceback (most recent call last):\n  File "<dynamic-code>", line 2, in elsewhere\n'
    assert CodeLocator([cell_namespace]).fix_traceback_text(text) == text


def test_a_line_outside_the_function_is_not_claimed(cell_namespace):
    assert CodeLocator([cell_namespace]).locate("ratio", 6) == CELL_FILE
    assert CodeLocator([cell_namespace]).locate("ratio", 40) is None


# -- interrupts


def test_an_interrupt_is_one_line_with_the_tasks_done():
    assert CellProgress(230, 401).interrupted_text() == "■ interrupted: 230/401 tasks done"
    assert CellProgress(0, 1).interrupted_text() == "■ interrupted: 0/1 task done"
    assert CellProgress().interrupted_text() == "■ interrupted"


# -- profiles


def test_internal_files_are_lazycells_and_the_standard_librarys():
    assert is_internal_file(threading.__file__)
    assert is_internal_file(multiprocessing.connection.__file__)
    assert is_internal_file(lazycell.distributed.profiler.__file__)
    assert not is_internal_file(__file__)
    assert not is_internal_file(cloudpickle.__file__)  # a library the user chose
    assert not is_internal_file(DYNAMIC_CODE)


@pytest.fixture
def profile_of_a_notebook_function(cell_namespace):
    busy = BusyThreads()
    sampler = StackSampler(interval=0.005, is_busy=busy.is_busy)
    spin = as_a_worker_gets_it(cell_namespace["busy"])

    def task():
        with busy.running():
            spin(0.4)

    sampler.start()
    thread = threading.Thread(target=task, name=TASK_THREAD_PREFIX + "0")
    thread.start()
    thread.join()
    sampler.stop()
    return merge_profiles({"worker-0": sampler.snapshot()}, CodeLocator([cell_namespace]))


def test_the_profile_names_the_notebook_functions_file(profile_of_a_notebook_function):
    rows = function_table(profile_of_a_notebook_function)
    assert {(row["function"], row["file"]) for row in rows} >= {("busy", CELL_FILE)}
    assert not any(row["file"] == DYNAMIC_CODE for row in rows)


def test_the_profile_hides_lazycell_and_stdlib_frames_by_default(profile_of_a_notebook_function):
    profile = profile_of_a_notebook_function
    shown = function_table(profile)
    assert not any(is_internal_file(row["file"]) for row in shown)
    (busy,) = [row for row in shown if row["function"] == "busy"]
    assert busy["own_samples"] == busy["samples"]  # statistics' time is the caller's own
    everything = function_table(profile, hide_internal=False)
    assert any(row["function"] == "mean" for row in everything)
    tree = call_tree(profile)
    assert tree["samples"] == profile["samples"]
    assert [child["function"] for child in tree["children"]] == ["task"]


# -- in a real kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd, ipython_dir = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("ipython")
    running = RunningKernel(cwd=cwd, ipython_dir=ipython_dir)
    setup = running.run("%load_ext lazycell\nimport time\nimport lazycell as lc\n")
    assert setup.status == "ok", setup.text
    yield running
    running.shutdown()


@pytest.mark.slow
def test_a_processes_failure_shows_the_cells_line_in_the_worker_traceback(kernel):
    defined = kernel.run("def ratio(a, b):\n    x = a\n    y = b\n    return x / y\n")
    failed = kernel.run("%%compute -s processes --workers 2\nlc.delayed(ratio)(1, 0)")
    assert failed.status == "error" and failed.ename == "ZeroDivisionError"
    assert DYNAMIC_CODE not in failed.traceback
    assert "Cell In[" in failed.traceback and ", line 4, in ratio" in failed.traceback
    assert "return x / y" in failed.traceback
    assert defined.status == "ok"


@pytest.mark.slow
def test_an_interrupted_cell_says_one_line_with_the_tasks_done(kernel):
    kernel.run("def nap(i):\n    time.sleep(0.05)\n    return i\n")
    msg_id = kernel.start_running(
        "%%compute -s threads --workers 2\n"
        "print('computing', flush=True)\n"
        "lc.delayed(sum)([lc.delayed(nap)(i) for i in range(400)])"
    )
    kernel.wait_for_stdout("computing")
    time.sleep(1.5)
    kernel.manager.interrupt_kernel()
    reply = kernel.wait_for_reply(msg_id)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    (line,) = reply["traceback"]
    done, total = line.removeprefix("■ interrupted: ").removesuffix(" tasks done").split("/")
    assert total == "401" and 0 < int(done) < 401
    kernel.drain_iopub()


@pytest.mark.slow
def test_local_cluster_notebook_prints_no_warning_and_no_lazycell_path(tmp_path):
    nb = nbformat.read(REPO_DIR / "notebooks" / "local_cluster.ipynb", as_version=4)
    execute_notebook(nb, tmp_path, tmp_path / "ipython")
    texts = [
        output.get("text", "") + "".join(output.get("traceback", []))
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    everything = "\n".join(texts)
    assert "Warning" not in everything
    assert "lazycell/" not in everything
    assert "spilled to disk: " in everything
    spilled = [t for t in texts if "spilled to disk" in t][0]
    assert float(spilled.split("spilled to disk: ")[1].split()[0]) > 0
