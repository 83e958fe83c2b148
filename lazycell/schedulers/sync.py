"""The synchronous scheduler: every task in the calling thread, in post-order.

No queues and no threads: the loop walks ``order`` (see ``core``), runs each
task, and drops each input once its last dependent has run. Exceptions
propagate from the user's function through this loop unchanged, so
``breakpoint()`` inside a task and ``pdb.post_mortem`` see the real frames.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from time import perf_counter, thread_time

from lazycell.events import BUS, estimate_nbytes
from lazycell.events.recording import SAMPLE_EVERY, SAMPLE_FIRST
from lazycell.graph.spec import CALL, Ref, TaskSpec, run_task
from lazycell.schedulers.core import order_and_count_dependents
from lazycell.schedulers.errors import annotate_task_error, make_rerun

WORKER_NAME = "main-thread"


class SyncScheduler:
    """Runs the whole graph in the calling thread; the scheduler for debugging."""

    name = "sync"
    n_workers = 1

    def __repr__(self) -> str:
        return "SyncScheduler()"

    def run(
        self,
        graph: Mapping[Hashable, TaskSpec],
        outputs: Sequence[Hashable],
        *,
        rerun_exceptions_locally: bool = False,
    ) -> dict:
        order, n_dependents = order_and_count_dependents(graph, outputs)
        with BUS.recording(order, self.name, 1, graph) as recorder:
            return run_in_order(graph, order, outputs, n_dependents, recorder)


def run_in_order(graph, order, outputs, n_dependents, recorder=None, scheduler_name="sync") -> dict:
    """Run ``order`` here; returns ``{output key: result}``.

    ``order`` and ``n_dependents`` (key -> dependents in ``order``, counted down
    as they run) come from ``core.order_and_count_dependents``.
    """
    waiting_data = n_dependents
    outputs = set(outputs)
    data: dict = {}
    key = spec = None
    lane = None
    n_run = 0
    every = SAMPLE_EVERY - 1
    first = SAMPLE_FIRST  # locals: read once per compute, not per task
    if recorder is not None:  # see events.WorkerLane: appends, no tuple per task
        lane = recorder.lane(WORKER_NAME)
        record_key, record_start, record_stop, record_nbytes = lane.writers()
        record_cpu = lane.cpu_samples.append
    try:
        for key in order:
            spec = graph[key]
            if lane is not None:
                record_key(key)
                # A sample of tasks also has its CPU time measured (events.is_sampled).
                sampled = n_run < first or not n_run & every
                n_run += 1
                if sampled:
                    cpu_start = thread_time()
                start = perf_counter()
                record_start(start)
            # The CALL kind is inlined: it is nearly every task, and a call
            # through run_task would cost a fifth of the per-task budget.
            if spec.kind == CALL:
                if spec.deps:
                    args = [data[a.key] if type(a) is Ref else a for a in spec.args]
                else:
                    args = spec.args
                if spec.kwargs:
                    result = spec.func(*args, **spec.kwargs)
                else:
                    result = spec.func(*args)
            else:
                result = run_task(spec, data)
            data[key] = result
            if lane is not None:
                stop = perf_counter()
                if sampled:
                    record_cpu((key, thread_time() - cpu_start, stop - start))
                record_stop(stop)
                record_nbytes(estimate_nbytes(result))
                if stop >= recorder.deliver_at:
                    recorder.deliver()  # here, between tasks (see events)
            for dep in spec.deps:
                n = waiting_data[dep] - 1
                waiting_data[dep] = n
                if not n and dep not in outputs:
                    del data[dep]
    except Exception as exc:
        if lane is not None and len(lane.starts) > len(lane.nbytes):  # the task failed
            recorder.lane_task_erred(lane, key, exc)
        if spec is not None:  # else the failure came before the first task
            inputs = {dep: data[dep] for dep in spec.deps if dep in data}
            annotate_task_error(exc, key, spec, scheduler_name, make_rerun(spec, inputs))
        raise
    return {k: data[k] for k in outputs}
