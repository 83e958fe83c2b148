"""The IPython extension: ``%load_ext lazycell``.

Magics (a thin layer over a plain Python API)::

    %%compute [--scheduler NAME] [--workers N] [--threads-per-worker T]
              [--memory-limit M] [--out VAR] [--quiet] [--debug] [--report FILE]
    %compute [options] EXPR
    %scheduler [NAME [--workers N ...] | --list]

How a ``%%compute`` cell runs, and which thread or process does what::

    kernel main thread                          other threads / processes
    ──────────────────                          ─────────────────────────
    magics: parse options ─► SchedulerChoice    (bad option: UsageError, nothing runs)
    with choice.applied()   (lc.config.set)
         progress display ─────────────────────► the panel or ProgressBar draws at
                                                 the event stream's deliveries
                                                 (progress_display)
      CellCode.run: the cell's statements, then
      lc.compute(last expression) ─────────────► scheduler: pool threads or worker
                                                 processes run the tasks
      ◄──────────────────────────────────────── results, or the first failure
    result ─► Out[n], _, --out VAR
    failure ─► failures: only the user's frames; from a worker process, the task
               is re-run here (main thread) with its real inputs when debugging
            ─► debugging: IPython shows the short traceback, points sys.last_*
               at it, and opens pdb once (%pdb on / --debug), in the task's frame

Modules: ``magics`` (options), ``scheduler_choice`` (which scheduler, checked),
``cell_code`` (run a cell, compute its last expression), ``failures`` (short,
debuggable failures; no IPython needed), ``debugging`` (IPython's traceback
display, ``sys.last_*``, ``%pdb`` / ``%debug``), ``progress_display`` (the
cell's display, as ``lazycell.widgets`` chooses it), ``extension`` (what load sets up and unload
takes back), ``comm`` and ``lab_messages`` (the ``lazycell`` comm the JupyterLab
extension in ``labextension/`` reads: no server extension, no port).
"""

from __future__ import annotations

from lazycell.kernel_ext.extension import LazycellExtension

_extensions: dict[int, LazycellExtension] = {}  # id(shell) -> its extension


def load_ipython_extension(ipython) -> None:
    """Register the magics in ``ipython``; loading again is harmless."""
    if id(ipython) not in _extensions:
        extension = _extensions[id(ipython)] = LazycellExtension(ipython)
        extension.load()


def unload_ipython_extension(ipython) -> None:
    """Remove the magics and stop every hook, thread and display the extension started."""
    extension = _extensions.pop(id(ipython), None)
    if extension is not None:
        extension.unload()
