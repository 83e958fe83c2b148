"""Where a worker's ``<dynamic-code>`` frame really is: the notebook cell that defined it.

::

    kernel: a cell defines ratio()            worker process
    ──────────────────────────────            ──────────────
    compiled as /tmp/ipykernel_1/42.py ──► cloudpickle (by value) ──► co_filename
                                           renames the file            "<dynamic-code>"
    traceback / profile text  ◄──────────────────────────────────── File "<dynamic-code>",
    locate(name, line) -> "/tmp/ipykernel_1/42.py"                  line 4, in ratio

cloudpickle sends a function defined in a notebook by value and replaces its
code's file name with ``<dynamic-code>`` (so the bytes do not depend on where
it was defined). A traceback or a profile from a worker then names no file and
shows no source line. In the kernel the function still exists with its real
file name, and the cell's source is in ``linecache``, as IPython keeps it:
:class:`CodeLocator` finds the code object named ``name`` whose lines include
``line`` among the functions of a namespace (the notebook's), their classes
and nested functions, and gives its file name back.

Nothing here imports IPython: the cell's ``In[n]`` label comes from the
compiler a caller passes (IPython's ``shell.compile``).
"""

from __future__ import annotations

import functools
import linecache
import re
import sys
from types import CodeType, FunctionType

DYNAMIC_CODE = "<dynamic-code>"
# One frame line of a formatted traceback, as ``traceback`` writes it.
TRACEBACK_FRAME = re.compile(
    r'^(?P<indent> *)File "<dynamic-code>", line (?P<line>\d+), in (?P<name>.+)$'
)
MAX_OBJECTS = 20_000  # a namespace walk stops here: a huge namespace is not worth the wait


class CodeLocator:
    """``locate(name, line)``: the real file of a function sent as ``<dynamic-code>``.

    ``namespaces``: the dicts to search (default: ``__main__``'s, which is the
    notebook's in a kernel). ``compiler``: IPython's ``shell.compile``, to
    label a cell's file ``In[n]``; None: file names only.
    """

    def __init__(self, namespaces: list[dict] | None = None, compiler=None):
        if namespaces is None:
            main = sys.modules.get("__main__")
            namespaces = [vars(main)] if main is not None else []
        self.namespaces = namespaces
        self.compiler = compiler
        self._codes: dict[str, list[CodeType]] | None = None

    def codes_named(self, name: str) -> list[CodeType]:
        if self._codes is None:
            self._codes = _codes_by_name(self.namespaces)
        return self._codes.get(name, [])

    def locate(self, name: str, line: int) -> str | None:
        """The file of the code ``name`` that has line ``line``; None if none or several do."""
        files = {
            code.co_filename
            for code in self.codes_named(name)
            if code.co_filename != DYNAMIC_CODE and line in _lines_of(code)
        }
        return files.pop() if len(files) == 1 else None

    def label(self, filename: str) -> str:
        """``Cell In[5]`` for a cell's file (as IPython labels it), else ``File "..."``."""
        format_code_name = getattr(self.compiler, "format_code_name", None)
        if format_code_name is not None:
            try:
                named = format_code_name(filename)
            except Exception:  # another IPython's compiler: fall back to the file name
                named = None
            if named:
                return " ".join(named)
        return f'File "{filename}"'

    def fix_traceback_text(self, text: str) -> str:
        """``text`` (a formatted traceback) with each ``<dynamic-code>`` frame located,
        labelled as IPython labels the cell and followed by its source line."""
        if DYNAMIC_CODE not in text:
            return text
        out = []
        for line in text.splitlines(keepends=True):
            match = TRACEBACK_FRAME.match(line.rstrip("\n"))
            filename = self.locate(match["name"], int(match["line"])) if match else None
            if match is None or filename is None:
                out.append(line)
                continue
            number = int(match["line"])
            indent = match["indent"]
            out.append(f"{indent}{self.label(filename)}, line {number}, in {match['name']}\n")
            source = linecache.getline(filename, number).strip()
            if source:
                out.append(f"{indent}  {source}\n")
        return "".join(out)


def _lines_of(code: CodeType) -> set[int]:
    return {line for _, _, line in code.co_lines() if line is not None}


def _codes_by_name(namespaces: list[dict]) -> dict[str, list[CodeType]]:
    """Every code object reachable from the namespaces' functions and classes, by name."""
    found: dict[str, list[CodeType]] = {}
    seen: set[int] = set()
    pending: list = [value for namespace in namespaces for value in list(namespace.values())]
    while pending and len(seen) < MAX_OBJECTS:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, functools.partial):
            pending.append(value.func)
        elif isinstance(value, FunctionType):
            pending.append(value.__code__)
            wrapped = getattr(value, "__wrapped__", None)
            if wrapped is not None:
                pending.append(wrapped)
        elif isinstance(value, CodeType):
            found.setdefault(value.co_name, []).append(value)
            pending.extend(c for c in value.co_consts if isinstance(c, CodeType))
        elif isinstance(value, type) and value.__module__ == "__main__":
            pending.extend(vars(value).values())
        elif isinstance(value, (staticmethod, classmethod)):
            pending.append(value.__func__)
        elif callable(getattr(value, "func", None)) and type(value).__module__.startswith(
            "lazycell"
        ):  # a lazycell delayed function keeps the user's function as ``func``
            pending.append(value.func)
    return found
