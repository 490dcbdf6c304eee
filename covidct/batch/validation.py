"""Batch validation: Great Expectations suites over slice, patient, batch and layout tables.

:func:`validate_batch` builds the manifest of a Negin-style batch folder
(:func:`covidct.batch.manifest.build_manifest`), derives four tables and runs one GE 1.x
expectation suite on each (ephemeral context, pandas dataframe asset, ``COMPLETE`` results):

===========  ==================================================================================
table        one row per ... ; checks
===========  ==================================================================================
slices       file; readable TIFF, one page, single channel 2-D, uint16, 512x512, not 8-bit data,
             stored-value range, not constant, polarity, MINISBLACK, no identifying tags, air
             present (not HU 1,024 too high),
             ``<patient>/<SR_n>/<file>`` layout, sha256 unique in the batch, not re-sent
patients     patient (images or Patient_details row); label present and Positive/Negative, one
             details row, has images, series match the stated thicknesses, no contradiction
             with an earlier batch
batch        batch; not empty
layout       entry at the batch root, and every link or special file anywhere;
             Patient_details.csv present with its columns, SEX/AGE/Date in their formats,
             batch.json valid (no duplicate key), nothing else but patient folders; every
             patient id, series folder and file name matching ``contract.NAME_PATTERN``
             (ASCII, no formula start or markup), no two ids equal but for case (nor one
             equal but for case to a known patient), no empty patient folder, no symbolic
             link, hard link or special file; Patient_details.csv and batch.json within
             their size, row and nesting limits (``input_limit``, refused unread)
===========  ==================================================================================

Checks GE cannot compute by itself (cross-batch label contradictions and re-sent slices, series
against Patient_details.csv, folder layout) are computed in plain Python into columns of these
tables, so that every check is an expectation, appears in the Data Docs and names its files or
patients (``unexpected_index_column_names``). Every failure becomes a :class:`Failure` in the
frozen :class:`BatchVerdict`; nothing here raises for bad data.

Policy (:class:`ValidationPolicy`): strict by default. A stated fraction of slices failing only
excludable slice checks may be excluded from an otherwise good batch; patient and batch checks
then run on the kept slices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from covidct import schema
from covidct.batch.checks import (
    BatchVerdict,
    Check,
    Failure,
    Table,
    ValidationPolicy,
)
from covidct.batch.contract import batch_source
from covidct.batch.expectations import (
    ExpectationRunner,
    batch_expectations,
    layout_expectations,
    patient_expectations,
    slice_expectations,
)
from covidct.batch.fault_reasons import one_reason_per_fault
from covidct.batch.manifest import build_manifest
from covidct.batch.tables import (
    batch_validation_table,
    details_or_empty,
    layout_table,
    patient_validation_table,
    slice_table,
)
from covidct.batch.validation_report import write_report

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ the verdict


def validate_batch(
    batch_dir: Path,
    *,
    known_labels: Mapping[str, str] | None = None,
    known_hashes: Mapping[str, str] | None = None,
    policy: ValidationPolicy | None = None,
    report_dir: Path | None = None,
    progress: bool = True,
    batch_id: str | None = None,
    workers: int | None = None,
) -> BatchVerdict:
    """Validate the Negin-style batch folder ``batch_dir``; return its :class:`BatchVerdict`.

    ``known_labels``: patient_key -> label of earlier accepted batches; ``known_hashes``:
    slice sha256 -> patient_key of earlier accepted batches (see ``covidct.lake.custody``).
    ``policy``: default strict :class:`ValidationPolicy`. ``report_dir``: when given, gets
    ``validation.json``, ``index.html`` (verdict summary) and ``data_docs/index.html`` (GE
    Data Docs). ``batch_id`` defaults to the folder name. Bad data never raises; raises
    FileNotFoundError when ``batch_dir`` is not a directory.
    """
    policy = policy or ValidationPolicy()
    if not batch_dir.is_dir():
        raise FileNotFoundError(f"batch folder {batch_dir} does not exist")
    batch_id = batch_id or batch_dir.resolve().name
    report_dir = report_dir.resolve() if report_dir is not None else None
    source = _source_or_default(batch_dir)
    manifest = build_manifest(batch_dir, source=source, progress=progress, workers=workers)
    runner = ExpectationRunner(report_dir / "data_docs" if report_dir else None)
    slices = slice_table(manifest, known_hashes or {})
    slice_failures = runner.run(Table.SLICES, slices, slice_expectations(policy))
    slice_failures = one_reason_per_fault(slice_failures)
    excluded, slice_failures = apply_exclusions(slice_failures, slices, policy)
    kept = slices[~slices["path"].isin(excluded)]
    patients = patient_validation_table(
        kept, details_or_empty(batch_dir), source, known_labels or {}
    )
    failures = slice_failures + runner.run(Table.PATIENTS, patients, patient_expectations())
    failures += runner.run(
        Table.BATCH, batch_validation_table(batch_id, kept, patients, source), batch_expectations()
    )
    layout = layout_table(batch_dir, source=source, known_patients=(known_labels or {}).keys())
    failures += runner.run(Table.LAYOUT, layout, layout_expectations())
    verdict = BatchVerdict(
        batch_id=batch_id,
        passed=not failures,
        reasons=tuple(f.reason() for f in failures),
        failures=tuple(failures),
        excluded_slices=tuple(sorted(excluded)),
        n_slices=len(manifest),
        n_patients=int((patients["n_slices"] > 0).sum()) if len(patients) else 0,
        source=source,
        policy=policy,
        manifest=manifest.assign(excluded=manifest["path"].isin(excluded)),
    )
    if report_dir is not None:
        verdict = write_report(verdict, report_dir, runner.build_docs())
    logger.info("batch %s: %s", batch_id, "passed" if verdict.passed else "FAILED")
    return verdict


def _source_or_default(batch_dir: Path) -> str:
    try:
        return batch_source(batch_dir)
    except ValueError as error:
        logger.warning("%s; using source %r (the layout check fails)", error, schema.DEFAULT_SOURCE)
        return schema.DEFAULT_SOURCE


def apply_exclusions(
    failures: list[Failure], slices: pd.DataFrame, policy: ValidationPolicy
) -> tuple[set[str], list[Failure]]:
    """Return (excluded paths, remaining slice failures) under ``policy``.

    Slices are excluded only when every failed slice check is in ``policy.excludable``, the
    failing slices are all named (counts complete) and their share of the batch is at most
    ``policy.max_excluded_fraction``. Otherwise nothing is excluded; when only the fraction
    was exceeded an :attr:`Check.EXCLUSION_LIMIT` failure states it.
    """
    if not failures or policy.max_excluded_fraction <= 0.0:
        return set(), failures
    paths = _failing_paths(failures, slices)
    if paths is None or not all(f.check in policy.excludable for f in failures):
        return set(), failures
    fraction = len(paths) / max(len(slices), 1)
    if fraction <= policy.max_excluded_fraction:
        logger.info("excluding %d of %d slices under policy", len(paths), len(slices))
        return paths, []
    limit = Failure(
        Check.EXCLUSION_LIMIT,
        Table.SLICES,
        "policy",
        len(paths),
        (f"{fraction:.1%} of slices > {policy.max_excluded_fraction:.1%} allowed",),
    )
    return set(), [*failures, limit]


def _failing_paths(failures: list[Failure], slices: pd.DataFrame) -> set[str] | None:
    """Return every failing path, or None when a failure does not name all of its rows."""
    known = set(slices["path"])
    paths: set[str] = set()
    for failure in failures:
        names = set(failure.names)
        if failure.count > len(failure.names) or not names <= known:
            return None
        paths |= names
    return paths
