"""A JupyterLab server and a page in it, for the lab extension's browser tests.

- :func:`lab_server`: ``browser_helpers.running_jupyterlab`` (JupyterLab on
  this interpreter, on 127.0.0.1 with a random token, its config and runtime
  folders in a scratch directory, so no user setting leaks in; extensions
  installed in this environment are what it loads), with the app exposed as
  ``window.jupyterapp`` so tests can run commands, and without a
  ``LAZYCELL_SCHEDULER`` from the environment.
- :class:`LabPage`: the Playwright page with the steps the tests take (open a
  notebook, wait for its kernel, run a cell by index, read the status item).

The browser and the notebooks come from browser_helpers (``chromium_browser``,
``write_notebook``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from browser_helpers import LAB_OPTIONS, JupyterLab, running_jupyterlab

# The notebook panel in the main area (the current widget may be a console beside it).
NOTEBOOK_JS = (
    "[...window.jupyterapp.shell.widgets('main')].find(w => w.context?.path?.endsWith('.ipynb'))"
)


APP_OPTIONS = {
    "jupyterlab": (*LAB_OPTIONS, "--LabApp.expose_app_in_browser=True"),
    "notebook": ("--JupyterNotebookApp.expose_app_in_browser=True",),
}


def lab_server(scratch: Path, app: str = "jupyterlab") -> AbstractContextManager[JupyterLab]:
    """JupyterLab serving ``scratch/root`` (see the module docstring); stopped on exit.

    ``app="notebook"`` serves Notebook 7 instead (same server, same extensions).
    """
    return running_jupyterlab(
        scratch, env={"LAZYCELL_SCHEDULER": None}, app=app, options=APP_OPTIONS[app]
    )


class LabPage:
    """A JupyterLab tab, with the steps the extension's tests take."""

    def __init__(self, page, server: JupyterLab):
        self.page = page
        self.server = server

    def open_notebook(self, name: str, path: str = "lab/tree") -> None:
        """Open ``name`` (in Notebook 7: ``path="notebooks"``) and wait for its kernel."""
        self.page.goto(self.server.url(f"/{path}/{name}"))
        self.wait_for_kernel()

    def wait_for_kernel(self, timeout: float = 90_000) -> None:
        """Until the app is up and the current notebook's kernel is idle."""
        self.page.wait_for_function(
            "() => window.jupyterapp?.shell && "
            f"{NOTEBOOK_JS}?.sessionContext?.session?.kernel?.status === 'idle'",
            timeout=timeout,
        )

    def command(self, command: str, args: dict | None = None) -> None:
        self.page.evaluate(
            "([command, args]) => window.jupyterapp.commands.execute(command, args)",
            [command, args or {}],
        )

    def run_cell(self, index: int) -> None:
        """Start the current notebook's cell ``index`` (Shift+Enter, without moving on).

        Returns once the cell is sent: the command's promise (which resolves when
        the cell ends) is not awaited.
        """
        self.page.evaluate(
            f"""(index) => {{
                const panel = {NOTEBOOK_JS};
                window.jupyterapp.shell.activateById(panel.id);
                panel.content.activeCellIndex = index;
                void window.jupyterapp.commands.execute('notebook:run-cell');
            }}""",
            index,
        )

    def execution_count(self, index: int) -> int | None:
        return self.page.evaluate(
            f"(index) => {NOTEBOOK_JS}.content.widgets[index].model.executionCount",
            index,
        )

    def wait_for_execution_count(self, index: int, count: int, timeout: float = 120_000) -> None:
        self.page.wait_for_function(
            f"""([index, count]) => {{
                const panel = {NOTEBOOK_JS};
                const cell = panel.content.widgets[index];
                const kernel = panel.sessionContext.session.kernel;
                return cell.model.executionCount === count && kernel.status === 'idle';
            }}""",
            arg=[index, count],
            timeout=timeout,
        )

    def status_text(self) -> str:
        return self.page.inner_text(".lazycell-StatusItem")

    def active_cell_index(self) -> int:
        return self.page.evaluate(f"() => {NOTEBOOK_JS}.content.activeCellIndex")
