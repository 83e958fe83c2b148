"""Keys of tasks: random for ordinary tasks, content hashes for ``pure=True`` ones."""

from __future__ import annotations

import hashlib
import pickle
import secrets
import sys
from collections.abc import Hashable


def random_key(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(16)}"


def pure_key(prefix: str, *parts) -> str:
    return f"{prefix}-{tokenize(*parts)}"


def tokenize(*objs) -> str:
    """A deterministic hex token of ``objs``: equal inputs, equal token.

    Lazy objects count by their key, functions by module and name (by their
    pickled code when they have no importable name), arrays by content.
    An object that cannot be described deterministically gets a random token,
    so it never collides with another.
    """
    h = hashlib.sha1()
    for obj in objs:
        _feed(h, obj, 0)
    return h.hexdigest()


def _feed(h, obj, depth: int) -> None:
    t = type(obj)
    if obj is None or t in (bool, int, float, complex, str, bytes):
        h.update(f"{t.__name__}:{obj!r};".encode())
        return
    if depth > 50:
        h.update(secrets.token_bytes(16))
        return
    key = getattr(obj, "_lazycell_key", None)
    if isinstance(key, Hashable) and key is not None and not isinstance(obj, type):
        h.update(f"lazy:{key!r};".encode())
        return
    if t in (tuple, list):
        h.update(f"{t.__name__}[{len(obj)}:".encode())
        for item in obj:
            _feed(h, item, depth + 1)
        h.update(b"]")
        return
    if t is dict:
        h.update(b"dict{")
        items = [(tokenize(k), v) for k, v in obj.items()]
        for k, v in sorted(items, key=lambda kv: kv[0]):
            h.update(k.encode())
            _feed(h, v, depth + 1)
        h.update(b"}")
        return
    if t in (set, frozenset):
        h.update(b"set{")
        for token in sorted(tokenize(item) for item in obj):
            h.update(token.encode())
        h.update(b"}")
        return
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.ndarray):
        h.update(f"ndarray:{obj.dtype.str}:{obj.shape};".encode())
        if obj.dtype.hasobject:
            h.update(_pickled_or_random(obj))
        else:
            h.update(hashlib.sha1(numpy.ascontiguousarray(obj).view("u1").data).digest())
        return
    if callable(obj):
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if module and qualname and "<" not in qualname and module != "__main__":
            h.update(f"func:{module}.{qualname};".encode())
            return
        try:
            import cloudpickle

            h.update(cloudpickle.dumps(obj))
        except Exception:
            h.update(secrets.token_bytes(16))
        return
    h.update(_pickled_or_random(obj))


def _pickled_or_random(obj) -> bytes:
    try:
        return hashlib.sha1(pickle.dumps(obj, protocol=5)).digest()
    except Exception:
        return secrets.token_bytes(16)
