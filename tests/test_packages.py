"""Package guards (issue 14, item 5): each package re-exports its modules' public names, lazily.

* Every public top-level name (function, class, constant) of a package's modules is listed in the
  package's ``_EXPORTS`` with the module that defines it, and in ``__all__`` (read with
  :mod:`ast`, nothing imported), so ``from covidct.<package> import <name>`` keeps working when a
  module is split.
* Each listed name resolves, through the package, to the very object its module defines.
* Importing a light module does not import the heavy dependencies of its package's other
  modules (the re-exports are imported on first use, PEP 562).
* No module of ``covidct/`` exceeds 500 lines.
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
PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py") if p.parent.name != "dicom")
MAX_MODULE_LINES = 500


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
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_EXPORTS":
            return ast.literal_eval(node.value)  # type: ignore[arg-type]
    raise AssertionError(f"covidct/{package}/__init__.py has no _EXPORTS")


def _all(package: str) -> list[str]:
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"covidct/{package}/__init__.py has no __all__")


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
    assert sorted(_all(package)) == sorted(exports), f"covidct.{package}: __all__ != _EXPORTS"
    for name, module in exports.items():
        source = PACKAGE / Path(*module.split(".")[1:]).with_suffix(".py")
        assert source.is_file(), f"covidct.{package}.{name}: no module {module}"


@pytest.mark.parametrize("package", PACKAGES)
def test_re_exports_are_the_modules_objects(package: str) -> None:
    imported = importlib.import_module(f"covidct.{package}")
    for name, module in _exports(package).items():
        assert getattr(imported, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
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
