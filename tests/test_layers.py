"""The package's layers stay one-way: read every import of lazycell's modules (ast) and check.

Layers, lowest first (``docs/architecture.md`` draws them). A module may
import its own layer and the layers below; never one above. The one kind of
upward import allowed is a lazy one (inside a function) in a method that hands
a user's object to a higher layer: ``compute()`` / ``persist()`` (dask's own
pattern) and the notebook display methods. ``if TYPE_CHECKING:`` imports are
for annotations only and do not count. No module may take part in an import
cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "lazycell"

LAYERS: list = [  # a layer is a package prefix, or a tuple of prefixes side by side
    "lazycell._version",
    "lazycell.graph",
    "lazycell.events",
    "lazycell.schedulers",
    "lazycell.config",
    "lazycell.api",
    "lazycell.diagnostics",
    ("lazycell.distributed", "lazycell.dask_cluster"),  # the local cluster; a dask cluster
    "lazycell.widgets",
    "lazycell.kernel_ext",
    "lazycell",  # the package's own __init__ (the public surface) and lazycell.demo
]

# Methods in which a lazy upward import is allowed (the object hands itself up).
HAND_UP_METHODS = {"compute", "persist", "_repr_mimebundle_", "_ipython_display_", "_repr_html_"}

# Third-party modules that `import lazycell` must not load (they load with a panel,
# a report, a magic or a dask object).
HEAVY_MODULES = ("plotly", "ipywidgets", "IPython", "numpy", "anywidget", "dask", "pandas")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The index of ``module``'s layer in LAYERS; -1 for a module no layer holds."""
    if module in ("lazycell", "lazycell.demo"):
        return len(LAYERS) - 1
    for index, layer in enumerate(LAYERS[:-1]):
        for prefix in (layer,) if isinstance(layer, str) else layer:
            if module == prefix or module.startswith(prefix + "."):
                return index
    return -1


class Import:
    def __init__(self, source: str, target: str, line: int, function: str | None, typing: bool):
        self.source, self.target, self.line = source, target, line
        self.function = function  # the innermost function it sits in, None at module level
        self.typing = typing  # inside ``if TYPE_CHECKING:``

    def __repr__(self) -> str:
        where = f" (in {self.function}())" if self.function else ""
        return f"{self.source}:{self.line} imports {self.target}{where}"


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node, function: str | None, typing: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name, typing)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, function, True)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(source, alias.name, child.lineno, function, typing))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                for alias in child.names:
                    # ``from lazycell.x import y`` names module ``lazycell.x.y`` when y is one.
                    candidate = f"{module}.{alias.name}"
                    target = candidate if module_path(candidate) else module
                    found.append(Import(source, target, child.lineno, function, typing))
            else:
                visit(child, function, typing)

    visit(ast.parse(path.read_text(), str(path)), None, False)
    return [imp for imp in found if imp.target == "lazycell" or imp.target.startswith("lazycell.")]


def module_path(name: str) -> Path | None:
    if not (name == "lazycell" or name.startswith("lazycell.")):
        return None
    relative = Path(*name.split("."))
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        path = PACKAGE_DIR.parent / candidate
        if path.exists():
            return path
    return None


ALL_IMPORTS = [imp for path in sorted(PACKAGE_DIR.rglob("*.py")) for imp in imports_of(path)]


def is_allowed_upward(imp: Import) -> bool:
    return imp.function in HAND_UP_METHODS


def test_every_module_belongs_to_a_layer():
    modules = [module_name(path) for path in PACKAGE_DIR.rglob("*.py")]
    assert [m for m in modules if layer_of(m) < 0] == []


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        imp
        for imp in ALL_IMPORTS
        if not imp.typing
        and layer_of(imp.target) > layer_of(imp.source)
        and not is_allowed_upward(imp)
    ]
    assert upward == [], "imports that point upward:\n" + "\n".join(map(repr, upward))


def test_no_import_cycles():
    edges: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if imp.typing or is_allowed_upward(imp) or imp.target == imp.source:
            continue
        edges.setdefault(imp.source, set()).add(imp.target)
    cycles = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path, monkeypatch):
    # The rules above must be able to fail: a fake package with one of each.
    fake = tmp_path / "lazycell"
    (fake / "graph").mkdir(parents=True)
    (fake / "widgets").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "graph" / "__init__.py").write_text("")
    (fake / "graph" / "a.py").write_text("from lazycell.widgets import view\n")
    (fake / "graph" / "b.py").write_text("from lazycell.graph import a\nimport lazycell.graph.c\n")
    (fake / "graph" / "c.py").write_text("def f():\n    from lazycell.graph import b\n")
    (fake / "widgets" / "__init__.py").write_text("")
    (fake / "widgets" / "view.py").write_text(
        "def compute():\n    from lazycell.widgets import view\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", fake)
    imports = [imp for path in sorted(fake.rglob("*.py")) for imp in imports_of(path)]
    monkeypatch.setattr(sys.modules[__name__], "ALL_IMPORTS", imports)
    with pytest.raises(AssertionError, match=r"lazycell.graph.a:1 imports lazycell.widgets.view"):
        test_no_module_imports_a_layer_above_its_own()
    with pytest.raises(AssertionError, match=r"lazycell.graph.b -> lazycell.graph.c"):
        test_no_import_cycles()


def test_import_lazycell_loads_no_heavy_third_party_module():
    code = (
        f"import sys, lazycell\nprint(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


def test_every_third_party_module_imported_at_module_level_is_a_declared_dependency():
    import tomllib

    pyproject = tomllib.loads((PACKAGE_DIR.parent / "pyproject.toml").read_text())
    declared = {
        dep.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower()
        for dep in pyproject["project"]["dependencies"]
    }
    import_names = {"ipython": "IPython"}
    declared_modules = {import_names.get(name, name) for name in declared}
    stdlib = sys.stdlib_module_names
    undeclared = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "lazycell" and top not in declared_modules:
                    undeclared.append(f"{module_name(path)}: {name}")
    assert undeclared == []
