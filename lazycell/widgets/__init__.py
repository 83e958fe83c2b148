"""Notebook panels (ipywidgets + plotly), fed only by the event stream.

- :class:`ComputePanel` — the live panel: task progress per group, worker
  memory, a resource timeline and the task stream (``lazycell.widgets.panel``);
- :func:`install` — make ``%%compute`` show the panel in notebooks (the text
  bar stays for terminals and plain Python);
- :func:`panel_if_widgets_available` — the factory ``install`` registers.

The heavy imports (ipywidgets, plotly) happen when a panel is first made,
not when this package is imported.
"""

from __future__ import annotations

from collections.abc import Callable

from lazycell.widgets.front_end import can_show_widgets, current_shell

_uninstall: Callable[[], None] | None = None


def panel_if_widgets_available(shell=None):
    """A new :class:`ComputePanel` if ``shell`` can show widgets, else None."""
    if not can_show_widgets(shell):
        return None
    from lazycell.widgets.panel import ComputePanel

    return ComputePanel()


def install() -> Callable[[], None]:
    """Let ``%%compute`` cells show the live panel where widgets can be shown.

    Registers :func:`panel_if_widgets_available` with
    ``lazycell.kernel_ext.progress_display``; calling it again is harmless.
    Returns the function that takes it back.
    """
    global _uninstall
    if _uninstall is None:
        from lazycell.kernel_ext.progress_display import register_progress_display

        unregister = register_progress_display(panel_if_widgets_available)

        def uninstall() -> None:
            global _uninstall
            unregister()
            _uninstall = None

        _uninstall = uninstall
    return _uninstall


def __getattr__(name: str):
    if name == "ComputePanel":
        from lazycell.widgets.panel import ComputePanel

        return ComputePanel
    raise AttributeError(f"module 'lazycell.widgets' has no attribute {name!r}")


__all__ = [
    "ComputePanel",
    "can_show_widgets",
    "current_shell",
    "install",
    "panel_if_widgets_available",
]
