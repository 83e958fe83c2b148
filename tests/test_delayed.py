"""The lazy API: building tasks with lc.delayed and computing them."""

import operator

import pytest

import lazycell as lc


@lc.delayed
def inc(x):
    return x + 1


@lc.delayed
def add(x, y):
    return x + y


@lc.delayed(pure=True)
def pure_add(x, y):
    return x + y


def divmod_pair(a, b):
    return divmod(a, b)


class Box:
    def __init__(self, value):
        self.value = value

    def scaled(self, factor, offset=0):
        return self.value * factor + offset


def test_decorator_builds_a_task_instead_of_calling():
    calls = []

    @lc.delayed
    def record(x):
        calls.append(x)
        return x

    lazy = record(5)
    assert calls == []
    assert isinstance(lazy, lc.Delayed)
    assert lazy.compute() == 5
    assert calls == [5]


def test_wrapper_form_and_name_option_set_the_key_prefix():
    lazy = lc.delayed(operator.add, name="plus")(1, 2)
    assert lazy.key.startswith("plus-")
    assert lazy.compute() == 3


def test_chained_calls_compute_through_dependencies():
    assert inc(inc(inc(1))).compute() == 4


def test_lazy_arguments_nested_in_containers_are_computed():
    @lc.delayed
    def describe(items, mapping, pair, members):
        return sum(items), mapping["b"], pair[1], sorted(members)

    lazy = describe([inc(1), inc(2)], {"b": inc(10)}, (0, inc(20)), {inc(30), 5})
    assert lazy.compute() == (5, 11, 21, [5, 31])


def test_delayed_wraps_plain_values_and_containers_of_lazy_values():
    assert lc.delayed(41).compute() == 41
    assert lc.delayed([inc(1), {"k": inc(2)}]).compute() == [2, {"k": 3}]


def test_pure_true_gives_the_same_key_for_the_same_inputs():
    assert pure_add(1, 2).key == pure_add(1, 2).key
    assert pure_add(1, 2).key != pure_add(2, 1).key
    assert add(1, 2).key != add(1, 2).key  # impure by default


def test_attribute_access_and_method_calls_build_tasks():
    box = lc.delayed(Box)(3)
    assert box.value.compute() == 3
    assert box.scaled(2, offset=1).compute() == 7


def test_indexing_builds_a_task():
    assert lc.delayed({"a": [10, 20]})["a"][1].compute() == 20


@pytest.mark.parametrize(
    "op, expected",
    [
        (operator.add, 9),
        (operator.sub, 5),
        (operator.mul, 14),
        (operator.truediv, 3.5),
        (operator.floordiv, 3),
        (operator.mod, 1),
        (operator.pow, 49),
        (operator.lt, False),
        (operator.le, False),
        (operator.eq, False),
        (operator.ne, True),
        (operator.gt, True),
        (operator.ge, True),
        (operator.and_, 2),
        (operator.or_, 7),
        (operator.xor, 5),
        (operator.lshift, 28),
        (operator.rshift, 1),
    ],
)
def test_binary_operators_on_lazy_values(op, expected):
    seven = lc.delayed(7)
    two = lc.delayed(2)
    assert op(seven, two).compute() == expected
    assert op(seven, 2).compute() == expected
    assert op(7, two).compute() == expected


def test_unary_operators_on_lazy_values():
    x = lc.delayed(-3)
    assert (-x).compute() == 3
    assert (+x).compute() == -3
    assert abs(x).compute() == 3
    assert (~x).compute() == 2


def test_calling_a_lazy_callable():
    assert lc.delayed(len)("abcd").compute() == 4
    lazy_func = lc.delayed(max)
    assert lazy_func(3, 9, 4).compute() == 9


def test_nout_allows_unpacking():
    quotient, remainder = lc.delayed(divmod_pair, nout=2)(17, 5)
    assert (quotient.compute(), remainder.compute()) == (3, 2)


def test_truth_value_and_unknown_length_are_clear_errors():
    lazy = inc(1)
    with pytest.raises(TypeError, match="truth value of a lazy value"):
        bool(lazy)
    with pytest.raises(TypeError, match="nout="):
        len(lazy)
    with pytest.raises(TypeError, match="immutable"):
        lazy.value = 3


def test_compute_shares_inputs_and_runs_them_once():
    calls = []

    @lc.delayed
    def load(x):
        calls.append(x)
        return x

    shared = load(5)
    a, b = lc.compute(inc(shared), add(shared, 1), scheduler="sync")
    assert (a, b) == (6, 6)
    assert calls == [5]


def test_compute_repacks_nested_structures_and_passes_plain_values():
    result = lc.compute({"a": inc(1), "b": [inc(2), 7]}, "plain", scheduler="sync")
    assert result == ({"a": 2, "b": [3, 7]}, "plain")


def test_persist_returns_lazy_objects_that_do_not_recompute():
    calls = []

    @lc.delayed
    def expensive(x):
        calls.append(x)
        return x * 10

    (held,) = lc.persist(expensive(4), scheduler="sync")
    assert isinstance(held, lc.Delayed)
    assert inc(held).compute() == 41
    assert held.compute() == 40
    assert calls == [4]


def test_graph_of_returns_every_task_once():
    shared = inc(1)
    total = add(inc(shared), inc(shared))
    graph = lc.graph_of(total)
    assert len(graph) == 4
    assert total.key in graph and shared.key in graph
    assert set(graph[total.key].deps) == set(graph) - {total.key, shared.key}


def test_building_and_computing_a_long_chain_has_no_recursion_limit():
    x = lc.delayed(0)
    for _ in range(20_000):
        x = inc(x)
    assert x.compute(scheduler="sync") == 20_000


def test_unknown_compute_option_is_a_clear_error():
    with pytest.raises(TypeError, match="unknown option"):
        inc(1).compute(num_wokers=2)


def test_persist_of_several_objects_computes_shared_inputs_once():
    calls = []

    @lc.delayed
    def load(x):
        calls.append(x)
        return x

    shared = load(2)
    first, second = lc.persist(inc(shared), add(shared, 10), scheduler="threads")
    assert (first.compute(), second.compute()) == (3, 12)
    assert calls == [2]
