"""Memory limits of local-cluster workers: spilling to disk, restarting a worker over its limit."""

import time

import numpy as np
import pytest

import lazycell as lc
from lazycell.distributed.store import ResultStore

pytestmark = pytest.mark.timeout(120)

MB = 1_000_000


def block(i, nbytes):
    return np.full(nbytes // 8, float(i))


def block_sum(x):
    return float(x.sum())


def hog_memory(nbytes):
    data = np.ones(nbytes // 8)
    time.sleep(3)
    return float(data[0])


# ------------------------------------------------------------------- the store alone


def test_the_store_spills_least_recently_used_results_and_loads_them_back(tmp_path):
    store = ResultStore(spill_bytes=2_500_000, spill_dir=str(tmp_path))
    for i in range(4):
        store.put(i, np.full(125_000, float(i)))  # 1 MB each
        store.get(i)
    assert set(store.on_disk) == {0, 1}  # the two used longest ago
    assert store.memory_bytes <= 2_500_000
    assert float(store.get(0)[0]) == 0.0  # back from disk...
    assert 0 in store.in_memory and 0 not in store.on_disk  # ...and in memory again
    assert len(store) == 4
    store.delete(1)
    assert len(list(tmp_path.iterdir())) == len(store.on_disk) == 1


# ------------------------------------------------------------------------ on workers


@pytest.mark.slow
def test_a_worker_over_its_spill_threshold_spills_and_results_come_back(tmp_path):
    cluster = lc.LocalCluster(
        n_workers=1, threads_per_worker=1, memory_limit="400MB", local_directory=str(tmp_path)
    )
    with cluster, lc.Client(cluster) as client:
        blocks = [client.submit(block, i, 50 * MB) for i in range(8)]  # 400 MB in all
        lc.wait(blocks, timeout=60)
        spilled = list(tmp_path.rglob("*.pkl"))
        assert spilled, "nothing was spilled"
        sums = client.gather([client.submit(block_sum, b) for b in blocks])
        assert sums == [float(i) * (50 * MB // 8) for i in range(8)]
        first = client.gather(blocks[0])
        assert first.shape == (50 * MB // 8,) and first[0] == 0.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:lazycell.*memory limit:RuntimeWarning")
def test_a_reduction_over_more_data_than_the_memory_limit_completes(tmp_path):
    cluster = lc.LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="250MB", local_directory=str(tmp_path)
    )
    with cluster, lc.Client(cluster) as client:
        blocks = [lc.delayed(block)(i, 40 * MB) for i in range(20)]  # 800 MB of blocks
        persisted = client.persist(blocks)
        total = lc.delayed(sum)([lc.delayed(block_sum)(b) for b in persisted])
        expected = sum(float(i) * (40 * MB // 8) for i in range(20))
        assert client.compute(total).result(timeout=90) == expected


@pytest.mark.slow
def test_a_task_over_the_memory_limit_restarts_its_worker_and_finally_fails_naming_it():
    cluster = lc.LocalCluster(n_workers=1, memory_limit="300MB", allowed_failures=2)
    with cluster, lc.Client(cluster) as client:
        hog = client.submit(hog_memory, 400 * MB)
        with pytest.warns(RuntimeWarning, match="memory limit"):
            with pytest.raises(lc.WorkerDiedError, match="hog_memory") as info:
                hog.result(timeout=90)
        assert "memory limit" in str(info.value)
        assert client.submit(block_sum, np.ones(10)).result(timeout=60) == 10.0
