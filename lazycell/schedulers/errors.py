"""How a failing task reaches the user: their own exception, with the task named.

Every scheduler raises the exception the user's function raised (same type,
same object where it can be), with a note naming the task — key and function —
and attributes that the IPython extension uses to re-run the task in place:

- ``exc.lazycell_task_key`` / ``exc.lazycell_function``: which task failed;
- ``exc.lazycell_remote_traceback``: the traceback text from another process;
- ``exc.lazycell_in_worker``: True when the task failed in another process;
- ``exc.lazycell_rerun``: a zero-argument callable that runs the failing task
  again in the calling thread with its real inputs (set when those inputs are
  still at hand).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from lazycell.events.failure import RemoteTraceback
from lazycell.graph.spec import TaskSpec, describe_task, run_task

E = TypeVar("E", bound=BaseException)


def annotate_task_error(
    exc: E,
    key: Hashable,
    spec: TaskSpec | None,
    scheduler: str,
    rerun: Callable[[], object] | None = None,
) -> E:
    """Name the failed task on ``exc`` (once) and keep how to re-run it."""
    if getattr(exc, "lazycell_task_key", None) is None:
        note = f"lazycell: {describe_task(key, spec)} failed on the {scheduler} scheduler"
        function = spec.function_name if spec is not None else None
        named = {
            "lazycell_task_key": key,
            "lazycell_function": function,
            "lazycell_scheduler": scheduler,
        }
        try:
            for attribute, value in named.items():
                setattr(exc, attribute, value)
        except AttributeError:  # exceptions with __slots__
            pass
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        elif not exc.args or not isinstance(exc.args[0], str):
            exc.args = (note, *exc.args)
    if rerun is not None:
        try:
            exc.lazycell_rerun = rerun  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return exc


def make_rerun(spec: TaskSpec, inputs: dict) -> Callable[[], object]:
    """A callable that runs one task again, here, with the inputs it failed on."""

    def rerun_task_locally():
        return run_task(spec, inputs)

    return rerun_task_locally


def rerun_locally_and_raise(exc: BaseException, key, spec: TaskSpec, inputs: dict, scheduler):
    """``rerun_exceptions_locally=True``: raise the failure from a run in this thread.

    The re-raised exception carries the real frames of the user's function, so
    ``pdb.post_mortem`` lands in it. If the re-run succeeds (a flaky or
    environment-dependent failure) the original error is raised with a note.
    """
    try:
        run_task(spec, inputs)
    except Exception as local_exc:
        annotate_task_error(local_exc, key, spec, scheduler + ", re-run locally")
        remote = exc.__cause__ if isinstance(exc.__cause__, RemoteTraceback) else None
        raise local_exc from remote
    note = (
        f"lazycell: re-running {describe_task(key, spec)} in the calling thread did not "
        "fail; the error above happened only on the worker"
    )
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    raise exc


def describe_exit(proc) -> str:
    """How a worker process ended, for error messages: "was killed by SIGKILL"."""
    import signal
    import subprocess

    code = proc.poll()
    if code is None:
        try:
            code = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
