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
import datetime
import io
import json
import logging
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.batch.files import FileTooLarge, escaped, read_regular
from covidct.safe_csv import safe_cell

logger = logging.getLogger(__name__)
_THICKNESS_COLUMNS: tuple[str, ...] = schema.PATIENT_DETAILS_COLUMNS[5:]
_TEXT_COLUMNS: tuple[str, ...] = schema.PATIENT_DETAILS_COLUMNS[:5]
#: Thickness cell of a series folder that exists but whose thickness is unknown. The published
#: Patient_details.csv writes it so (e.g. patient78 and patient83 have SR_2 images and SR_2
#: ``N/A``); an empty cell means the patient has no such folder.
UNKNOWN_THICKNESS = "N/A"


def parse_thickness(cell: object) -> float | None:
    """One ``SR_n Folder thickness(mm)`` cell of ``Patient_details.csv``, read by the one rule
    that validation, the writer and the typed reader share.

    Returns None for an empty cell (or None/NaN: the patient has no such series folder), NaN for
    :data:`UNKNOWN_THICKNESS` (the folder exists, its thickness is unknown) and otherwise the
    slice thickness in millimetres as a finite float (``"2.5"`` -> 2.5). Surrounding white space
    is ignored. Raises ValueError (naming the cell) for anything else.
    """
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = str(cell).strip()
    if not text:
        return None
    if text == UNKNOWN_THICKNESS:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(
            f"'{escaped(text)}' is not a thickness in mm, empty or {UNKNOWN_THICKNESS}"
        )
    return value


# --------------------------------------------------------------------------- names and fields

#: The one pattern of every name a batch carries into the lake: batch ids, sources (batch.json),
#: patient ids (folder names and ``Patient ID`` cells), series folders and file names. ASCII only
#: (no homoglyph such as Cyrillic U+0430, no fullwidth U+FF21), starting with a letter or digit
#: (no spreadsheet formula ``=``/``+``/``-``/``@``, no dot file), no markup, blank or separator,
#: at most 64 characters. Every name of the real COVID-CTset roster and of the TCIA batches fits.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_NAME = re.compile(NAME_PATTERN)
#: ``SEX`` cells: the real roster has only ``M`` and ``F``; empty when unknown (DICOM ingest).
SEX_VALUES: tuple[str, ...] = ("M", "F", "")
#: ``AGE`` cells: a DICOM Age String as the real roster writes it (``053Y``; also ``nnnM``,
#: ``nnnW``, ``nnnD``) or bare years; empty when unknown.
AGE_PATTERN = r"\d{1,3}[YMWD]?"
#: ``Date`` cells: a DICOM date ``YYYYMMDD`` (the real roster: ``20200407``); empty when unknown.
DATE_PATTERN = r"\d{8}"
_FORMULA_START = ("=", "+", "-", "@")


def name_problem(name: str) -> str | None:
    """Why ``name`` breaks :data:`NAME_PATTERN` (a batch id, a source, a patient, a file), or
    None. The reason is specific where it helps: blank, whitespace, separator, ``.``/``..``,
    non-printable, not NFC, non-ASCII (naming the first such character), a formula start,
    markup, too long."""
    if _NAME.fullmatch(name):
        return None
    return _specific_problem(name) or f"does not match {NAME_PATTERN}"


def _specific_problem(name: str) -> str | None:
    if not name.strip():
        return "blank"
    if name != name.strip():
        return "leading or trailing whitespace"
    if name in (".", ".."):
        return "a relative folder reference"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if not name.isprintable():
        return "contains a control or non-printable character"
    if unicodedata.normalize("NFC", name) != name:
        nfc = escaped(unicodedata.normalize("NFC", name))
        return f"not in Unicode NFC form (NFC would be '{nfc}')"
    if not name.isascii():
        char = next(c for c in name if not c.isascii())
        what = unicodedata.name(char, "unnamed")
        return f"not ASCII ({escaped(char)} {what}: a look-alike or fullwidth form)"
    if name.startswith(_FORMULA_START):
        return f"starts with {name[0]!r} (a spreadsheet formula)"
    if any(c in name for c in "<>&\"'`"):
        return "contains markup characters"
    return "longer than 64 characters" if len(name) > 64 else None


def check_name(kind: str, name: str) -> str:
    """Return ``name`` when :func:`name_problem` finds nothing; else raise ValueError naming
    ``kind`` (e.g. "batch id"), the escaped name and the reason."""
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"invalid {kind} '{escaped(name)}': {problem}")
    return name


def field_problems(row: Mapping[str, str]) -> list[str]:
    """Problems of the ``SEX``, ``AGE``, ``Date`` and thickness text cells of one details row
    (stripped text, as :func:`read_patient_details_text` returns it; thickness by
    :func:`parse_thickness`); each names the column and the escaped value. Empty list when all
    fit their formats."""
    sex, age, date = (str(row.get(column, "")) for column in ("SEX", "AGE", "Date"))
    problems = []
    if sex not in SEX_VALUES:
        problems.append(f"SEX '{escaped(sex)}' is not M, F or empty")
    if age and not re.fullmatch(AGE_PATTERN, age):
        problems.append(f"AGE '{escaped(age)}' is not a DICOM age such as 053Y, or empty")
    if date and not _is_date(date):
        problems.append(f"Date '{escaped(date)}' is not a date YYYYMMDD, or empty")
    for column in _THICKNESS_COLUMNS:
        try:
            parse_thickness(row.get(column, ""))
        except ValueError as error:
            problems.append(f"{column} {error}")
    return problems


def _is_date(text: str) -> bool:
    if not re.fullmatch(DATE_PATTERN, text):
        return False
    try:
        datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------ input file limits

#: Largest ``Patient_details.csv`` read, in bytes (the real one: 16,764 bytes for 377
#: patients); a larger file is refused before it is read.
MAX_DETAILS_BYTES = 1 << 20
#: Most data rows of a ``Patient_details.csv`` (the real one: 377); counted on the bytes
#: before pandas parses them.
MAX_DETAILS_ROWS = 100_000
#: Largest ``batch.json`` read, in bytes (the TCIA batches' ingest records: a few kB).
MAX_BATCH_INFO_BYTES = 1 << 20
#: Deepest nesting of ``[``/``{`` in ``batch.json`` (the ingest records: 4); measured on the
#: text before it is parsed, so a deep file cannot exhaust the parser's recursion.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class InputLimitError(ValueError):
    """A batch's metadata file is over a limit (size, rows, nesting); refused unparsed."""


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` (:func:`read_regular`); raises InputLimitError over ``max_bytes``
    (before reading) and ValueError for a link or special file."""
    try:
        return read_regular(path, max_bytes, limit_of=path.name)
    except FileTooLarge as error:
        raise InputLimitError(str(error)) from error
    except OSError as error:
        raise ValueError(str(error)) from error


def _check_rows(path: Path, data: bytes) -> None:
    rows = data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1
    if rows > MAX_DETAILS_ROWS:
        raise InputLimitError(f"{path}: {rows:,} rows, over the limit of {MAX_DETAILS_ROWS:,}")


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of the JSON ``text`` (strings skipped), counted up to ``limit + 1``."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def _refuse_duplicate_keys(path: Path) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) < len(pairs):  # linear: a file of 100,000 keys is read in milliseconds
            twice = sorted(key for key, count in Counter(k for k, _ in pairs).items() if count > 1)
            more = f" and {len(twice) - 5:,} more" if len(twice) > 5 else ""
            raise ValueError(f"{path}: duplicate keys {[escaped(k) for k in twice[:5]]}{more}")
        return found

    return hook


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
        if column in _THICKNESS_COLUMNS:
            try:
                parse_thickness(cell)
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
    is not exactly the expected columns, or a thickness is not a number; InputLimitError (a
    ValueError) over :data:`MAX_DETAILS_BYTES` or :data:`MAX_DETAILS_ROWS`, before parsing.
    """
    path = Path(path)
    if not path.is_file():
        raise PatientDetailsError(path, "no such file")
    data = _read_limited(path, MAX_DETAILS_BYTES)
    _check_rows(path, data)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PatientDetailsError(path, f"cannot parse CSV ({error})") from error
    columns = tuple(frame.columns)
    if columns != schema.PATIENT_DETAILS_COLUMNS:
        raise PatientDetailsError(
            path, f"expected columns {list(schema.PATIENT_DETAILS_COLUMNS)}, got {list(columns)}"
        )
    for column in _THICKNESS_COLUMNS:
        numbers, bad = [], []
        for patient, cell in zip(frame[schema.PATIENT_COLUMN], frame[column], strict=True):
            try:
                mm = parse_thickness(cell)
            except ValueError:
                bad.append(patient)
                mm = None
            numbers.append(math.nan if mm is None else mm)
        if bad:
            raise PatientDetailsError(path, f"{column!r} is not a number for patients {bad[:5]}")
        frame[column] = pd.Series(numbers, index=frame.index, dtype="float64")
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

    The rule: a regular file (no symlink, :func:`covidct.batch.files.read_regular`) of at most
    :data:`MAX_BATCH_INFO_BYTES`, nested at most :data:`MAX_JSON_DEPTH` deep, holding a JSON
    object without duplicate keys whose ``source`` matches :data:`NAME_PATTERN` (returned
    stripped; it namespaces the batch's patient keys, ``schema.patient_key``). Raises
    InputLimitError (a ValueError) over a limit, before parsing, and ValueError naming the file
    otherwise.
    """
    path = Path(batch_dir) / schema.BATCH_INFO
    if not os.path.lexists(path):
        return {"source": schema.DEFAULT_SOURCE}
    info = _parse_batch_info(path, _read_limited(path, MAX_BATCH_INFO_BYTES))
    source = info.get("source")
    if not isinstance(source, str) or name_problem(source.strip()) is not None:
        shown = (
            f"'{escaped(source)}' ({name_problem(source.strip())})"
            if isinstance(source, str)
            else repr(source)
        )
        raise ValueError(f"{path}: 'source' must match {NAME_PATTERN}, got {shown}")
    return {**info, "source": source.strip()}


def _parse_batch_info(path: Path, data: bytes) -> dict[str, Any]:
    """The JSON object of ``batch.json``; raises InputLimitError (nested deeper than
    :data:`MAX_JSON_DEPTH`) and ValueError (not UTF-8 JSON, duplicate keys, not an object)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: cannot read JSON ({error})") from error
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise InputLimitError(f"{path}: JSON nested deeper than the limit of {MAX_JSON_DEPTH}")
    try:
        info = json.loads(text, object_pairs_hook=_refuse_duplicate_keys(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: cannot read JSON ({error})") from error
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def batch_source(batch_dir: str | Path) -> str:
    """The source that namespaces this batch's patient keys (``schema.patient_key``):
    ``batch.json["source"]`` or ``schema.DEFAULT_SOURCE`` (rule: :func:`read_batch_info`)."""
    return str(read_batch_info(batch_dir)["source"])


def read_patient_details_text(batch_dir: Path) -> pd.DataFrame:
    """Return ``Patient_details.csv`` of ``batch_dir`` with every column as stripped text, as
    validation judges it (:func:`read_patient_details` is the typed form of a valid file).

    Raises FileNotFoundError when the file is absent, InputLimitError (a ValueError) over
    :data:`MAX_DETAILS_BYTES` or :data:`MAX_DETAILS_ROWS` (before parsing) and ValueError when
    it cannot be parsed or lacks a column of ``schema.PATIENT_DETAILS_COLUMNS`` (the message
    names the file).
    """
    details_file = batch_dir / schema.PATIENT_DETAILS
    if not os.path.lexists(details_file):
        raise FileNotFoundError(f"{details_file}: missing")
    data = _read_limited(details_file, MAX_DETAILS_BYTES)
    _check_rows(details_file, data)
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
