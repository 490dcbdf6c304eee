"""Layering guards (issue 14, item 7), read from the source with :mod:`ast`, nothing imported.

* ``covidct`` never imports Airflow: the library runs from a REPL, a test or the CLI; only
  ``dags/`` and ``plugins/`` wire it into Airflow.
* One module opens TIFF slices for reading: :mod:`covidct.batch.slices` (``read_slice``, with the
  header and decompression-bomb checks). Writers (``tifffile.imwrite``), types and exceptions
  (``tifffile.TiffPage``, ``tifffile.TiffFileError``) are not reads.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "covidct"
#: tifffile names that read an image file.
TIFF_READERS = frozenset({"imread", "TiffFile", "TiffSequence", "memmap"})
#: The one reader of slices.
SLICE_READER = "covidct/batch/slices.py"
#: Modules besides the reader allowed to open a TIFF, each with the reason (none today: the
#: manifest's facts of hostile files are read by :func:`covidct.batch.slices.read_slice_facts`).
TIFF_READER_EXCEPTIONS: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def airflow_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, module)`` of each ``import airflow...`` / ``from airflow... import``, nested too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name == "airflow" or name.startswith("airflow."):
                yield node.lineno, name


def tiff_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, name)`` of every use of a tifffile reader: ``tifffile.imread``, a module alias
    of tifffile, or a reader imported by name (``from tifffile import TiffFile``)."""
    aliases = {"tifffile"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "tifffile"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "tifffile":
            for alias in node.names:
                if alias.name in TIFF_READERS or alias.name == "*":
                    yield node.lineno, f"from tifffile import {alias.name}"
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr in TIFF_READERS
        ):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def test_the_guards_see_the_package() -> None:
    names = {_name(path) for path in _modules()}
    assert {SLICE_READER, "covidct/pipeline/__init__.py", "covidct/batch/dicom/ingest.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_library_never_imports_airflow(path: Path) -> None:
    found = list(airflow_imports(ast.parse(path.read_text(), filename=str(path))))
    assert found == [], f"{_name(path)} imports Airflow at (line, module) {found}"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_only_the_slice_reader_opens_tiffs(path: Path) -> None:
    name = _name(path)
    found = list(tiff_reads(ast.parse(path.read_text(), filename=str(path))))
    if name == SLICE_READER or name in TIFF_READER_EXCEPTIONS:
        return
    assert found == [], (
        f"{name} reads TIFFs itself at (line, call) {found}; "
        f"read slices with covidct.batch.slices.read_slice ({SLICE_READER})"
    )


def test_the_reader_and_each_exception_do_read_tiffs() -> None:
    """An exception that no longer reads a TIFF is stale: drop it from the list."""
    for name in (SLICE_READER, *TIFF_READER_EXCEPTIONS):
        path = REPO / name
        assert list(tiff_reads(ast.parse(path.read_text()))), f"{name} reads no TIFF"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import airflow", [(1, "airflow")]),
        ("def f():\n    from airflow.sdk import task", [(2, "airflow.sdk")]),
        ("import airflow_client", []),
        ("from .airflow import x", []),
        ("import covidct.pipeline", []),
    ],
)
def test_airflow_import_finder(source: str, expected: list[tuple[int, str]]) -> None:
    assert list(airflow_imports(ast.parse(source))) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import tifffile\ntifffile.imread(p)", [(2, "tifffile.imread")]),
        ("import tifffile as tf2\nwith tf2.TiffFile(p): pass", [(2, "tf2.TiffFile")]),
        ("from tifffile import TiffFile", [(1, "from tifffile import TiffFile")]),
        ("import tifffile\ntifffile.imwrite(p, a)", []),
        ("import tifffile\ndef f(page: tifffile.TiffPage): pass", []),
        ("import tifffile\nexcept_ = tifffile.TiffFileError", []),
    ],
)
def test_tiff_read_finder(source: str, expected: list[tuple[int, str]]) -> None:
    assert sorted(tiff_reads(ast.parse(source))) == expected
