"""ResourceSampler: CPU % and memory of the kernel process and its children."""

import os
import subprocess
import sys
import time

from lazycell.diagnostics.resources import ResourceSampler


def test_a_sample_has_this_process_memory_and_nonnegative_cpu():
    sample = ResourceSampler().sample()
    assert sample.rss_by_pid[os.getpid()] > 10_000_000
    assert sample.rss >= sample.rss_by_pid[os.getpid()]
    assert sample.cpu_percent >= 0


def test_child_processes_are_included():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        sample = ResourceSampler().sample()
        assert child.pid in sample.rss_by_pid
        assert sample.rss == sum(sample.rss_by_pid.values())
    finally:
        child.stdin.close()
        child.wait()


def test_busy_work_shows_as_cpu_percent():
    sampler = ResourceSampler()
    sampler.sample()  # the baseline
    total = 0
    for i in range(3_000_000):
        total += i
    assert sampler.sample().cpu_percent > 0


def test_the_thread_samples_until_stopped_and_takes_a_last_sample():
    with ResourceSampler(interval=0.01) as sampler:
        while len(sampler.samples) < 4:
            time.sleep(0.01)
    count = len(sampler.samples)
    times = [s.time for s in sampler.samples]
    assert times == sorted(times)
    assert sampler._thread is None
    assert len(sampler.samples) == count  # no more samples after the block


def test_samples_are_bounded_by_halving():
    sampler = ResourceSampler(max_samples=10)
    for _ in range(25):
        sampler.sample()
    assert len(sampler.samples) <= 10
