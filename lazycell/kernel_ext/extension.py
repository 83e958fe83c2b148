"""What ``%load_ext lazycell`` sets up in one shell, so ``%unload_ext`` can take it all back.

- the magics (:class:`LazycellMagics`), registered with the shell;
- :class:`InlineDebugging`, with its ``pre_run_cell`` hook for ``%debug``;
- the progress displays of cells still running (each stops when its cell
  ends; unloading stops any left, with their threads);
- in a kernel, :class:`LabChannel`: the ``lazycell`` comm the JupyterLab
  extension's side panel and status bar item read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lazycell.kernel_ext.comm import LabChannel
from lazycell.kernel_ext.debugging import InlineDebugging
from lazycell.kernel_ext.magics import LazycellMagics
from lazycell.kernel_ext.progress_display import cell_progress_display


class LazycellExtension:
    """The extension's state in one IPython shell."""

    def __init__(self, shell):
        self.shell = shell
        self.debugging = InlineDebugging(shell)
        self.magics = LazycellMagics(shell, self)
        self.open_displays: list = []
        self.lab = LabChannel(shell)

    def load(self) -> None:
        self.shell.register_magics(self.magics)
        self.debugging.start()
        self.lab.start()

    def unload(self) -> None:
        for display in list(self.open_displays):
            display.__exit__(None, None, None)
        self.open_displays.clear()
        self.lab.stop()
        self.debugging.stop()
        self._unregister_magics()

    def _unregister_magics(self) -> None:
        manager = self.shell.magics_manager
        for kind, ours in self.magics.magics.items():
            registered = manager.magics[kind]
            for name, method in ours.items():
                if registered.get(name) == method:  # not if another extension took the name
                    del registered[name]
        name = type(self.magics).__name__
        if manager.registry.get(name) is self.magics:
            del manager.registry[name]

    @contextmanager
    def progress_display(self) -> Iterator[None]:
        """The cell's progress display, open for the ``with`` block."""
        display = cell_progress_display(self.shell)
        self.open_displays.append(display)
        try:
            with display:
                yield
        finally:
            if display in self.open_displays:
                self.open_displays.remove(display)
