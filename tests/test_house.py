"""House guards (issue 34, item 1), read from the source with :mod:`ast`, nothing imported.

The packages of ``covidct`` stand on floors, bottom to top (``docs/architecture.md``, "Floors"):

==== =========================================================================
0    ``schema``, ``safe_csv``, ``config``, ``alerts`` (and the package's ``__init__``)
1    ``batch``
2    ``lake``
3    ``data``
4    ``models``
5    ``training``
6    ``evaluation``
7    ``promotion``
8    ``report``
9    ``pipeline``
10   ``cli``, ``demo`` (and, outside the package, ``dags/``)
==== =========================================================================

Three rules, each checked over every import of every module, at module level, under
``TYPE_CHECKING`` and inside functions alike (a deferred import is still a dependency):

* **Imports go down only**: a module imports modules of its own floor or of floors below.
* **No circles**, module to module: an import of a package face (``from covidct.evaluation
  import x``) counts as an import of the module that defines ``x`` (read from the package's
  ``__init__.pyi``); the faces themselves (``__init__.py``, ``__init__.pyi``) are aside.
* **No private name crosses modules**: no ``from m import _x`` and no ``m._x`` where ``m`` is
  another ``covidct`` module imported by name.

The checker (:func:`house_faults`) takes the root of a package tree and its floors, so the tests
at the end prove that it fails on a planted circle, a planted upward import and a planted private
import in a temporary tree.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Floor of each top-level name of ``covidct`` (a package or a module), bottom (0) to top.
FLOORS: dict[str, int] = {
    "__init__": 0,
    "schema": 0,
    "safe_csv": 0,
    "config": 0,
    "alerts": 0,
    "batch": 1,
    "lake": 2,
    "data": 3,
    "models": 4,
    "training": 5,
    "evaluation": 6,
    "promotion": 7,
    "report": 8,
    "pipeline": 9,
    "cli": 10,
    "demo": 10,
}


@dataclass(frozen=True)
class Import:
    """One dependency of ``source`` on ``target`` (dotted module names) at ``line``; ``names``
    are the names it takes (empty for ``import m``)."""

    source: str
    target: str
    line: int
    names: tuple[str, ...]


class Tree:
    """The modules of the package at ``root`` (a folder with ``__init__.py``), by dotted name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = root.name
        self.paths: dict[str, Path] = {}
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            self.paths[".".join(parts)] = path

    def is_face(self, module: str) -> bool:
        return self.paths[module].name == "__init__.py"

    def is_module(self, name: str) -> bool:
        return name in self.paths or f"{name}.__init__" in self.paths

    def module_of(self, name: str) -> str:
        """The key of ``name`` in :attr:`paths` (a package is its ``__init__``)."""
        return name if name in self.paths else f"{name}.__init__"

    def stub(self, package: str) -> dict[str, str]:
        """Name -> defining module, from ``package``'s ``__init__.pyi`` (empty when none) or, for
        a plain face, from its ``from .m import name`` lines."""
        init = self.paths.get(f"{package}.__init__")
        if init is None:
            return {}
        stub = init.with_suffix(".pyi")
        source = stub if stub.is_file() else init
        found: dict[str, str] = {}
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                for alias in node.names:
                    found[alias.asname or alias.name] = f"{package}.{node.module}"
        return found

    def resolve(self, package: str, name: str) -> str:
        """The module that ``from package import name`` depends on."""
        if self.is_module(f"{package}.{name}"):
            return self.module_of(f"{package}.{name}")
        defined = self.stub(package).get(name)
        if defined is not None and self.is_module(defined):
            return self.module_of(defined)
        return self.module_of(package)

    def imports(self, module: str) -> Iterator[Import]:
        """Every import of ``module`` that lands in this tree, and, for a package face bound to
        a name (``from covidct import pipeline``), each ``pipeline.name`` used: an import of the
        module that defines ``name``."""
        faces = {}
        for imp in self.statements(module):
            yield imp
            if (
                imp.names
                and self.is_face(imp.target)
                and imp.target.endswith(f".{imp.names[0]}.__init__")
            ):
                faces[imp.names[0]] = imp.target.removesuffix(".__init__")
        if not faces:
            return
        for node in ast.walk(ast.parse(self.paths[module].read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in faces
            ):
                package = faces[node.value.id]
                yield Import(module, self.resolve(package, node.attr), node.lineno, (node.attr,))

    def statements(self, module: str) -> Iterator[Import]:
        """The import statements of ``module`` that land in this tree, one per name taken."""
        path = self.paths[module]
        here = module.split(".")[:-1]  # the package that holds it (a face: its own package)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == self.package and self.is_module(alias.name):
                        yield Import(module, self.module_of(alias.name), node.lineno, ())
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if target.split(".")[0] != self.package or not self.is_module(target):
                    continue
                for alias in node.names:
                    yield Import(
                        module, self.resolve(target, alias.name), node.lineno, (alias.name,)
                    )

    def module_aliases(self, module: str) -> dict[str, str]:
        """Local name -> module, for each module of this tree that ``module`` binds to a name
        (``import a.b as m``, ``from a import b`` where ``b`` is a module)."""
        aliases: dict[str, str] = {}
        for imp in self.statements(module):
            if imp.names:
                name = imp.names[0]
                if imp.target.rsplit(".", 1)[-1] == name or imp.target.endswith(f"{name}.__init__"):
                    aliases[name] = imp.target
        path = self.paths[module]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and self.is_module(alias.name):
                        aliases[alias.asname] = self.module_of(alias.name)
        return aliases


def floor_of(module: str, floors: Mapping[str, int]) -> int:
    """The floor of ``module`` (``pkg.top...``), from its top-level name under the package."""
    parts = module.split(".")
    return floors[parts[1] if len(parts) > 1 else "__init__"]


def upward_imports(tree: Tree, floors: Mapping[str, int]) -> list[str]:
    """``source:line -> target`` for every import of a module on a higher floor."""
    found = []
    for module in tree.paths:
        if tree.is_face(module):
            continue
        for imp in tree.imports(module):
            if floor_of(imp.target, floors) > floor_of(module, floors):
                found.append(f"{module}:{imp.line} -> {imp.target}")
    return found


def private_imports(tree: Tree) -> list[str]:
    """``source:line name`` for every private name of another module that a module takes."""
    found = []
    for module in tree.paths:
        if tree.is_face(module):
            continue
        for imp in tree.imports(module):
            for name in imp.names:
                if name.startswith("_") and not name.startswith("__") and imp.target != module:
                    found.append(f"{module}:{imp.line} from {imp.target} import {name}")
        aliases = tree.module_aliases(module)
        for node in ast.walk(ast.parse(tree.paths[module].read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{module}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def circles(tree: Tree) -> list[list[str]]:
    """Each strongly connected group of two or more modules (faces aside), as sorted names; a
    module that imports itself counts too."""
    graph: dict[str, set[str]] = {m: set() for m in tree.paths if not tree.is_face(m)}
    for module in graph:
        graph[module] = {imp.target for imp in tree.imports(module) if not tree.is_face(imp.target)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def house_faults(root: Path, floors: Mapping[str, int]) -> dict[str, list]:
    """The three rules over the package at ``root``: ``{"circles": [...], "upward": [...],
    "private": [...]}``, each empty when the house is in order."""
    tree = Tree(root)
    return {
        "circles": circles(tree),
        "upward": upward_imports(tree, floors),
        "private": private_imports(tree),
    }
