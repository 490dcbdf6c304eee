"""The vocabulary of batch validation: the tables, the checks and what each means, the policy (which
checks a batch may exclude slices for) and the verdict a batch gets (:class:`BatchVerdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from covidct import schema
from covidct.config import parse_enum

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
    INPUT_LIMIT = "input_limit"
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
    Check.INPUT_LIMIT: "Patient_details.csv or batch.json over its size, row or nesting limit"
    " (refused unread)",
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
