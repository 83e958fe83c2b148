"""Statistical profiler of the tasks a worker runs, for ``client.profile()``.

::

    each worker process                                  kernel
    ───────────────────                                  ──────
    task thread:  with busy.running(): run the task
                  (BusyThreads marks the thread busy)
    sampler thread (StackSampler), every ``interval`` s:
      sys._current_frames() ─► stacks of the busy task threads
      ─► buckets[this second][stack] += 1
    on request: snapshot(start, stop) ─► plain dict ───► merge_profiles({worker: snapshot})
                                                          ─► function_table, line_table,
                                                             call_tree ─► profile_html ─► file

- ``BusyThreads``: the idents of the threads running a task right now. A task
  thread waiting for work is idle and must not count as time; its wait (e.g.
  ``SimpleQueue.get``, written in C) leaves no Python frame to recognise, so
  the worker says when a task runs instead of the sampler guessing.
- ``StackSampler``: the sampler thread. Each wake-up is a *tick*; each busy
  task thread seen at a tick is a *sample*: its stack, outermost frame first,
  each frame ``(function, file, first line of the function, current line)``.
  Samples are counted per stack in one *bucket* per second of ``time.time()``
  (``buckets``), so a time window can be asked for; buckets older than
  ``keep_seconds`` are dropped, which bounds memory.
- ``profile_page.py`` (kernel only, so workers never import plotly) turns a
  profile into the HTML page.
- A *profile* (what ``snapshot`` returns and the functions below read) is
  plain data: ``frames``, a list of ``[function, file, first_line, line]``,
  and ``stacks``, a list of ``[[frame index, ...], samples, seconds]``
  (outermost frame first), plus the totals (see :meth:`StackSampler.snapshot`).
  It is flat rather than a nested tree so pickle and JSON never meet a
  recursion limit, whatever the depth of the stacks.

What the tables and the call tree leave out by default (``hide_internal``):
frames of lazycell's own code (the worker's task loop, its reports to the
scheduler) and of Python's standard library (``threading``,
``multiprocessing.connection``...): what a user can change is in their own
functions and the libraries they call. A sample whose frames are all
internal counts in the totals but in no row. In the kernel,
:func:`merge_profiles` also puts the real file back on frames of notebook
functions, which cloudpickle sent as ``<dynamic-code>``
(``diagnostics/code_locations.py``).

Seconds are estimated, not measured: a sample stands for the time since the
previous tick, which is longer than ``interval`` when busy threads hold the
GIL, so each bucket converts its counts with its own mean tick interval.
"""

from __future__ import annotations

import functools
import inspect
import os
import queue
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lazycell.diagnostics.code_locations import DYNAMIC_CODE, CodeLocator

DEFAULT_INTERVAL = 0.01
DEFAULT_KEEP_SECONDS = 600.0
TASK_THREAD_PREFIX = "lazycell-worker-task-"
PROFILE_FORMAT = "lazycell-profile/1"

Frame = tuple[str, str, int, int]  # function, file, first line of the function, current line

_THREADING_FILE = threading.__file__
# Where a thread's innermost Python frame is when it blocks on a lock, event,
# condition or queue: used only without an ``is_busy`` predicate.
_WAITING_FRAMES = {
    (_THREADING_FILE, "wait"),
    (_THREADING_FILE, "join"),
    (_THREADING_FILE, "_wait_for_tstate_lock"),
    (queue.__file__, "get"),
    (queue.__file__, "put"),
}
_MAX_TICK_SECONDS = 1.0  # a longer gap between ticks is a pause, not a sample's worth of time
_MAX_INTERNED = 100_000
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


_LAZYCELL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB_DIRS = tuple(
    {
        os.path.abspath(sysconfig.get_paths()[name]) + os.sep
        for name in ("stdlib", "platstdlib")
        if sysconfig.get_paths().get(name)
    }
)
_SITE_PACKAGES = ("site-packages", "dist-packages")


@functools.lru_cache(maxsize=4096)
def is_internal_file(file: str) -> bool:
    """Whether ``file`` is lazycell's own code or Python's standard library."""
    if file.startswith("<frozen "):
        return True
    if not os.path.isabs(file):  # "<dynamic-code>", "<string>", a cell's name
        return False
    path = os.path.abspath(file)
    if path.startswith(_LAZYCELL_DIR):
        return True
    return path.startswith(_STDLIB_DIRS) and not any(part in path for part in _SITE_PACKAGES)


def is_task_thread(thread: threading.Thread) -> bool:
    """The default ``thread_filter``: a worker's task threads, ``lazycell-worker-task-<i>``."""
    return thread.name.startswith(TASK_THREAD_PREFIX)


def waiting_in_threading_or_queue(frame) -> bool:
    """Whether ``frame`` (a thread's innermost frame) is a wait in ``threading`` or ``queue``.

    The guess :class:`StackSampler` uses for idleness when given no ``is_busy``.
    It cannot see waits that have no Python frame, such as ``SimpleQueue.get``.
    """
    code = frame.f_code
    return (code.co_filename, code.co_name) in _WAITING_FRAMES


class BusyThreads:
    """The threads running a task right now; pass ``is_busy`` to :class:`StackSampler`.

    >>> busy = BusyThreads()
    >>> sampler = StackSampler(is_busy=busy.is_busy)
    >>> with busy.running():  # in the task thread, around running one task
    ...     run_the_task()

    Adding to and removing from a set are atomic under the GIL, so marking
    takes no lock; a task pays about 2 microseconds for it.
    """

    def __init__(self) -> None:
        self.idents: set[int] = set()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Mark the calling thread busy for the duration of the block."""
        ident = threading.get_ident()
        self.idents.add(ident)
        try:
            yield
        finally:
            self.idents.discard(ident)

    def is_busy(self, ident: int) -> bool:
        """Whether the thread with this ``threading.get_ident()`` is inside ``running()``."""
        return ident in self.idents


class _Bucket:
    """The samples of one second: counts per stack, and the ticks that took them."""

    __slots__ = ("second", "stacks", "ticks", "tick_seconds", "first", "last", "sampler_seconds")

    def __init__(self, second: int, now: float):
        self.second = second
        self.stacks: dict[tuple[Frame, ...], int] = {}
        self.ticks = 0
        self.tick_seconds = 0.0  # summed time each tick stands for
        self.first = now
        self.last = now
        self.sampler_seconds = 0.0  # time spent sampling: the profiler's own cost


class StackSampler:
    """Sample the stacks of a process's busy task threads on a daemon thread.

    >>> sampler = StackSampler(interval=0.01)
    >>> sampler.start()
    >>> ...  # task threads run
    >>> profile = sampler.snapshot(start=time.time() - 60)  # the last minute
    >>> sampler.stop()

    - ``thread_filter(thread)`` chooses the threads to look at (default: the
      worker's task threads, by name).
    - ``is_busy(ident)`` says whether a chosen thread is working; idle threads
      are not sampled. Without it a thread counts as idle when its innermost
      frame is a wait in ``threading`` or ``queue`` (see
      :func:`waiting_in_threading_or_queue`). The worker should pass
      ``BusyThreads.is_busy`` and wrap each task in ``BusyThreads.running()``.
    - ``keep_seconds``: how much history ``snapshot`` can still see.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        thread_filter: Callable[[threading.Thread], bool] = is_task_thread,
        is_busy: Callable[[int], bool] | None = None,
        keep_seconds: float = DEFAULT_KEEP_SECONDS,
    ):
        self.interval = interval
        self.thread_filter = thread_filter
        self.is_busy = is_busy
        self.keep_seconds = keep_seconds
        self.buckets: deque[_Bucket] = deque()
        self._lock = threading.Lock()  # buckets: the sampler writes, snapshot reads
        self._previous_tick: float | None = None
        self._interned: dict = {}  # equal frames and stacks share one tuple across buckets
        # Per sampled thread, its innermost frame at the last tick and the stack of
        # that frame's callers: while the same call runs they cannot change, so a
        # stack is walked again only when its innermost call changed (a tick on a
        # deep stack costs ~5x less). Holds that frame, and its locals, until the next tick.
        self._callers: dict[int, tuple] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread
    def start(self) -> None:
        """Start sampling (a no-op when already sampling)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._previous_tick = None
        self._thread = threading.Thread(
            target=self._run, name="lazycell-profile-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; the samples taken stay available to ``snapshot``."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
        self._callers = {}

    def __enter__(self) -> StackSampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    # -- sampling
    def sample(self) -> int:
        """Take one tick now (the thread calls this; tests and benchmarks may too).

        Returns how many busy threads were sampled.
        """
        began = time.perf_counter()
        frames = sys._current_frames()
        now = time.time()  # after the frames: a sample is never stamped before its stack
        stacks = []
        callers_before, self._callers = self._callers, {}
        frame = None
        for thread in threading.enumerate():
            ident = thread.ident
            frame = frames.get(ident)
            if frame is None or not self.thread_filter(thread):
                continue
            if self.is_busy is None:
                if waiting_in_threading_or_queue(frame):
                    continue
            elif not self.is_busy(ident):
                continue
            code = frame.f_code
            innermost = (code.co_name, code.co_filename, code.co_firstlineno, frame.f_lineno)
            before = callers_before.get(ident)
            if before is not None and before[0] is frame:
                callers = before[1]  # same call still running: its callers have not moved
            else:
                callers = _stack_of(frame.f_back)
            if not code.co_flags & _RESUMABLE:  # a generator may resume under other callers
                self._callers[ident] = (frame, callers)
            stacks.append(callers + (innermost,))
        del frames, frame, callers_before  # frames hold the threads' locals alive
        previous, self._previous_tick = self._previous_tick, now
        tick_seconds = self.interval if previous is None else now - previous
        with self._lock:
            bucket = self._bucket_for(now)
            bucket.ticks += 1
            bucket.tick_seconds += min(max(tick_seconds, 0.0), _MAX_TICK_SECONDS)
            bucket.last = now
            counts = bucket.stacks
            for stack in stacks:
                count = counts.get(stack)
                if count is None:
                    counts[self._intern_stack(stack)] = 1
                else:
                    counts[stack] = count + 1
            bucket.sampler_seconds += time.perf_counter() - began
        return len(stacks)

    def _bucket_for(self, now: float) -> _Bucket:
        second = int(now)
        if self.buckets and self.buckets[-1].second == second:
            return self.buckets[-1]
        bucket = _Bucket(second, now)
        self.buckets.append(bucket)
        while self.buckets and self.buckets[0].second < now - self.keep_seconds - 1:
            self.buckets.popleft()
        return bucket

    def _intern_stack(self, stack: tuple[Frame, ...]) -> tuple[Frame, ...]:
        # Only on a stack new to this bucket: the common path is one dict lookup.
        interned = self._interned
        if len(interned) > _MAX_INTERNED:  # a cache, not state: forgetting only costs memory
            interned.clear()
        stack = tuple(interned.setdefault(frame, frame) for frame in stack)
        return interned.setdefault(stack, stack)

    # -- reading
    def snapshot(self, start: float | None = None, stop: float | None = None) -> dict:
        """The samples taken between ``start`` and ``stop`` (``time.time()`` s) as a profile.

        Buckets are whole seconds: a bucket is included when it overlaps the
        window, so the window is honoured to within a second. ``None`` means
        from the oldest sample kept / up to now. The result is plain data
        (pickle and JSON can carry it)::

            {"format": "lazycell-profile/1",
             "frames": [[function, file, first_line, line], ...],
             "stacks": [[[frame index, ... innermost], samples, seconds], ...],
             "samples": int,          # busy-thread stacks sampled
             "seconds": float,        # the time they stand for
             "ticks": int,            # sampler wake-ups in the window
             "interval": float,       # measured mean seconds per tick
             "sampler_seconds": float,  # time the sampler itself spent
             "start": float, "stop": float,  # first and last tick in the window
             "workers": {}}           # filled in by merge_profiles
        """
        with self._lock:
            chosen = [
                (dict(b.stacks), b.ticks, b.tick_seconds, b.first, b.last, b.sampler_seconds)
                for b in self.buckets
                if (start is None or b.second + 1 > start) and (stop is None or b.second < stop)
            ]
        totals: dict[tuple[Frame, ...], list] = {}
        for stacks, ticks, tick_seconds, *_ in chosen:
            per_sample = tick_seconds / ticks if ticks else self.interval
            for stack, count in stacks.items():
                entry = totals.setdefault(stack, [0, 0.0])
                entry[0] += count
                entry[1] += count * per_sample
        ticks = sum(c[1] for c in chosen)
        tick_seconds = sum(c[2] for c in chosen)
        now = time.time()
        profile = _profile_from_stacks(totals)
        profile.update(
            ticks=ticks,
            interval=tick_seconds / ticks if ticks else self.interval,
            sampler_seconds=sum(c[5] for c in chosen),
            start=min((c[3] for c in chosen), default=start if start is not None else now),
            stop=max((c[4] for c in chosen), default=stop if stop is not None else now),
        )
        return profile


def _stack_of(frame) -> tuple[Frame, ...]:
    stack = []
    while frame is not None:
        code = frame.f_code
        stack.append((code.co_name, code.co_filename, code.co_firstlineno, frame.f_lineno))
        frame = frame.f_back
    # The outermost frames are threading's bootstrap, the same in every thread.
    while stack and stack[-1][1] == _THREADING_FILE:
        stack.pop()
    stack.reverse()
    return tuple(stack)


def _profile_from_stacks(totals: dict[tuple[Frame, ...], list]) -> dict:
    """A profile (module docstring) from ``{stack of frames: [samples, seconds]}``."""
    index: dict[Frame, int] = {}
    stacks = []
    for stack, (samples, seconds) in sorted(totals.items(), key=lambda item: -item[1][0]):
        stacks.append([[index.setdefault(frame, len(index)) for frame in stack], samples, seconds])
    return {
        "format": PROFILE_FORMAT,
        "frames": [list(frame) for frame in index],
        "stacks": stacks,
        "samples": sum(s[1] for s in stacks),
        "seconds": sum(s[2] for s in stacks),
        "ticks": 0,
        "interval": DEFAULT_INTERVAL,
        "sampler_seconds": 0.0,
        "start": 0.0,
        "stop": 0.0,
        "workers": {},
    }


def _stacks_of(profile: dict) -> Iterator[tuple[tuple[Frame, ...], int, float]]:
    frames = [tuple(frame) for frame in profile["frames"]]
    for indices, samples, seconds in profile["stacks"]:
        yield tuple(frames[i] for i in indices), samples, seconds


# -- merging
def merge_profiles(profiles: dict[str, dict], locator: CodeLocator | None = None) -> dict:
    """One profile of all workers from ``{worker name: snapshot}``.

    Samples and seconds of equal stacks add up. ``workers`` keeps each
    worker's totals: ``{str(name): {"samples", "seconds", "ticks", "interval",
    "sampler_seconds"}}``. ``interval`` is the mean over all ticks; ``start``
    and ``stop`` span all the workers' windows. Frames of ``<dynamic-code>``
    get the file ``locator`` finds (default: in ``__main__``, the notebook).
    """
    totals: dict[tuple[Frame, ...], list] = {}
    for profile in profiles.values():
        for stack, samples, seconds in _stacks_of(profile):
            entry = totals.setdefault(stack, [0, 0.0])
            entry[0] += samples
            entry[1] += seconds
    merged = _profile_from_stacks(totals)
    locate_dynamic_code(merged, locator)
    ticks = sum(p["ticks"] for p in profiles.values())
    tick_seconds = sum(p["ticks"] * p["interval"] for p in profiles.values())
    now = time.time()
    merged.update(
        ticks=ticks,
        interval=tick_seconds / ticks if ticks else DEFAULT_INTERVAL,
        sampler_seconds=sum(p["sampler_seconds"] for p in profiles.values()),
        start=min((p["start"] for p in profiles.values()), default=now),
        stop=max((p["stop"] for p in profiles.values()), default=now),
        workers={  # str: JSON objects have string keys
            str(name): {
                key: p[key]
                for key in ("samples", "seconds", "ticks", "interval", "sampler_seconds")
            }
            for name, p in profiles.items()
        },
    )
    return merged


def locate_dynamic_code(profile: dict, locator: CodeLocator | None = None) -> None:
    """Give frames of ``<dynamic-code>`` the file of the function in this process, in place."""
    if not any(frame[1] == DYNAMIC_CODE for frame in profile["frames"]):
        return
    locator = locator or CodeLocator()
    for frame in profile["frames"]:
        if frame[1] == DYNAMIC_CODE:
            frame[1] = locator.locate(frame[0], frame[3]) or DYNAMIC_CODE


# -- reading a profile
def _user_stacks(profile: dict, hide_internal: bool):
    """``_stacks_of``, with internal frames (see the module docstring) left out if asked."""
    for stack, samples, seconds in _stacks_of(profile):
        if hide_internal:
            stack = tuple(frame for frame in stack if not is_internal_file(frame[1]))
        yield stack, samples, seconds


def hidden_share(profile: dict) -> float:
    """The share of samples whose frames are all internal (in no row of the tables)."""
    hidden = sum(samples for stack, samples, _ in _user_stacks(profile, True) if not stack)
    return hidden / profile["samples"] if profile["samples"] else 0.0


def function_table(profile: dict, hide_internal: bool = True) -> list[dict]:
    """Time per function, most own time first: one dict per function.

    Keys: ``function``, ``file``, ``line`` (where the function starts);
    ``samples``, ``seconds`` and ``share`` (of all samples): the stacks the
    function is anywhere on, counted once under recursion; ``own_samples``,
    ``own_seconds`` and ``own_share``: the stacks it is the innermost frame of.

    Sorted by own time, like ``py-spy top``: by total time the outer frames
    every task passes through (the worker's task loop) would always lead.
    ``hide_internal``: leave out lazycell's and the standard library's frames
    (a hidden frame's own time goes to the user's frame that called it).
    """
    return _table(profile, key=lambda frame: frame[:3], hide_internal=hide_internal)


def line_table(profile: dict, hide_internal: bool = True) -> list[dict]:
    """Time per source line, most own time first: one dict per line.

    Keys as in :func:`function_table`, with ``line`` the line itself: its
    ``samples`` include the calls made from the line, ``own_samples`` only
    the time on the line itself.
    """
    return _table(
        profile, key=lambda frame: (frame[0], frame[1], frame[3]), hide_internal=hide_internal
    )


def _table(profile: dict, key: Callable[[Frame], tuple], hide_internal: bool) -> list[dict]:
    rows: dict[tuple, list] = {}  # (function, file, line): [samples, seconds, own ditto]
    for stack, samples, seconds in _user_stacks(profile, hide_internal):
        for k in {key(frame) for frame in stack}:
            row = rows.setdefault(k, [0, 0.0, 0, 0.0])
            row[0] += samples
            row[1] += seconds
        if stack:
            row = rows[key(stack[-1])]
            row[2] += samples
            row[3] += seconds
    total = profile["samples"] or 1
    table = [
        {
            "function": function,
            "file": file,
            "line": line,
            "samples": samples,
            "seconds": seconds,
            "share": samples / total,
            "own_samples": own_samples,
            "own_seconds": own_seconds,
            "own_share": own_samples / total,
        }
        for (function, file, line), (samples, seconds, own_samples, own_seconds) in rows.items()
    ]
    table.sort(key=lambda r: (-r["own_seconds"], -r["seconds"], r["file"], r["line"]))
    return table


def call_tree(profile: dict, lines: bool = True, hide_internal: bool = True) -> dict:
    """The profile as a nested call tree, dask-profile style.

    Each node: ``{"function", "file", "first_line", "line", "samples",
    "seconds", "children": [node, ...]}``, children most samples first; the
    root (``function`` ``"all"``) holds all samples. With ``lines=False``
    calls of one function from different lines of its caller share a node
    (``line`` is then the function's first line). Convenient to read; for
    sending, the flat profile is safer (deep trees hit pickle's recursion limit).
    ``hide_internal`` as in :func:`function_table`; the root still counts every sample.
    """
    root = _node("all", "", 0, 0)
    for stack, samples, seconds in _user_stacks(profile, hide_internal):
        node = root
        node["samples"] += samples
        node["seconds"] += seconds
        for function, file, first_line, line in stack:
            frame = (function, file, first_line, line if lines else first_line)
            child = node["_by_frame"].get(frame)
            if child is None:
                child = node["_by_frame"][frame] = _node(*frame)
                node["children"].append(child)
            node = child
            node["samples"] += samples
            node["seconds"] += seconds
    pending = [root]
    while pending:  # no recursion: stacks may be deeper than the recursion limit
        node = pending.pop()
        del node["_by_frame"]
        node["children"].sort(key=lambda child: -child["samples"])
        pending.extend(node["children"])
    return root


def _node(function: str, file: str, first_line: int, line: int) -> dict:
    return {
        "function": function,
        "file": file,
        "first_line": first_line,
        "line": line,
        "samples": 0,
        "seconds": 0.0,
        "children": [],
        "_by_frame": {},
    }
