"""Task functions the tests compute (the kernel_ext tests, and those several test modules
share), importable by kernels and worker processes."""

import os
import threading
import time

KERNEL_PID = os.getpid()  # of whichever process imported this module first


def add(a, b):
    return a + b


def fail_on(x, bad):
    if x == bad:
        return 1 / 0
    return x


def outer(x):
    return inner(x * 2)


def inner(y):
    return 1 / (y - y)


def where(_=None):
    """(process id, thread name) of the place the task ran."""
    return os.getpid(), threading.current_thread().name


def slow(x, seconds=0.7):
    time.sleep(seconds)
    return x


def fails_only_in_a_worker(x, home_pid):
    if os.getpid() != home_pid:
        raise RuntimeError("this fails only in a worker process")
    return x


def fail_until(counter_file, failures):
    """Fails the first ``failures`` calls (counted in a file: each run may be on another worker)."""
    calls = int(open(counter_file).read()) if os.path.exists(counter_file) else 0
    with open(counter_file, "w") as f:
        f.write(str(calls + 1))
    if calls < failures:
        raise ValueError(f"call {calls} fails")
    return calls
