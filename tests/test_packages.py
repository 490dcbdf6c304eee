"""Package guards (issue 14, item 5; issue 34, item 3): each package re-exports its modules'
public names, lazily, from one list.

* A package's public names are written once, in its ``__init__.pyi`` (``from .module import
  name as name``), which ``lazy_loader.attach_stub`` reads at run time and type checkers read
  for types; ``__init__.py`` holds the docstring and that one call.
* Every public top-level name (function, class, constant) of a package's modules is in the
  stub (read with :mod:`ast`, nothing imported), so ``from covidct.<package> import <name>``
  keeps working when a module is split; ``dir()`` and ``__all__`` list exactly the stub's names.
* Each listed name resolves, through the package, to the very object its module defines.
* Importing a light module does not import the heavy dependencies of its package's other
  modules (the re-exports are imported on first use, PEP 562).
* No module of ``covidct/`` exceeds 500 lines; the package faces total under 400 lines.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "covidct"
PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.pyi"))
MAX_MODULE_LINES = 500
MAX_FACE_LINES = 400


def _public_names(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [name for name in names if not name.startswith("_") and name != "logger"]


def _exports(package: str) -> dict[str, str]:
    """The stub's names: name -> defining module (``covidct.<package>.<module>``)."""
    exports: dict[str, str] = {}
    for node in ast.parse((PACKAGE / package / "__init__.pyi").read_text()).body:
        if isinstance(node, ast.ImportFrom):
            assert node.level == 1 and node.module, f"covidct.{package}: stub imports {node.module}"
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: write `name as name`"
                assert alias.name not in exports, f"covidct.{package}: {alias.name} listed twice"
                exports[alias.name] = f"covidct.{package}.{node.module}"
    return exports


def test_the_guards_see_the_packages() -> None:
    assert {"batch", "lake", "data", "models", "training", "evaluation", "pipeline"} <= set(
        PACKAGES
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_re_exported(package: str) -> None:
    exports = _exports(package)
    submodules = {path.stem for path in (PACKAGE / package).glob("*.py")}
    missing = []
    for path in sorted((PACKAGE / package).glob("*.py")):
        if path.name == "__init__.py":
            continue
        for name in _public_names(path):
            if name in submodules:  # a submodule of that name wins: import it as a module
                continue
            if name not in exports:
                missing.append(f"{path.stem}.{name}")
    assert missing == [], f"covidct.{package} does not re-export {missing}"
    for name, module in exports.items():
        source = PACKAGE / Path(*module.split(".")[1:]).with_suffix(".py")
        assert source.is_file(), f"covidct.{package}.{name}: no module {module}"


@pytest.mark.parametrize("package", PACKAGES)
def test_re_exports_are_the_modules_objects(package: str) -> None:
    imported = importlib.import_module(f"covidct.{package}")
    exports = _exports(package)
    assert sorted(imported.__all__) == sorted(exports)
    assert sorted(dir(imported)) == sorted(exports)
    for name, module in exports.items():
        assert getattr(imported, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = imported.no_such_name


def test_a_light_module_imports_no_heavy_sibling() -> None:
    code = (
        "import sys\n"
        "import covidct.data.sequester, covidct.evaluation.metrics, covidct.promotion.gate\n"
        "import covidct.lake.custody, covidct.batch.validation\n"
        "from covidct.data import key_position\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow', 'matplotlib') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_no_module_exceeds_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines"


def test_package_faces_are_short() -> None:
    faces = sorted(PACKAGE.glob("*/__init__.py"))
    total = sum(len(path.read_text().splitlines()) for path in faces)
    assert total < MAX_FACE_LINES, f"package faces total {total} lines"
