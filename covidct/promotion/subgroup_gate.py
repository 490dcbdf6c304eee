"""The gate's subgroup rule: no subgroup may lose COVID sensitivity against the champion.

Rule (issue 16). The candidate and the champion are scored on the same sequestered patients.
For every subgroup of :func:`covidct.evaluation.subgroups.iter_subgroups` (sex, age band, series,
slice
thickness, source) holding at least ``GateSettings.subgroup_min_patients`` patients, of whom at
least ``GateSettings.subgroup_min_covid_patients`` have COVID (only they enter sensitivity), the
95% paired patient bootstrap interval of the image-level COVID-sensitivity difference
(candidate - champion; :data:`covidct.promotion.gate.SENSITIVITY_METRIC`, the metric of the gate's
overall non-inferiority test) is computed on that subgroup's rows. The candidate is refused when
any lower bound is below ``-GateSettings.sensitivity_margin``; each reason names the subgroup,
e.g. ``sex=F: COVID sensitivity difference lower bound -0.1200 < -0.0500``.

Smaller subgroups are not judged but listed (:attr:`SubgroupVerdict.not_judged`). Each
subgroup's interval is marginal: with k judged subgroups the chance that at least one falsely
refuses an equivalent candidate grows with k (a conservative rule, as a change control plan
wants); the minimum sizes keep k and the intervals' width in check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from covidct.config import GateSettings
from covidct.evaluation.subgroups import annotate, evaluated_rows, iter_subgroups, patient_counts
from covidct.promotion.gate import SENSITIVITY_METRIC, GateStatus, GateVerdict, PairedBootstrap


@dataclass(frozen=True)
class SubgroupComparison:
    """Candidate - champion COVID sensitivity in one subgroup.

    ``judged``: the subgroup met both minimum sizes; otherwise ``difference``/``ci_low``/
    ``ci_high`` are NaN and ``passed`` is True. ``reason``: empty unless it failed.
    """

    axis: str
    subgroup: str
    n_patients: int
    n_covid_patients: int
    judged: bool
    difference: float
    ci_low: float
    ci_high: float
    passed: bool
    reason: str

    @property
    def name(self) -> str:
        """``axis=subgroup``, e.g. ``sex=F``."""
        return f"{self.axis}={self.subgroup}"


@dataclass(frozen=True)
class SubgroupVerdict:
    """Outcome of the subgroup rule: ``passed`` unless some judged subgroup failed."""

    passed: bool
    reasons: tuple[str, ...]
    comparisons: tuple[SubgroupComparison, ...]
    margin: float
    min_patients: int
    min_covid_patients: int

    @property
    def not_judged(self) -> tuple[str, ...]:
        """``axis=subgroup`` of the subgroups below a minimum size (listed, not judged)."""
        return tuple(c.name for c in self.comparisons if not c.judged)

    def to_frame(self) -> pd.DataFrame:
        """One row per subgroup: the fields of :class:`SubgroupComparison`."""
        return pd.DataFrame([asdict(c) for c in self.comparisons])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN as None)."""
        record = asdict(self)
        record["not_judged"] = list(self.not_judged)
        for item in record["comparisons"]:
            for key in ("difference", "ci_low", "ci_high"):
                item[key] = None if math.isnan(item[key]) else item[key]
        return record


def judge_subgroups(
    candidate: pd.DataFrame,
    champion: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    settings: GateSettings,
    paired_bootstrap: PairedBootstrap,
    comparator: str = "champion",
) -> SubgroupVerdict:
    """Apply the subgroup rule (module doc) to two models' predictions on the same patients.

    ``candidate``, ``champion``: prediction tables (``covidct.evaluation`` schema, one row per
    slice, a ``series`` column when known) over the same patients and slices; ``roster``:
    :func:`covidct.evaluation.subgroups.patient_roster` rows for sex, age and slice thickness.
    ``paired_bootstrap``: as for :func:`covidct.promotion.gate.compare` (the pipeline passes
    :func:`covidct.evaluation.paired_bootstrap` with the gate's ``n_boot`` and ``seed``).
    Raises ValueError if the two tables hold different patients.
    """
    edges = settings.age_band_edges
    ours = evaluated_rows(annotate(candidate, roster, age_band_edges=edges))
    theirs = evaluated_rows(annotate(champion, roster, age_band_edges=edges))
    if set(ours["patient_id"]) != set(theirs["patient_id"]):
        differ = set(ours["patient_id"]) ^ set(theirs["patient_id"])
        raise ValueError(
            f"subgroup gate: candidate and {comparator} were not evaluated on the same patients "
            f"({len(differ)} differ, e.g. {sorted(differ)[:3]})"
        )
    margin = settings.sensitivity_margin
    comparisons = []
    for axis, level, rows in iter_subgroups(ours, age_band_edges=edges, include_all=False):
        counts = patient_counts(rows)
        judged = (
            counts["n_patients"] >= settings.subgroup_min_patients
            and counts["n_covid_patients"] >= settings.subgroup_min_covid_patients
        )
        if not judged:
            comparisons.append(
                SubgroupComparison(
                    axis,
                    level,
                    counts["n_patients"],
                    counts["n_covid_patients"],
                    False,
                    math.nan,
                    math.nan,
                    math.nan,
                    True,
                    "",
                )  # fmt: skip
            )
            continue
        other = theirs.loc[theirs[axis].astype(str) == level]
        difference, low, high = paired_bootstrap(_plain(rows), _plain(other), SENSITIVITY_METRIC)
        passed = low >= -margin  # NaN fails, as in covidct.promotion.gate.compare
        reason = (
            ""
            if passed
            else (
                f"{axis}={level}: COVID sensitivity difference lower bound {low:+.4f} < "
                f"{-margin:+.4f} (vs {comparator}: difference {difference:+.4f}, 95% CI "
                f"[{low:+.4f}, {high:+.4f}], {counts['n_patients']} patients, "
                f"{counts['n_covid_patients']} with COVID)"
            )
        )
        comparisons.append(
            SubgroupComparison(
                axis,
                level,
                counts["n_patients"],
                counts["n_covid_patients"],
                True,
                float(difference),
                float(low),
                float(high),
                bool(passed),
                reason,
            )  # fmt: skip
        )
    reasons = tuple(c.reason for c in comparisons if not c.passed)
    return SubgroupVerdict(
        not reasons, reasons, tuple(comparisons), margin, settings.subgroup_min_patients,
        settings.subgroup_min_covid_patients,
    )  # fmt: skip


def _plain(rows: pd.DataFrame) -> pd.DataFrame:
    """Drop the subgroup columns: the bootstrap gets the evaluation schema only."""
    return rows.drop(columns=["sex", "age_band", "slice_thickness", "source"])


def with_subgroups(verdict: GateVerdict, subgroups: SubgroupVerdict) -> GateVerdict:
    """The gate's verdict with the subgroup rule applied.

    A passed subgroup rule leaves ``verdict`` as it is. A failed one refuses: a promoting verdict
    becomes :attr:`GateStatus.REFUSE` (a first-run verdict keeps its status) with the subgroup
    reasons as its reasons; an already refused verdict gets them appended.
    """
    if subgroups.passed:
        return verdict
    status = GateStatus.FIRST_RUN if verdict.status == GateStatus.FIRST_RUN else GateStatus.REFUSE
    kept: Sequence[str] = () if verdict.passed else verdict.reasons
    return replace(verdict, passed=False, status=status, reasons=(*kept, *subgroups.reasons))
