"""Tasks that submit tasks (get_client, worker_client, secede / rejoin, fire_and_forget)
and the cluster's Lock, Semaphore, Event, Variable and Queue, on real worker processes."""

import os
import signal
import threading
import time

import pytest

import lazycell as lc

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client():
    with lc.Client(
        n_workers=2, threads_per_worker=1, memory_limit=None, dashboard_address=None
    ) as c:
        yield c


def inc(x):
    return x + 1


def fails(x):
    raise ValueError(f"bad {x}")


def fib(n):
    if n < 2:
        return n
    client = lc.get_client()
    a, b = client.submit(fib, n - 1), client.submit(fib, n - 2)
    with lc.worker_client():
        return a.result() + b.result()


def sum_of_map(n):
    with lc.worker_client() as client:
        return sum(client.gather(client.map(inc, range(n))))


def exception_of_inner_failure():
    future = lc.get_client().submit(fails, 3)
    lc.secede()
    try:
        exc = future.exception(timeout=30)
    finally:
        lc.rejoin()
    return type(exc).__name__, str(exc)


def wait_on_event_seceded(event):
    lc.secede()
    ok = event.wait(timeout=30)
    lc.rejoin()
    return ok


def task_thread_count(worker=None):
    return sum(1 for t in threading.enumerate() if t.name.startswith("lazycell-worker-task"))


def write_after(path, seconds):
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("done")
    return path


def wait_and_as_completed_inside():
    client = lc.get_client()
    futures = client.map(inc, range(4))
    with lc.worker_client():
        done, not_done = lc.wait(futures, timeout=30)
        ordered = sorted(f.result() for f in lc.as_completed(futures))
    return len(done), len(not_done), ordered


def scatter_inside():
    client = lc.get_client()
    [data] = client.scatter([list(range(5))])
    with lc.worker_client():
        return client.submit(sum, data).result(timeout=30)


def submit_and_drop():
    future = lc.get_client().submit(inc, 12345, pure=False)
    key = future.key
    with lc.worker_client():
        future.result(timeout=30)
    return key


def resubmit_a_dropped_key(n):
    client = lc.get_client()
    with lc.worker_client():  # each future is dropped before the next submit of its key
        return [client.submit(inc, 7).result(timeout=30) for _ in range(n)]


def submit_needing_a_gpu():
    return lc.get_client().submit(inc, 1, resources={"GPU": 1})


def wait_until(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ---------------------------------------------------------------- tasks that submit tasks


def test_get_client_in_the_kernel_is_the_open_client(client):
    assert lc.get_client() is client


def test_a_task_submits_tasks_and_gathers_them(client):
    assert client.submit(sum_of_map, 10).result(timeout=60) == sum(range(1, 11))


def test_recursive_tasks_on_one_thread_workers_finish_because_waiting_tasks_secede(client):
    # fib(8) waits on dozens of tasks at once; two one-thread workers would deadlock.
    assert client.submit(fib, 8).result(timeout=60) == 21


def test_a_failure_of_an_inner_task_comes_back_as_its_own_type(client):
    assert client.submit(exception_of_inner_failure).result(timeout=60) == ("ValueError", "bad 3")


def test_a_task_asking_for_resources_no_worker_offers_is_told_as_in_the_kernel(client):
    with pytest.raises(ValueError, match="no worker of this cluster offers resource GPU=1"):
        client.submit(submit_needing_a_gpu).result(timeout=60)


def test_a_seceded_task_leaves_its_thread_to_other_tasks(client):
    event = lc.Event()
    waiting = client.submit(wait_on_event_seceded, event, workers=["worker-0"])
    wait_until(lambda: waiting.status == "pending" and client.who_has() is not None)
    time.sleep(0.2)  # it is waiting on the event now
    # worker-0 has one thread: this runs only because the waiting task seceded.
    assert client.submit(inc, 1, workers=["worker-0"], pure=False).result(timeout=20) == 2
    event.set()
    assert waiting.result(timeout=30) is True


def test_rejoin_brings_the_pool_back_to_its_size(client):
    event = lc.Event()
    event.set()
    assert client.submit(wait_on_event_seceded, event, workers=["worker-1"]).result(timeout=30)
    wait_until(lambda: client.run(task_thread_count, workers=["worker-1"])["worker-1"] == 1)


def test_wait_and_as_completed_work_on_futures_inside_a_task(client):
    assert client.submit(wait_and_as_completed_inside).result(timeout=60) == (4, 0, [1, 2, 3, 4])


def test_a_task_scatters_data_and_uses_it(client):
    assert client.submit(scatter_inside).result(timeout=60) == 10


def test_results_a_task_no_longer_holds_are_released(client):
    key = client.submit(submit_and_drop).result(timeout=60)
    wait_until(lambda: not any(key in keys for keys in client.has_what().values()))


def test_a_task_submitting_a_key_it_just_dropped_gets_its_result(client):
    # The release of the dropped future reaches the scheduler before the new submit.
    assert client.submit(resubmit_a_dropped_key, 100).result(timeout=60) == [8] * 100


def test_fire_and_forget_runs_the_task_to_the_end_after_its_future_is_dropped(client, tmp_path):
    path = str(tmp_path / "done")
    future = client.submit(write_after, path, 0.3, pure=False)
    lc.fire_and_forget(future)
    del future
    wait_until(lambda: os.path.exists(path))


def test_futures_inside_a_set_are_their_values(client):
    a, b = client.submit(inc, 1), client.submit(inc, 2)
    assert client.submit(sorted, {a, b}).result(timeout=30) == [2, 3]


# ------------------------------------------------------------------------------ Lock


def hold_lock(lock, seconds):
    with lock:
        start = time.time()
        time.sleep(seconds)
        return start, time.time()


def hold_nothing(_, seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def overlap(spans):
    (a0, a1), (b0, b1) = spans
    return a0 < b1 and b0 < a1


def test_a_lock_keeps_tasks_on_two_workers_apart(client):
    free = client.gather(
        [client.submit(hold_nothing, i, 0.3, workers=[f"worker-{i}"]) for i in range(2)]
    )
    assert overlap(free)  # the two workers do run at once
    lock = lc.Lock("shared-file")
    locked = client.gather(
        [client.submit(hold_lock, lock, 0.3, workers=[f"worker-{i}"], pure=False) for i in range(2)]
    )
    assert not overlap(locked)


def test_lock_acquire_times_out_and_says_false(client):
    lock = lc.Lock()
    assert lock.acquire()
    assert lock.locked()
    assert lc.Lock(lock.name).acquire(timeout=0.1) is False
    assert lc.Lock(lock.name).acquire(blocking=False) is False
    lock.release()
    assert not lock.locked()


def test_lock_misuse_is_refused(client):
    lock = lc.Lock()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(blocking=False, timeout=1)
    with pytest.raises(RuntimeError, match="Released too often"):
        lock.release()


def acquire_and_wait(lock, event):
    lock.acquire()
    event.wait(timeout=60)
    return "never"


def test_a_lock_held_by_a_task_whose_worker_dies_is_released():
    with lc.Client(
        n_workers=1,
        threads_per_worker=1,
        memory_limit=None,
        dashboard_address=None,
        allowed_failures=1,
    ) as c:
        lock, event = lc.Lock(), lc.Event()
        holder = c.submit(acquire_and_wait, lock, event)
        wait_until(lambda: lock.locked())
        os.kill(next(iter(c.run(os.getpid).values())), signal.SIGKILL)
        assert lock.acquire(timeout=20)
        with pytest.raises(lc.WorkerDiedError):
            holder.result(timeout=30)


# --------------------------------------------------------------------------- Semaphore


def test_a_semaphore_grants_at_most_max_leases(client):
    sem = lc.Semaphore(max_leases=2)
    assert sem.acquire() and sem.acquire()
    assert sem.get_value() == 2
    assert lc.Semaphore(2, name=sem.name).acquire(timeout=0.1) is False
    sem.release()
    assert lc.Semaphore(2, name=sem.name).acquire(timeout=5)
    with pytest.raises(ValueError, match="Inconsistent max leases"):
        lc.Semaphore(3, name=sem.name)


def take_lease(sem):
    return sem.acquire(timeout=0.2)


def test_tasks_share_the_semaphore_of_the_kernel(client):
    sem = lc.Semaphore(max_leases=1)
    with sem:
        assert client.submit(take_lease, sem, pure=False).result(timeout=30) is False
    assert client.submit(take_lease, sem, pure=False).result(timeout=30) is True


# ------------------------------------------------------------------------------ Event


def wait_event(event, timeout):
    return event.wait(timeout=timeout)


def set_event(event):
    event.set()


def test_a_task_waits_on_an_event_the_kernel_sets(client):
    event = lc.Event()
    waiting = client.submit(wait_event, event, 30)
    time.sleep(0.2)
    assert not waiting.done()
    event.set()
    assert waiting.result(timeout=30) is True
    assert event.is_set()
    event.clear()
    assert not event.is_set()


def test_event_wait_times_out_with_false(client):
    event = lc.Event()
    assert event.wait(timeout=0.1) is False
    assert client.submit(wait_event, event, 0.1).result(timeout=30) is False
    client.submit(set_event, event).result(timeout=30)
    assert event.wait(timeout=5) is True


def test_a_wait_in_the_kernel_ends_when_the_cluster_closes():
    cluster = lc.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    c = lc.Client(cluster, set_as_default=False)
    event = lc.Event(client=c)
    outcome = []

    def wait_forever():
        try:
            event.wait()
        except RuntimeError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_forever)
    waiter.start()
    time.sleep(0.2)
    c.close()
    cluster.close()
    waiter.join(timeout=20)
    assert not waiter.is_alive() and outcome


# --------------------------------------------------------------------------- Variable


def read_variable(var, timeout=10):
    return var.get(timeout=timeout)


def write_variable(var, value):
    var.set(value)


def test_a_variable_set_in_the_kernel_is_read_by_tasks_and_back(client):
    var = lc.Variable()
    var.set({"threshold": 0.5})
    assert client.submit(read_variable, var).result(timeout=30) == {"threshold": 0.5}
    client.submit(write_variable, var, [1, 2]).result(timeout=30)
    assert var.get() == [1, 2]


def test_variable_get_waits_for_a_value_or_times_out(client):
    var = lc.Variable()
    with pytest.raises(TimeoutError):
        var.get(timeout=0.1)
    reader = client.submit(read_variable, var, 30)
    time.sleep(0.2)
    var.set(7)
    assert reader.result(timeout=30) == 7
    var.delete()
    with pytest.raises(TimeoutError):
        var.get(timeout=0.1)


def test_a_future_in_a_variable_stays_alive_there(client):
    var = lc.Variable()
    future = client.submit(pow, 3, 3, pure=False)
    key = future.key
    var.set(future)
    del future
    assert var.get().result(timeout=30) == 27
    assert var.get().key == key


# ------------------------------------------------------------------------------ Queue


def produce(queue, i):
    queue.put(i * i)


def consume(queue):
    return queue.get(timeout=30)


def test_tasks_put_on_a_queue_the_kernel_reads(client):
    queue = lc.Queue()
    client.gather(client.map(produce, [queue] * 3, range(3)))
    assert queue.qsize() == 3
    assert sorted(queue.get(batch=True)) == [0, 1, 4]
    assert queue.qsize() == 0


def test_a_task_waits_for_an_item_the_kernel_puts(client):
    queue = lc.Queue()
    consumer = client.submit(consume, queue)
    time.sleep(0.2)
    queue.put("item")
    assert consumer.result(timeout=30) == "item"


def test_queue_timeouts_and_batches(client):
    queue = lc.Queue(maxsize=1)
    with pytest.raises(TimeoutError):
        queue.get(timeout=0.1)
    queue.put(1)
    with pytest.raises(TimeoutError):
        queue.put(2, timeout=0.1)
    assert queue.get() == 1
    with pytest.raises(NotImplementedError):
        queue.get(timeout=1, batch=2)
    unbounded = lc.Queue()
    for i in range(3):
        unbounded.put(i)
    assert unbounded.get(batch=2) == [0, 1]


def put_a_new_future(queue):
    queue.put(lc.get_client().submit(pow, 2, 10, pure=False))


def result_of_a_queued_future(queue):
    future = queue.get(timeout=30)
    with lc.worker_client():
        return future.result(timeout=30)


def test_a_future_a_task_puts_on_a_queue_reaches_the_kernel_and_other_tasks(client):
    queue = lc.Queue()
    client.submit(put_a_new_future, queue, pure=False).result(timeout=30)
    from_kernel = queue.get(timeout=10)
    assert isinstance(from_kernel, lc.Future) and from_kernel.result(timeout=30) == 1024
    client.submit(put_a_new_future, queue, pure=False).result(timeout=30)
    assert client.submit(result_of_a_queued_future, queue, pure=False).result(timeout=30) == 1024


def test_a_future_the_kernel_sets_in_a_variable_is_a_future_in_tasks(client):
    var = lc.Variable()
    var.set(client.submit(pow, 3, 3, pure=False))
    assert client.submit(result_of_a_variable_future, var).result(timeout=30) == 27


def result_of_a_variable_future(var):
    future = var.get(timeout=30)
    with lc.worker_client():
        return future.result(timeout=30)


def test_ctrl_c_in_the_kernel_withdraws_a_wait_so_it_takes_no_lease_later(client):
    lock = lc.Lock()
    assert lock.acquire()
    interrupt = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    interrupt.start()
    with pytest.raises(KeyboardInterrupt):
        lc.Lock(lock.name).acquire()  # waits until Ctrl-C
    lock.release()
    # Had the interrupted wait stayed, it would now hold the lock and this would time out.
    assert lc.Lock(lock.name).acquire(timeout=5)


def test_tasks_keep_a_client_when_the_first_client_of_their_cluster_closes():
    cluster = lc.LocalCluster(
        n_workers=1, threads_per_worker=1, memory_limit=None, dashboard_address=None
    )
    first = lc.Client(cluster, set_as_default=False)
    second = lc.Client(cluster, set_as_default=False)
    try:
        assert second.submit(sum_of_map, 3).result(timeout=60) == 6
        first.close()
        assert second.submit(sum_of_map, 4).result(timeout=60) == 10
    finally:
        second.close()
        cluster.close()
