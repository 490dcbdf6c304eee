"""Per-slice manifest of a Negin-style batch: one row per file with header and pixel facts.

A batch folder follows the contract of docs/architecture.md::

    <batch>/Patient_details.csv
    <batch>/batch.json                      # optional, {"source": NAME, ...}
    <batch>/<patient_id>/<SR_n>/IM*.tif     # single page, 2-D, 512x512, uint16 stored values

:func:`build_manifest` reads every file found under the patient folders exactly once, through
:func:`covidct.batch.slices.read_slice_facts` (one ``open().read()``; the sha256 and the TIFF
decode use the same bytes), and returns one row per file, including files that cannot be read
(their ``read_error`` says why). It never raises for a bad slice: judging the facts is
:mod:`covidct.batch.validation`'s job. Pixel statistics: :func:`covidct.batch.slices.pixel_stats`.
"""

from __future__ import annotations

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

import pandas as pd
from tqdm.auto import tqdm

from covidct import schema
from covidct.batch.contract import batch_source, labels_by_patient
from covidct.batch.files import scan_batch
from covidct.batch.slices import (
    read_slice_facts,
)
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
