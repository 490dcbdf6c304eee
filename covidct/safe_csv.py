"""Every CSV the product writes goes through here, so that no cell is a formula when opened.

A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell beginning with ``=``, ``+``,
``-`` or ``@`` as a formula, and a tab or carriage return at the start can smuggle one in (OWASP,
"CSV Injection"). :func:`safe_cell` prefixes such a *text* cell with a single quote, which every
spreadsheet shows as text; numbers stay numbers (``-1.5`` as a float, or as the text ``"-1.5"``,
is written unchanged). A patient id, a batch id or an alert summary can come from a hospital's
folder names, so the writer is safe on its own, whatever validation refused upstream.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

#: First characters that make a spreadsheet read a cell as a formula (or smuggle one in).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """Return ``value``, or ``"'" + value`` when it is text starting with a formula prefix and
    is not a plain number. Non-text values (numbers, None, NaN) are returned unchanged.

    A carriage return inside text becomes a line feed (``\\r\\n`` one line feed): Python
    3.11's ``csv`` writer, under pandas' ``\\n`` line terminator, quotes a field holding ``\\n``
    but not one holding only ``\\r``, and a spreadsheet starts a new row at that bare ``\\r``,
    whose first cell (``a\\r=cmd|...``) would escape the prefix check."""
    if not isinstance(value, str):
        return value
    if "\r" in value:
        safe = safe_cell(value.replace("\r\n", "\n").replace("\r", "\n"))
        return "'" + safe if value.startswith(FORMULA_PREFIXES) and safe[:1] != "'" else safe
    if not value.startswith(FORMULA_PREFIXES) or _NUMBER.fullmatch(value) is not None:
        return value
    return "'" + value


def _is_number_column(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` whose text cells, column names and index labels are
    :func:`safe_cell`-safe; numeric columns are untouched (same dtype)."""
    safe = frame.copy()
    for position in range(len(frame.columns)):
        column = frame.iloc[:, position]
        if not _is_number_column(column):
            safe.isetitem(position, column.map(safe_cell).to_numpy(dtype=object))
    safe.columns = _safe_labels(frame.columns)
    safe.index = _safe_labels(frame.index)
    return safe


def _safe_labels(labels: pd.Index) -> pd.Index:
    """Column names or index labels made :func:`safe_cell`-safe (each level of a MultiIndex),
    and the index's name(s), which pandas writes as a header cell."""
    if isinstance(labels, pd.MultiIndex):
        rows = [tuple(safe_cell(value) for value in row) for row in labels]
        names = [safe_cell(name) for name in labels.names]
        return pd.MultiIndex.from_tuples(rows, names=names)
    if pd.api.types.is_numeric_dtype(labels):
        return labels.rename(safe_cell(labels.name))
    return labels.map(safe_cell).rename(safe_cell(labels.name))


def csv_text(frame: pd.DataFrame, *, index: bool = False) -> str:
    """Return ``frame`` as CSV text with every cell neutralised (:func:`neutralised`)."""
    return str(neutralised(frame).to_csv(index=index))


def csv_bytes(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """Return :func:`csv_text` encoded as UTF-8 (what the lake stores)."""
    return csv_text(frame, index=index).encode("utf-8")


def write_csv(frame: pd.DataFrame, path: str | Path, *, index: bool = False) -> Path:
    """Write ``frame`` to ``path`` as neutralised CSV; return the path. OSError propagates."""
    path = Path(path)
    path.write_text(csv_text(frame, index=index), encoding="utf-8")
    return path
