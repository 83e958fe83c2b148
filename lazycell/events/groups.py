"""Naming the task group of every key of a compute, cheaply.

A compute of 10,000 tasks has a handful of groups (``inc``, ``sum``...); the
panel counts progress per group. Naming each key costs a call per key, so
keys are grouped by what comes before their trailing token and the group is
named once per prefix.
"""

from __future__ import annotations

from itertools import repeat
from operator import getitem, itemgetter


def group_keys(keys, group_of) -> dict:
    """``{key: group_of(key)}``, calling ``group_of`` about once per group, not per key.

    Keys of one group differ only in a trailing token (``"inc-3f2a..."``,
    ``("sum-9c1e...", 4)``): the group is cached by what comes before it.
    """
    keys = list(keys)
    fast = _group_token_keys(keys, group_of)
    if fast is not None:
        return fast
    groups_of: dict = {}
    cache: dict = {}
    hex_digits = "0123456789abcdef"
    for key in keys:
        prefix = key[0] if type(key) is tuple and key else key
        if type(prefix) is str:
            head, sep, tail = prefix.rpartition("-")
            cache_key = head if sep and len(tail) >= 8 and not tail.strip(hex_digits) else prefix
            group = cache.get(cache_key)
            if group is None:
                group = cache[cache_key] = group_of(key)
        else:
            group = group_of(key)
        groups_of[key] = group
    return groups_of


def _group_token_keys(keys: list, group_of) -> dict | None:
    """:func:`group_keys` for the common case, string keys that all end in a token, in C loops.

    ``"inc-3f2a..."``: everything before the last ``-`` names the group when
    every tail is at least 8 hex digits. None when the keys are anything else.
    """
    if not keys or set(map(type, keys)) != {str}:
        return None
    return _group_equal_token_keys(keys, group_of) or _group_mixed_token_keys(keys, group_of)


def _group_equal_token_keys(keys: list, group_of) -> dict | None:
    """Keys whose tokens all have the first key's length (lazycell's and dask's: 32 digits).

    Slices only: no tuple per key, which would cost the garbage collector a pass
    every 700 keys.
    """
    first = keys[0]
    width = len(first) - first.rfind("-")  # the "-" and the token after it
    if not 9 <= width <= len(first):
        return None
    n = len(keys)
    ends = "".join(map(getitem, keys, repeat(slice(-width, None))))
    # Every key long enough, a "-" at the start of each end and nowhere else,
    # the rest hex digits.
    if len(ends) != width * n or ends.count("-") != n or ends[::width].count("-") != n:
        return None
    if not ends.isascii() or ends.encode().translate(None, b"-0123456789abcdef"):
        return None
    heads = list(map(getitem, keys, repeat(slice(None, -width))))
    token = first[-width:]
    group_of_head = {head: group_of(head + token) for head in set(heads)}
    return dict(zip(keys, map(group_of_head.__getitem__, heads)))


def _group_mixed_token_keys(keys: list, group_of) -> dict | None:
    """Keys ending in tokens of different lengths."""
    parts = list(map(str.rpartition, keys, repeat("-")))
    if set(map(itemgetter(1), parts)) != {"-"}:
        return None  # a key without "-": no token to strip
    tails = list(map(itemgetter(2), parts))
    if min(map(len, tails)) < 8:
        return None
    try:
        if "".join(tails).encode("ascii").translate(None, b"0123456789abcdef"):
            return None  # some tail is not a token
    except UnicodeEncodeError:
        return None
    heads = list(map(itemgetter(0), parts))
    one_key_per_head = dict(zip(heads, keys))
    group_of_head = {head: group_of(key) for head, key in one_key_per_head.items()}
    return dict(zip(keys, map(group_of_head.__getitem__, heads)))
