"""Worker pools kept between computes, shared by the pooled schedulers.

``threads`` and ``processes`` both keep warm pools between computes and both
bound their size, by one rule:

- :func:`check_num_workers`: a size beyond the scheduler's ``MAX_WORKERS`` is
  a ValueError raised before any thread or process starts;
- :class:`SharedPools`: one pool per size, for the ``keep`` sizes used last;
  an older size's pool is shut down once no compute holds it. A "size" is
  any hashable the maker takes: the processes scheduler keys the pools of
  workers set up by an initializer by ``(size, initializer)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar


def check_num_workers(n: int, maximum: int, scheduler: str, why: str) -> int:
    """``n`` when it is a size the scheduler allows, else a ValueError that says what fits.

    Called when a scheduler is made, so an absurd size fails before any thread
    or process starts (starting threads until the OS refuses would break every
    later compute too).
    """
    if n < 1:
        raise ValueError(f"num_workers={n} must be a positive integer such as 4")
    if n > maximum:
        raise ValueError(
            f"num_workers={n} is more than lazycell allows (MAX_WORKERS={maximum} for the "
            f"{scheduler} scheduler: {why}); pass num_workers={maximum} or fewer"
        )
    return n


class _Pool(Protocol):
    def shutdown(self) -> None: ...


P = TypeVar("P", bound=_Pool)


class SharedPools(Generic[P]):
    """Pools kept warm between computes, one per size, for the ``keep`` sizes used last.

    A compute holds its pool with ``with pools.use(n) as pool:``. Using a size
    that has no pool makes one; when that makes more than ``keep`` sizes, the
    least recently used size leaves the cache and its pool is shut down: at
    once when no compute holds it, else when the last compute holding it ends.
    Without this every size ever asked for would keep its threads or
    processes for the life of the interpreter.

    State: ``by_size`` (size -> pool, least recently used first), ``holders``
    (pool -> computes holding it), ``retiring`` (pools out of the cache that a
    compute still holds).
    """

    def __init__(self, make: Callable[[Any], P], keep: int):
        self._make = make
        self.keep = keep
        self._lock = threading.Lock()
        self.by_size: OrderedDict[Hashable, P] = OrderedDict()
        self.holders: dict[P, int] = {}
        self.retiring: set[P] = set()

    @contextmanager
    def use(self, n: Hashable) -> Iterator[P]:
        """The pool of ``n``, held for the ``with`` block (it is not shut down meanwhile)."""
        pool = self.get(n, hold=True)
        try:
            yield pool
        finally:
            self._let_go(pool)

    def get(self, n: Hashable, *, hold: bool = False) -> P:
        """The pool of ``n``, made on first use; it becomes the most recently used size."""
        with self._lock:
            pool = self.by_size.get(n)
            if pool is None:
                pool = self.by_size[n] = self._make(n)
            else:
                self.by_size.move_to_end(n)
            if hold:
                self.holders[pool] = self.holders.get(pool, 0) + 1
            idle_evicted = self._evict_least_recently_used()
        for evicted in idle_evicted:
            evicted.shutdown()
        return pool

    def existing(self, n: Hashable) -> P | None:
        """The pool of ``n`` if one is kept, without making one or counting it as a use."""
        with self._lock:
            return self.by_size.get(n)

    def retire(self, pool: P) -> None:
        """Take ``pool`` out of the cache (the next compute of its size gets a fresh one).

        It is shut down when no compute holds it any more.
        """
        with self._lock:
            for size, kept in list(self.by_size.items()):
                if kept is pool:
                    del self.by_size[size]
            held = pool in self.holders
            if held:
                self.retiring.add(pool)
        if not held:
            pool.shutdown()

    def shutdown_all(self) -> None:
        """Shut every pool down, held or not (the interpreter is exiting)."""
        with self._lock:
            pools = [*self.by_size.values(), *self.retiring]
            self.by_size.clear()
            self.retiring.clear()
        for pool in pools:
            pool.shutdown()

    def _evict_least_recently_used(self) -> list[P]:
        """Drop sizes beyond ``keep``; returns the dropped pools no compute holds."""
        idle = []
        while len(self.by_size) > self.keep:
            _, pool = self.by_size.popitem(last=False)
            if pool in self.holders:
                self.retiring.add(pool)
            else:
                idle.append(pool)
        return idle

    def _let_go(self, pool: P) -> None:
        with self._lock:
            left = self.holders[pool] - 1
            if left:
                self.holders[pool] = left
                return
            del self.holders[pool]
            if pool not in self.retiring:
                return
            self.retiring.discard(pool)
        pool.shutdown()
