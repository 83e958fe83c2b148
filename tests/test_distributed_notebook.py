"""notebooks/local_cluster.ipynb runs top to bottom in a real kernel and says what it shows."""

import nbformat
import pytest
from kernel_helpers import REPO_DIR, execute_notebook, printed_by_code_cells

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NOTEBOOK = REPO_DIR / "notebooks" / "local_cluster.ipynb"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cwd, ipython_dir = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("ipython")
    return printed_by_code_cells(execute_notebook(nb, cwd, ipython_dir))


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
