"""A cell's code, run in the user's namespace, with its last expression computed.

``%%compute`` runs the cell like IPython would — statements first, then the
last expression, whose value becomes ``Out[n]`` — except that the lazy
objects held by that value are computed, all in one graph. The code is
compiled under a name registered with the shell's compiler when there is one,
so tracebacks and pdb show the cell's lines ("Cell In[5], line 3").

The last expression ``EXPR`` is compiled as ``__import__("lazycell").compute(EXPR)[0]``
at EXPR's line: the compute then runs *inside the cell's frame*, so a failing
task's traceback goes from the cell's line to the task's function, and pdb's
``up`` from the task lands on that line with the user's names at hand.

>>> code = CellCode.compile("x = lc.delayed(inc)(1)\\n[x, x]")
>>> code.run(namespace)
[2, 2]
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any


@dataclass(frozen=True)
class CellCode:
    """The compiled statements of a cell and, apart, its last expression (if it ends in one)."""

    statements: CodeType | None
    last_expression: CodeType | None

    @property
    def ends_in_expression(self) -> bool:
        return self.last_expression is not None

    @classmethod
    def compile(
        cls,
        source: str,
        filename: str = "<lazycell-cell>",
        first_line: int = 1,
        compiler: Callable[..., CodeType] = compile,
        parse: Callable[[str], ast.Module] = ast.parse,
    ) -> CellCode:
        """Compile ``source``; ``first_line`` is the line the code starts on in ``filename``.

        ``compiler`` and ``parse`` default to the builtins; the magics pass the
        shell's, so ``from __future__`` flags of earlier cells still apply.
        Raises ``SyntaxError`` before anything runs.
        """
        tree = parse(source)
        if first_line != 1:
            ast.increment_lineno(tree, first_line - 1)
        return cls.from_tree(tree, filename, compiler)

    @classmethod
    def from_tree(
        cls, tree: ast.Module, filename: str, compiler: Callable[..., CodeType] = compile
    ) -> CellCode:
        body = list(tree.body)
        last = None
        if body and isinstance(body[-1], ast.Expr):
            last = computed_in_place(body.pop().value)
        statements = compiler(ast.Module(body, []), filename, "exec") if body else None
        last_expression = compiler(last, filename, "eval") if last is not None else None
        return cls(statements, last_expression)

    def run(self, global_ns: dict, local_ns: dict | None = None) -> Any:
        """Run the statements, then compute the last expression's lazy objects.

        Returns the concrete value of the last expression (``None`` if the
        cell does not end in one). Lazy objects nested in lists, tuples, dicts
        and sets are computed together; anything else is returned as it is.
        Uses the scheduler from ``lc.config``, so wrap the call in
        ``SchedulerChoice.applied()`` to choose one.
        """
        local_ns = global_ns if local_ns is None else local_ns
        if self.statements is not None:
            exec(self.statements, global_ns, local_ns)
        if self.last_expression is None:
            return None
        return eval(self.last_expression, global_ns, local_ns)


def computed_in_place(expression: ast.expr) -> ast.Expression:
    """``EXPR`` -> ``__import__("lazycell").compute(EXPR)[0]``, all at EXPR's position.

    ``lc.compute`` computes the lazy objects in the value together and
    passes anything else through unchanged.
    """
    wrapper = ast.parse('__import__("lazycell").compute(EXPR)[0]', mode="eval")
    for node in ast.walk(wrapper):
        if "lineno" in node._attributes:
            ast.copy_location(node, expression)
    wrapper.body.value.args[0] = expression
    return wrapper
