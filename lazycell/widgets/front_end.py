"""Whether the code runs where ipywidgets can be shown: an IPython kernel.

A kernel (``ipykernel``) talks to a notebook front end over comms, so a
widget's view appears in the cell's output and follows its model. Terminal
IPython and plain ``python`` have no such front end: they get the text bar.
"""

from __future__ import annotations


def current_shell():
    """The running IPython shell, or None in plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def can_show_widgets(shell) -> bool:
    """True in an ipykernel shell with ipywidgets importable."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True
