"""Lifetimes of results on the processes scheduler, with real worker processes.

A worker keeps no result once it is pickled: the kernel's copy is the one the
graph's refcounts keep alive. An object whose finaliser has a visible effect
(partd's ``File`` deletes its directory, which other workers still use
through unpickled copies) must not die in its worker while dependents run.
"""

import os
import shutil
import tempfile
import time

import pytest

import lazycell as lc

N_WORKERS = 2
N_WRITERS = 6
RUNS = 10
TIMEOUT = 120


class ScratchHandle:
    """A copy of a ``ScratchOwner`` in another process: uses the directory, never removes it."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(path, exist_ok=True)  # as partd's File does for a given path

    def write(self, name: str) -> str:
        with open(os.path.join(self.path, name), "w") as f:
            f.write(name)
        return name


class ScratchOwner(ScratchHandle):
    """Creates a directory and removes it when it dies, like partd's ``File``."""

    def __init__(self, base: str):
        super().__init__(tempfile.mkdtemp(dir=base))

    def __reduce__(self):
        return ScratchHandle, (self.path,)

    def __del__(self):
        shutil.rmtree(self.path, ignore_errors=True)


def make_scratch(base: str) -> ScratchOwner:
    # Longer than the worker's 50 ms flush, so the kernel gets the owner while
    # the next task of the same batch (``pause``) still runs in this worker.
    time.sleep(0.1)
    return ScratchOwner(base)


def write(scratch: ScratchHandle, i: int) -> str:
    return scratch.write(f"part-{i}")


def files_in(scratch: ScratchHandle, *_after) -> list:
    return sorted(os.listdir(scratch.path))


def scratch_graph(base) -> dict:
    """``scratch`` and ``pause`` share a batch; writers run elsewhere meanwhile."""
    dsk = {
        "scratch": (make_scratch, str(base)),
        "pause": (time.sleep, 0.5),
        **{f"filler-{i}": (abs, i) for i in range(3)},
        **{f"write-{i}": (write, "scratch", i) for i in range(N_WRITERS)},
    }
    after = ["pause", "filler-0", "filler-1", "filler-2"]
    dsk["files"] = (files_in, "scratch", *after, [f"write-{i}" for i in range(N_WRITERS)])
    return dsk


@pytest.mark.timeout(TIMEOUT)
def test_a_finaliser_in_the_worker_does_not_undo_dependents_work(tmp_path):
    want = [f"part-{i}" for i in range(N_WRITERS)]
    for run in range(RUNS):
        got = lc.get(scratch_graph(tmp_path), "files", scheduler="processes", num_workers=N_WORKERS)
        assert got == want, f"run {run}"


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_bag_groupby_on_processes_matches_dask():
    db = pytest.importorskip("dask.bag")
    bag = db.from_sequence(range(60), npartitions=30).groupby(lambda x: x % 3)
    want = sorted((k, sorted(v)) for k, v in bag.compute(scheduler="sync"))
    for run in range(5):
        got = bag.compute(scheduler=lc.get_scheduler("processes"))
        assert sorted((k, sorted(v)) for k, v in got) == want, f"run {run}"
