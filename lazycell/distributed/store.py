"""The results one worker holds: in memory, or spilled to disk past a target.

``ResultStore`` keeps results in least-recently-used order with a size
estimate each (``nbytes`` for arrays, ``sys.getsizeof`` otherwise — pandas
answers that with its deep memory usage). When the bytes in memory pass
``spill_bytes``, the least recently used results are written to files in
``spill_dir`` until memory is back under the target, each as one frame of
the data channel (``protocol.write_frame``); ``get`` loads a spilled result
back (and counts it as used). Every method takes the store's lock:
task threads, data-server threads and the control thread all use it.

Why LRU: a result just made is the one its dependents are about to read;
results made long ago are waiting for the end of a reduction.

Sending results (``value_or_spill_file``): a spilled result is sent from its
file as it is, never loaded back, so serving results bigger than the memory
limit neither fills the worker's memory nor spills the others to make room.
A result that cannot be pickled (a lock, an open file) cannot be spilled:
it stays in memory (``unspillable``).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Hashable

from lazycell.distributed.protocol import read_frame, write_frame
from lazycell.events import estimate_nbytes

SAMPLED_ITEMS = 16


class ResultStore:
    """Results by key, spilling least-recently-used ones above ``spill_bytes``."""

    def __init__(self, spill_bytes: int | None = None, spill_dir: str | None = None):
        self.spill_bytes = spill_bytes
        self._spill_dir = spill_dir
        self.in_memory: OrderedDict = OrderedDict()  # key -> (value, nbytes), LRU first
        self.on_disk: dict = {}  # key -> (path, nbytes)
        self.memory_bytes = 0
        self.spilled_bytes = 0
        self.n_spilled = 0  # results written to disk so far (for tests and panels)
        self.unspillable: set = set()  # keys whose values failed to pickle: kept in memory
        self.lock = threading.RLock()
        self._file_ids = 0

    def __contains__(self, key: Hashable) -> bool:
        with self.lock:
            return key in self.in_memory or key in self.on_disk

    def __len__(self) -> int:
        with self.lock:
            return len(self.in_memory) + len(self.on_disk)

    def put(self, key: Hashable, value) -> int:
        """Keep ``value``; returns its size estimate in bytes."""
        nbytes = sizeof(value)
        with self.lock:
            self.delete(key)
            self.in_memory[key] = (value, nbytes)
            self.memory_bytes += nbytes
            self.spill_least_recently_used()
        return nbytes

    def get(self, key: Hashable):
        """The value of ``key`` (loaded back from disk if it was spilled); KeyError if absent."""
        with self.lock:
            entry = self.in_memory.get(key)
            if entry is not None:
                self.in_memory.move_to_end(key)
                return entry[0]
            path, nbytes = self.on_disk.pop(key)
            with open(path, "rb") as f:
                value = read_frame(f)
            os.unlink(path)
            self.spilled_bytes -= nbytes
            self.in_memory[key] = (value, nbytes)
            self.memory_bytes += nbytes
            self.spill_least_recently_used(keep=key)
            return value

    def value_or_spill_file(self, key: Hashable) -> tuple:
        """``("memory", value)``, or ``("file", open file, size)`` for a spilled result, which
        stays spilled: the caller sends the file's bytes and closes it. KeyError if absent.

        The file is opened under the lock, so a result loaded back or deleted
        meanwhile is still read whole (an open file outlives its unlinking).
        """
        with self.lock:
            entry = self.in_memory.get(key)
            if entry is not None:
                return ("memory", entry[0])
            path, _ = self.on_disk[key]
            f = open(path, "rb")
            return ("file", f, os.fstat(f.fileno()).st_size)

    def delete(self, key: Hashable) -> None:
        with self.lock:
            entry = self.in_memory.pop(key, None)
            if entry is not None:
                self.memory_bytes -= entry[1]
                self.unspillable.discard(key)
                return
            spilled = self.on_disk.pop(key, None)
            if spilled is not None:
                self.spilled_bytes -= spilled[1]
                _unlink_quietly(spilled[0])

    def spill_least_recently_used(self, keep: Hashable = None, target: int | None = None) -> None:
        """Write results to disk, oldest use first, until memory is under ``target``."""
        target = self.spill_bytes if target is None else target
        if target is None:
            return
        with self.lock:
            for key in list(self.in_memory):
                if self.memory_bytes <= target:
                    return
                if key == keep or key in self.unspillable:
                    continue
                self._spill_one(key)

    def _spill_one(self, key: Hashable) -> None:
        value, nbytes = self.in_memory[key]
        self._file_ids += 1
        path = os.path.join(self.spill_dir, f"{self._file_ids}.pkl")
        try:
            with open(path, "wb") as f:
                write_frame(value, f)
        except Exception:  # cannot be pickled (or the disk is full): it stays in memory
            _unlink_quietly(path)
            self.unspillable.add(key)
            return
        del self.in_memory[key]
        self.memory_bytes -= nbytes
        self.on_disk[key] = (path, nbytes)
        self.spilled_bytes += nbytes
        self.n_spilled += 1

    @property
    def spill_dir(self) -> str:
        if self._spill_dir is None:
            self._spill_dir = tempfile.mkdtemp(prefix="lazycell-spill-")
        return self._spill_dir

    def clear(self) -> None:
        with self.lock:
            for key in list(self.on_disk):
                self.delete(key)
            self.in_memory.clear()
            self.unspillable.clear()
            self.memory_bytes = 0
            if self._spill_dir is not None:
                try:
                    os.rmdir(self._spill_dir)
                except OSError:
                    pass


def sizeof(value, depth: int = 0) -> int:
    """Bytes a result holds, looking inside containers (a sample of their items).

    Spilling and placement both go by these sizes, so a tuple holding an array
    must count the array, not the tuple's 56 bytes.
    """
    kind = type(value)
    if kind in (list, tuple, set, frozenset) and depth < 3:
        items = list(value) if kind in (set, frozenset) else value
        n = len(items)
        if n == 0:
            return estimate_nbytes(value)
        step = max(1, n // SAMPLED_ITEMS)
        sampled = items[::step]
        per_item = sum(sizeof(item, depth + 1) for item in sampled) / len(sampled)
        return estimate_nbytes(value) + int(per_item * n)
    if kind is dict and depth < 3:
        return estimate_nbytes(value) + sum(
            sizeof(k, depth + 1) + sizeof(v, depth + 1) for k, v in list(value.items())[:64]
        ) * max(1, len(value)) // max(1, min(64, len(value)))
    return estimate_nbytes(value)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def parse_memory_limit(limit, n_workers: int) -> int | None:
    """Bytes per worker from ``limit``: bytes, ``"4GB"``, ``"512MiB"``, ``"auto"`` or None.

    ``"auto"`` is the machine's memory divided by the number of workers.
    ``None`` or ``0`` means no limit.
    """
    if limit is None or limit == 0:
        return None
    if isinstance(limit, str):
        text = limit.strip().lower()
        if text == "auto":
            import psutil

            return int(psutil.virtual_memory().total // max(1, n_workers))
        if text in ("none", "0"):
            return None
        return _parse_bytes(limit)
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0:
        return int(limit)
    raise ValueError(f"memory_limit {limit!r} must be bytes, a string like '4GB', 'auto' or None")


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
}


def _parse_bytes(text: str) -> int:
    stripped = text.strip().lower().replace(" ", "")
    number = stripped.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = stripped[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value <= 0:
        raise ValueError(
            f"memory_limit {text!r} is not a size; write bytes or a string like '4GB' or '512MiB'"
        )
    return int(value * _UNITS[unit])
