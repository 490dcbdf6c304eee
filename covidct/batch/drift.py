"""Batch drift: how far a newly landed (validated) batch lies from the curated reference data.

Three families of measures, each with a configured limit (:class:`covidct.config.DriftSettings`):

1. ``hu_wasserstein``: the 1-D Wasserstein (earth mover's) distance, in Hounsfield units, between
   the pooled per-pixel HU distributions of the batch and of the reference, with a permutation
   p-value over *patients* (slices of one patient are not independent, so patients are the unit
   that is exchanged). It drifts when the distance exceeds its limit **and** p < ``alpha``: a
   large distance from a handful of patients may be chance, and with thousands of slices a
   clinically meaningless distance is always "significant".
2. ``slice_<stat>``: for each per-slice statistic the manifest records (``mean``, ``p01``,
   ``p99``, ``border_mean`` in HU; ``dark_pixels`` as a count), the share of the batch's slices
   outside the reference's central range (its ``stat_quantiles``, default 1st-99th percentile,
   widened by ``stat_tolerance_hu`` for HU statistics). Without drift about 2% fall outside; it
   drifts above ``stat_outside_share_limit``. This one is a Great Expectations distribution
   check (``ExpectColumnValuesToBeBetween`` with ``mostly``), run on the batch's slice table.
3. ``unseen_<field>``: acquisition metadata (``source``, ``thickness_mm`` from
   ``Patient_details.csv``, ``kernel`` from ``batch.json`` when recorded): the share of the
   batch's slices whose value never occurs in the reference. Unknown values are not compared.

Sampling (what keeps it fast): at most ``max_slices_per_patient`` slices per patient and
``max_reference_patients`` reference patients are read, both drawn with a NumPy generator seeded
by ``seed`` (the same inputs always give the same report); every pixel of a read slice is
counted into exact 1-HU histograms, so the distance is exact for what is read and each of the
``permutations`` re-sums patient histograms (:mod:`covidct.batch.hu_distribution`): 999 permutations
of 100 patients take well under a second.

A batch that drifts is still accepted: drift raises a ``batch_drift`` alert (:func:`drift_alert`)
naming the measures, it does not quarantine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.alerts import Alert, AlertKind, Severity
from covidct.batch.contract import read_batch_info, read_patient_details
from covidct.batch.hu_distribution import (
    patient_histograms,
    permutation_p_value,
    readable_slices,
    sample_slices,
)
from covidct.config import DriftSettings

#: Per-slice manifest statistics compared; all but ``dark_pixels`` are stored values (-> HU).
SLICE_STATS: tuple[str, ...] = ("mean", "p01", "p99", "border_mean", "dark_pixels")
_HU_STATS = frozenset({"mean", "p01", "p99", "border_mean"})
#: Acquisition fields compared as categories.
ACQUISITION_FIELDS: tuple[str, ...] = ("source", "thickness_mm", "kernel")


@dataclass(frozen=True)
class DriftMeasure:
    """One measure of one batch against the reference.

    ``value`` and ``limit`` in ``unit`` (``HU`` or ``share``); ``drifted``: ``value > limit``
    (and ``p_value < alpha`` where a p-value is given). ``detail``: one human line.
    """

    name: str
    value: float
    limit: float
    unit: str
    drifted: bool
    p_value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class DriftReport:
    """Every measure of a batch; ``drifted`` when any measure did."""

    batch_id: str
    measures: tuple[DriftMeasure, ...]
    reference_patients: int
    reference_slices: int
    batch_patients: int
    batch_slices: int

    @property
    def drifted(self) -> bool:
        """True when at least one measure drifted."""
        return any(m.drifted for m in self.measures)

    @property
    def drifted_measures(self) -> list[str]:
        """Names of the measures that drifted, in report order."""
        return [m.name for m in self.measures if m.drifted]

    def measure(self, name: str) -> DriftMeasure:
        """The measure called ``name``; KeyError naming the known ones otherwise."""
        for item in self.measures:
            if item.name == name:
                return item
        raise KeyError(f"no drift measure {name!r}; known: {[m.name for m in self.measures]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (NaN becomes None)."""
        record = asdict(self)
        record["drifted"] = self.drifted
        record["drifted_measures"] = self.drifted_measures
        for item in record["measures"]:
            for key in ("value", "p_value"):
                if isinstance(item[key], float) and math.isnan(item[key]):
                    item[key] = None
        return record


# --------------------------------------------------------------------------- reading


def acquisition_frame(batch_dir: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Per-slice acquisition categories of one batch folder: ``path``, ``source``,
    ``thickness_mm`` (text, from ``Patient_details.csv`` by patient and series; None when
    unknown) and ``kernel`` (``batch.json``'s optional ``"kernel"`` string; None when absent).
    """
    details = read_patient_details(Path(batch_dir) / schema.PATIENT_DETAILS)
    thickness: dict[tuple[str, str], str] = {}
    for _, row in details.iterrows():
        for series in schema.SERIES:
            value = row[f"{series} Folder thickness(mm)"]
            if not pd.isna(value):
                thickness[(str(row[schema.PATIENT_COLUMN]), series)] = f"{float(value):g}"
    kernel = read_batch_info(batch_dir).get("kernel")
    return pd.DataFrame(
        {
            "path": manifest["path"].astype(str),
            "source": manifest["source"].astype(str),
            "thickness_mm": [
                thickness.get((str(p), str(s)))
                for p, s in zip(manifest["patient_id"], manifest["series"], strict=True)
            ],
            "kernel": str(kernel) if isinstance(kernel, str) and kernel else None,
        }
    )


# --------------------------------------------------------------------------- measures


def slice_stat_ranges(
    reference: pd.DataFrame, settings: DriftSettings
) -> dict[str, tuple[float, float]]:
    """The reference's accepted range of each :data:`SLICE_STATS` column it has, HU statistics
    in HU: its ``stat_quantiles``, widened by ``stat_tolerance_hu`` for HU statistics."""
    ranges = {}
    for stat in SLICE_STATS:
        if stat not in reference.columns:
            continue
        ref = pd.to_numeric(reference[stat], errors="coerce").dropna().to_numpy(np.float64)
        if ref.size == 0:
            continue
        low, high = (float(q) for q in np.quantile(ref, settings.stat_quantiles))
        if stat in _HU_STATS:
            low -= schema.HU_OFFSET + settings.stat_tolerance_hu
            high += settings.stat_tolerance_hu - schema.HU_OFFSET
        ranges[stat] = (low, high)
    return ranges


def slice_stat_measures(
    reference: pd.DataFrame, batch: pd.DataFrame, settings: DriftSettings
) -> list[DriftMeasure]:
    """One ``slice_<stat>`` measure per :data:`SLICE_STATS` column present on both sides.

    Judged by Great Expectations: ``ExpectColumnValuesToBeBetween`` with the reference's range
    (:func:`slice_stat_ranges`) and ``mostly = 1 - stat_outside_share_limit`` on the batch's
    slice table (HU statistics in HU); the value is GE's share of unexpected slices.
    """
    ranges = slice_stat_ranges(reference, settings)
    table = pd.DataFrame(
        {
            stat: pd.to_numeric(batch[stat], errors="coerce").astype("float64")
            - (schema.HU_OFFSET if stat in _HU_STATS else 0)
            for stat in ranges
            if stat in batch.columns and pd.to_numeric(batch[stat], errors="coerce").notna().any()
        }
    )
    if table.empty:
        return []
    limit = settings.stat_outside_share_limit
    results = _expect_between(table, {stat: ranges[stat] for stat in table.columns}, 1.0 - limit)
    low_q, high_q = settings.stat_quantiles
    measures = []
    for stat, (share, passed, count) in results.items():
        low, high = ranges[stat]
        unit = "HU" if stat in _HU_STATS else "pixels"
        measures.append(
            DriftMeasure(
                name=f"slice_{stat}",
                value=share,
                limit=limit,
                unit="share",
                drifted=not passed,
                detail=(
                    f"{share:.1%} of {count} slices outside the reference's "
                    f"[{low:.1f}, {high:.1f}] {unit} (q{low_q:g}-q{high_q:g}; Great "
                    f"Expectations expect_column_values_to_be_between, mostly {1 - limit:g})"
                ),
            )
        )
    return measures


def _expect_between(
    table: pd.DataFrame, ranges: Mapping[str, tuple[float, float]], mostly: float
) -> dict[str, tuple[float, bool, int]]:
    """Run one GE suite of ``ExpectColumnValuesToBeBetween`` over ``table``; return per column
    (share of non-missing values outside, GE's success, non-missing count)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("drift").add_dataframe_asset("slice_stats")
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(
            column=stat, min_value=low, max_value=high, mostly=min(max(mostly, 0.0), 1.0)
        )
        for stat, (low, high) in ranges.items()
    ]
    suite = context.suites.add(gx.ExpectationSuite(name="drift", expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name="drift", data=asset.add_batch_definition_whole_dataframe("all"), suite=suite
        )
    )
    result = definition.run(
        batch_parameters={"dataframe": table.reset_index(drop=True)}, result_format="SUMMARY"
    )
    found = {}
    for item in result.results:
        details = item.result or {}
        count = int(details.get("element_count", 0)) - int(details.get("missing_count", 0))
        unexpected = int(details.get("unexpected_count", 0))
        found[str(item.expectation_config.kwargs["column"])] = (
            unexpected / count if count else 0.0,
            bool(item.success),
            count,
        )
    return {stat: found[stat] for stat in ranges}


def acquisition_measures(
    reference: pd.DataFrame, batch: pd.DataFrame, settings: DriftSettings
) -> list[DriftMeasure]:
    """One ``unseen_<field>`` measure per :data:`ACQUISITION_FIELDS` column known on both sides."""
    measures = []
    for name in ACQUISITION_FIELDS:
        if name not in reference.columns or name not in batch.columns:
            continue
        seen = set(reference[name].dropna().astype(str))
        values = batch[name].dropna().astype(str)
        if not seen or values.empty:
            continue
        unseen = values[~values.isin(seen)]
        share = float(len(unseen) / len(values))
        limit = settings.unseen_category_share_limit
        measures.append(
            DriftMeasure(
                name=f"unseen_{name}",
                value=share,
                limit=limit,
                unit="share",
                drifted=share > limit,
                detail=(
                    f"{name} values not in the reference: {sorted(set(unseen))}"
                    if len(unseen)
                    else f"every {name} value occurs in the reference"
                ),
            )
        )
    return measures


def batch_drift(
    batch_id: str,
    reference_manifest: pd.DataFrame,
    reference_root: Path,
    batch_manifest: pd.DataFrame,
    batch_root: Path,
    settings: DriftSettings,
    *,
    reference_acquisition: pd.DataFrame | None = None,
    batch_acquisition: pd.DataFrame | None = None,
) -> DriftReport:
    """Compare a validated batch with the curated reference; return every measure.

    ``*_manifest``: manifests (:mod:`covidct.batch.manifest` columns; at least ``patient_key`` and
    ``path``, relative to ``*_root``). ``*_acquisition``: :func:`acquisition_frame` rows (or
    their concatenation over curated batches); without them no ``unseen_*`` measure is made,
    except ``unseen_source`` from the manifests' ``source`` column. Raises ValueError naming
    the batch when either side has no readable slice.
    """
    ref_slices = sample_slices(
        reference_manifest, max_slices_per_patient=settings.max_slices_per_patient,
        max_patients=settings.max_reference_patients, seed=settings.seed,
    )  # fmt: skip
    new_slices = sample_slices(
        batch_manifest, max_slices_per_patient=settings.max_slices_per_patient, seed=settings.seed
    )
    if ref_slices.empty or new_slices.empty:
        side = "reference" if ref_slices.empty else f"batch {batch_id}"
        raise ValueError(f"drift of batch {batch_id}: the {side} has no readable slice")
    reference = patient_histograms(ref_slices, reference_root)
    batch = patient_histograms(new_slices, batch_root)
    distance, p_value = permutation_p_value(
        reference, batch, permutations=settings.permutations, seed=settings.seed
    )
    hu = DriftMeasure(
        name="hu_wasserstein",
        value=distance,
        limit=settings.hu_wasserstein_limit,
        unit="HU",
        drifted=distance > settings.hu_wasserstein_limit and p_value < settings.alpha,
        p_value=p_value,
        detail=(
            f"W1 {distance:.1f} HU between pooled pixels of {batch.slices} batch and "
            f"{reference.slices} reference slices; p={p_value:.4f} over {settings.permutations} "
            f"patient permutations (alpha {settings.alpha:g})"
        ),
    )
    measures = [
        hu,
        *slice_stat_measures(
            readable_slices(reference_manifest), readable_slices(batch_manifest), settings
        ),
    ]
    if reference_acquisition is None or batch_acquisition is None:
        reference_acquisition, batch_acquisition = reference_manifest, batch_manifest
    measures += acquisition_measures(reference_acquisition, batch_acquisition, settings)
    return DriftReport(
        batch_id=batch_id,
        measures=tuple(measures),
        reference_patients=len(reference.patient_keys),
        reference_slices=reference.slices,
        batch_patients=len(batch.patient_keys),
        batch_slices=batch.slices,
    )


def drift_alert(report: DriftReport, *, dag_id: str = "", run_id: str = "") -> Alert | None:
    """The ``batch_drift`` alert (WARNING) naming the drifted measures; None without drift."""
    if not report.drifted:
        return None
    names = ", ".join(report.drifted_measures)
    details: Mapping[str, Any] = {
        "batch_id": report.batch_id,
        "drifted_measures": report.drifted_measures,
        "measures": {
            m.name: {"value": m.value, "limit": m.limit, "p_value": m.p_value, "detail": m.detail}
            for m in report.measures
            if m.drifted
        },
    }
    return Alert(
        kind=AlertKind.BATCH_DRIFT,
        severity=Severity.WARNING,
        summary=f"batch {report.batch_id} accepted but drifted from the reference: {names}",
        details=details,
        dag_id=dag_id,
        run_id=run_id,
    )


def format_drift(report: DriftReport) -> str:
    """Plain-text table of the report, one measure per line."""
    lines = [
        f"batch {report.batch_id}: {'DRIFTED' if report.drifted else 'no drift'} "
        f"({report.batch_patients} patients / {report.batch_slices} slices vs reference "
        f"{report.reference_patients} / {report.reference_slices})"
    ]
    for m in report.measures:
        flag = "DRIFT" if m.drifted else "ok"
        lines.append(f"  {m.name:<20} {m.value:10.4f} limit {m.limit:g} {m.unit}  {flag}")
    return "\n".join(lines)
