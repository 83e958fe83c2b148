"""The local cluster's scheduler: one thread in the kernel that places tasks next to their data.

::

    client (user's threads)            scheduler thread                      worker processes
    ───────────────────────            ────────────────                      ────────────────
    commands.put(("update-graph", …)) ─► handle_commands: update_graph,
      + one byte on the wake socket      new TaskStates, activate() the
                                         needed ones
                                         dispatch(): ready tasks, best
                                         worker by input bytes  ───────────► ("compute", items)
                                                                ◄─────────── ("reports", items)
    KeyStatus.event / callbacks    ◄──── task_finished(): memory, ready
                                         the dependents, release inputs
    gather: fetch straight from the                                          data servers ◄─┐
    workers' data servers (DataFetcher) ───────────────────────────────────────────────────┘

The scheduler thread owns every piece of state; other threads talk to it
only through ``commands`` (and read ``KeyStatus`` objects it updates).

Parts, each importing only the ones above it:

- ``state``        the named state: TaskState, WorkerHandle, KeyStatus and the
                   SchedulerState that holds them, with the seams to the outside
                   world (``send_to``, ``launch_worker``, ...); task states listed;
- ``placement``    which worker a ready task goes to, and each worker's room;
- ``transitions``  the task state machine: update_graph, activate, dispatch,
                   task_finished, task_erred, releasing and forgetting;
- ``membership``   workers starting, dying (recompute, ``allowed_failures``),
                   retiring, scaling, restart, interrupts;
- ``coordination`` Lock, Semaphore, Event, Variable and Queue: named state,
                   waiters and their deadlines, for the kernel and tasks;
- ``loop``         ClusterScheduler: the thread, its commands, the messages to and
                   from workers, and the processes (the seams' implementations).

Everything below ``loop`` runs without a thread, a socket or a process: build
a SchedulerState whose seams record what they are asked, add WorkerHandle
records, and call the parts (see ``tests/test_distributed_scheduler_state.py``).
"""

from lazycell.distributed.scheduler.loop import (
    RECENT_BATCHES,
    STARTUP_TIMEOUT,
    ClusterScheduler,
    start_worker,
)
from lazycell.distributed.scheduler.membership import MAX_STARTUP_FAILURES
from lazycell.distributed.scheduler.placement import (
    FIRST_TASKS_PER_THREAD,
    GUESSED_TASK_SECONDS,
    MAX_TASKS_PER_THREAD,
    MIN_TASKS_PER_THREAD,
    QUEUE_SECONDS,
    TASK_OVERHEAD_SECONDS,
    TRANSFER_BYTES_PER_SECOND,
    TRANSFER_LATENCY,
)
from lazycell.distributed.scheduler.state import (
    KeyStatus,
    PendingCall,
    SchedulerState,
    TaskOptions,
    TaskState,
    WorkerHandle,
)

__all__ = [
    "FIRST_TASKS_PER_THREAD",
    "GUESSED_TASK_SECONDS",
    "MAX_STARTUP_FAILURES",
    "MAX_TASKS_PER_THREAD",
    "MIN_TASKS_PER_THREAD",
    "QUEUE_SECONDS",
    "RECENT_BATCHES",
    "STARTUP_TIMEOUT",
    "TASK_OVERHEAD_SECONDS",
    "TRANSFER_BYTES_PER_SECOND",
    "TRANSFER_LATENCY",
    "ClusterScheduler",
    "KeyStatus",
    "PendingCall",
    "SchedulerState",
    "TaskOptions",
    "TaskState",
    "WorkerHandle",
    "start_worker",
]
