"""Fault injection: workers killed at random points of a spilling compute, in one run.

A 2,021-task graph whose inputs stay alive long enough to spill runs while a
thread kills a random live worker (SIGKILL) every few tenths of a second, 20
times, from a fixed seed. The answer must be right, the run must end within
a bound, and after ``close()`` nothing of the cluster may be left on disk
(its socket and spill directories, made in a temporary ``TMPDIR``) or
running (no child process of this one).
"""

import os
import random
import signal
import tempfile
import threading
import time

import numpy as np
import psutil
import pytest

import lazycell as lc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

N_LEAVES = 1000
GROUP = 50  # pairs summed per partial sum
N_KILLS = 20
SEED = 20261201
TASK_SECONDS = 0.008  # about 8 s of work for two workers without faults


def leaf(i):
    time.sleep(TASK_SECONDS)
    return np.full(25_000, float(i))  # 200 kB: 200 MB of leaves in all


def partner(j):
    return (7 * j + 3) % N_LEAVES  # far from j in the graph's order: leaves stay alive and spill


def pair(a, b):
    time.sleep(TASK_SECONDS)
    return float(a[0] + 2 * b[0])


def total(values):
    time.sleep(TASK_SECONDS)
    return sum(values)


def graph():
    leaves = [lc.delayed(leaf)(i) for i in range(N_LEAVES)]
    pairs = [lc.delayed(pair)(leaves[j], leaves[partner(j)]) for j in range(N_LEAVES)]
    partials = [lc.delayed(total)(pairs[i : i + GROUP]) for i in range(0, N_LEAVES, GROUP)]
    return lc.delayed(total)(partials)  # 1,000 + 1,000 + 20 + 1 tasks


def expected() -> float:
    return float(sum(j + 2 * partner(j) for j in range(N_LEAVES)))


class Killer(threading.Thread):
    """Kills a random live worker every 0.2-0.5 s until ``N_KILLS`` kills or ``stop``;
    notes whether spill files were on disk at a kill."""

    def __init__(self, client, spill_root: str):
        super().__init__(name="fault-injection-killer", daemon=True)
        self.client = client
        self.spill_root = spill_root
        self.random = random.Random(SEED)
        self.stop = threading.Event()
        self.killed: list[int] = []
        self.saw_spill_files = False

    def run(self):
        while len(self.killed) < N_KILLS and not self.stop.wait(self.random.uniform(0.2, 0.5)):
            self.saw_spill_files = self.saw_spill_files or any(
                name.endswith(".pkl") for _, _, files in os.walk(self.spill_root) for name in files
            )
            pids = sorted(w["pid"] for w in self.client.workers() if w["pid"])
            if not pids:
                continue  # all starting: the next round finds one
            victim = self.random.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed.append(victim)


@pytest.fixture
def private_tmpdir(monkeypatch):
    """A fresh, short TMPDIR (Unix socket paths are short) for everything the cluster makes."""
    path = tempfile.mkdtemp(prefix="lcfault-")
    monkeypatch.setenv("TMPDIR", path)
    monkeypatch.setattr(tempfile, "tempdir", path)
    yield path
    os.rmdir(path)  # fails the teardown if the cluster left anything


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_spilling_compute_survives_twenty_random_worker_kills_and_leaves_nothing(
    private_tmpdir,
):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    cluster = lc.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit="1GB",
        memory_thresholds={"spill": 0.02},  # results past 20 MB a worker go to disk
        local_directory=private_tmpdir,
        allowed_failures=100,  # a task may be queued on several of the killed workers
        dashboard_address=None,
    )
    started = time.monotonic()
    with cluster, lc.Client(cluster) as client:
        killer = Killer(client, private_tmpdir)
        future = client.compute(graph())
        killer.start()
        try:
            assert future.result(timeout=90) == expected()
        finally:
            killer.stop.set()
            killer.join(10)
        assert len(killer.killed) == N_KILLS, f"only {len(killer.killed)} kills in the run"
        assert killer.saw_spill_files
    assert time.monotonic() - started < 90
    assert os.listdir(private_tmpdir) == []
    deadline = time.monotonic() + 5
    while left_running(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left_running(before) == []


def left_running(before: set) -> list:
    """Child processes started since ``before`` that still run."""
    running = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.pid not in before and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process.pid)
        except psutil.NoSuchProcess:
            pass
    return running
