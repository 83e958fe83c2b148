"""The scheduler's locks, semaphores, events, variables and queues, without a cluster:
each test drives ``Coordination`` with requests and a clock, and reads the answers."""

from lazycell.distributed.scheduler.coordination import Coordination


class Answers:
    """Collects ``answer(ok, value)`` calls for one request."""

    def __init__(self):
        self.got = []

    def __call__(self, ok, value):
        self.got.append((ok, value))

    @property
    def value(self):
        assert len(self.got) == 1, self.got
        ok, value = self.got[0]
        assert ok, value
        return value

    @property
    def error(self):
        assert len(self.got) == 1, self.got
        ok, value = self.got[0]
        assert not ok
        return value


def ask(coord, owner, kind, *args, now=0.0):
    answer = Answers()
    coord.handle(owner, kind, args, answer, now)
    return answer


def test_a_released_lease_goes_to_the_first_waiter():
    coord = Coordination()
    ask(coord, "kernel", "semaphore-create", "s", 1)
    assert ask(coord, "a", "semaphore-acquire", "s", "lease-a", None).value is True
    waiting_b = ask(coord, "b", "semaphore-acquire", "s", "lease-b", None)
    waiting_c = ask(coord, "c", "semaphore-acquire", "s", "lease-c", None)
    assert waiting_b.got == [] and waiting_c.got == []
    ask(coord, "a", "semaphore-release", "s", "lease-a")
    assert waiting_b.value is True and waiting_c.got == []


def test_a_wait_past_its_deadline_is_answered_false():
    coord = Coordination()
    ask(coord, "kernel", "semaphore-create", "s", 1)
    ask(coord, "a", "semaphore-acquire", "s", "lease-a", None)
    waiting = ask(coord, "b", "semaphore-acquire", "s", "lease-b", 2.0, now=10.0)
    assert coord.has_deadlines()
    coord.expire(11.0)
    assert waiting.got == []
    coord.expire(12.0)
    assert waiting.value is False
    assert not coord.has_deadlines()


def test_a_dead_owner_releases_its_leases_and_drops_its_waits():
    coord = Coordination()
    ask(coord, "kernel", "semaphore-create", "lock", 1)
    ask(coord, "worker-0", "semaphore-acquire", "lock", "lease-0", None)
    dead_waiter = ask(coord, "worker-0", "event-wait", "e", None)
    waiting = ask(coord, "worker-1", "semaphore-acquire", "lock", "lease-1", None)
    coord.owner_gone("worker-0", "was killed")
    assert waiting.value is True
    ask(coord, "kernel", "event-set", "e")
    assert dead_waiter.got == []  # dropped: no answer goes to a dead worker


def test_the_kernel_giving_up_returns_a_lease_it_got_meanwhile():
    coord = Coordination()
    ask(coord, "kernel", "semaphore-create", "s", 1)
    ask(coord, "kernel-1", "semaphore-acquire", "s", "lease-1", None)
    ask(coord, "kernel-1", "forget-owner")
    assert ask(coord, "kernel-2", "semaphore-acquire", "s", "lease-2", 0).value is True


def test_closing_answers_every_wait_with_an_error():
    coord = Coordination()
    ask(coord, "kernel", "queue-create", "q", 0)
    getter = ask(coord, "a", "queue-get", "q", None, False)
    reader = ask(coord, "b", "variable-get", "v", None)
    coord.close("the cluster was closed")
    assert isinstance(getter.error, RuntimeError)
    assert "closed" in str(reader.error)


def test_a_full_queue_lets_a_putter_in_when_an_item_is_taken():
    coord = Coordination()
    ask(coord, "kernel", "queue-create", "q", 1)
    ask(coord, "a", "queue-put", "q", 1, None)
    putter = ask(coord, "b", "queue-put", "q", 2, None)
    assert putter.got == []
    assert ask(coord, "c", "queue-get", "q", None, False).value == 1
    assert putter.value is None
    assert ask(coord, "c", "queue-qsize", "q").value == 1


def test_unknown_names_and_requests_are_errors_not_hangs():
    coord = Coordination()
    assert "not known" in str(ask(coord, "a", "semaphore-acquire", "nope", "l", None).error)
    assert "not known" in str(ask(coord, "a", "queue-get", "nope", None, False).error)
    assert "unknown" in str(ask(coord, "a", "bogus-request").error)
