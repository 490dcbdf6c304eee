"""Reading and writing the metadata files of a Negin-style batch: ``Patient_details.csv`` and
``batch.json`` (read here and nowhere else; slices: :mod:`covidct.batch.slices`).

The contract: docs/architecture.md, "The Negin-style batch contract".

A batch is a folder holding ``Patient_details.csv`` (columns ``schema.PATIENT_DETAILS_COLUMNS``),
an optional ``batch.json`` (``{"source": NAME, ...provenance...}``) and one folder per patient with
``SR_2``/``SR_3``/``SR_4`` sub-folders of ``IM00001.tif ...`` slices.

Each slice is a single-page, 2-D, 512x512, uint16 TIFF holding DICOM stored values in the Negin
convention (HU = value - 1024, ``schema.HU_OFFSET``). :func:`write_slice` writes them
uncompressed, little-endian, with no ImageDescription, Software or date tag, so a slice carries
nothing but its pixels and the baseline TIFF tags; the same array always gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.batch.files import read_regular
from covidct.safe_csv import safe_cell

logger = logging.getLogger(__name__)
_THICKNESS_COLUMNS: tuple[str, ...] = schema.PATIENT_DETAILS_COLUMNS[5:]
_TEXT_COLUMNS: tuple[str, ...] = schema.PATIENT_DETAILS_COLUMNS[:5]
#: Thickness cell of a series folder that exists but whose thickness is unknown. The published
#: Patient_details.csv writes it so (e.g. patient78 and patient83 have SR_2 images and SR_2
#: ``N/A``); an empty cell means the patient has no such folder.
UNKNOWN_THICKNESS = "N/A"


class PatientDetailsError(ValueError):
    """A ``Patient_details.csv`` cannot be read or written. ``path`` and ``reason`` as above."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _format_cell(column: str, value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else format(float(value), "g")
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"column {column!r}: line breaks are not allowed, got {text!r}")
    return text


def _details_row(path: Path, row: Mapping[str, object]) -> list[str]:
    unknown = sorted(set(row) - set(schema.PATIENT_DETAILS_COLUMNS))
    if unknown:
        raise PatientDetailsError(
            path, f"unknown columns {unknown}; valid: {list(schema.PATIENT_DETAILS_COLUMNS)}"
        )
    patient = _format_cell(schema.PATIENT_COLUMN, row.get(schema.PATIENT_COLUMN))
    if not patient:
        raise PatientDetailsError(path, f"a row has no {schema.PATIENT_COLUMN!r}: {dict(row)}")
    label = _format_cell(schema.LABEL_COLUMN, row.get(schema.LABEL_COLUMN))
    if label not in {member.value for member in schema.Label}:
        raise PatientDetailsError(
            path,
            f"patient {patient!r}: {schema.LABEL_COLUMN!r} must be one of "
            f"{[member.value for member in schema.Label]}, got {label!r}",
        )
    cells = [_format_cell(column, row.get(column)) for column in schema.PATIENT_DETAILS_COLUMNS]
    for column, cell in zip(schema.PATIENT_DETAILS_COLUMNS, cells, strict=True):
        if column in _THICKNESS_COLUMNS and cell not in ("", UNKNOWN_THICKNESS):
            try:
                float(cell)
            except ValueError:
                raise PatientDetailsError(
                    path,
                    f"patient {patient!r}: {column!r} must be a number, empty or "
                    f"{UNKNOWN_THICKNESS!r}, got {cell!r}",
                ) from None
    return cells


def write_patient_details(path: str | Path, rows: Iterable[Mapping[str, object]]) -> None:
    """Write ``Patient_details.csv`` with exactly ``schema.PATIENT_DETAILS_COLUMNS``.

    ``rows``: mappings from column name to value; a missing column, None or NaN is written empty.
    A thickness is a number, empty (no such series folder) or :data:`UNKNOWN_THICKNESS` (``N/A``:
    the folder exists, its thickness is unknown). Integral floats are written without ``.0``;
    line endings are CRLF. These are the conventions of the published COVID-CTset file, which
    this writer reproduces byte for byte. Raises PatientDetailsError (a ValueError) on an unknown
    column, an empty ``Patient ID``, a duplicated patient, a label other than Positive/Negative
    or a thickness that is none of the three.
    """
    path = Path(path)
    lines = [_details_row(path, row) for row in rows]
    patients = [line[0] for line in lines]
    duplicated = sorted({patient for patient in patients if patients.count(patient) > 1})
    if duplicated:
        raise PatientDetailsError(path, f"patients listed more than once: {duplicated}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(schema.PATIENT_DETAILS_COLUMNS)
        writer.writerows([safe_cell(cell) for cell in line] for line in lines)


def read_patient_details(path: str | Path) -> pd.DataFrame:
    """Read a ``Patient_details.csv``.

    Returns one row per patient with exactly ``schema.PATIENT_DETAILS_COLUMNS``: ``Patient ID``,
    ``SEX``, ``AGE``, ``Date`` and ``COVID-19 Infection`` as strings (missing values NaN; ``Date``
    kept as text, e.g. ``"20200407"``), the three ``SR_n Folder thickness(mm)`` columns float64 in
    millimetres (NaN for both an empty cell and ``N/A``; read the CSV as text where the
    difference matters). Label values are not judged here (validation does that).

    Raises PatientDetailsError (a ValueError) when the file is missing or unparsable, its header
    is not exactly the expected columns, or a thickness is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise PatientDetailsError(path, "no such file")
    try:
        frame = pd.read_csv(path, dtype={column: str for column in _TEXT_COLUMNS})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PatientDetailsError(path, f"cannot parse CSV ({error})") from error
    columns = tuple(frame.columns)
    if columns != schema.PATIENT_DETAILS_COLUMNS:
        raise PatientDetailsError(
            path, f"expected columns {list(schema.PATIENT_DETAILS_COLUMNS)}, got {list(columns)}"
        )
    for column in _THICKNESS_COLUMNS:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.loc[numbers.isna() & frame[column].notna(), schema.PATIENT_COLUMN]
        if len(bad):
            raise PatientDetailsError(
                path, f"{column!r} is not a number for patients {list(bad)[:5]}"
            )
        frame[column] = numbers.astype("float64")
    return frame


def write_batch_info(batch_dir: str | Path, info: Mapping[str, Any]) -> Path:
    """Write ``<batch_dir>/batch.json`` deterministically (sorted keys, 2-space indent, LF).

    ``info`` must hold a non-empty string ``source``. Returns the path written. Raises ValueError
    when ``source`` is missing or empty, or ``info`` is not JSON-serialisable.
    """
    source = info.get("source")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{batch_dir}: batch.json needs a non-empty 'source', got {source!r}")
    path = Path(batch_dir) / schema.BATCH_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(info), indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_batch_info(batch_dir: str | Path) -> dict[str, Any]:
    """Read ``<batch_dir>/batch.json``, the one reader of it; without one a batch is
    ``{"source": schema.DEFAULT_SOURCE}``.

    The rule: a regular file (no symlink, :func:`covidct.batch.files.read_regular`) holding a
    JSON object whose ``source`` is a non-empty name without ``/`` (returned stripped; it
    namespaces the batch's patient keys, ``schema.patient_key``). Raises ValueError naming the
    file otherwise.
    """
    path = Path(batch_dir) / schema.BATCH_INFO
    if not os.path.lexists(path):
        return {"source": schema.DEFAULT_SOURCE}
    try:
        info = json.loads(read_regular(path).decode("utf-8"))
    except OSError as error:
        raise ValueError(str(error)) from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read JSON ({error})") from error
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    source = info.get("source")
    if not isinstance(source, str) or not source.strip() or "/" in source:
        raise ValueError(f"{path}: 'source' must be a non-empty name without '/', got {source!r}")
    return {**info, "source": source.strip()}


def batch_source(batch_dir: str | Path) -> str:
    """The source that namespaces this batch's patient keys (``schema.patient_key``):
    ``batch.json["source"]`` or ``schema.DEFAULT_SOURCE`` (rule: :func:`read_batch_info`)."""
    return str(read_batch_info(batch_dir)["source"])


def read_patient_details_text(batch_dir: Path) -> pd.DataFrame:
    """Return ``Patient_details.csv`` of ``batch_dir`` with every column as stripped text, as
    validation judges it (:func:`read_patient_details` is the typed form of a valid file).

    Raises FileNotFoundError when the file is absent and ValueError when it cannot be parsed
    or lacks a column of ``schema.PATIENT_DETAILS_COLUMNS`` (the message names the file).
    """
    details_file = batch_dir / schema.PATIENT_DETAILS
    if not os.path.lexists(details_file):
        raise FileNotFoundError(f"{details_file}: missing")
    try:
        data = read_regular(details_file)
    except OSError as error:
        raise ValueError(str(error)) from error
    try:
        table = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{details_file}: cannot parse ({error})") from error
    table.columns = [str(column).strip() for column in table.columns]
    missing = [c for c in schema.PATIENT_DETAILS_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{details_file}: missing columns {missing}; found {list(table.columns)}")
    return table.apply(lambda column: column.str.strip())


def labels_by_patient(batch_dir: Path) -> dict[str, str]:
    """Map ``Patient ID`` -> ``COVID-19 Infection`` text.

    The first row of a patient wins; empty labels are left out; {} when the file is unreadable.
    """
    try:
        details = read_patient_details_text(batch_dir)
    except (FileNotFoundError, ValueError) as error:
        logger.warning("no labels for batch %s: %s", batch_dir, error)
        return {}
    first = details.drop_duplicates(schema.PATIENT_COLUMN, keep="first")
    pairs = zip(first[schema.PATIENT_COLUMN], first[schema.LABEL_COLUMN], strict=True)
    return {patient: label for patient, label in pairs if label}
