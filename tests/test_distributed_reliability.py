"""No fault or bad input may hang a compute, leak data or fill the disk (local cluster).

Real worker processes, real spill files in a temporary directory. A hang is
tested with a timeout around the call, never by waiting forever.
"""

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

import lazycell as lc

pytestmark = pytest.mark.timeout(180)

MB = 1_000_000


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """Two single-threaded workers, shared by the tests that leave them as they found them."""
    directory = tmp_path_factory.mktemp("spill")
    cluster = lc.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit=None,
        local_directory=str(directory),
        dashboard_address=None,
    )
    with cluster, lc.Client(cluster) as c:
        yield c


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def held_keys(client) -> set:
    return {key for keys in client.has_what().values() for key in keys}


def known_keys(client) -> set:
    return set(client.scheduler.call(lambda scheduler: list(scheduler.tasks)))


# ------------------------------------------------------------------------ tasks


def inc(x):
    return x + 1


def make_lock():
    return threading.Lock()


def takes_input(x):
    return "ran"


def block(i, nbytes):
    return np.full(nbytes // 8, float(i))


def fail_on(x):
    raise ValueError(f"bad input of {len(x)} items")


def spill_directory():
    return lc.get_worker().store.spill_dir


def hog_memory(nbytes):
    data = np.ones(nbytes // 8)
    time.sleep(3)
    return float(data[0])


class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("no message today")


class StrRaisesSystemExit(Exception):
    def __str__(self):
        raise SystemExit(3)


def raise_(kind):
    raise kind("the original message")


class NeedsTwoArguments(Exception):
    """Pickles (as its args), but unpickling calls it with one argument: TypeError."""

    def __init__(self, what, why):
        super().__init__(f"{what} failed: {why}")


def fail_sometimes(i):
    if i == 3:
        raise NeedsTwoArguments(f"item {i}", "it is three")
    return i * 10


# ------------------------------------------- 1. nothing a task does stops its worker


def test_an_input_that_cannot_move_between_workers_fails_its_task_naming_it(client):
    lock = client.submit(make_lock, workers=["worker-0"])
    needs_lock = client.submit(takes_input, lock, workers=["worker-1"])
    expected = r"input 'make_lock-\w+' of type _thread.lock could not be sent from worker-0"
    with pytest.raises(lc.SerializationError, match=expected) as info:
        needs_lock.result(timeout=30)
    assert info.value.lazycell_task_key == needs_lock.key
    assert info.value.lazycell_function == "takes_input"


def test_a_worker_whose_task_could_not_get_an_input_keeps_running_tasks(client):
    lock = client.submit(make_lock, workers=["worker-0"])
    needs_lock = client.submit(takes_input, lock, workers=["worker-1"])
    with pytest.raises(lc.SerializationError):
        needs_lock.result(timeout=30)
    later = client.map(inc, range(4), workers=["worker-1"])
    assert [f.result(timeout=30) for f in later] == [1, 2, 3, 4]


@pytest.mark.parametrize("kind", [StrRaises, StrRaisesSystemExit])
def test_an_exception_whose_str_raises_fails_its_task_and_the_worker_keeps_running(client, kind):
    failing = client.submit(raise_, kind, workers=["worker-0"])
    with pytest.raises(kind) as info:
        failing.result(timeout=30)
    assert info.value.lazycell_task_key == failing.key
    assert client.submit(inc, 41, workers=["worker-0"]).result(timeout=30) == 42


@pytest.mark.parametrize("kind", [StrRaises, StrRaisesSystemExit])
def test_an_exception_whose_str_raises_fails_a_compute_watched_by_a_listener(client, kind):
    seen = []
    with lc.diagnostics.subscribe(seen.extend):  # the scheduler thread labels the failure
        with pytest.raises(kind):
            lc.compute(lc.delayed(raise_)(kind), scheduler="distributed")
    assert "TaskErred" in [type(event).__name__ for event in seen]
    assert client.submit(inc, 1).result(timeout=30) == 2


# ------------------------ 2. an exception that cannot be unpickled fails its task only


def test_an_exception_that_cannot_be_unpickled_fails_its_task_with_its_type_name_and_message(
    client,
):
    failing = client.submit(fail_sometimes, 3, workers=["worker-0"])
    with pytest.raises(lc.TaskError) as info:
        failing.result(timeout=30)
    message = str(info.value)
    assert "test_distributed_reliability.NeedsTwoArguments" in message
    assert "item 3 failed: it is three" in message
    assert info.value.lazycell_task_key == failing.key


def test_the_other_reports_sent_with_an_exception_that_cannot_be_unpickled_arrive(client):
    futures = client.map(fail_sometimes, range(8), workers=["worker-0"])  # one batch of reports
    lc.wait(futures, timeout=30)
    assert [f.status for f in futures].count("error") == 1
    assert [f.result(timeout=30) for i, f in enumerate(futures) if i != 3] == [
        i * 10 for i in range(8) if i != 3
    ]


def test_a_client_run_result_that_cannot_be_unpickled_is_a_clear_error_not_a_hang(client):
    with pytest.raises(lc.SerializationError, match="NeedsTwoArguments.*cannot be sent back"):
        client.run(NeedsTwoArguments, "a", "b", workers=["worker-0"], timeout=30)
    assert client.run(inc, 1, workers=["worker-0"]) == {"worker-0": 2}


# ------------------------------------------- 4. a failed compute is released in full


def test_a_failed_compute_leaves_nothing_on_the_workers_while_its_error_is_kept(client):
    data = lc.delayed(block)(1, 20 * MB)
    with pytest.raises(ValueError, match="bad input") as info:
        lc.compute(lc.delayed(fail_on)(data), scheduler="distributed")
    kept = info.value  # as IPython keeps the last error (sys.last_value) for %debug
    gc.collect()
    wait_until(lambda: data.key not in held_keys(client), 10, "the failed compute's input freed")
    wait_until(lambda: data.key not in known_keys(client), 10, "the failed compute forgotten")
    assert kept.lazycell_task_key is not None


def test_debugging_a_released_failure_computes_its_inputs_again(client):
    data = lc.delayed(block)(2, 1 * MB)
    with pytest.raises(ValueError) as info:
        lc.compute(lc.delayed(fail_on)(data), scheduler="distributed")
    gc.collect()
    wait_until(lambda: data.key not in known_keys(client), 10, "the failed compute forgotten")
    with pytest.raises(ValueError, match=f"bad input of {MB // 8} items") as rerun:
        info.value.lazycell_rerun()  # what %debug calls
    tb = rerun.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == "fail_on"  # the user's frame, with its real input


def test_a_failed_tasks_inputs_leave_the_workers_while_its_future_is_held(client):
    data = lc.delayed(block)(3, 20 * MB)
    failed = client.compute(lc.delayed(fail_on)(data))
    with pytest.raises(ValueError):
        failed.result(timeout=30)
    wait_until(lambda: data.key not in held_keys(client), 10, "the failed task's input freed")
    assert failed.status == "error"


def test_a_new_graph_reusing_the_key_of_a_dropped_failure_computes_afresh(client):
    data = client.submit(block, 4, 1 * MB)
    failed = client.submit(fail_on, data, key="reliability-reused-key")
    with pytest.raises(ValueError) as info:
        failed.result(timeout=30)
    kept = info.value
    del failed, data
    gc.collect()
    wait_until(
        lambda: "reliability-reused-key" not in known_keys(client), 10, "the failure forgotten"
    )
    assert client.submit(inc, 1, key="reliability-reused-key").result(timeout=30) == 2
    assert isinstance(kept, ValueError)


def test_a_failed_gather_keeps_no_future_alive_in_its_error(client):
    failed = client.submit(fail_on, [1, 2], key="reliability-gathered-failure")
    with pytest.raises(ValueError) as info:
        client.gather([failed, client.submit(inc, 1)])
    kept = info.value
    del failed
    gc.collect()
    wait_until(
        lambda: "reliability-gathered-failure" not in known_keys(client), 10, "the failure freed"
    )
    assert isinstance(kept, ValueError)


# ----------------------------------------------- 5. nothing of a dead worker on disk


def spilling_cluster(directory, **options) -> lc.LocalCluster:
    return lc.LocalCluster(
        threads_per_worker=1,
        memory_limit=options.pop("memory_limit", "200MB"),
        local_directory=str(directory),
        dashboard_address=None,
        **options,
    )


@pytest.mark.slow
def test_the_spill_directory_of_a_killed_worker_is_removed_when_its_death_is_seen(tmp_path):
    with spilling_cluster(tmp_path, n_workers=1) as cluster, lc.Client(cluster) as client:
        blocks = [client.submit(block, i, 20 * MB) for i in range(8)]  # over 120 MB: spills
        lc.wait(blocks, timeout=60)
        (spill_dir,) = client.run(spill_directory).values()
        assert os.listdir(spill_dir), "nothing was spilled"
        os.kill(client.workers()[0]["pid"], signal.SIGKILL)
        wait_until(lambda: not os.path.exists(spill_dir), 30, "the dead worker's spill removed")
        assert client.gather(blocks[-1])[0] == 7.0  # recomputed on its replacement


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:lazycell.*memory limit:RuntimeWarning")
def test_the_spill_directory_of_a_worker_restarted_over_its_memory_limit_is_removed(tmp_path):
    cluster = spilling_cluster(tmp_path, n_workers=1, memory_limit="300MB", allowed_failures=1)
    with cluster, lc.Client(cluster) as client:
        (spill_dir,) = client.run(spill_directory).values()
        with pytest.raises(lc.WorkerDiedError):
            client.submit(hog_memory, 400 * MB).result(timeout=60)
        wait_until(lambda: not os.path.exists(spill_dir), 30, "the restarted worker's spill gone")


@pytest.mark.slow
def test_close_removes_every_directory_the_cluster_made_even_a_dead_workers(tmp_path):
    cluster = spilling_cluster(tmp_path, n_workers=2)
    with cluster, lc.Client(cluster) as client:
        # 320 MB over two workers that spill above 120 MB each, however they are placed
        blocks = [client.submit(block, i, 20 * MB) for i in range(16)]
        lc.wait(blocks, timeout=60)
        assert list(tmp_path.rglob("*.pkl")), "nothing was spilled"
        os.kill(client.workers()[0]["pid"], signal.SIGKILL)  # close() right after
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists(cluster.socket_dir)


# --------------------------------- 6. gathering more than a worker's memory, streamed


def disk_usage(path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # removed meanwhile
                pass
    return total


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:lazycell.*memory limit:RuntimeWarning")
def test_gathering_spilled_results_larger_than_the_memory_limit_streams_them(tmp_path):
    with (
        spilling_cluster(tmp_path, n_workers=1, memory_limit="400MB") as cluster,
        lc.Client(cluster) as client,
    ):
        blocks = [client.submit(block, i, 25 * MB) for i in range(28)]  # 700 MB
        lc.wait(blocks, timeout=90)
        pid = client.workers()[0]["pid"]
        peak_on_disk = disk_usage(tmp_path)
        gathered: list = []
        gather = threading.Thread(
            target=lambda: gathered.append(client.gather(blocks)), daemon=True
        )
        gather.start()
        deadline = time.monotonic() + 60
        while gather.is_alive() and time.monotonic() < deadline:
            peak_on_disk = max(peak_on_disk, disk_usage(tmp_path))
            gather.join(0.05)
        assert not gather.is_alive(), "the gather did not complete within 60 s"
        assert [float(values[0]) for values in gathered[0]] == [float(i) for i in range(28)]
        assert client.workers()[0]["pid"] == pid, "the worker was restarted"
        assert peak_on_disk <= 28 * 25 * MB * 1.05


# ----------------------------------------------------------- 8. the number of workers


def test_a_cluster_of_zero_workers_starts_empty_and_scale_fills_it():
    with lc.Client(n_workers=0, memory_limit=None, dashboard_address=None) as client:
        assert client.workers() == []
        future = client.submit(inc, 1)
        client.cluster.scale(1)
        assert future.result(timeout=60) == 2


@pytest.mark.parametrize("n_workers", ["2", 2.0, True])
def test_a_number_of_workers_that_is_not_a_whole_number_is_a_type_error(n_workers):
    with pytest.raises(TypeError, match="n_workers must be a whole number"):
        lc.Client(n_workers=n_workers)


def test_a_negative_number_of_workers_is_a_value_error():
    with pytest.raises(ValueError, match="n_workers must be 0 or more"):
        lc.Client(n_workers=-1)
