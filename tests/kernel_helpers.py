"""Real kernels and terminal IPython for the kernel_ext tests.

- Kernels are started with this interpreter (``sys.executable -m
  ipykernel_launcher``), never through a user-level kernelspec, with a fresh
  ``IPYTHONDIR`` and in-memory history, in a working directory of the test's
  choosing, with ``tests/`` importable (task functions in
  ``kernel_helpers_tasks``).
- :class:`RunningKernel` runs cells and answers the kernel's input requests
  (pdb prompts) from a script, and records everything the cell printed.
- :func:`execute_notebook` runs a notebook top to bottom in such a kernel
  with nbclient and checks that it left no process behind.
- :func:`run_terminal_ipython` pipes a script into ``python -m IPython
  --simple-prompt`` (cells end at a blank line; a cell magic at two).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client import AsyncKernelManager, KernelManager
from jupyter_client.kernelspec import KernelSpec

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STARTUP_TIMEOUT = 120
CELL_TIMEOUT = 180


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def this_python_kernel_spec() -> KernelSpec:
    return KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="lazycell tests (this interpreter)",
        language="python",
    )


class ThisPythonKernelManager(KernelManager):
    """A KernelManager that always starts ipykernel with this interpreter."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return this_python_kernel_spec()


class ThisPythonAsyncKernelManager(AsyncKernelManager):
    """The same for nbclient, which drives kernels asynchronously."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return this_python_kernel_spec()


def kernel_env(ipython_dir: Path) -> dict:
    """Environment for kernels and terminal IPython: isolated config, tests importable."""
    env = dict(os.environ)
    env["IPYTHONDIR"] = str(ipython_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(TESTS_DIR), str(REPO_DIR), env.get("PYTHONPATH", "")) if p
    )
    env.pop("LAZYCELL_SCHEDULER", None)
    env.pop("LAZYCELL_NUM_WORKERS", None)
    env["LAZYCELL_CONFIG"] = str(ipython_dir / "no-lazycell-config.toml")
    (ipython_dir / "no-lazycell-config.toml").write_text("")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def execute_notebook(nb, cwd: Path, ipython_dir: Path, store_widget_state: bool = False):
    """Run ``nb`` (in place) in a fresh kernel working in ``cwd``; no process may outlive it."""
    from nbclient import NotebookClient

    ipython_dir.mkdir(parents=True, exist_ok=True)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    NotebookClient(
        nb,
        kernel_manager_class=ThisPythonAsyncKernelManager,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        store_widget_state=store_widget_state,
        resources={"metadata": {"path": str(cwd)}},
    ).execute(env=kernel_env(ipython_dir))
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, f"processes left behind by the notebook: {sorted(left)}"
    return nb


def printed_by_code_cells(nb) -> list[str]:
    """The text each code cell printed, one string per code cell."""
    return [
        "".join(out.get("text", "") for out in cell.get("outputs", []))
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


@dataclass
class CellRun:
    """What one cell did: its reply status and everything it sent back."""

    status: str
    stdout: str = ""
    stderr: str = ""
    result: str | None = None  # text/plain of the execute_result
    ename: str | None = None
    evalue: str | None = None
    traceback: str = ""  # ANSI codes stripped
    prompts: list = field(default_factory=list)  # input requests, in order
    unexpected_prompts: int = 0  # input requests beyond the scripted answers
    displays: list = field(default_factory=list)  # (data, metadata) of each display / update

    @property
    def text(self) -> str:
        """stdout, stderr and the traceback, for 'was it said anywhere' checks."""
        return "\n".join([self.stdout, self.stderr, self.traceback])


class RunningKernel:
    """One ipykernel process for a test module; ``run`` executes a cell."""

    def __init__(self, cwd: Path, ipython_dir: Path):
        # ipc sockets in the test's own directory: nothing listens on the network
        self.manager = ThisPythonKernelManager(transport="ipc", ip=str(ipython_dir / "kernel-ipc"))
        self.manager.connection_file = str(ipython_dir / "kernel-connection.json")
        self.manager.start_kernel(
            cwd=str(cwd),
            env=kernel_env(ipython_dir),
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
        )
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)
        self.pid = self.manager.provisioner.process.pid

    def run(self, code: str, answers=(), timeout: float = CELL_TIMEOUT) -> CellRun:
        """Execute ``code``; answer input requests (pdb prompts) with ``answers`` in order.

        A request beyond the answers is counted in ``unexpected_prompts`` and
        answered with ``q`` so a stray debugger never hangs the test.
        """
        run = CellRun(status="?")
        pending = list(answers)

        def on_output(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    run.stdout += content["text"]
                else:
                    run.stderr += content["text"]
            elif kind == "execute_result":
                run.result = content["data"].get("text/plain")
            elif kind in ("display_data", "update_display_data"):
                run.displays.append((content["data"], content.get("metadata", {})))
            elif kind == "error":
                run.traceback = strip_ansi("\n".join(content["traceback"]))

        def on_input_request(msg):
            run.prompts.append(msg["content"]["prompt"])
            if pending:
                self.client.input(pending.pop(0))
            else:
                run.unexpected_prompts += 1
                self.client.input("q")

        reply = self.client.execute_interactive(
            code,
            allow_stdin=True,
            timeout=timeout,
            output_hook=on_output,
            stdin_hook=on_input_request,
        )
        content = reply["content"]
        run.status = content["status"]
        run.ename = content.get("ename")
        run.evalue = content.get("evalue")
        run.stdout = strip_ansi(run.stdout)
        run.stderr = strip_ansi(run.stderr)
        return run

    def start_running(self, code: str) -> str:
        """Send ``code`` without waiting; returns the message id."""
        return self.client.execute(code)

    def wait_for_stdout(self, marker: str, timeout: float = CELL_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        seen = ""
        while marker not in seen:
            msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["msg_type"] == "stream":
                seen += msg["content"]["text"]

    def wait_for_reply(self, msg_id: str, timeout: float = CELL_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]

    def drain_iopub(self) -> None:
        while self.client.iopub_channel.msg_ready():
            self.client.get_iopub_msg(timeout=1)

    def shutdown(self, stop_worker_pools_first: bool = True) -> None:
        """Shut the kernel down and make sure no process it started outlives it.

        Stopping lazycell's worker pools first saves seconds: ipykernel's own
        shutdown signals child processes and waits for them to be reaped.
        """
        if stop_worker_pools_first:
            try:
                self.run(
                    "import lazycell.schedulers.processes\n"
                    "lazycell.schedulers.processes.shutdown_all_pools()",
                    timeout=60,
                )
            except Exception:  # a kernel that does not answer is shut down all the same
                pass
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
        _, alive = psutil.wait_procs(children, timeout=15)
        for proc in alive:
            proc.kill()
        self.manager.cleanup_resources()
        self.leftover_processes = alive


def run_terminal_ipython(
    script: str, ipython_dir: Path, cwd: Path, timeout: float = CELL_TIMEOUT, args=()
) -> str:
    """Pipe ``script`` into terminal IPython; returns everything it printed (no colors)."""
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", "--simple-prompt", "--colors=nocolor", *args],
        input=script + "\nexit\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(cwd),
        env=kernel_env(ipython_dir),
        timeout=timeout,
    )
    return strip_ansi(proc.stdout)
