"""The statistical profiler behind ``client.profile()``: sampling, windows, merging, HTML.

Real threads are sampled. Most tests tick the sampler by hand (``sample()``)
while a task thread spins, so the number of ticks does not depend on timing.
"""

import inspect
import json
import math
import pickle
import queue
import re
import threading
import time
import types
from contextlib import contextmanager
from html.parser import HTMLParser

from lazycell.distributed.profile_page import profile_html
from lazycell.distributed.profiler import (
    BusyThreads,
    StackSampler,
    call_tree,
    function_table,
    line_table,
    merge_profiles,
)


def spin_in_profiled_function(spinning: list) -> int:
    """The known busy function: loops until ``spinning[0]`` turns false."""
    n = 0
    while spinning[0]:
        n += 1
    return n


def spin_in_another_function(spinning: list) -> int:
    n = 0
    while spinning[0]:
        n += 1
    return n


def spin_outside_task_threads(spinning: list) -> int:
    n = 0
    while spinning[0]:
        n += 1
    return n


def call_the_spinner(spinning: list) -> int:
    return spin_in_profiled_function(spinning)


@contextmanager
def task_thread(busy: BusyThreads, function=spin_in_profiled_function, name=None):
    """A thread that runs ``function`` as a task (marked busy) until the block ends."""
    spinning = [True]
    started = threading.Event()

    def run_as_task():
        started.set()
        with busy.running():
            function(spinning)

    thread = threading.Thread(
        target=run_as_task, name=name or "lazycell-worker-task-0", daemon=True
    )
    thread.start()
    started.wait()
    try:
        yield thread
    finally:
        spinning[0] = False
        thread.join()


def tick(sampler: StackSampler, times: int = 30) -> None:
    for _ in range(times):
        sampler.sample()
        time.sleep(0.002)


def row_of(table: list[dict], function: str) -> dict:
    (row,) = [r for r in table if r["function"] == function]
    return row


def functions_in(profile: dict) -> set[str]:
    return {r["function"] for r in function_table(profile)}


def sleep_past_the_next_second() -> float:
    """Wait for a new second of ``time.time()`` (a bucket boundary) and return it."""
    boundary = math.floor(time.time()) + 1
    time.sleep(boundary - time.time() + 0.02)
    return boundary


# -- sampling
def test_a_busy_task_is_the_top_function_with_its_file_and_line():
    busy = BusyThreads()
    sampler = StackSampler(interval=0.01, is_busy=busy.is_busy)
    sampler.start()  # the sampler's own thread, as in a worker
    with task_thread(busy):
        time.sleep(0.5)
    sampler.stop()
    profile = sampler.snapshot()

    top = function_table(profile)[0]
    assert top["function"] == "spin_in_profiled_function"
    assert top["file"] == __file__
    assert top["line"] == spin_in_profiled_function.__code__.co_firstlineno
    assert top["own_samples"] > profile["samples"] / 2
    assert profile["ticks"] >= profile["samples"] > 0


def test_the_busiest_line_is_the_spinning_loop():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    with task_thread(busy):
        tick(sampler)
    source, first = inspect.getsourcelines(spin_in_profiled_function)
    loop_lines = {
        first + i for i, text in enumerate(source) if "spinning[0]" in text or "+=" in text
    }

    top = line_table(sampler.snapshot())[0]
    assert top["function"] == "spin_in_profiled_function"
    assert top["file"] == __file__
    assert top["line"] in loop_lines


def test_idle_task_threads_and_other_threads_are_not_sampled():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    work: queue.SimpleQueue = queue.SimpleQueue()  # waiting in C: no Python frame says "idle"

    def wait_for_work():
        return work.get()

    idle = threading.Thread(target=wait_for_work, name="lazycell-worker-task-1", daemon=True)
    idle.start()
    with task_thread(busy), task_thread(busy, spin_outside_task_threads, name="not-a-task"):
        tick(sampler)
    work.put(None)
    idle.join()

    assert functions_in(sampler.snapshot()) >= {"spin_in_profiled_function"}
    assert "wait_for_work" not in functions_in(sampler.snapshot())
    assert "spin_outside_task_threads" not in functions_in(sampler.snapshot())


def test_without_is_busy_threads_waiting_in_threading_or_queue_count_as_idle():
    sampler = StackSampler()  # no is_busy: guess idleness from the innermost frame
    work: queue.Queue = queue.Queue()

    def wait_for_work():
        return work.get()

    idle = threading.Thread(target=wait_for_work, name="lazycell-worker-task-1", daemon=True)
    idle.start()
    with task_thread(BusyThreads()):
        tick(sampler)
    work.put(None)
    idle.join()

    profile = sampler.snapshot()
    assert "spin_in_profiled_function" in functions_in(profile)
    assert "wait_for_work" not in functions_in(profile)


def test_a_thread_filter_chooses_the_threads():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy, thread_filter=lambda t: t.name == "mine")
    with task_thread(busy, spin_in_another_function, name="mine"), task_thread(busy):
        tick(sampler)
    assert functions_in(sampler.snapshot()) == {"spin_in_another_function", "run_as_task"}


def test_callers_are_on_the_stack_above_the_function():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    with task_thread(busy, call_the_spinner):
        tick(sampler)
    profile = sampler.snapshot()

    tree = call_tree(profile)
    (runner,) = tree["children"]
    assert runner["function"] == "run_as_task"  # threading's bootstrap frames are left out
    caller = runner["children"][0]
    assert caller["function"] == "call_the_spinner"
    assert caller["children"][0]["function"] == "spin_in_profiled_function"
    assert tree["samples"] == profile["samples"] >= runner["samples"] >= caller["samples"]
    caller_row = row_of(function_table(profile), "call_the_spinner")
    assert caller_row["own_samples"] < caller_row["samples"]  # its time is in its callee


def test_a_time_window_selects_only_its_samples():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    with task_thread(busy, spin_in_another_function):
        tick(sampler)
    boundary = sleep_past_the_next_second()
    with task_thread(busy):
        tick(sampler)

    before, after = sampler.snapshot(stop=boundary), sampler.snapshot(start=boundary)
    assert functions_in(before) == {"spin_in_another_function", "run_as_task"}
    assert functions_in(after) == {"spin_in_profiled_function", "run_as_task"}
    assert before["stop"] < boundary <= after["start"]
    assert sampler.snapshot()["samples"] == before["samples"] + after["samples"]


def test_samples_older_than_keep_seconds_are_dropped():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy, keep_seconds=0)
    with task_thread(busy, spin_in_another_function):
        tick(sampler)
    sleep_past_the_next_second()
    sampler.sample()  # a tick in a new second drops the buckets now out of the window

    assert sampler.snapshot()["samples"] == 0
    assert len(sampler.buckets) == 1


def test_a_snapshot_is_plain_data_for_pickle_and_json():
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    with task_thread(busy):
        tick(sampler, 5)
    profile = sampler.snapshot()
    assert json.loads(json.dumps(profile)) == profile
    assert pickle.loads(pickle.dumps(profile)) == profile


# -- merging
def test_merging_adds_counts_and_keeps_per_worker_counts():
    busy = BusyThreads()
    first, second = StackSampler(is_busy=busy.is_busy), StackSampler(is_busy=busy.is_busy)
    with task_thread(busy):
        tick(first, 10)
        tick(second, 20)
    a, b = first.snapshot(), second.snapshot()
    merged = merge_profiles({"worker-a": a, "worker-b": b})

    assert merged["samples"] == a["samples"] + b["samples"]
    assert merged["ticks"] == a["ticks"] + b["ticks"] == 30
    assert merged["workers"]["worker-a"]["samples"] == a["samples"]
    assert merged["workers"]["worker-b"]["samples"] == b["samples"]
    spin = "spin_in_profiled_function"
    assert (
        row_of(function_table(merged), spin)["samples"]
        == row_of(function_table(a), spin)["samples"] + row_of(function_table(b), spin)["samples"]
    )
    assert merged["start"] == a["start"] and merged["stop"] == b["stop"]


# -- HTML
class PageParser(HTMLParser):
    """The rows of the tables and the scripts of a page."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.scripts: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "script":
            self.scripts.append(dict(attrs) | {"text": ""})

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self.scripts and self.lasttag == "script":
            self.scripts[-1]["text"] += data


def parsed(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def profile_of(function) -> dict:
    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    with task_thread(busy, function):
        tick(sampler)
    return merge_profiles({"worker-0": sampler.snapshot()})


def test_the_page_has_tables_per_function_and_per_line_and_embeds_plotly():
    profile = profile_of(spin_in_profiled_function)
    page = profile_html(profile, title="Profile of the test")
    document = parsed(page)

    function_rows = [r for r in document.rows if r[0] == "spin_in_profiled_function"]
    line = spin_in_profiled_function.__code__.co_firstlineno
    assert [r[1:3] for r in function_rows][0] == [__file__, str(line)]  # per function
    assert len(function_rows) >= 2  # and at least one of its lines
    assert ["workers", "1"] in document.rows and [
        "samples",
        str(profile["samples"]),
    ] in document.rows
    assert all("src" not in script for script in document.scripts)  # nothing to fetch
    assert not re.search(r"<script[^>]*src=", page)
    assert any("Plotly.newPlot" in s["text"] for s in document.scripts)
    assert len(page) > 1_000_000  # plotly.js itself is inline
    assert page.count('class="plotly-graph-div"') == 2  # call tree, top functions
    (data,) = [s for s in document.scripts if s.get("id") == "lazycell-profile-data"]
    assert json.loads(data["text"].replace("<\\/", "</")) == profile


def test_names_from_the_profiled_code_are_escaped():
    evil = types.FunctionType(
        spin_in_profiled_function.__code__.replace(co_name="<b>evil_name</b>"), globals()
    )
    page = profile_html(profile_of(evil))

    assert "<b>evil_name</b>" not in page
    assert "&lt;b&gt;evil_name&lt;/b&gt;" in page
    assert any(row[0] == "<b>evil_name</b>" for row in parsed(page).rows)  # reads as written


def test_a_profile_without_samples_still_makes_a_page():
    page = profile_html(StackSampler().snapshot())
    assert "No samples" in page and ["samples", "0"] in parsed(page).rows


def test_deep_stacks_still_pickle_and_make_a_call_tree():
    def descend_then_spin(spinning: list, depth: int = 800) -> int:
        return (
            descend_then_spin(spinning, depth - 1) if depth else spin_in_profiled_function(spinning)
        )

    busy = BusyThreads()
    sampler = StackSampler(is_busy=busy.is_busy)
    with task_thread(busy, descend_then_spin):
        tick(sampler, 5)
    profile = sampler.snapshot()

    assert pickle.loads(pickle.dumps(profile)) == profile
    assert json.loads(json.dumps(profile)) == profile
    node, depth = call_tree(profile), 0
    while node["children"]:
        node, depth = node["children"][0], depth + 1
    assert node["function"] == "spin_in_profiled_function" and depth > 800
