"""notebooks/local_cluster.ipynb runs top to bottom in a real kernel and says what it shows."""

import nbformat
import psutil
import pytest
from kernel_helpers import REPO_DIR, ThisPythonAsyncKernelManager, kernel_env
from nbclient import NotebookClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NOTEBOOK = REPO_DIR / "notebooks" / "local_cluster.ipynb"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    NotebookClient(
        nb,
        kernel_manager_class=ThisPythonAsyncKernelManager,
        timeout=180,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("cwd"))}},
    ).execute(env=kernel_env(tmp_path_factory.mktemp("ipython")))
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
    return [
        "".join(out.get("text", "") for out in cell.get("outputs", []))
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


def test_the_notebook_starts_a_cluster_that_becomes_the_default(outputs):
    assert "default scheduler: distributed" in outputs[0]
    assert outputs[-1].strip() == "default scheduler: threads"


def test_the_notebook_shows_tasks_running_where_their_data_is(outputs):
    lines = [line.split() for line in outputs[2].splitlines()]
    assert len(lines) == 4 and all(words[2] == words[5] for words in lines)


def test_the_notebook_shows_an_error_and_its_rerun(outputs):
    assert "expected at most 3 values, got 5" in outputs[4]
    assert "re-run here: expected at most 3 values, got 5" in outputs[4]


def test_the_notebook_survives_a_killed_worker(outputs):
    assert "20540 == 20540" in outputs[5]
