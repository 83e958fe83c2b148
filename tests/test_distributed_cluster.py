"""LocalCluster life cycle, the default scheduler, data locality and connection security."""

import multiprocessing.connection
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import lazycell as lc
from lazycell.distributed.protocol import connect

pytestmark = pytest.mark.timeout(120)


def inc(x):
    return x + 1


def pid_of(_=None):
    return os.getpid()


def make_block(n):
    return (os.getpid(), bytes(n))


def pid_and_size(block):
    return os.getpid(), len(block[1])


def concat_sizes(a, b):
    return len(a[1]) + len(b[1])


def child_pids() -> set:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}


def wait_gone(pids, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        alive = [
            pid
            for pid in pids
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# ---------------------------------------------------------------------------- life cycle


def test_close_leaves_no_worker_process_behind():
    before = child_pids()
    client = lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None)
    pids = {w["pid"] for w in client.workers()}
    assert len(pids) == 2 and pids <= child_pids()
    assert client.submit(inc, 1).result(timeout=30) == 2
    client.close()
    assert child_pids() <= before
    assert not wait_gone(pids)


def test_context_manager_closes_the_cluster():
    with lc.Client(n_workers=1, memory_limit=None) as client:
        pids = {w["pid"] for w in client.workers()}
    assert client.closed and client.cluster.closed
    assert not wait_gone(pids)


def test_a_client_on_a_given_cluster_leaves_the_cluster_open():
    with lc.LocalCluster(n_workers=1, memory_limit=None) as cluster:
        with lc.Client(cluster) as client:
            assert client.submit(inc, 1).result(timeout=30) == 2
        assert not cluster.closed
        with lc.Client(cluster) as again:
            assert again.submit(inc, 2).result(timeout=30) == 3
    assert cluster.closed


def test_a_closed_client_refuses_new_work():
    client = lc.Client(n_workers=1, memory_limit=None)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.submit(inc, 1)


@pytest.mark.slow
def test_interpreter_exit_without_close_stops_every_worker(tmp_path):
    script = tmp_path / "leave_open.py"
    script.write_text(
        textwrap.dedent(
            """
            import lazycell as lc
            client = lc.Client(n_workers=2, memory_limit=None)
            print("PIDS", *[w["pid"] for w in client.workers()], flush=True)
            print(client.submit(sum, [1, 2]).result())
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split("PIDS")[1].split("\n")[0].split()]
    assert not wait_gone(pids)


@pytest.mark.slow
def test_workers_exit_by_themselves_when_the_kernel_is_killed(tmp_path):
    script = tmp_path / "killed_kernel.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal
            import lazycell as lc
            client = lc.Client(n_workers=2, memory_limit=None)
            print("PIDS", *[w["pid"] for w in client.workers()], flush=True)
            print("DIR", client.cluster.socket_dir, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    pids = [int(p) for p in out.stdout.split("PIDS")[1].split("\n")[0].split()]
    socket_dir = out.stdout.split("DIR")[1].split()[0]
    assert not wait_gone(pids, timeout=20)
    assert not os.path.exists(socket_dir)  # the workers removed the cluster's files


def test_workers_run_as_threads_with_processes_false():
    with lc.Client(n_workers=2, processes=False, memory_limit=None) as client:
        assert client.gather(client.map(pid_of, range(4), pure=False)) == [os.getpid()] * 4
        a = client.submit(inc, 1)
        assert client.submit(inc, a).result(timeout=30) == 3


def test_environment_variables_give_the_default_worker_split(monkeypatch):
    monkeypatch.setenv("LAZYCELL_NUM_WORKERS", "3")
    monkeypatch.setenv("LAZYCELL_THREADS_PER_WORKER", "2")
    from lazycell.distributed.cluster import default_worker_split

    assert default_worker_split(None, None) == (3, 2)
    assert default_worker_split(1, None) == (1, 2)


def test_memory_limit_strings_are_understood():
    from lazycell.distributed.store import parse_memory_limit

    assert parse_memory_limit("4GB", 2) == 4 * 10**9
    assert parse_memory_limit("512MiB", 2) == 512 * 2**20
    assert parse_memory_limit(None, 2) is None
    assert parse_memory_limit("auto", 2) == psutil.virtual_memory().total // 2
    with pytest.raises(ValueError, match="not a size"):
        parse_memory_limit("lots", 1)


# ------------------------------------------------------------------ default scheduler


@lc.delayed
def d_pid():
    return os.getpid()


def test_a_client_becomes_the_default_scheduler_until_closed():
    assert lc.config.get("scheduler") == "threads"
    with lc.Client(n_workers=1, memory_limit=None) as client:
        worker_pid = client.workers()[0]["pid"]
        assert lc.config.get("scheduler") == "distributed"
        assert d_pid().compute() == worker_pid
        assert d_pid().compute(scheduler="distributed") == worker_pid
        assert d_pid().compute(scheduler="sync") == os.getpid()
    assert lc.config.get("scheduler") == "threads"
    assert d_pid().compute() == os.getpid()


def test_config_set_distributed_uses_the_open_client():
    with lc.Client(n_workers=1, memory_limit=None, set_as_default=False) as client:
        worker_pid = client.workers()[0]["pid"]
        assert d_pid().compute() == os.getpid()
        with pytest.raises(ValueError, match="needs an open lazycell Client"):
            d_pid().compute(scheduler="distributed")
    with lc.Client(n_workers=1, memory_limit=None) as client:
        worker_pid = client.workers()[0]["pid"]
        with lc.config.set(scheduler="sync"):
            assert d_pid().compute() == os.getpid()
            with lc.config.set(scheduler="distributed"):
                assert d_pid().compute() == worker_pid


def test_scheduler_distributed_without_a_client_says_how_to_get_one():
    with pytest.raises(ValueError, match="lc.Client"):
        d_pid().compute(scheduler="distributed")


# ----------------------------------------------------------------------------- locality


def test_a_dependent_task_runs_on_the_worker_holding_its_input():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        blocks = client.map(make_block, [2_000_000 + i for i in range(4)])
        made_on = [pid for pid, _ in client.gather(blocks)]
        assert len(set(made_on)) == 2  # inputs on both workers
        ran_on = client.gather([client.submit(pid_and_size, b) for b in blocks])
        assert [pid for pid, _ in ran_on] == made_on


def test_inputs_on_two_workers_meet_on_one():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        blocks = client.map(make_block, [1000, 2000, 3000, 4000])
        pids = [pid for pid, _ in client.gather(blocks)]
        a = blocks[0]
        b = next(blk for blk, pid in zip(blocks, pids) if pid != pids[0])
        assert client.submit(concat_sizes, a, b).result(timeout=30) == len(a.result()[1]) + len(
            b.result()[1]
        )


# ----------------------------------------------------------------------------- security


class CreatesMarkerWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_connection_without_the_key_is_refused_and_nothing_is_unpickled(tmp_path):
    marker = tmp_path / "unpickled.txt"
    payload = pickle.dumps(CreatesMarkerWhenUnpickled(str(marker)))
    with lc.Client(n_workers=1, memory_limit=None) as client:
        future = client.submit(inc, 1)
        assert future.result(timeout=30) == 2
        address = client.workers()[0]["address"]
        assert isinstance(address, str)  # a Unix socket in the cluster's private directory
        assert os.stat(os.path.dirname(address)).st_mode & 0o077 == 0

        # A raw client answers the challenge with a pickle, then sends another one.
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(10)
            raw.connect(address)
            challenge = raw.recv(4096)
            assert b"#CHALLENGE#" in challenge
            raw.sendall(struct.pack("!i", len(payload)) + payload)
            raw.sendall(struct.pack("!QQ", len(payload), 0) + payload)
            reply = raw.recv(4096)
            assert b"#WELCOME#" not in reply
        # The wrong key is refused by the handshake.
        with pytest.raises(multiprocessing.AuthenticationError):
            multiprocessing.connection.Client(address, authkey=b"not the cluster key")
        with pytest.raises(multiprocessing.AuthenticationError):
            connect(address, b"not the cluster key")

        time.sleep(0.2)
        assert not marker.exists()
        assert future.result(timeout=30) == 2  # the worker still serves the client
        assert client.submit(inc, future).result(timeout=30) == 3


def test_each_cluster_has_its_own_random_key():
    with lc.LocalCluster(n_workers=1, memory_limit=None) as a:
        with lc.LocalCluster(n_workers=1, memory_limit=None) as b:
            assert a.authkey != b.authkey and len(a.authkey) >= 32


def test_submit_with_workers_runs_only_there():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        names = {w["name"]: w["pid"] for w in client.workers()}
        for name, pid in names.items():
            pids = client.gather(client.map(pid_of, range(4), pure=False, workers=[name]))
            assert pids == [pid] * 4
        first, second = names
        block = client.submit(make_block, 10_000, workers=first)
        moved = client.submit(pid_and_size, block, workers=second)
        assert moved.result(timeout=30) == (names[second], 10_000)


INTERRUPTED_SCRIPT = textwrap.dedent(
    """
    import time
    import lazycell as lc

    def slow(i):
        time.sleep(60)
        return i

    def quick(i):
        return i + 1

    client = lc.Client(n_workers=2, memory_limit=None)
    print("PIDS", *[w["pid"] for w in client.workers()], flush=True)
    print("STARTED", flush=True)
    started = time.monotonic()
    try:
        lc.compute([lc.delayed(slow)(i) for i in range(4)])
    except KeyboardInterrupt:
        print("INTERRUPTED after %.1f s" % (time.monotonic() - started), flush=True)
    print("NEXT", lc.delayed(quick)(41).compute(), flush=True)
    print("AFTER", *[w["pid"] for w in client.workers()], flush=True)
    client.close()
    """
)


@pytest.mark.slow
def test_ctrl_c_stops_the_compute_and_the_cluster_is_free_at_once(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("STARTED"):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines += out.splitlines()
    assert proc.returncode == 0, err
    assert any(line.startswith("INTERRUPTED") for line in lines), (lines, err)
    assert "NEXT 42" in lines  # not stuck behind the 60 s tasks
    before = set(next(x for x in lines if x.startswith("PIDS")).split()[1:])
    after = set(next(x for x in lines if x.startswith("AFTER")).split()[1:])
    assert not before & after  # the busy workers were restarted


def sleep_then_pid(_, seconds):
    time.sleep(seconds)
    return os.getpid()


def test_tasks_on_a_small_shared_input_spread_over_the_workers():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        shared = client.submit(list, range(10))
        pids = client.gather(
            [client.submit(sleep_then_pid, shared, 0.2 + i / 1000) for i in range(6)]
        )
        assert len(set(pids)) == 2


def test_tasks_on_a_big_input_wait_for_its_worker_rather_than_move_it():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit=None) as client:
        big = client.submit(make_block, 50_000_000)
        holder = big.result(timeout=30)[0]
        dependents = [client.submit(pid_and_size, big, pure=False) for _ in range(4)]
        assert {pid for pid, _ in client.gather(dependents)} == {holder}
