"""notebooks/cluster_operations.ipynb runs top to bottom in a real kernel and says what it shows."""

import nbformat
import pytest
from kernel_helpers import REPO_DIR, execute_notebook, printed_by_code_cells

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NOTEBOOK = REPO_DIR / "notebooks" / "cluster_operations.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cwd, ipython_dir = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("ipython")
    return execute_notebook(nb, cwd, ipython_dir, store_widget_state=True), cwd


@pytest.fixture(scope="module")
def outputs(executed) -> list[str]:
    return printed_by_code_cells(executed[0])


def test_the_dashboard_answers_with_the_token_and_refuses_without(outputs):
    assert "with the token: 200" in outputs[0]
    assert "without it: 403" in outputs[0]


def test_the_client_is_shown_as_a_live_widget(executed):
    nb, _ = executed
    first = [c for c in nb.cells if c.cell_type == "code"][0]
    bundles = [out.get("data", {}) for out in first.outputs if out.output_type == "execute_result"]
    assert bundles and "application/vnd.jupyter.widget-view+json" in bundles[0]


def test_introspection_sees_both_workers_and_the_results(outputs):
    text = outputs[1]
    assert "worker-0: 1 thread" in text and "worker-1: 1 thread" in text
    assert "totals: 2 workers, 8 results" in text
    assert "who_has: ['worker-0', 'worker-1']" in text
    assert "run: worker pids differ from the kernel: [True, True]" in text


def test_a_failing_run_names_its_worker(outputs):
    assert (
        "error: disk full on this one | raised on worker-1 by client.run(check_disk)" in outputs[2]
    )


def test_the_plugin_resource_answers_tasks(outputs):
    assert "{'worker-0': 'OK', 'worker-1': 'OK'}" in outputs[3]
    assert "[9, 16, 144]" in outputs[3]


def test_the_profile_puts_the_slow_function_first(outputs, executed):
    _, cwd = executed
    first_row = outputs[4].splitlines()[0]
    assert first_row.split(":")[0].strip() == "slow_part"
    assert "written: True True" in outputs[4]
    assert "slow_part" in (cwd / "profile.html").read_text()


def test_scaling_keeps_results(outputs):
    assert "after scale(3): ['worker-0', 'worker-1', 'worker-2']" in outputs[5]
    assert "results still there: [0, 10, 20, 30] ..." in outputs[5]
    assert "after scale(1):" in outputs[5]


def test_adapt_grows_under_load_and_shrinks_when_idle(outputs):
    most = int(outputs[6].split("most workers while busy:")[1].split()[0])
    assert 2 <= most <= 3
    assert f"workers once idle: 1 | results: {sum(range(60))}" in outputs[6]


def test_restart_gives_fresh_processes_and_keeps_plugins(outputs):
    assert "fresh processes: True | old futures: cancelled" in outputs[7]
    assert "plugin set up again: 81" in outputs[7]


def test_closing_stops_the_dashboard(outputs):
    assert "dashboard closed" in outputs[8]
