"""The task spec: what one key of a graph means, in a form the schedulers run fast.

A graph is a mapping ``key -> TaskSpec``. Every spec knows its dependencies
(``spec.deps``, a tuple of keys) and runs with :func:`run_task` given a mapping
that holds those dependencies' results.

Kinds of spec, cheapest first:

- ``DATA``      a literal value, no dependencies;
- ``ALIAS``     the result of another key;
- ``CALL``      ``func(*args, **kwargs)`` where arguments are literals or
                :class:`Ref` placeholders at the top level only (the hot path);
- ``NESTED``    a call or a container whose arguments nest refs or inner calls
                (:class:`Call`, lists, tuples, dicts, sets);
- ``FOREIGN``   a node of dask's own task spec (``dask._task_spec``), run by
                calling it with its dependencies, as dask itself does.

Graphs arrive in three dialects: lazycell's own ``Delayed`` objects (which build
specs directly), dask's legacy tuples ``(func, *args)``, and dask's
``_task_spec`` nodes. :func:`spec_from_dask` converts the last two; dask itself
is never imported here — a foreign node is recognised by its module name.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Mapping

DATA, ALIAS, CALL, NESTED, FOREIGN = range(5)
KIND_NAMES = ("data", "alias", "call", "nested", "foreign")


class Ref:
    """Placeholder for the result of ``key`` inside a task's arguments."""

    __slots__ = ("key",)

    def __init__(self, key: Hashable):
        self.key = key

    def __repr__(self) -> str:
        return f"Ref({self.key!r})"

    def __reduce__(self):
        return (Ref, (self.key,))


class Call:
    """An inner call nested inside another task's arguments (no key of its own)."""

    __slots__ = ("func", "args", "kwargs")

    def __init__(self, func, args: tuple, kwargs: dict | None = None):
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Call({_func_name(self.func)}, {self.args!r})"

    def __reduce__(self):
        return (Call, (self.func, self.args, self.kwargs))


class TaskSpec:
    """One key's work: ``kind`` says how to run it, ``deps`` what it needs."""

    __slots__ = ("kind", "func", "args", "kwargs", "deps")

    def __init__(self, kind: int, func, args, kwargs, deps: tuple):
        self.kind = kind
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.deps = deps

    def __repr__(self) -> str:
        if self.kind == DATA:
            return f"TaskSpec(data={_short_repr(self.args)})"
        if self.kind == ALIAS:
            return f"TaskSpec(alias={self.args!r})"
        if self.kind == FOREIGN:
            return f"TaskSpec(dask={self.func!r})"
        return f"TaskSpec({_func_name(self.func)}, deps={list(self.deps)!r})"

    def __reduce__(self):
        return (TaskSpec, (self.kind, self.func, self.args, self.kwargs, self.deps))

    @property
    def function_name(self) -> str:
        """The name of the user's function this task calls (for errors and panels)."""
        if self.kind in (CALL, NESTED):
            return _func_name(self.func)
        if self.kind == FOREIGN:
            return _func_name(getattr(self.func, "func", None) or type(self.func))
        return KIND_NAMES[self.kind]


def data_spec(value) -> TaskSpec:
    return TaskSpec(DATA, None, value, None, ())


def alias_spec(target: Hashable) -> TaskSpec:
    return TaskSpec(ALIAS, None, target, None, (target,))


def call_spec(func, args: tuple, kwargs: dict | None = None) -> TaskSpec:
    """A call whose arguments may hold Refs, Calls and containers of them."""
    deps: list = []
    nested = False
    for a in args:
        nested |= _collect_refs(a, deps)
    if kwargs:
        for v in kwargs.values():
            nested |= _collect_refs(v, deps)
        # kwargs holding refs always go through the nested path: keeps CALL tiny.
        if deps:
            nested = True
    return TaskSpec(NESTED if nested else CALL, func, args, kwargs or None, _unique(deps))


def container_spec(structure) -> TaskSpec:
    """A list / tuple / dict / set whose items hold Refs (built at run time)."""
    deps: list = []
    _collect_refs(structure, deps)
    return TaskSpec(NESTED, None, structure, None, _unique(deps))


def _unique(deps: list) -> tuple:
    if len(deps) < 2:
        return tuple(deps)
    return tuple(dict.fromkeys(deps))


def _collect_refs(obj, deps: list) -> bool:
    """Append the keys referenced in ``obj``; True if anything nests (not a bare Ref)."""
    t = type(obj)
    if t is Ref:
        deps.append(obj.key)
        return False
    if t is Call:
        for a in obj.args:
            _collect_refs(a, deps)
        if obj.kwargs:
            for v in obj.kwargs.values():
                _collect_refs(v, deps)
        return True
    if t in (list, tuple, set, frozenset):
        before = len(deps)
        nested = False
        for item in obj:
            nested |= _collect_refs(item, deps)
        return nested or len(deps) > before
    if t is dict:
        before = len(deps)
        nested = False
        for item in obj.values():
            nested |= _collect_refs(item, deps)
        return nested or len(deps) > before
    return False


# --------------------------------------------------------------------------- running


def run_task(spec: TaskSpec, data: Mapping):
    """Run one task; ``data`` maps each of ``spec.deps`` to its result."""
    kind = spec.kind
    if kind == CALL:
        if spec.deps:
            args = [data[a.key] if type(a) is Ref else a for a in spec.args]
        else:
            args = spec.args
        if spec.kwargs:
            return spec.func(*args, **spec.kwargs)
        return spec.func(*args)
    if kind == DATA:
        return spec.args
    if kind == ALIAS:
        return data[spec.args]
    if kind == NESTED:
        if spec.func is None:
            return _resolve(spec.args, data)
        args = [_resolve(a, data) for a in spec.args]
        if spec.kwargs:
            return spec.func(*args, **{k: _resolve(v, data) for k, v in spec.kwargs.items()})
        return spec.func(*args)
    # FOREIGN: a dask GraphNode evaluates itself from its dependencies' values.
    return spec.func({k: data[k] for k in spec.deps})


def _resolve(obj, data: Mapping):
    t = type(obj)
    if t is Ref:
        return data[obj.key]
    if t is Call:
        args = [_resolve(a, data) for a in obj.args]
        if obj.kwargs:
            return obj.func(*args, **{k: _resolve(v, data) for k, v in obj.kwargs.items()})
        return obj.func(*args)
    if t is list:
        return [_resolve(x, data) for x in obj]
    if t is tuple:
        return tuple([_resolve(x, data) for x in obj])
    if t is dict:
        return {k: _resolve(v, data) for k, v in obj.items()}
    if t is set or t is frozenset:
        return t(_resolve(x, data) for x in obj)
    return obj


# --------------------------------------------------------------- dask dialects → specs


def _task_spec_module():
    return sys.modules.get("dask._task_spec")


def is_dask_node(value) -> bool:
    return type(value).__module__ == "dask._task_spec"


def specs_from_dask(dsk: Mapping) -> dict:
    """Convert a dask graph (legacy tuples and/or ``_task_spec`` nodes) to specs.

    Follows current dask's reading of legacy graphs (``convert_legacy_task``):
    a tuple whose first item is callable is a task; an argument equal to a key
    of the graph (int, float, str or tuple) is a reference to that key's
    result; lists, tuples and sets are searched for keys and tasks; anything
    else (dicts included) is literal. A key whose value is its own name is
    dropped, as dask does, so asking for it is a ``KeyError``.
    """
    if hasattr(dsk, "to_dict") and not isinstance(dsk, dict):  # HighLevelGraph
        dsk = dsk.to_dict()
    elif not isinstance(dsk, dict):
        dsk = dict(dsk)
    keys = dsk  # membership test against the graph itself
    out = {}
    for key, value in dsk.items():
        spec = _spec_from_dask_value(key, value, keys)
        if spec is not None:
            out[key] = spec
    return out


def flatten_keys(keys) -> list:
    """The keys a dask get-function's ``keys`` names (one key, or nested lists of
    keys), in order, repeats included: ``flatten_keys(["a", ["b", "a"]]) == ["a", "b", "a"]``."""
    flat: list = []

    def add(item) -> None:
        if isinstance(item, list):
            for inner in item:
                add(inner)
        else:
            flat.append(item)

    add(keys)
    return flat


def nest_values(keys, values: Mapping, sequence: type = tuple):
    """``values`` (key -> value) in the shape of a get-function's ``keys``: nested lists
    become ``sequence`` (tuples for dask's local get-functions, lists for distributed's)."""
    if isinstance(keys, list):
        return sequence(nest_values(item, values, sequence) for item in keys)
    return values[keys]


def _spec_from_dask_value(key, value, keys) -> TaskSpec | None:
    t = type(value)
    if t is tuple and value and callable(value[0]):
        # The hot path of graph conversion: scalar keys and literals are handled
        # inline; anything that nests goes through _convert_legacy_arg.
        deps: list = []
        nested = False
        converted = []
        for a in value[1:]:
            ta = type(a)
            if ta is int or ta is str or ta is float or ta is bytes:
                if a in keys:
                    deps.append(a)
                    converted.append(Ref(a))
                else:
                    converted.append(a)
                continue
            c = _convert_legacy_arg(a, keys, deps)
            if c is not a:
                nested = True
            converted.append(c)
        # deps may repeat a key; every count in the core is per occurrence, so
        # repeats are harmless and de-duplicating here is not worth its cost.
        return TaskSpec(NESTED if nested else CALL, value[0], tuple(converted), None, tuple(deps))
    if is_dask_node(value):
        return _spec_from_dask_node(key, value)
    try:
        if value in keys:
            return None if value == key else alias_spec(value)
    except TypeError:  # unhashable literal
        pass
    if t is list or t is tuple or t is set or t is frozenset:
        deps = []
        converted = _convert_legacy_arg(value, keys, deps)
        if converted is not value:
            return TaskSpec(NESTED, None, converted, None, tuple(deps))
    return data_spec(value)


def _rebuild_namedtuple(typ, items: tuple):
    return typ(*items)


def _convert_legacy_arg(a, keys, deps: list):
    """``a`` with keys turned into Refs (appended to ``deps``) and tasks into Calls.

    Returns ``a`` itself when it holds no refs or tasks (so callers test ``is``).
    """
    t = type(a)
    if t is str or t is int or t is bytes or t is float:
        if a in keys:
            deps.append(a)
            return Ref(a)
        return a
    if t is list:
        changed = False
        items = []
        for x in a:
            tx = type(x)
            if tx is str or tx is int:
                if x in keys:
                    deps.append(x)
                    items.append(Ref(x))
                    changed = True
                else:
                    items.append(x)
                continue
            c = _convert_legacy_arg(x, keys, deps)
            changed |= c is not x
            items.append(c)
        return items if changed else a
    if isinstance(a, tuple):
        namedtuple = t is not tuple and hasattr(t, "_fields")
        if a and not namedtuple and callable(a[0]):
            return Call(a[0], tuple([_convert_legacy_arg(x, keys, deps) for x in a[1:]]))
        try:
            if a in keys:
                deps.append(a)
                return Ref(a)
        except TypeError:
            pass
        items = [_convert_legacy_arg(x, keys, deps) for x in a]
        if all(x is y for x, y in zip(items, a)):
            return a
        if namedtuple:
            return Call(_rebuild_namedtuple, (t, tuple(items)))
        return tuple(items)
    if t is set or t is frozenset:
        items = [_convert_legacy_arg(x, keys, deps) for x in a]
        if all(x is y for x, y in zip(items, a)):
            return a
        return t(items)
    if is_dask_node(a):
        if isinstance(a, _task_spec_module().TaskRef):  # a reference, not a task
            deps.append(a.key)
            return Ref(a.key)
        deps.extend(a.dependencies)
        return _foreign_inline(a)
    return a


def _spec_from_dask_node(key, node) -> TaskSpec:
    ts = _task_spec_module()
    if isinstance(node, ts.DataNode):
        return data_spec(node.value)
    if isinstance(node, ts.Alias):
        if node.target == key:
            raise ValueError(f"key {key!r} is an alias of itself")
        return alias_spec(node.target)
    if isinstance(node, ts.TaskRef):  # a graph value that names another key: an alias
        if node.key == key:
            raise ValueError(f"key {key!r} refers to itself")
        return alias_spec(node.key)
    return TaskSpec(FOREIGN, node, None, None, tuple(node.dependencies))


def _foreign_inline(node):
    """A dask node used as an argument inside a legacy task: run it as an inner call."""
    deps = tuple(node.dependencies)
    refs = {k: Ref(k) for k in deps}
    return Call(_call_foreign, (node, refs))


def _call_foreign(node, values):
    return node(values)


# ------------------------------------------------------------------------- naming


def _func_name(func) -> str:
    if func is None:
        return "container"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        inner = getattr(func, "func", None)  # functools.partial
        if inner is not None:
            return _func_name(inner)
        return type(func).__name__
    return name


def _short_repr(value, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_group(key) -> str:
    """The task group of a key: its prefix before the token, as dask's key_split."""
    if type(key) is tuple:
        key = key[0] if key else "tuple"
    if type(key) is bytes:
        key = key.decode(errors="replace")
    if type(key) is not str:
        return type(key).__name__
    words = key.split("-")
    head = words[0].strip("_'()\" ,")
    parts = [head] if head else []
    for word in words[1:]:
        if len(word) >= 8 and all(c in "0123456789abcdef" for c in word):
            break
        if word.isdigit():
            break
        parts.append(word)
    return "-".join(parts) or "data"


def describe_task(key, spec: TaskSpec | None) -> str:
    """``task 'inc-1a2b' (function inc)``: how errors and panels name a task."""
    if spec is None:
        return f"task {key!r}"
    return f"task {key!r} (function {spec.function_name})"
