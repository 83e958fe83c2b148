"""Ctrl-C during a compute, and worker processes never outliving their interpreter."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import lazycell as lc

LONG_COMPUTE_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import lazycell as lc

    def slow(i):
        time.sleep(30)
        return i

    def quick(i):
        return i + 1

    scheduler = sys.argv[1]
    if scheduler == "processes":
        from lazycell.schedulers.processes import shared_pool
        pool = shared_pool(2)
        pool.ensure_ready()
        print("PIDS", *pool.pids, flush=True)
    print("STARTED", flush=True)
    started = time.monotonic()
    try:
        lc.compute([lc.delayed(slow)(i) for i in range(4)], scheduler=scheduler, num_workers=2)
    except KeyboardInterrupt:
        print("INTERRUPTED after %.1f s" % (time.monotonic() - started), flush=True)
    # The scheduler is usable right after the interrupt.
    print("NEXT", lc.delayed(quick)(41).compute(scheduler=scheduler, num_workers=2), flush=True)
    """
)


def run_and_interrupt(scheduler: str, tmp_path):
    script = tmp_path / "long_compute.py"
    script.write_text(LONG_COMPUTE_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), scheduler],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("STARTED"):
            break
    time.sleep(1.0)  # let the tasks start
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines += out.splitlines()
    return proc.returncode, lines, err


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_interrupt_returns_promptly_and_the_scheduler_stays_usable(scheduler, tmp_path):
    returncode, lines, err = run_and_interrupt(scheduler, tmp_path)
    assert returncode == 0, err
    interrupted = [line for line in lines if line.startswith("INTERRUPTED")]
    assert interrupted, (lines, err)
    seconds = float(interrupted[0].split()[2])
    assert seconds < 10, "the 30 s tasks were not waited for"
    assert "NEXT 42" in lines


@pytest.mark.slow
def test_interrupt_replaces_the_workers_that_were_running_and_leaves_none_behind(tmp_path):
    returncode, lines, err = run_and_interrupt("processes", tmp_path)
    assert returncode == 0, err
    old_pids = [int(p) for p in next(line for line in lines if line.startswith("PIDS")).split()[1:]]
    assert len(old_pids) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in old_pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in old_pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


WORKER_PIDS_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import lazycell as lc

    def pid(_):
        return os.getpid()

    pids = set(lc.compute([lc.delayed(pid)(i) for i in range(6)], scheduler="processes",
                          num_workers=2)[0])
    print("WORKERS", *sorted(pids), flush=True)
    if sys.argv[1] == "hang":
        time.sleep(60)
    """
)


def _worker_pids(line: str) -> list:
    return [int(p) for p in line.split()[1:]]


@pytest.mark.slow
def test_no_worker_outlives_a_normal_exit(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(WORKER_PIDS_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), "exit"], capture_output=True, text=True, timeout=60
    ).stdout
    pids = _worker_pids(next(line for line in out.splitlines() if line.startswith("WORKERS")))
    assert pids
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


@pytest.mark.slow
def test_no_worker_outlives_a_killed_parent(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(WORKER_PIDS_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), "hang"], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    pids = _worker_pids(line)
    assert pids, line
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


MAIN_WITHOUT_GUARD = textwrap.dedent(
    """
    import lazycell as lc

    def square(x):          # defined in __main__, no `if __name__ == "__main__"` guard
        return x * x

    total = lc.delayed(sum)([lc.delayed(square)(i) for i in range(10)])
    print("TOTAL", total.compute(scheduler="processes"))
    """
)


def test_functions_from_main_work_on_processes_without_a_main_guard(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(MAIN_WITHOUT_GUARD)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "TOTAL 285" in result.stdout.splitlines()


def die(_):
    os._exit(3)


def inc(x):
    return x + 1


def test_a_worker_that_dies_fails_the_compute_with_a_named_error_and_is_replaced():
    lazy = lc.delayed(die, name="crasher")(1)
    with pytest.raises(lc.WorkerDiedError) as info:
        lazy.compute(scheduler="processes")
    message = str(info.value)
    assert "exited with code 3" in message
    assert repr(lazy.key) in message and "function die" in message
    assert lc.delayed(inc)(1).compute(scheduler="processes") == 2
