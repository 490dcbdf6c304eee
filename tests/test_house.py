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
import re
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
    "templating": 0,
    "keras_backend": 0,
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
        self._trees: dict[Path, ast.Module] = {}
        self._stubs: dict[str, dict[str, str]] = {}
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            self.paths[".".join(parts)] = path

    def parse(self, path: Path) -> ast.Module:
        """The syntax tree of ``path``, read once."""
        if path not in self._trees:
            self._trees[path] = ast.parse(path.read_text(), filename=str(path))
        return self._trees[path]

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
        if package in self._stubs:
            return self._stubs[package]
        init = self.paths.get(f"{package}.__init__")
        found: dict[str, str] = {}
        if init is not None:
            stub = init.with_suffix(".pyi")
            for node in self.parse(stub if stub.is_file() else init).body:
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                    for alias in node.names:
                        found[alias.asname or alias.name] = f"{package}.{node.module}"
        self._stubs[package] = found
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
        for node in ast.walk(self.parse(self.paths[module])):
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
        for node in ast.walk(self.parse(path)):
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
        for node in ast.walk(self.parse(path)):
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
        for node in ast.walk(tree.parse(tree.paths[module])):
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


# ----------------------------------------------------------------------------- the house


@pytest.fixture(scope="module")
def house() -> Tree:
    return Tree(REPO / "covidct")


def test_the_guard_sees_the_house(house: Tree) -> None:
    """Every top-level package and module has a floor, and the guard reads real imports."""
    tops = {name.split(".")[1] for name in house.paths if name.count(".") >= 1}
    tops = {top.removesuffix(".__init__") for top in tops}
    assert tops <= set(FLOORS), f"no floor for {sorted(tops - set(FLOORS))}"
    edges = {(i.source, i.target) for m in house.paths for i in house.imports(m)}
    assert ("covidct.pipeline.confirmation", "covidct.promotion.deployable") in edges
    # through the evaluation face, to the module that defines the name
    assert ("covidct.pipeline.confirmation", "covidct.evaluation.predictions") in edges


def test_no_import_circles(house: Tree) -> None:
    assert circles(house) == []


def test_imports_go_down_only(house: Tree) -> None:
    assert upward_imports(house, FLOORS) == []


def test_no_private_name_crosses_modules(house: Tree) -> None:
    assert private_imports(house) == []


def test_the_architecture_document_draws_these_floors() -> None:
    """``docs/architecture.md``'s floors table names each package and top-level module on the
    floor this guard holds it to (``dags/`` and ``plugins/`` sit on the top floor, outside)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## Floors") :]
    section = section[: section.index("\n\n", section.index("| floor |"))]
    drawn: dict[str, int] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in re.findall(r"`([a-z_]+)/?`", cells[1]):
                drawn[name] = int(cells[0])
    expected = {name: floor for name, floor in FLOORS.items() if name != "__init__"}
    assert {n: f for n, f in drawn.items() if n not in ("dags", "plugins")} == expected


# ----------------------------------------------------------------- the guard on planted trees

PLANTED_FLOORS = {"__init__": 0, "low": 0, "mid": 1, "top": 2}


def _plant(root: Path, files: Mapping[str, str]) -> Path:
    """A package ``pkg`` under ``root`` with ``files`` (path -> source); returns its folder."""
    package = root / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return package


def test_the_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "low.py": "def helper():\n    return 1\n",
            "mid/__init__.py": "",
            "mid/__init__.pyi": "from .a import name as name\n",
            "mid/a.py": "from pkg.low import helper\nname = helper()\n",
            "mid/b.py": "from pkg.mid import name\nfrom pkg.mid.a import name as again\n",
            "top.py": "from pkg import mid\nvalue = mid.name\n",
        },
    )
    assert house_faults(package, PLANTED_FLOORS) == {"circles": [], "upward": [], "private": []}


def test_the_checker_fails_on_a_planted_circle(tmp_path: Path) -> None:
    """A circle through a package face (``b`` imports ``name`` from ``mid``, which ``a``
    defines) and one hidden under ``TYPE_CHECKING``."""
    package = _plant(
        tmp_path,
        {
            "low.py": "",
            "mid/__init__.py": "",
            "mid/__init__.pyi": "from .a import name as name\nfrom .b import other as other\n",
            "mid/a.py": "from pkg.mid.b import other\nname = 1\n",
            "mid/b.py": "from pkg.mid import name\nother = 2\n",
            "mid/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.mid.d import D\n"
            ),
            "mid/d.py": "def f():\n    from pkg.mid import c\n    return c\nclass D: ...\n",
        },
    )
    faults = house_faults(package, PLANTED_FLOORS)
    assert faults["circles"] == [["pkg.mid.a", "pkg.mid.b"], ["pkg.mid.c", "pkg.mid.d"]]


def test_the_checker_fails_on_an_upward_import(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "low.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.top import Thing\n"
            ),
            "top.py": "class Thing: ...\n",
        },
    )
    assert house_faults(package, PLANTED_FLOORS)["upward"] == ["pkg.low:3 -> pkg.top"]


def test_the_checker_fails_on_a_planted_private_import(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "low.py": "_secret = 1\n",
            "mid/__init__.py": "",
            "mid/a.py": "from pkg.low import _secret\n",
            "mid/b.py": "from pkg import low\nvalue = low._secret\n",
            "mid/c.py": "import pkg.low as lo\nvalue = lo._secret + lo.__name__.count('x')\n",
            "mid/d.py": "from ..low import _secret as mine\n",
        },
    )
    assert sorted(house_faults(package, PLANTED_FLOORS)["private"]) == [
        "pkg.mid.a:1 from pkg.low import _secret",
        "pkg.mid.b:2 low._secret",
        "pkg.mid.c:2 lo._secret",
        "pkg.mid.d:1 from pkg.low import _secret",
    ]
