"""Per-slice manifest of a Negin-style batch: one row per file with header and pixel facts.

A batch folder follows the contract of docs/architecture.md::

    <batch>/Patient_details.csv
    <batch>/batch.json                      # optional, {"source": NAME, ...}
    <batch>/<patient_id>/<SR_n>/IM*.tif     # single page, 2-D, 512x512, uint16 stored values

:func:`build_manifest` reads every file found under the patient folders exactly once (one
``open().read()``; the sha256 and the TIFF decode use the same bytes) and returns one row per
file, including files that cannot be read (their ``read_error`` says why). It never raises for
a bad slice: judging the facts is :mod:`covidct.batch.validation`'s job.

Pixel statistics of integer images come from one histogram (``numpy.bincount``) instead of
sorting: min, max, mean and the 1st/99th percentiles are exact and equal to ``numpy.min``,
``numpy.max``, ``numpy.mean`` and ``numpy.percentile(..., method="linear")``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing import current_process, get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from tqdm.auto import tqdm

from covidct import schema
from covidct.batch.contract import MAX_SLICE_FILE_BYTES, tiff_header_problem
from covidct.batch.files import read_regular, scan_batch
from covidct.config import parse_enum

logger = logging.getLogger(__name__)

#: Manifest columns, in order. ``shape`` is "HxW" or "HxWxC"; stats are of the first page.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "source",
    "patient_id",
    "patient_key",
    "series",
    "instance",
    "sha256",
    "bytes",
    "dtype",
    "ndim",
    "shape",
    "height",
    "width",
    "samples_per_pixel",
    "pages",
    "compression",
    "photometric",
    "min",
    "max",
    "mean",
    "p01",
    "p99",
    "border_mean",
    "dark_pixels",
    "identifying_tags",
    "label",
    "read_error",
)
_INT_COLUMNS = (
    "instance",
    "bytes",
    "ndim",
    "height",
    "width",
    "samples_per_pixel",
    "pages",
    "dark_pixels",
)
_FLOAT_COLUMNS = ("min", "max", "mean", "p01", "p99", "border_mean")

#: Width in pixels of the image frame whose mean is ``border_mean`` (air in a chest CT).
BORDER_WIDTH = 16

#: ASCII TIFF tags that may name a person or a place; present at all -> identifying.
IDENTIFYING_TAG_NAMES: frozenset[str] = frozenset(
    {"Artist", "HostComputer", "DocumentName", "PageName", "Copyright", "Make", "Model"}
)
#: Text in any ASCII tag that looks like DICOM patient identity (name, birth date, id).
IDENTIFYING_TEXT = re.compile(
    r"patient\s*'?s?\s*(name|birth|id\b)|birth\s*date|date\s*of\s*birth|\bdob\b"
    r"|\(0010,\s*00(10|20|30)\)|00100010|00100030",
    re.IGNORECASE,
)
_INSTANCE = re.compile(r"(\d+)(?=\.[^.]*$|$)")

#: Files allowed at the root of a batch (everything else at the root must be a patient folder).
ROOT_FILES: frozenset[str] = frozenset({schema.PATIENT_DETAILS, schema.BATCH_INFO})


class ExecutorKind(StrEnum):
    """How :func:`build_manifest` parallelises file reads."""

    PROCESS = "process"
    THREAD = "thread"
    SERIAL = "serial"


@dataclass(frozen=True)
class SliceFile:
    """One file found under a patient folder: absolute ``file`` and its batch-relative parts."""

    file: Path
    path: str
    patient_id: str
    series: str | None


# --------------------------------------------------------------------------- batch metadata


def read_batch_info(batch_dir: Path) -> dict[str, Any]:
    """Return the parsed ``batch.json`` of ``batch_dir`` ({} when absent).

    Raises ValueError naming the file when it is not a JSON object.
    """
    info_file = batch_dir / schema.BATCH_INFO
    if not os.path.lexists(info_file):
        return {}
    try:
        info = json.loads(read_regular(info_file).decode("utf-8"))
    except OSError as error:
        raise ValueError(str(error)) from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{info_file}: not valid JSON ({error})") from error
    if not isinstance(info, dict):
        raise ValueError(f"{info_file}: expected a JSON object, got {type(info).__name__}")
    return info


def batch_source(batch_dir: Path) -> str:
    """Return the batch's source name: ``batch.json["source"]`` or ``schema.DEFAULT_SOURCE``.

    Raises ValueError naming the file when the source is not a non-empty string without "/".
    """
    source = read_batch_info(batch_dir).get("source", schema.DEFAULT_SOURCE)
    if not isinstance(source, str) or not source.strip() or "/" in source:
        raise ValueError(
            f"{batch_dir / schema.BATCH_INFO}: 'source' must be a non-empty name without '/',"
            f" got {source!r}"
        )
    return source.strip()


def read_patient_details(batch_dir: Path) -> pd.DataFrame:
    """Return ``Patient_details.csv`` of ``batch_dir`` with every column as stripped text.

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
        details = read_patient_details(batch_dir)
    except (FileNotFoundError, ValueError) as error:
        logger.warning("no labels for batch %s: %s", batch_dir, error)
        return {}
    first = details.drop_duplicates(schema.PATIENT_COLUMN, keep="first")
    pairs = zip(first[schema.PATIENT_COLUMN], first[schema.LABEL_COLUMN], strict=True)
    return {patient: label for patient, label in pairs if label}


# --------------------------------------------------------------------------- file discovery


def find_slice_files(batch_dir: Path) -> list[SliceFile]:
    """Return every regular file under the patient folders of ``batch_dir``, sorted by path.

    A patient folder is any directory at the batch root. ``series`` is the folder between
    patient and file when the file sits exactly at ``<patient>/<series>/<file>``, else None.
    Hidden entries (name starting with ".") are included: nothing is silently skipped.
    Symbolic links, hard links and special files are left out (never read): validation's
    layout check names them (:func:`covidct.batch.files.scan_batch`).
    """
    found: list[SliceFile] = []
    for path in scan_batch(batch_dir).files:
        parts = tuple(path.split("/"))
        if len(parts) < 2:
            continue
        series = parts[1] if len(parts) == 3 else None
        found.append(SliceFile(batch_dir.joinpath(*parts), path, parts[0], series))
    return found


def parse_instance(file_name: str) -> int | None:
    """Return the instance number of ``IM00010.tif`` (10), or None when no digits end the stem."""
    match = _INSTANCE.search(file_name)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- one file


def pixel_stats(pixels: np.ndarray) -> dict[str, float | int | None]:
    """Return min, max, mean, p01, p99, border_mean and dark_pixels of a 2-D image.

    ``pixels``: 2-D array (H, W), any numeric dtype. Percentiles follow
    ``numpy.percentile(method="linear")``; unsigned integer images use an exact histogram.
    ``dark_pixels`` counts values < ``schema.DARK_THRESHOLD`` in
    ``pixels[DARK_ROWS[0]:DARK_ROWS[1], DARK_COLS[0]:DARK_COLS[1]]`` (COVID-CTset selection
    window, Rahimzadeh et al. 2021), None when the image is smaller than that window.
    ``border_mean`` is the mean of the outer ``BORDER_WIDTH``-pixel frame (air in chest CT).
    Raises ValueError when ``pixels`` is not 2-D or is empty.
    """
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"pixel_stats expects a non-empty 2-D image, got shape {pixels.shape}")
    if pixels.dtype.kind == "u" and pixels.dtype.itemsize <= 2:
        stats = _histogram_stats(pixels)
    else:
        stats = _sorted_stats(pixels)
    stats["border_mean"] = _border_mean(pixels)
    stats["dark_pixels"] = _dark_pixels(pixels)
    return stats


def _histogram_stats(pixels: np.ndarray) -> dict[str, float | int | None]:
    counts = np.bincount(pixels.ravel())
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    values = np.arange(counts.size, dtype=np.float64)

    def kth(k: int) -> float:
        return float(np.searchsorted(cumulative, k, side="right"))

    def percentile(q: float) -> float:
        position = q * (n - 1)
        low = int(np.floor(position))
        low_value = kth(low)
        return low_value + (position - low) * (kth(min(low + 1, n - 1)) - low_value)

    return {
        "min": kth(0),
        "max": float(counts.size - 1),
        "mean": float(np.dot(counts, values) / n),
        "p01": percentile(0.01),
        "p99": percentile(0.99),
    }


def _sorted_stats(pixels: np.ndarray) -> dict[str, float | int | None]:
    data = pixels.astype(np.float64, copy=False)
    p01, p99 = np.percentile(data, [1.0, 99.0])
    return {
        "min": float(data.min()),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "p01": float(p01),
        "p99": float(p99),
    }


def _border_mean(pixels: np.ndarray) -> float:
    height, width = pixels.shape
    if min(height, width) <= 2 * BORDER_WIDTH:
        return float(pixels.mean())
    inner = pixels[BORDER_WIDTH:-BORDER_WIDTH, BORDER_WIDTH:-BORDER_WIDTH]
    total = float(pixels.sum(dtype=np.float64)) - float(inner.sum(dtype=np.float64))
    return total / (pixels.size - inner.size)


def _dark_pixels(pixels: np.ndarray) -> int | None:
    (row0, row1), (col0, col1) = schema.DARK_ROWS, schema.DARK_COLS
    if pixels.shape[0] < row1 or pixels.shape[1] < col1:
        return None
    return int(np.count_nonzero(pixels[row0:row1, col0:col1] < schema.DARK_THRESHOLD))


def identifying_tags(page: tifffile.TiffPage) -> list[str]:
    """Return names of ASCII tags of ``page`` that may identify a person.

    A tag counts when its name is in ``IDENTIFYING_TAG_NAMES``, when it is a private tag
    (code >= 32768) holding text, or when its text matches ``IDENTIFYING_TEXT`` (patient
    name, birth date or id, spelled out or as the DICOM tag (0010,0010)/(0010,0030)).
    """
    names = []
    for tag in page.tags:
        if not isinstance(tag.value, str | bytes):
            continue
        text = tag.value.decode("latin-1") if isinstance(tag.value, bytes) else tag.value
        private_text = tag.code >= 32768 and tag.dtype in (1, 2, 7) and text.strip("\0 ")
        if tag.name in IDENTIFYING_TAG_NAMES or private_text or IDENTIFYING_TEXT.search(text):
            names.append(tag.name)
    return names


def _header_facts(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> dict[str, Any]:
    tags = identifying_tags(page)
    return {
        "pages": len(tif.pages),
        "samples_per_pixel": int(page.samplesperpixel),
        "compression": _enum_name(page.compression),
        "photometric": _enum_name(page.photometric),
        "identifying_tags": ",".join(tags) if tags else None,
    }


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _check_complete(page: tifffile.TiffPage, size: int) -> None:
    """Raise ValueError when a strip or tile of ``page`` lies beyond the file's ``size``."""
    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
    if not ends or max(ends) > size:
        last = max(ends) if ends else 0
        raise ValueError(f"truncated: image data ends at byte {last}, file has {size} bytes")


def _decode(page: tifffile.TiffPage, size: int) -> np.ndarray:
    _check_complete(page, size)
    try:
        return page.asarray()
    except Exception as error:  # noqa: BLE001 - any decoder failure becomes a named reason
        codec = _enum_name(page.compression)
        raise ValueError(f"cannot decode compression {codec}: {error}") from error


def _pixel_facts(pixels: np.ndarray) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "dtype": str(pixels.dtype),
        "ndim": int(pixels.ndim),
        "shape": "x".join(str(n) for n in pixels.shape),
        "height": int(pixels.shape[0]) if pixels.ndim >= 1 else None,
        "width": int(pixels.shape[1]) if pixels.ndim >= 2 else None,
    }
    if pixels.ndim == 2 and pixels.size:
        facts.update(pixel_stats(pixels))
    return facts


def read_slice_facts(file: Path) -> dict[str, Any]:
    """Return the content facts of one file: sha256, bytes, header and pixel facts.

    Reads the file once. Never raises for a bad file: ``read_error`` holds the reason (not a
    TIFF, truncated, undecodable codec named, unreadable) and the facts gathered so far stay.
    """
    facts: dict[str, Any] = {"read_error": None}
    try:
        data = read_regular(file, max_bytes=MAX_SLICE_FILE_BYTES)
    except OSError as error:
        facts["read_error"] = f"cannot read file: {error}"
        return facts
    facts["sha256"] = hashlib.sha256(data).hexdigest()
    facts["bytes"] = len(data)
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            facts.update(_header_facts(tif, page))
            problem = tiff_header_problem(page)
            if problem is not None:
                facts["read_error"] = problem
                return facts
            facts.update(_pixel_facts(_decode(page, len(data))))
    except Exception as error:  # noqa: BLE001 - every failure is recorded, never raised
        facts["read_error"] = _error_text(error)
    return facts


def _error_text(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, tifffile.TiffFileError | IndexError | EOFError | OSError):
        return f"not a readable TIFF: {text}"
    return text


def _read_chunk(files: Sequence[Path]) -> list[dict[str, Any]]:
    return [read_slice_facts(file) for file in files]


# --------------------------------------------------------------------------- the manifest


def build_manifest(
    batch_dir: Path,
    *,
    source: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    executor: str = ExecutorKind.PROCESS,
    chunk_size: int = 64,
) -> pd.DataFrame:
    """Return the per-slice manifest of ``batch_dir`` (columns ``MANIFEST_COLUMNS``).

    ``source``: patient-key namespace; None reads ``batch.json`` (default
    ``schema.DEFAULT_SOURCE``). ``workers``: parallel readers (None: ``os.cpu_count()``);
    ``executor``: an :class:`ExecutorKind` value (processes measured fastest on 2 cores, see
    ``benchmarks/manifest_speed.py``); batches under ``2 * chunk_size`` files are read serially.
    ``label`` comes from ``Patient_details.csv`` (None when the patient has no row).
    Rows are sorted by ``path``; integer columns are nullable ``Int64``, stats ``float64``
    (NaN when the file could not be decoded). Raises FileNotFoundError when ``batch_dir`` is
    not a directory and ValueError for an unknown ``executor`` or an invalid ``batch.json``.
    """
    kind = parse_enum(ExecutorKind, executor, "executor")
    if not batch_dir.is_dir():
        raise FileNotFoundError(f"batch folder {batch_dir} does not exist")
    source = source if source is not None else batch_source(batch_dir)
    files = find_slice_files(batch_dir)
    started = time.perf_counter()
    facts = read_all_facts([f.file for f in files], workers, progress, kind, chunk_size)
    labels = labels_by_patient(batch_dir)
    rows = [_row(f, fact, source, labels) for f, fact in zip(files, facts, strict=True)]
    logger.info(
        "manifest of %s: %d files in %.1f s", batch_dir, len(rows), time.perf_counter() - started
    )
    return manifest_frame(rows)


def read_all_facts(
    files: Sequence[Path],
    workers: int | None,
    progress: bool,
    kind: ExecutorKind,
    chunk_size: int,
) -> list[dict[str, Any]]:
    """Return :func:`read_slice_facts` of each file, in order, read in parallel chunks."""
    chunks = [files[i : i + chunk_size] for i in range(0, len(files), chunk_size)]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(files), unit="slice", desc="manifest", disable=not progress)
    if kind is ExecutorKind.PROCESS and current_process().daemon:
        # a daemonic process (a Celery prefork worker's child, and the Airflow task process
        # forked from it) may not start child processes: read with threads instead
        kind = ExecutorKind.THREAD
    if kind is ExecutorKind.SERIAL or workers == 1 or len(chunks) < 2:
        results = _collect(map(_read_chunk, chunks), bar)
    else:
        with _executor(kind, workers) as pool:
            results = _collect(pool.map(_read_chunk, chunks), bar)
    bar.close()
    return results


def _executor(kind: ExecutorKind, workers: int) -> Executor:
    if kind is ExecutorKind.THREAD:
        return ThreadPoolExecutor(max_workers=workers)
    # fork: workers start in milliseconds and need no ``__main__`` guard in the caller's script
    # (forkserver/spawn re-import it); the readers only use numpy, tifffile and hashlib.
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork"))


def _collect(chunks: Iterable[list[dict[str, Any]]], bar: tqdm) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for chunk in chunks:
        results.extend(chunk)
        bar.update(len(chunk))
    return results


def _row(
    file: SliceFile, facts: dict[str, Any], source: str, labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "path": file.path,
        "source": source,
        "patient_id": file.patient_id,
        "patient_key": schema.patient_key(source, file.patient_id),
        "series": file.series,
        "instance": parse_instance(file.file.name),
        "label": labels.get(file.patient_id),
        **facts,
    }


def manifest_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Return ``rows`` as a DataFrame with ``MANIFEST_COLUMNS`` in order and stable dtypes."""
    frame = pd.DataFrame(list(rows), columns=list(MANIFEST_COLUMNS))
    for column in _INT_COLUMNS:
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    for column in _FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in [c for c in MANIFEST_COLUMNS if c not in _INT_COLUMNS + _FLOAT_COLUMNS]:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- derived tables


def patient_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return one row per ``patient_key`` of the manifest.

    Columns: patient_key, source, patient_id, label (first non-null), labels (distinct
    labels, comma-joined), n_slices, n_read_errors, series (sorted distinct series,
    comma-joined), n_series, min_max (lowest slice maximum), max_max, dark_pixels_median.
    """
    if manifest.empty:
        return pd.DataFrame(columns=list(_PATIENT_COLUMNS))
    groups = manifest.groupby("patient_key", sort=True)
    table = pd.DataFrame(
        {
            "source": groups["source"].first(),
            "patient_id": groups["patient_id"].first(),
            "label": groups["label"].first(),
            "labels": groups["label"].agg(_join_distinct),
            "n_slices": groups.size(),
            "n_read_errors": groups["read_error"].agg(lambda s: int(s.notna().sum())),
            "series": groups["series"].agg(_join_distinct),
            "n_series": groups["series"].nunique(),
            "min_max": groups["max"].min(),
            "max_max": groups["max"].max(),
            "dark_pixels_median": groups["dark_pixels"].agg(_median),
        }
    )
    return table.reset_index()[list(_PATIENT_COLUMNS)]


_PATIENT_COLUMNS = (
    "patient_key",
    "source",
    "patient_id",
    "label",
    "labels",
    "n_slices",
    "n_read_errors",
    "series",
    "n_series",
    "min_max",
    "max_max",
    "dark_pixels_median",
)


def _join_distinct(values: pd.Series) -> str | None:
    distinct = sorted({str(v) for v in values.dropna()})
    return ",".join(distinct) if distinct else None


def _median(values: pd.Series) -> float:
    clean = pd.to_numeric(values, errors="coerce").dropna()
    return float(clean.median()) if len(clean) else float("nan")


def batch_table(manifest: pd.DataFrame, *, batch_id: str = "") -> pd.DataFrame:
    """Return a one-row table of batch totals.

    Columns: batch_id, sources (comma-joined), n_slices, n_patients, n_positive_patients,
    n_negative_patients, n_read_errors, n_distinct_sha256, bytes (sum), compressions.
    """
    patients = patient_table(manifest)
    labels = patients["label"] if len(patients) else pd.Series(dtype=object)
    row = {
        "batch_id": batch_id,
        "sources": _join_distinct(manifest["source"]) if len(manifest) else None,
        "n_slices": len(manifest),
        "n_patients": len(patients),
        "n_positive_patients": int((labels == schema.Label.POSITIVE.value).sum()),
        "n_negative_patients": int((labels == schema.Label.NEGATIVE.value).sum()),
        "n_read_errors": int(manifest["read_error"].notna().sum()) if len(manifest) else 0,
        "n_distinct_sha256": int(manifest["sha256"].nunique()) if len(manifest) else 0,
        "bytes": int(manifest["bytes"].sum()) if len(manifest) else 0,
        "compressions": _join_distinct(manifest["compression"]) if len(manifest) else None,
    }
    return pd.DataFrame([row])
