"""Locks, semaphores, events, variables and queues held by the scheduler, for the kernel
and for tasks (``lc.Lock``, ``lc.Semaphore``, ``lc.Event``, ``lc.Variable``, ``lc.Queue``).

::

    the kernel: scheduler.ask("coordination", kind, args)  ─┐
    a task: ("client-request", id, kind, args) on its       ├─► Coordination.handle(owner, kind,
            worker's control connection                    ─┘     args, answer, now)
                                                                  answers at once, or keeps a
                                                                  Waiter (owner, answer, deadline)
    every round of the scheduler loop ───────────────────────────► expire(now): waiters past their
                                                                  deadline get their timeout answer
    a worker dies / the cluster closes ──────────────────────────► owner_gone(name) / close():
                                                                  its waiters, leases and locks go

Named state, each ``name -> record``:

- ``semaphores``  ``max_leases``, ``leases`` (lease id -> owner) and ``waiters``;
                  a Lock is a semaphore of one lease (as in dask);
- ``events``      ``is_set`` and ``waiters``;
- ``variables``   the value (absent until set) and the ``waiters`` of ``get``;
- ``queues``      ``items``, ``maxsize``, ``getters`` and ``putters``.

An ``answer(ok, value)`` is how the reply travels (a reply queue for the
kernel, a control message for a worker); ``ok=False`` carries the exception
to raise. Every wait has a way out: its timeout, its worker's death (the
waiter is dropped, its leases and locks released), the cluster's close (every
waiter is told). Nothing here does I/O: ``loop`` calls these functions on the
scheduler thread and provides the answers.
"""

from __future__ import annotations

from collections import deque


class Waiter:
    """A request that waits: who asked, how to answer, until when (None: no limit)."""

    __slots__ = ("owner", "answer", "deadline", "args")

    def __init__(self, owner: str, answer, deadline: float | None, args: tuple):
        self.owner = owner
        self.answer = answer
        self.deadline = deadline
        self.args = args


class SemaphoreState:
    __slots__ = ("max_leases", "leases", "waiters")

    def __init__(self, max_leases: int):
        self.max_leases = max_leases
        self.leases: dict = {}  # lease id -> owner
        self.waiters: deque = deque()  # Waiter, args = (lease id,)


class EventState:
    __slots__ = ("is_set", "waiters")

    def __init__(self):
        self.is_set = False
        self.waiters: list[Waiter] = []


class VariableState:
    __slots__ = ("has_value", "value", "waiters")

    def __init__(self):
        self.has_value = False
        self.value = None
        self.waiters: list[Waiter] = []


class QueueState:
    __slots__ = ("items", "maxsize", "getters", "putters")

    def __init__(self, maxsize: int):
        self.items: deque = deque()
        self.maxsize = maxsize
        self.getters: deque = deque()  # Waiter, args = (batch,)
        self.putters: deque = deque()  # Waiter, args = (value,)


class Coordination:
    """Every lock, semaphore, event, variable and queue of one cluster (module docstring)."""

    def __init__(self):
        self.semaphores: dict[str, SemaphoreState] = {}
        self.events: dict[str, EventState] = {}
        self.variables: dict[str, VariableState] = {}
        self.queues: dict[str, QueueState] = {}

    # -- one request
    def handle(self, owner: str, kind: str, args: tuple, answer, now: float) -> None:
        """Answer ``kind`` (see the methods below) now, or keep a waiter."""
        method = getattr(self, "do_" + kind.replace("-", "_"), None)
        if method is None:
            answer(False, ValueError(f"unknown coordination request {kind!r}"))
            return
        try:
            method(owner, answer, now, *args)
        except Exception as exc:  # a bad request: the asker gets the error
            answer(False, exc)

    # -- semaphores (and locks: one lease)
    def do_semaphore_create(self, owner, answer, now, name: str, max_leases: int) -> None:
        sem = self.semaphores.get(name)
        if sem is None:
            self.semaphores[name] = SemaphoreState(max_leases)
        elif sem.max_leases != max_leases:
            raise ValueError(f"Inconsistent max leases: {max_leases}, expected: {sem.max_leases}")
        answer(True, None)

    def do_semaphore_acquire(self, owner, answer, now, name, lease_id, timeout) -> None:
        sem = self._semaphore(name)
        if len(sem.leases) < sem.max_leases:
            sem.leases[lease_id] = owner
            answer(True, True)
        elif timeout is not None and timeout <= 0:
            answer(True, False)
        else:
            sem.waiters.append(Waiter(owner, answer, _deadline(now, timeout), (lease_id,)))

    def do_semaphore_release(self, owner, answer, now, name, lease_id) -> None:
        sem = self._semaphore(name)
        if sem.leases.pop(lease_id, None) is None:
            raise RuntimeError("Released too often")
        self._grant_leases(sem)
        answer(True, True)

    def do_semaphore_value(self, owner, answer, now, name) -> None:
        answer(True, len(self._semaphore(name).leases))

    def do_cancel_acquire(self, owner, answer, now, name, lease_id) -> None:
        """The asker gave up (Ctrl-C): drop its waiter, or the lease it got meanwhile."""
        sem = self.semaphores.get(name)
        if sem is not None:
            sem.waiters = deque(w for w in sem.waiters if w.args[0] != lease_id)
            if sem.leases.pop(lease_id, None) is not None:
                self._grant_leases(sem)
        answer(True, None)

    def _semaphore(self, name: str) -> SemaphoreState:
        sem = self.semaphores.get(name)
        if sem is None:
            raise RuntimeError(f"Semaphore or Lock `{name}` not known.")
        return sem

    def _grant_leases(self, sem: SemaphoreState) -> None:
        while sem.waiters and len(sem.leases) < sem.max_leases:
            waiter = sem.waiters.popleft()
            sem.leases[waiter.args[0]] = waiter.owner
            waiter.answer(True, True)

    # -- events
    def do_event_set(self, owner, answer, now, name) -> None:
        event = self.events.setdefault(name, EventState())
        event.is_set = True
        waiters, event.waiters = event.waiters, []
        for waiter in waiters:
            waiter.answer(True, True)
        answer(True, None)

    def do_event_clear(self, owner, answer, now, name) -> None:
        self.events.setdefault(name, EventState()).is_set = False
        answer(True, None)

    def do_event_is_set(self, owner, answer, now, name) -> None:
        event = self.events.get(name)
        answer(True, event is not None and event.is_set)

    def do_event_wait(self, owner, answer, now, name, timeout) -> None:
        event = self.events.setdefault(name, EventState())
        if event.is_set:
            answer(True, True)
        elif timeout is not None and timeout <= 0:
            answer(True, False)
        else:
            event.waiters.append(Waiter(owner, answer, _deadline(now, timeout), ()))

    # -- variables
    def do_variable_set(self, owner, answer, now, name, value) -> None:
        var = self.variables.setdefault(name, VariableState())
        var.has_value, var.value = True, value
        waiters, var.waiters = var.waiters, []
        for waiter in waiters:
            waiter.answer(True, value)
        answer(True, None)

    def do_variable_get(self, owner, answer, now, name, timeout) -> None:
        var = self.variables.setdefault(name, VariableState())
        if var.has_value:
            answer(True, var.value)
        elif timeout is not None and timeout <= 0:
            answer(False, TimeoutError(f"Variable {name!r} has no value yet"))
        else:
            var.waiters.append(Waiter(owner, answer, _deadline(now, timeout), ()))

    def do_variable_delete(self, owner, answer, now, name) -> None:
        var = self.variables.get(name)
        if var is not None:
            var.has_value, var.value = False, None
            if not var.waiters:
                del self.variables[name]
        answer(True, None)

    # -- queues
    def do_queue_create(self, owner, answer, now, name, maxsize) -> None:
        if name not in self.queues:
            self.queues[name] = QueueState(maxsize or 0)
        answer(True, None)

    def do_queue_put(self, owner, answer, now, name, value, timeout) -> None:
        q = self._queue(name)
        if q.maxsize and len(q.items) >= q.maxsize:
            if timeout is not None and timeout <= 0:
                answer(False, TimeoutError(f"Queue {name!r} is full"))
                return
            q.putters.append(Waiter(owner, answer, _deadline(now, timeout), (value,)))
            return
        q.items.append(value)
        answer(True, None)
        self._serve_queue(q)

    def do_queue_get(self, owner, answer, now, name, timeout, batch) -> None:
        q = self._queue(name)
        if batch is True:
            items = list(q.items)
            q.items.clear()
            answer(True, items)
            self._serve_queue(q)
            return
        if batch and timeout is not None:
            raise NotImplementedError(
                "Dask queues don't support simultaneous use of integer batch sizes and timeouts"
            )
        q.getters.append(Waiter(owner, answer, _deadline(now, timeout), (batch,)))
        self._serve_queue(q)
        if q.getters and q.getters[-1].answer is answer and timeout is not None and timeout <= 0:
            q.getters.pop()
            answer(False, TimeoutError(f"Queue {name!r} is empty"))

    def do_queue_qsize(self, owner, answer, now, name) -> None:
        answer(True, len(self._queue(name).items))

    def _queue(self, name: str) -> QueueState:
        q = self.queues.get(name)
        if q is None:
            raise RuntimeError(f"Queue `{name}` not known.")
        return q

    def _serve_queue(self, q: QueueState) -> None:
        """Hand items to getters in order, then let waiting putters in, while any can go."""
        progress = True
        while progress:
            progress = False
            while q.getters:
                wanted = q.getters[0].args[0] or 1
                if len(q.items) < wanted:
                    break
                waiter = q.getters.popleft()
                if waiter.args[0]:
                    waiter.answer(True, [q.items.popleft() for _ in range(wanted)])
                else:
                    waiter.answer(True, q.items.popleft())
                progress = True
            while q.putters and not (q.maxsize and len(q.items) >= q.maxsize):
                waiter = q.putters.popleft()
                q.items.append(waiter.args[0])
                waiter.answer(True, None)
                progress = True

    # -- ways out
    def has_deadlines(self) -> bool:
        """Whether some waiter has a deadline (the loop then wakes more often)."""
        for records, field in (
            (self.semaphores, "waiters"),
            (self.events, "waiters"),
            (self.variables, "waiters"),
            (self.queues, "getters"),
            (self.queues, "putters"),
        ):
            for record in records.values():
                if any(w.deadline is not None for w in getattr(record, field)):
                    return True
        return False

    def expire(self, now: float) -> None:
        """Answer every waiter whose deadline has passed with its timeout answer."""
        for sem in self.semaphores.values():
            if sem.waiters:
                sem.waiters = _answer_expired(sem.waiters, now, None)
        for event in self.events.values():
            if event.waiters:
                event.waiters = list(_answer_expired(event.waiters, now, None))
        for name, var in self.variables.items():
            if var.waiters:
                why = f"Variable {name!r} got no value in time"
                var.waiters = list(_answer_expired(var.waiters, now, why))
        for name, q in self.queues.items():
            if q.getters:
                q.getters = _answer_expired(q.getters, now, f"Queue {name!r} got no item in time")
            if q.putters:
                q.putters = _answer_expired(q.putters, now, f"Queue {name!r} stayed full")

    def do_forget_owner(self, owner, answer, now) -> None:
        """The kernel gave up a wait (Ctrl-C): as if its asker had gone."""
        self.owner_gone(owner, "gave up")
        answer(True, None)

    def owner_gone(self, owner: str, why: str) -> None:
        """A worker died or stopped: drop its waiters; its leases and locks are released."""
        for sem in self.semaphores.values():
            sem.waiters = deque(w for w in sem.waiters if w.owner != owner)
            for lease_id in [lid for lid, o in sem.leases.items() if o == owner]:
                del sem.leases[lease_id]
            self._grant_leases(sem)
        for event in self.events.values():
            event.waiters = [w for w in event.waiters if w.owner != owner]
        for var in self.variables.values():
            var.waiters = [w for w in var.waiters if w.owner != owner]
        for q in self.queues.values():
            q.getters = deque(w for w in q.getters if w.owner != owner)
            q.putters = deque(w for w in q.putters if w.owner != owner)

    def close(self, why: str) -> None:
        """The cluster closes: every waiter is told, with a RuntimeError saying ``why``."""
        waiters: list[Waiter] = []
        for sem in self.semaphores.values():
            waiters.extend(sem.waiters)
        for event in self.events.values():
            waiters.extend(event.waiters)
        for var in self.variables.values():
            waiters.extend(var.waiters)
        for q in self.queues.values():
            waiters.extend(q.getters)
            waiters.extend(q.putters)
        self.semaphores, self.events, self.variables, self.queues = {}, {}, {}, {}
        for waiter in waiters:
            waiter.answer(False, RuntimeError(why))


def _deadline(now: float, timeout: float | None) -> float | None:
    return None if timeout is None else now + timeout


def _answer_expired(waiters, now: float, timeout_error: str | None) -> deque:
    """Waiters past their deadline get False (``timeout_error`` None) or a TimeoutError."""
    kept: deque = deque()
    for waiter in waiters:
        if waiter.deadline is not None and waiter.deadline <= now:
            if timeout_error is None:
                waiter.answer(True, False)
            else:
                waiter.answer(False, TimeoutError(timeout_error))
        else:
            kept.append(waiter)
    return kept
