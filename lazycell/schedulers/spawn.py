"""Starting a lazycell worker module as a process of its own.

Both the processes scheduler and the local cluster start their workers the
same way: ``python -m MODULE FD PARENT_PID`` with one end of a socket pair
passed as ``FD``, the kernel's import path for lazycell itself, and a session
of its own. Not through ``multiprocessing``: that would re-import the user's
``__main__`` (and need an ``if __name__ == "__main__"`` guard in notebooks'
scripts); not in the kernel's process group: signals meant for the kernel
(ipykernel's shutdown, a terminal's Ctrl-C) are the kernel's to handle, and
workers are stopped by their owner, or exit when orphaned.
"""

from __future__ import annotations

import os
import subprocess
import sys


def spawn_worker(module: str, child_fd: int) -> subprocess.Popen:
    """Start ``python -m module child_fd this_pid``; ``child_fd`` is inherited."""
    env = dict(os.environ)
    # The folder that holds the lazycell package: this file is lazycell/schedulers/spawn.py.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", module, str(child_fd), str(os.getpid())],
        pass_fds=[child_fd],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
