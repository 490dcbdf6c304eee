"""Great Expectations 1.x suites of batch validation: one suite per table (slices, patients, batch,
layout), run by :class:`ExpectationRunner` in an ephemeral context; failures become
:class:`~covidct.batch.checks.Failure` records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from covidct import schema
from covidct.batch.checks import (
    AIR_P01_MAX_HU,
    DESCRIPTIONS,
    MAX_EXAMPLES,
    VALID_LABELS,
    Check,
    Failure,
    Table,
    ValidationPolicy,
)
from covidct.batch.data_docs import escape_stored_results, make_offline
from covidct.config import parse_enum

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

    return [
        (Check.LAYOUT, gxe.ExpectColumnValuesToBeNull(column="problem")),
        (Check.INPUT_LIMIT, gxe.ExpectColumnValuesToBeNull(column="over_limit")),
    ]


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
        """Build the Data Docs site; return its index.html (None without a docs folder).

        The pages are safe to open and render offline (:mod:`covidct.batch.data_docs`): input
        values escaped before GE renders them, no script, no CDN, a static index."""
        if self.docs_dir is None:
            return None
        success = escape_stored_results(self.context.validation_results_store)
        self.context.build_data_docs(site_names=["covidct"])
        return make_offline(self.docs_dir, success)


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
        return "none"  # a missing value reads "none", never Python's "None"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.1f}"
    return str(value)
