"""Which operating-system process each worker of a compute lives in.

The worker memory bars need a pid per worker: for ``sync`` and ``threads``
every worker is a thread of this process, so there is one bar, the kernel's;
for ``processes`` each pool process is a worker of its own.
"""

from __future__ import annotations

import os

from lazycell.diagnostics.compute_state import ComputeState


def worker_processes(state: ComputeState) -> dict[str, int]:
    """``{label: pid}`` of the processes doing ``state``'s work, the kernel first."""
    processes = {"kernel": os.getpid()}
    if state.scheduler == "processes":
        processes.update(_pool_processes(state.n_workers))
    return processes


def _pool_processes(n_workers: int) -> dict[str, int]:
    # Imported here: diagnostics must not pull the schedulers in for views that
    # never see a processes compute. The pool exists by the time its compute
    # is announced (the scheduler readies it first), so this starts nothing new.
    from lazycell.schedulers.processes import shared_pool

    pool = shared_pool(n_workers)
    return {f"process-{index}": pid for index, pid in enumerate(pool.pids)}
