"""A lazycell graph as a dask graph: ``{key: TaskSpec}`` → ``{key: dask._task_spec node}``.

::

    lazycell TaskSpec (kernel)                dask node (scheduler, workers)
    ──────────────────────────                ──────────────────────────────
    DATA    value                        ──►  DataNode(key, value)
    ALIAS   other key                    ──►  Alias(key, other key)
    CALL    func(*args, **kwargs), Refs  ──►  Task(key, func, *args, **kwargs), TaskRefs
    NESTED  Calls and containers of Refs ──►  Task / List / Tuple / Set / Dict nodes, nested
    FOREIGN a dask node already          ──►  itself (re-keyed if need be)

Why convert instead of shipping ``run_task``: the workers and the scheduler of
someone else's cluster have dask and cloudpickle, not lazycell. Every node
built here calls the user's own function or a builtin (or dask's ``apply``),
never a lazycell callable, and holds no lazycell object: the scheduler and
the workers unpickle the graph without importing lazycell. The few lazycell
helpers that graphs may hold (``lc.delayed(f)(...)`` on a lazy function, a
method call on a lazy object, a rebuilt namedtuple, a dask node inside a
legacy task) are written out as the plain calls they stand for; any other
lazycell callable is a clear error naming the task.

Functions ship as dask ships them: the whole graph is pickled, and a
function defined in the notebook (module ``__main__``) goes by value through
cloudpickle; a function from an importable module goes by reference and
must be importable on the workers.

Keys: dask takes ``str``, ``bytes``, ``int``, ``float`` and tuples of those.
Any other key (``None``, a ``bool``, a ``frozenset``...) is renamed to
``"<group>-<token of the key>"``, the same name for the same key in every
compute (dask keeps results by key), and :class:`DaskGraph` maps both ways.

dask is imported inside the functions: ``lazycell.dask_cluster`` is importable
without it, and ``import lazycell`` never loads it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

from lazycell.graph.delayed import _apply, _call_method
from lazycell.graph.keys import tokenize
from lazycell.graph.spec import (
    ALIAS,
    CALL,
    DATA,
    FOREIGN,
    Call,
    Ref,
    TaskSpec,
    _call_foreign,
    _rebuild_namedtuple,
    describe_task,
    key_group,
)

DASK_KEY_TYPES = (str, bytes, int, float)


class DaskGraph(NamedTuple):
    """One compute's graph in dask's terms, and the way back to lazycell's keys.

    ``tasks``: dask key -> node, only the keys the outputs need. ``renamed``:
    lazycell key -> dask key for the keys dask does not accept (usually
    empty); ``lazycell_keys`` the inverse. ``held``: the ``distributed.Future``
    objects the graph stands on (their results are already on the cluster);
    keep them alive until the compute is over.
    """

    tasks: dict
    renamed: dict
    lazycell_keys: dict
    held: list

    def dask_key(self, key: Hashable) -> Any:
        return self.renamed.get(key, key)

    def lazycell_key(self, dask_key: Any) -> Hashable:
        return self.lazycell_keys.get(dask_key, dask_key)


class NotRunnableOnDask(TypeError):
    """A task calls something that only exists in this kernel's lazycell."""


def is_dask_key(key) -> bool:
    """Whether dask accepts ``key`` as it is (dask's ``iskey``, without importing dask)."""
    t = type(key)
    if t is str or t is bytes or t is int or t is float:
        return True
    if t is tuple:
        return all(map(is_dask_key, key))
    return False


def dask_name_for(key: Hashable) -> str:
    """The dask key a key dask rejects is sent under: the same for the same key."""
    return f"{key_group(key)}-{tokenize(key)}"


def to_dask_graph(graph: Mapping[Hashable, TaskSpec], order: list) -> DaskGraph:
    """The dask graph of ``order``'s keys (those the outputs need) of ``graph``.

    >>> dsk = to_dask_graph(graph, order_graph(graph, outputs)).tasks
    >>> client.get(dsk, outputs)

    Raises :class:`NotRunnableOnDask` for a task that calls lazycell's own code.
    """
    from dask._task_spec import Alias, DataNode, Task, TaskRef

    renamed = {key: dask_name_for(key) for key in order if not is_dask_key(key)}
    nested = _NestedConverter(renamed)
    token_of = repr
    tasks: dict = {}
    held: list = []
    for key in order:
        spec = graph[key]
        dask_key = renamed.get(key, key) if renamed else key
        kind = spec.kind
        func = spec.func
        if kind == CALL and id(func) not in _HELPER_IDS:  # nearly every task: inlined
            if _is_lazycell(func):
                raise _not_runnable(key, spec)
            if spec.deps:
                args = [
                    TaskRef(renamed.get(a.key, a.key) if renamed else a.key)  # type: ignore[arg-type]
                    if type(a) is Ref
                    else a
                    for a in spec.args
                ]
            else:
                args = spec.args
            if spec.kwargs:
                task = Task(dask_key, func, *args, **spec.kwargs)
            else:
                task = Task(dask_key, func, *args)
            # dask names a submitted graph by tokenizing every task, which pickles a
            # notebook's function twice per task (~0.1 ms each, a second on 10,000
            # tasks). The key already names the task's work (a content hash, or
            # random): it is the token, and dask skips the pickling.
            task._token = token_of(dask_key)
            tasks[dask_key] = task
        elif kind == DATA:
            tasks[dask_key] = DataNode(dask_key, spec.args)
        elif kind == ALIAS:
            tasks[dask_key] = Alias(dask_key, renamed.get(spec.args, spec.args))
        elif kind == FOREIGN:
            tasks[dask_key] = func if func.key == dask_key else func.substitute({}, key=dask_key)
        elif func is held_result:  # a Delayed persisted on the cluster: its future
            future = spec.args[0]
            held.append(future)
            if future.key != dask_key:
                tasks[dask_key] = Alias(dask_key, future.key)
        else:  # NESTED (a container, a call with nested arguments), or a lazycell helper
            try:
                if func is None:
                    node = nested.container(dask_key, spec.args)
                else:
                    node = nested.call(dask_key, func, spec.args, spec.kwargs or {})
            except NotRunnableOnDask:
                raise _not_runnable(key, spec) from None
            if isinstance(node, Task) and node.key == dask_key:
                node._token = token_of(dask_key)  # as above: the key names the work
            tasks[dask_key] = node
    lazycell_keys = {dask_key: key for key, dask_key in renamed.items()}
    return DaskGraph(tasks, renamed, lazycell_keys, held)


def held_result(future):
    """The task of a Delayed persisted on a dask cluster: the result its future holds.

    On the cluster it is no task at all: the result is there under its key.
    """
    return future.result()


def _is_lazycell(func) -> bool:
    """A callable of lazycell's own: a function of the package, or a lazycell object."""
    module = getattr(func, "__module__", None)
    return type(module) is str and (module == "lazycell" or module.startswith("lazycell."))


# lazycell's helpers that graphs hold, each written out as the plain call it stands for.
_HELPER_IDS = frozenset(
    map(id, (_apply, _call_method, _rebuild_namedtuple, _call_foreign, held_result))
)


class _NestedConverter:
    """NESTED specs and helper calls as nested dask nodes (the less common kinds)."""

    def __init__(self, renamed: dict):
        import dask._task_spec as ts
        from dask.utils import apply

        self.renamed = renamed
        self.ts = ts
        self.apply = apply

    def container(self, dask_key, structure):
        """A list, tuple, set, frozenset or dict holding refs, as the task ``dask_key``."""
        ts = self.ts
        if type(structure) is dict:
            return ts.Task(dask_key, dict, self.value(structure))
        items = [self.value(x) for x in structure]
        # list(), tuple(), set(), frozenset() of the evaluated list of items.
        return ts.Task(dask_key, type(structure), ts.List(*items))

    def call(self, dask_key, func, args, kwargs: dict):
        """``func(*args, **kwargs)`` as a node; lazycell's helpers become the calls they make."""
        ts = self.ts
        if func is _apply:  # lc.delayed(f)(...) where f itself is lazy: f(*args, **kwargs)
            target, *rest = args
            return ts.Task(dask_key, self.apply, self.value(target), *self.apply_args(rest, kwargs))
        if func is _call_method:  # lazy.method(*args): getattr(obj, name)(*args)
            obj, name, *rest = args
            method = ts.Task(None, getattr, self.value(obj), name)
            return ts.Task(dask_key, self.apply, method, *self.apply_args(rest, kwargs))
        if func is _rebuild_namedtuple:  # a namedtuple holding refs: type(*items)
            typ, items = args
            return ts.Task(dask_key, typ, *[self.value(item) for item in items])
        if func is _call_foreign:  # a dask node inside a legacy task evaluates itself
            node = args[0]
            return node if dask_key is None else node.substitute({}, key=dask_key)
        if _is_lazycell(func):
            raise NotRunnableOnDask(func)
        values = [self.value(a) for a in args]
        if kwargs:
            named = {k: self.value(v) for k, v in kwargs.items()}
            return ts.Task(dask_key, func, *values, **named)
        return ts.Task(dask_key, func, *values)

    def apply_args(self, args: list, kwargs: dict) -> tuple:
        """dask's ``apply(func, args, kwargs)``: its last two arguments, as nodes if need be."""
        ts = self.ts
        values = [self.value(a) for a in args]
        if self.any_node(values):
            return ts.Task(None, tuple, ts.List(*values)), self.value(kwargs)
        return tuple(values), self.value(kwargs)

    def value(self, obj):
        """``obj`` with Refs as TaskRefs, Calls as Tasks and containers of them as nodes.

        Returns ``obj`` itself when nothing inside refers to another task.
        """
        ts = self.ts
        t = type(obj)
        if t is Ref:
            return ts.TaskRef(self.renamed.get(obj.key, obj.key))
        if t is Call:
            return self.call(None, obj.func, obj.args, obj.kwargs or {})
        if t is list or t is tuple or t is set or t is frozenset:
            items = [self.value(x) for x in obj]
            if not self.any_node(items):
                return obj
            if t is list:
                return ts.List(*items)
            if t is tuple:
                return ts.Tuple(*items)
            if t is set:
                return ts.Set(*items)
            return ts.Task(None, frozenset, ts.List(*items))
        if t is dict:
            values = {k: self.value(v) for k, v in obj.items()}
            return ts.Dict(values) if self.any_node(values.values()) else obj
        return obj

    def any_node(self, values) -> bool:
        node_types = (self.ts.GraphNode, self.ts.TaskRef)
        return any(isinstance(v, node_types) for v in values)


def _not_runnable(key, spec: TaskSpec) -> NotRunnableOnDask:
    return NotRunnableOnDask(
        f"{describe_task(key, spec)} calls lazycell's own code, which the dask cluster's "
        "workers do not have (and need not): it cannot run there. A Delayed persisted on "
        "a lazycell Client (lc.Client) computes only on that client; compute or persist it "
        "with the dask client instead"
    )
