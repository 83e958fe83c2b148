"""The lazy API: ``lc.delayed`` and the :class:`Delayed` objects it builds.

A ``Delayed`` is one task: its ``key``, its :class:`TaskSpec`, and the
``Delayed`` objects it depends on. The graph is never copied while it is being
built; ``graph_of`` walks the dependencies once at compute time, so building a
100,000-task graph costs 100,000 small objects and nothing quadratic.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable

from lazycell.graph.dask_collections import dask_graph_and_keys, is_dask_collection
from lazycell.graph.keys import pure_key, random_key
from lazycell.graph.spec import Ref, TaskSpec, call_spec, container_spec, data_spec


class Delayed:
    """A value that will be computed: the result of one task in a lazy graph.

    Build them with :func:`delayed`. Operators, indexing, attribute access and
    method calls each add a task; ``compute()`` runs the graph.

    >>> total = lc.delayed(sum)([lc.delayed(abs)(-i) for i in range(4)])
    >>> total.compute()
    6
    """

    __slots__ = ("_lazycell_key", "_spec", "_dependencies", "_length")

    def __init__(self, key: Hashable, spec: TaskSpec, dependencies: tuple = (), length=None):
        object.__setattr__(self, "_lazycell_key", key)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_dependencies", dependencies)
        object.__setattr__(self, "_length", length)

    @property
    def key(self) -> Hashable:
        """The key of this task in the graph."""
        return self._lazycell_key

    def compute(self, scheduler=None, **options):
        """Compute this value and return it. See :func:`lazycell.compute` for options."""
        from lazycell.api import compute

        (result,) = compute(self, scheduler=scheduler, **options)
        return result

    def persist(self, scheduler=None, **options) -> Delayed:
        """Compute now; return a ``Delayed`` holding the result that never recomputes."""
        from lazycell.api import persist

        (result,) = persist(self, scheduler=scheduler, **options)
        return result

    def __repr__(self) -> str:
        return f"Delayed({self._lazycell_key!r})"

    def __hash__(self) -> int:
        return hash(self._lazycell_key)

    def __bool__(self):
        raise TypeError(
            "the truth value of a lazy value is not known until it is computed; "
            "call .compute() first, or build the condition into a delayed function"
        )

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError(
                "the length of a lazy value is not known until it is computed; "
                "pass nout= to lc.delayed to unpack a fixed number of results"
            )
        return self._length

    def __iter__(self):
        if self._length is None:
            raise TypeError(
                "a lazy value of unknown length cannot be iterated; "
                "pass nout= to lc.delayed to unpack a fixed number of results"
            )
        for i in range(self._length):
            yield self[i]

    def __setattr__(self, name, value):
        raise TypeError("Delayed objects are immutable: build a new task instead")

    def __setitem__(self, index, value):
        raise TypeError("Delayed objects are immutable: build a new task instead")

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return DelayedAttribute(self, attr)

    def __getitem__(self, index):
        return _task(operator.getitem, (self, index), None, "getitem", pure=True)

    def __call__(self, *args, **kwargs):
        return _task(_apply, (self, *args), kwargs or None, "call", pure=False)

    def __dir__(self):
        return [*object.__dir__(self), "key", "compute", "persist"]

    def __reduce__(self):
        return (Delayed, (self._lazycell_key, self._spec, self._dependencies, self._length))


class DelayedAttribute(Delayed):
    """``lazy.attr``: a task of its own, or, when called, a single method-call task."""

    __slots__ = ("_owner", "_attr")

    def __init__(self, owner: Delayed, attr: str):
        key = pure_key(f"getattr-{attr}", owner.key)
        spec = call_spec(getattr, (Ref(owner.key), attr))
        super().__init__(key, spec, (owner,))
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_attr", attr)

    def __call__(self, *args, **kwargs):
        return _task(
            _call_method, (self._owner, self._attr, *args), kwargs or None, self._attr, pure=False
        )


def _apply(func, *args, **kwargs):
    return func(*args, **kwargs)


def _call_method(obj, name, *args, **kwargs):
    return getattr(obj, name)(*args, **kwargs)


def to_task_argument(obj, dependencies: list):
    """``obj`` with every lazy object inside replaced by a :class:`Ref`.

    Returns ``obj`` itself (the same object) when nothing inside is lazy.
    """
    if isinstance(obj, Delayed):
        dependencies.append(obj)
        return Ref(obj._lazycell_key)
    t = type(obj)
    if t is list or t is tuple or t is set or t is frozenset:
        items = [to_task_argument(x, dependencies) for x in obj]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        return items if t is list else t(items)
    if t is dict:
        values = {k: to_task_argument(v, dependencies) for k, v in obj.items()}
        if all(values[k] is v for k, v in obj.items()):
            return obj
        return values
    if is_dask_collection(obj):
        lazy = delayed_from_dask(obj)
        dependencies.append(lazy)
        return Ref(lazy._lazycell_key)
    return obj


def _unique_dependencies(dependencies: list) -> tuple:
    if len(dependencies) < 2:
        return tuple(dependencies)
    seen: dict = {}
    for d in dependencies:
        seen.setdefault(d._lazycell_key, d)
    return tuple(seen.values())


def _task(func, args: tuple, kwargs: dict | None, name: str, pure: bool, nout=None) -> Delayed:
    dependencies: list = []
    task_args = tuple(to_task_argument(a, dependencies) for a in args)
    task_kwargs = (
        {k: to_task_argument(v, dependencies) for k, v in kwargs.items()} if kwargs else None
    )
    key = pure_key(name, func, args, kwargs) if pure else random_key(name)
    return Delayed(
        key, call_spec(func, task_args, task_kwargs), _unique_dependencies(dependencies), nout
    )


class DelayedFunction:
    """A function whose calls build tasks instead of running: ``lc.delayed(f)``."""

    def __init__(self, func: Callable, name: str | None = None, pure: bool = False, nout=None):
        if nout is not None and (not isinstance(nout, int) or nout < 0):
            raise ValueError(f"nout must be a non-negative integer, not {nout!r}")
        self.func = func
        self.name = name or _name_of(func)
        self.pure = pure
        self.nout = nout
        self.__name__ = getattr(func, "__name__", self.name)
        self.__qualname__ = getattr(func, "__qualname__", self.name)
        self.__doc__ = getattr(func, "__doc__", None)
        self.__wrapped__ = func

    def __call__(self, *args, **kwargs) -> Delayed:
        return _task(self.func, args, kwargs or None, self.name, self.pure, self.nout)

    def __repr__(self) -> str:
        return f"lazycell.delayed({self.func!r})"

    def __reduce__(self):
        return (DelayedFunction, (self.func, self.name, self.pure, self.nout))


def _name_of(func) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    return name.strip("<>").replace("<", "").replace(">", "") or "task"


def delayed(obj=None, *, name: str | None = None, pure: bool = False, nout: int | None = None):
    """Make a function lazy, or wrap a value as a lazy object.

    - ``lc.delayed(func)`` / ``@lc.delayed`` / ``@lc.delayed(pure=True)``: calls
      build tasks. ``name`` sets the key prefix (the task group shown in
      panels), ``pure=True`` gives the same key for the same function and
      inputs, ``nout=N`` lets a call's result be unpacked into N lazy values.
    - ``lc.delayed(value)``: a lazy object holding ``value``; lazy objects
      nested in lists, tuples, dicts and sets inside it are computed first.

    >>> @lc.delayed
    ... def inc(x):
    ...     return x + 1
    >>> inc(inc(1)).compute()
    3
    """
    if obj is None:
        return lambda func: delayed(func, name=name, pure=pure, nout=nout)
    if isinstance(obj, (Delayed, DelayedFunction)):
        return obj
    if callable(obj) and not is_dask_collection(obj):
        return DelayedFunction(obj, name=name, pure=pure, nout=nout)
    dependencies: list = []
    structure = to_task_argument(obj, dependencies)
    key = pure_key(name or type(obj).__name__, obj)
    if not dependencies:
        return Delayed(key, data_spec(obj), (), nout)
    return Delayed(key, container_spec(structure), _unique_dependencies(dependencies), nout)


def _binary(op, name):
    def forward(self, other):
        return _task(op, (self, other), None, name, pure=True)

    def reverse(self, other):
        return _task(op, (other, self), None, name, pure=True)

    return forward, reverse


def _unary(op, name):
    def apply(self):
        return _task(op, (self,), None, name, pure=True)

    return apply


for _name, _op in [
    ("add", operator.add),
    ("sub", operator.sub),
    ("mul", operator.mul),
    ("truediv", operator.truediv),
    ("floordiv", operator.floordiv),
    ("mod", operator.mod),
    ("pow", operator.pow),
    ("matmul", operator.matmul),
    ("and", operator.and_),
    ("or", operator.or_),
    ("xor", operator.xor),
    ("lshift", operator.lshift),
    ("rshift", operator.rshift),
    ("divmod", divmod),
]:
    _fwd, _rev = _binary(_op, _name)
    setattr(Delayed, f"__{_name}__", _fwd)
    setattr(Delayed, f"__r{_name}__", _rev)

for _name, _op in [
    ("lt", operator.lt),
    ("le", operator.le),
    ("eq", operator.eq),
    ("ne", operator.ne),
    ("gt", operator.gt),
    ("ge", operator.ge),
]:
    setattr(Delayed, f"__{_name}__", _binary(_op, _name)[0])

for _name, _unary_op in [
    ("neg", operator.neg),
    ("pos", operator.pos),
    ("abs", operator.abs),
    ("invert", operator.invert),
]:
    setattr(Delayed, f"__{_name}__", _unary(_unary_op, _name))


def delayed_from_dask(collection) -> Delayed:
    """A lazycell ``Delayed`` for the finalized value of a dask collection."""
    graph, (key,) = dask_graph_and_keys([collection], optimize_graph=True)
    return GraphDelayed(key, graph)


class GraphDelayed(Delayed):
    """A Delayed standing for the output ``key`` of an already-converted graph.

    It carries that whole graph, which :func:`lazycell.graph.collect.collect`
    merges into the graph of any compute that uses it.
    """

    __slots__ = ("_graph",)

    def __init__(self, key, graph: dict):
        super().__init__(key, graph[key], ())
        object.__setattr__(self, "_graph", graph)
