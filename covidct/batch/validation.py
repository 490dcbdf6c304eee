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
             Patient_details.csv present with its columns, batch.json valid, nothing else but
             patient folders named cleanly (one NFC form, no blanks or separators), no empty
             patient folder, no symbolic link, hard link or special file
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

import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from covidct import schema
from covidct.batch.files import escaped, name_problem, scan_batch
from covidct.batch.manifest import (
    ROOT_FILES,
    batch_source,
    build_manifest,
    read_batch_info,
    read_patient_details,
)
from covidct.config import parse_enum

logger = logging.getLogger(__name__)

#: Examples kept per failure (the count is always complete).
MAX_EXAMPLES = 50
#: Examples quoted in a human reason string.
REASON_EXAMPLES = 5
VALID_LABELS: tuple[str, ...] = tuple(label.value for label in schema.Label)
THICKNESS_COLUMNS: dict[str, str] = {s: f"{s} Folder thickness(mm)" for s in schema.SERIES}
#: Highest HU the darkest 1% of a chest CT slice may have: every real slice holds air (outside
#: the body or in the airways; measured p01 <= -1012 HU on all 80 TCIA slices here), while a
#: slice converted without its -1024 intercept has none below about 0 HU.
AIR_P01_MAX_HU = -500


class Table(StrEnum):
    """The validated tables (one GE suite each)."""

    SLICES = "slices"
    PATIENTS = "patients"
    BATCH = "batch"
    LAYOUT = "layout"


class Check(StrEnum):
    """Named checks; each failure of the verdict carries one."""

    UNREADABLE = "unreadable"
    MULTI_PAGE = "multi_page"
    CHANNELS = "channels"
    DTYPE = "dtype"
    EIGHT_BIT = "eight_bit"
    VALUE_RANGE = "value_range"
    SHAPE = "shape"
    CONSTANT = "constant"
    POLARITY = "polarity"
    PHOTOMETRIC = "photometric"
    IDENTIFYING_TAGS = "identifying_tags"
    HU_OFFSET = "hu_offset"
    SERIES_FOLDER = "series_folder"
    DUPLICATE_SLICE = "duplicate_slice"
    RESENT_SLICE = "resent_slice"
    LABEL_MISSING = "label_missing"
    LABEL_VALUE = "label_value"
    DUPLICATE_DETAILS = "duplicate_details"
    NO_IMAGES = "no_images"
    LABEL_CONTRADICTION = "label_contradiction"
    MISSING_SERIES = "missing_series"
    UNEXPECTED_SERIES = "unexpected_series"
    EMPTY_BATCH = "empty_batch"
    LAYOUT = "layout"
    EXCLUSION_LIMIT = "exclusion_limit"


DESCRIPTIONS: dict[Check, str] = {
    Check.UNREADABLE: "file is not a readable TIFF (not a TIFF, truncated, or codec unavailable)",
    Check.MULTI_PAGE: "TIFF has more than one page",
    Check.CHANNELS: "image is not single-channel 2-D (RGB or several samples per pixel)",
    Check.DTYPE: "pixel type is not uint16",
    Check.EIGHT_BIT: "uint16 image holding 8-bit data (max <= 255)",
    Check.VALUE_RANGE: "values outside stored-value range (negative or too high: HU, signed or"
    " wrapped data)",
    Check.SHAPE: "image is not 512x512",
    Check.CONSTANT: "constant image (min == max)",
    Check.POLARITY: "inverted polarity (air at the image border brighter than the image mean)",
    Check.PHOTOMETRIC: "photometric interpretation is not MINISBLACK",
    Check.IDENTIFYING_TAGS: "TIFF carries identifying tags (patient name, birth date, ...)",
    Check.HU_OFFSET: f"no air in the slice: its darkest 1% is above {AIR_P01_MAX_HU} HU"
    " (HU = value - 1024), as when a -1024 rescale intercept was left out (HU 1,024 too high)",
    Check.SERIES_FOLDER: "file is not at <patient>/<SR_2|SR_3|SR_4>/<file>",
    Check.DUPLICATE_SLICE: "same slice content (sha256) more than once in the batch",
    Check.RESENT_SLICE: "slice content (sha256) already received in an earlier batch, or"
    " pending in another landed batch",
    Check.LABEL_MISSING: "patient has images but no label in Patient_details.csv",
    Check.LABEL_VALUE: "label is not one of Positive/Negative",
    Check.DUPLICATE_DETAILS: "patient listed more than once in Patient_details.csv",
    Check.NO_IMAGES: "patient in Patient_details.csv has no images",
    Check.LABEL_CONTRADICTION: "label contradicts the label of an earlier batch",
    Check.MISSING_SERIES: "series with a stated thickness in Patient_details.csv has no images",
    Check.UNEXPECTED_SERIES: "series folder not SR_2/SR_3/SR_4, or without a stated thickness",
    Check.EMPTY_BATCH: "batch has no slices",
    Check.LAYOUT: "batch folder layout breaks the contract",
    Check.EXCLUSION_LIMIT: "more slices fail than the policy may exclude",
}

#: Checks judged per slice: only these may be excluded by policy.
SLICE_CHECKS: frozenset[Check] = frozenset(
    {
        Check.UNREADABLE,
        Check.MULTI_PAGE,
        Check.CHANNELS,
        Check.DTYPE,
        Check.EIGHT_BIT,
        Check.VALUE_RANGE,
        Check.SHAPE,
        Check.CONSTANT,
        Check.POLARITY,
        Check.PHOTOMETRIC,
        Check.IDENTIFYING_TAGS,
        Check.HU_OFFSET,
        Check.SERIES_FOLDER,
        Check.DUPLICATE_SLICE,
        Check.RESENT_SLICE,
    }
)
#: Excludable by default: not identity leaks, duplicates or re-sent data (process faults).
DEFAULT_EXCLUDABLE: frozenset[Check] = SLICE_CHECKS - {
    Check.IDENTIFYING_TAGS,
    Check.HU_OFFSET,
    Check.DUPLICATE_SLICE,
    Check.RESENT_SLICE,
}


@dataclass(frozen=True)
class ValidationPolicy:
    """What a batch must satisfy.

    ``max_excluded_fraction``: share of the batch's slices (0..1) that may be excluded when
    they fail only checks in ``excludable``; default 0.0 = strict, any failure rejects.
    ``max_stored_value``: highest plausible Negin stored value (HU + 1024); real scanners
    reach ~5,000 (bone, metal), HU or wrapped signed data exceed it. ``min_max_value``: the
    slice maximum must reach this, else the uint16 holds 8-bit data (default 256).
    ``slice_shape``: (height, width) in pixels. Raises ValueError for out-of-range values or
    unknown / non-slice check names.
    """

    max_excluded_fraction: float = 0.0
    excludable: frozenset[Check] = DEFAULT_EXCLUDABLE
    max_stored_value: int = 10_000
    min_max_value: int = 256
    slice_shape: tuple[int, int] = schema.SLICE_SHAPE

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_excluded_fraction <= 1.0:
            raise ValueError(
                f"max_excluded_fraction must be in [0, 1], got {self.max_excluded_fraction}"
            )
        checks = frozenset(parse_enum(Check, str(c), "check") for c in self.excludable)
        if not checks <= SLICE_CHECKS:
            names = ", ".join(sorted(c.value for c in SLICE_CHECKS))
            raise ValueError(
                f"only slice checks are excludable ({names}); got "
                f"{sorted(c.value for c in checks - SLICE_CHECKS)}"
            )
        object.__setattr__(self, "excludable", checks)

    @property
    def shape_text(self) -> str:
        """Return the shape as the manifest writes it, e.g. "512x512"."""
        return "x".join(str(n) for n in self.slice_shape)

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-safe values."""
        return {
            "max_excluded_fraction": self.max_excluded_fraction,
            "excludable": sorted(c.value for c in self.excludable),
            "max_stored_value": self.max_stored_value,
            "min_max_value": self.min_max_value,
            "slice_shape": list(self.slice_shape),
        }


@dataclass(frozen=True)
class Failure:
    """One failed check: what, where (``table``), how many and which files or patients."""

    check: Check
    table: Table
    expectation: str
    count: int
    examples: tuple[str, ...]
    #: Every failing row's name (path or patient key); empty for table-level expectations.
    names: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def description(self) -> str:
        """Return the human description of the check."""
        return DESCRIPTIONS[self.check]

    def reason(self) -> str:
        """Return one line naming the check, the count and the first files or patients."""
        shown = ", ".join(self.examples[:REASON_EXAMPLES])
        more = f" and {self.count - REASON_EXAMPLES} more" if self.count > REASON_EXAMPLES else ""
        return f"[{self.check.value}] {self.description}: {self.count} in {self.table.value}" + (
            f": {shown}{more}" if shown else ""
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the failure as JSON-safe values."""
        return {
            "check": self.check.value,
            "table": self.table.value,
            "expectation": self.expectation,
            "description": self.description,
            "count": self.count,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class BatchVerdict:
    """Outcome of :func:`validate_batch`. ``passed`` is True only with no failure.

    ``excluded_slices``: batch-relative paths excluded by policy (the batch passed without
    them). ``report_paths``: files written under ``report_dir`` (validation.json, index.html,
    the GE Data Docs index). ``manifest``: the per-slice manifest, with a boolean ``excluded``
    column; left out of equality, repr and :meth:`to_dict`.
    """

    batch_id: str
    passed: bool
    reasons: tuple[str, ...]
    failures: tuple[Failure, ...]
    excluded_slices: tuple[str, ...]
    n_slices: int
    n_patients: int
    source: str
    policy: ValidationPolicy
    report_paths: tuple[str, ...] = ()
    manifest: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False, repr=False)

    @property
    def failed_checks(self) -> frozenset[Check]:
        """Return the checks that failed."""
        return frozenset(f.check for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict without the manifest as JSON-safe values."""
        return {
            "batch_id": self.batch_id,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "failures": [f.to_dict() for f in self.failures],
            "excluded_slices": list(self.excluded_slices),
            "n_slices": self.n_slices,
            "n_patients": self.n_patients,
            "source": self.source,
            "policy": self.policy.to_dict(),
            "report_paths": list(self.report_paths),
        }


# ------------------------------------------------------------------------------- the tables


def slice_table(manifest: pd.DataFrame, known_hashes: Mapping[str, str]) -> pd.DataFrame:
    """Return the manifest plus ``earlier_patient``: the patient key of an earlier batch that
    sent the same sha256 (None when new)."""
    table = manifest.reset_index(drop=True).copy()
    table["earlier_patient"] = [known_hashes.get(h) if h else None for h in table["sha256"]]
    return table


def _details_or_empty(batch_dir: Path) -> pd.DataFrame:
    try:
        return read_patient_details(batch_dir)
    except (FileNotFoundError, ValueError):
        return pd.DataFrame(columns=list(schema.PATIENT_DETAILS_COLUMNS))


def _expected_series(row: Mapping[str, Any] | None) -> set[str] | None:
    """Series with a stated thickness; None when the row states none (then any is fine)."""
    if row is None:
        return None
    stated = {s for s, column in THICKNESS_COLUMNS.items() if str(row.get(column) or "").strip()}
    return stated or None


def _series_problems(found: set[str], expected: set[str] | None) -> tuple[str | None, str | None]:
    unexpected = {s for s in found if s not in schema.SERIES}
    missing: set[str] = set()
    if expected is not None:
        unexpected |= found - expected
        missing = expected - found
    return (",".join(sorted(missing)) or None, ",".join(sorted(unexpected)) or None)


def patient_validation_table(
    slices: pd.DataFrame,
    details: pd.DataFrame,
    source: str,
    known_labels: Mapping[str, str],
) -> pd.DataFrame:
    """Return one row per patient with images or a Patient_details.csv row.

    Columns: patient_key, patient_id, label (None when absent or empty), details_rows,
    n_slices, series (found, comma-joined), missing_series, unexpected_series,
    earlier_label (from ``known_labels``, keyed by patient key), label_contradiction
    ("earlier -> now" text, None when consistent or unknown).
    """
    rows_by_id: dict[str, pd.DataFrame] = {
        str(pid): rows for pid, rows in details.groupby(schema.PATIENT_COLUMN, sort=False)
    }
    with_series = slices[slices["series"].notna()]
    found_by_id: dict[str, set[str]] = {
        str(pid): {str(s) for s in group}
        for pid, group in with_series.groupby("patient_id")["series"]
    }
    counts = {str(pid): int(n) for pid, n in slices.groupby("patient_id").size().items()}
    rows = []
    for pid in sorted(set(rows_by_id) | set(counts)):
        details_rows = rows_by_id.get(pid)
        first = (
            {str(k): v for k, v in details_rows.iloc[0].items()}
            if details_rows is not None
            else None
        )
        label = (first or {}).get(schema.LABEL_COLUMN) or None
        missing, unexpected = _series_problems(found_by_id.get(pid, set()), _expected_series(first))
        key = schema.patient_key(source, pid)
        earlier = known_labels.get(key)
        rows.append(
            {
                "patient_key": key,
                "patient_id": pid,
                "label": label,
                "details_rows": 0 if details_rows is None else len(details_rows),
                "n_slices": int(counts.get(pid, 0)),
                "series": ",".join(sorted(found_by_id.get(pid, set()))) or None,
                "missing_series": missing if counts.get(pid) else None,
                "unexpected_series": unexpected,
                "earlier_label": earlier,
                "label_contradiction": (
                    f"{earlier} -> {label}" if earlier and label and earlier != label else None
                ),
            }
        )
    return pd.DataFrame(rows, columns=_PATIENT_VALIDATION_COLUMNS)


_PATIENT_VALIDATION_COLUMNS = [
    "patient_key",
    "patient_id",
    "label",
    "details_rows",
    "n_slices",
    "series",
    "missing_series",
    "unexpected_series",
    "earlier_label",
    "label_contradiction",
]


def layout_table(batch_dir: Path) -> pd.DataFrame:
    """Return one row per entry at the batch root (plus missing required files).

    Columns: entry (name, "/" appended to folders), problem (None when the entry is fine).
    Every symbolic link, hard link or special file anywhere in the batch is a row of its own
    (path escaped, reason from :func:`covidct.batch.files.scan_batch`).
    """
    refused = scan_batch(batch_dir).refused
    entries = [_details_entry(batch_dir), *_info_entry(batch_dir)]
    entries += [{"entry": escaped(name), "problem": reason} for name, reason in refused]
    refused_names = {name for name, _ in refused}
    for child in sorted(batch_dir.iterdir()):
        if child.name in refused_names or (child.name in ROOT_FILES and child.is_file()):
            continue
        entries.append(_root_entry(child))
    return pd.DataFrame(entries, columns=["entry", "problem"])


def _details_entry(batch_dir: Path) -> dict[str, Any]:
    try:
        ids = read_patient_details(batch_dir)[schema.PATIENT_COLUMN]
        bad = [(pid, name_problem(pid)) for pid in ids if pid and name_problem(pid)]
        problem = "; ".join(f"Patient ID '{escaped(pid)}' {why}" for pid, why in bad) or None
    except (FileNotFoundError, ValueError) as error:
        problem = str(error).replace(str(batch_dir) + "/", "")
    return {"entry": schema.PATIENT_DETAILS, "problem": problem}


def _info_entry(batch_dir: Path) -> list[dict[str, Any]]:
    if not (batch_dir / schema.BATCH_INFO).exists():
        return []
    try:
        read_batch_info(batch_dir)
        batch_source(batch_dir)
        problem = None
    except ValueError as error:
        problem = str(error).replace(str(batch_dir) + "/", "")
    return [{"entry": schema.BATCH_INFO, "problem": problem}]


def _root_entry(child: Path) -> dict[str, Any]:
    if not child.is_dir():
        allowed = ", ".join(sorted(ROOT_FILES))
        return {
            "entry": child.name,
            "problem": f"unexpected file at the batch root "
            f"(allowed: {allowed} and patient folders)",
        }
    name_issue = name_problem(child.name)
    if name_issue is not None:
        return {"entry": escaped(child.name) + "/", "problem": f"patient folder name {name_issue}"}
    has_files = any(p.is_file() for p in child.rglob("*"))
    return {"entry": child.name + "/", "problem": None if has_files else "empty patient folder"}


def batch_validation_table(
    batch_id: str, slices: pd.DataFrame, patients: pd.DataFrame, source: str
) -> pd.DataFrame:
    """Return a one-row table: batch_id, source, n_slices, n_patients_with_images."""
    with_images = int((patients["n_slices"] > 0).sum()) if len(patients) else 0
    return pd.DataFrame(
        [
            {
                "batch_id": batch_id,
                "source": source,
                "n_slices": len(slices),
                "n_patients_with_images": with_images,
            }
        ]
    )


# ------------------------------------------------------------------------- the expectations


def slice_expectations(policy: ValidationPolicy) -> list[tuple[Check, Any]]:
    """Return (check, GE expectation) pairs for the slice table."""
    import great_expectations.expectations as gxe

    return [
        (Check.EMPTY_BATCH, gxe.ExpectTableRowCountToBeBetween(min_value=1)),
        (Check.UNREADABLE, gxe.ExpectColumnValuesToBeNull(column="read_error")),
        (Check.MULTI_PAGE, gxe.ExpectColumnValuesToBeInSet(column="pages", value_set=[1])),
        (
            Check.CHANNELS,
            gxe.ExpectColumnValuesToBeInSet(column="samples_per_pixel", value_set=[1]),
        ),
        (Check.CHANNELS, gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[2])),
        (Check.DTYPE, gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint16"])),
        (
            Check.EIGHT_BIT,
            gxe.ExpectColumnValuesToBeBetween(column="max", min_value=policy.min_max_value),
        ),
        (Check.VALUE_RANGE, gxe.ExpectColumnValuesToBeBetween(column="min", min_value=0)),
        (
            Check.VALUE_RANGE,
            gxe.ExpectColumnValuesToBeBetween(column="max", max_value=policy.max_stored_value),
        ),
        (
            Check.SHAPE,
            gxe.ExpectColumnValuesToBeInSet(column="shape", value_set=[policy.shape_text]),
        ),
        (
            Check.CONSTANT,
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="max", column_B="min", ignore_row_if="either_value_is_missing"
            ),
        ),
        (
            Check.POLARITY,
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="mean",
                column_B="border_mean",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
        ),
        (
            Check.PHOTOMETRIC,
            gxe.ExpectColumnValuesToBeInSet(column="photometric", value_set=["MINISBLACK"]),
        ),
        (Check.IDENTIFYING_TAGS, gxe.ExpectColumnValuesToBeNull(column="identifying_tags")),
        (
            Check.HU_OFFSET,
            gxe.ExpectColumnValuesToBeBetween(
                column="p01", max_value=AIR_P01_MAX_HU + schema.HU_OFFSET
            ),
        ),
        (Check.SERIES_FOLDER, gxe.ExpectColumnValuesToNotBeNull(column="series")),
        (
            Check.SERIES_FOLDER,
            gxe.ExpectColumnValuesToBeInSet(column="series", value_set=list(schema.SERIES)),
        ),
        (Check.DUPLICATE_SLICE, gxe.ExpectColumnValuesToBeUnique(column="sha256")),
        (Check.RESENT_SLICE, gxe.ExpectColumnValuesToBeNull(column="earlier_patient")),
    ]


def patient_expectations() -> list[tuple[Check, Any]]:
    """Return (check, GE expectation) pairs for the patient table."""
    import great_expectations.expectations as gxe

    return [
        (Check.LABEL_MISSING, gxe.ExpectColumnValuesToNotBeNull(column="label")),
        (
            Check.LABEL_VALUE,
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(VALID_LABELS)),
        ),
        (
            Check.DUPLICATE_DETAILS,
            gxe.ExpectColumnValuesToBeBetween(column="details_rows", max_value=1),
        ),
        (Check.NO_IMAGES, gxe.ExpectColumnValuesToBeBetween(column="n_slices", min_value=1)),
        (Check.MISSING_SERIES, gxe.ExpectColumnValuesToBeNull(column="missing_series")),
        (Check.UNEXPECTED_SERIES, gxe.ExpectColumnValuesToBeNull(column="unexpected_series")),
        (Check.LABEL_CONTRADICTION, gxe.ExpectColumnValuesToBeNull(column="label_contradiction")),
    ]


def batch_expectations() -> list[tuple[Check, Any]]:
    """Return (check, GE expectation) pairs for the one-row batch table."""
    import great_expectations.expectations as gxe

    return [
        (Check.EMPTY_BATCH, gxe.ExpectTableRowCountToEqual(value=1)),
        (Check.EMPTY_BATCH, gxe.ExpectColumnValuesToBeBetween(column="n_slices", min_value=1)),
    ]


def layout_expectations() -> list[tuple[Check, Any]]:
    """Return (check, GE expectation) pairs for the layout table."""
    import great_expectations.expectations as gxe

    return [(Check.LAYOUT, gxe.ExpectColumnValuesToBeNull(column="problem"))]


#: Column naming each row in failures, per table.
INDEX_COLUMNS: dict[Table, str] = {
    Table.SLICES: "path",
    Table.PATIENTS: "patient_key",
    Table.BATCH: "batch_id",
    Table.LAYOUT: "entry",
}


# ------------------------------------------------------------------------------- GE runner


class ExpectationRunner:
    """Runs one GE suite per table in one ephemeral context; optionally builds Data Docs."""

    def __init__(self, docs_dir: Path | None = None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self._gx = gx
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            site: Any = _site(docs_dir)
            self.context.add_data_docs_site(site_name="covidct", site_config=site)

    def run(
        self, table: Table, frame: pd.DataFrame, expectations: Sequence[tuple[Check, Any]]
    ) -> list[Failure]:
        """Validate ``frame`` against ``expectations``; return one Failure per failed one."""
        gx = self._gx
        name = f"covidct_{table.value}"
        asset = self.context.data_sources.add_pandas(name).add_dataframe_asset(name)
        for check, expectation in expectations:
            expectation.meta = {"check": check.value}
            expectation.description = f"[{check.value}] {DESCRIPTIONS[check]}"
        # built whole, then stored once: adding one by one re-serialises the suite each time
        suite = self.context.suites.add(
            gx.ExpectationSuite(name=name, expectations=[e for _, e in expectations])
        )
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(
                name=name, data=asset.add_batch_definition_whole_dataframe(name), suite=suite
            )
        )
        index_column = INDEX_COLUMNS[table]
        result = definition.run(
            batch_parameters={"dataframe": frame.reset_index(drop=True)},
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [index_column],
            },
        )
        return [_failure(table, r, index_column) for r in result.results if not r.success]

    def build_docs(self) -> Path | None:
        """Build the Data Docs site; return its index.html (None without a docs folder)."""
        if self.docs_dir is None:
            return None
        self.context.build_data_docs(site_names=["covidct"])
        return self.docs_dir / "index.html"


def _site(docs_dir: Path) -> dict[str, Any]:
    return {
        "class_name": "SiteBuilder",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def _failure(table: Table, result: Any, index_column: str) -> Failure:
    config = result.expectation_config
    check = parse_enum(Check, str((config.meta or {}).get("check")), "check")
    details = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        message = result.exception_info.get("exception_message")
        return Failure(check, table, config.type, 1, (f"expectation could not run: {message}",))
    if "unexpected_index_list" in details:
        rows = details["unexpected_index_list"] or []
        examples = tuple(_example(row, index_column) for row in rows[:MAX_EXAMPLES])
        names = tuple(str(r.get(index_column)) if isinstance(r, Mapping) else str(r) for r in rows)
        count = int(details.get("unexpected_count", len(rows)))
        return Failure(check, table, config.type, count, examples, names)
    observed = details.get("observed_value")
    return Failure(check, table, config.type, 1, (f"observed {observed}",))


def _example(row: Any, index_column: str) -> str:
    if not isinstance(row, Mapping):
        return str(row)
    name = str(row.get(index_column))
    values = [f"{k}={_plain(v)}" for k, v in row.items() if k != index_column]
    return f"{name} ({', '.join(values)})" if values else name


def _plain(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.1f}"
    return str(value)


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
    excluded, slice_failures = apply_exclusions(slice_failures, slices, policy)
    kept = slices[~slices["path"].isin(excluded)]
    patients = patient_validation_table(
        kept, _details_or_empty(batch_dir), source, known_labels or {}
    )
    failures = slice_failures + runner.run(Table.PATIENTS, patients, patient_expectations())
    failures += runner.run(
        Table.BATCH, batch_validation_table(batch_id, kept, patients, source), batch_expectations()
    )
    failures += runner.run(Table.LAYOUT, layout_table(batch_dir), layout_expectations())
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


# ------------------------------------------------------------------------------- reporting


def write_report(verdict: BatchVerdict, report_dir: Path, docs_index: Path | None) -> BatchVerdict:
    """Write ``validation.json`` and ``index.html`` into ``report_dir``; return the verdict
    with ``report_paths`` set (including the Data Docs index when built)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = [report_dir / "validation.json", report_dir / "index.html"]
    if docs_index is not None:
        paths.append(docs_index)
    verdict = _replace_paths(verdict, tuple(str(p) for p in paths))
    paths[0].write_text(json.dumps(verdict.to_dict(), indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(summary_html(verdict, docs_index, report_dir), encoding="utf-8")
    return verdict


def _replace_paths(verdict: BatchVerdict, paths: tuple[str, ...]) -> BatchVerdict:
    from dataclasses import replace

    return replace(verdict, report_paths=paths)


def summary_html(verdict: BatchVerdict, docs_index: Path | None, report_dir: Path) -> str:
    """Return a self-contained HTML page: verdict, failures table, link to the Data Docs."""
    status = "PASSED" if verdict.passed else "FAILED"
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                f.check.value,
                f.table.value,
                f.description,
                f.count,
                "; ".join(f.examples[:20]) + (" ..." if f.count > 20 else ""),
            )
        )
        + "</tr>"
        for f in verdict.failures
    )
    docs = (
        (
            f'<p><a href="{docs_index.relative_to(report_dir).as_posix()}">Great Expectations '
            f"Data Docs (every expectation, observed values)</a></p>"
        )
        if docs_index
        else ""
    )
    excluded = (
        ("<p>Excluded by policy: " + html.escape(", ".join(verdict.excluded_slices)) + "</p>")
        if verdict.excluded_slices
        else ""
    )
    return _PAGE.format(
        batch=html.escape(verdict.batch_id),
        status=status,
        color="#1a7f37" if verdict.passed else "#cf222e",
        n_slices=verdict.n_slices,
        n_patients=verdict.n_patients,
        source=html.escape(verdict.source),
        rows=rows or '<tr><td colspan="5">none</td></tr>',
        docs=docs,
        excluded=excluded,
        policy=html.escape(json.dumps(verdict.policy.to_dict())),
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>covidct validation: {batch}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}</style>
</head><body>
<h1>Batch {batch}: <span style="color:{color}">{status}</span></h1>
<p>{n_slices} slices, {n_patients} patients with images, source <code>{source}</code>.</p>
<p>Policy: <code>{policy}</code></p>{excluded}{docs}
<h2>Failed checks</h2>
<table><tr><th>check</th><th>table</th><th>what</th><th>count</th><th>files / patients</th></tr>
{rows}</table>
</body></html>
"""


def format_verdict(verdict: BatchVerdict) -> str:
    """Return the verdict as plain text for a terminal (one reason per line)."""
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"batch {verdict.batch_id}: {status} ({verdict.n_slices} slices, "
        f"{verdict.n_patients} patients, source {verdict.source})"
    ]
    lines += [f"  - {reason}" for reason in verdict.reasons]
    if verdict.excluded_slices:
        lines.append(
            f"  excluded by policy: {len(verdict.excluded_slices)} slices "
            f"({', '.join(verdict.excluded_slices[:REASON_EXAMPLES])}"
            f"{' ...' if len(verdict.excluded_slices) > REASON_EXAMPLES else ''})"
        )
    lines += [f"  report: {path}" for path in verdict.report_paths]
    return "\n".join(lines)
