"""The gate's subgroup rule: no subgroup may be shown to lose COVID sensitivity (issue 31).

Rule (``docs/gate.md``). The candidate and its comparator (the champion) are scored on the same
sequestered patients. A subgroup of :func:`covidct.evaluation.subgroups.iter_subgroups` (sex, age
band, series, slice thickness, source) is judged when it is strictly smaller than the whole set (a
subgroup holding every slice of every patient, such as the single source, is the overall comparison
again and is listed as ``whole set``) and holds at least ``GateSettings.subgroup_min_patients``
patients, of whom at least ``GateSettings.subgroup_min_covid_patients`` have COVID. In each judged
subgroup the studentized paired patient bootstrap
(:func:`covidct.promotion.sensitivity.sensitivity_test`) tests harm, ``H0: difference >=
-subgroup_margin`` against a loss beyond the margin; the candidate is refused when Holm's step-down
rejects some H0 at the family-wise one-sided level ``GateSettings.alpha``: an equivalent candidate
is refused by this rule at most ``alpha`` of the time however many subgroups are judged. Each
reason names the subgroup, e.g. ``sex=F: COVID sensitivity lost beyond the margin ...``. Each
judged subgroup also states the smallest loss it detects with 80% power.

:func:`gather_subgroups` computes the evidence from prediction tables; :func:`decide_subgroups`
is the pure rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from covidct.config import GateSettings
from covidct.evaluation.subgroups import annotate, evaluated_rows, iter_subgroups, patient_counts
from covidct.promotion.gate import GateStatus, GateVerdict, PairedBootstrap
from covidct.promotion.stats import NoninferiorityTest, detectable_gain, holm


@dataclass(frozen=True)
class SubgroupTest:
    """Evidence of one subgroup: its size, whether it is the whole set, and its test (None: not
    computed, too small or the whole set)."""

    axis: str
    subgroup: str
    n_patients: int
    n_covid_patients: int
    whole_set: bool
    test: NoninferiorityTest | None

    @property
    def name(self) -> str:
        """``axis=subgroup``."""
        return f"{self.axis}={self.subgroup}"


@dataclass(frozen=True)
class SubgroupComparison:
    """Candidate - champion COVID sensitivity in one subgroup.

    ``judged``: the subgroup is smaller than the whole set and met both minimum sizes; otherwise
    ``difference``/``ci_low``/``ci_high`` are NaN and ``passed`` is True. ``reason``: empty unless
    it failed. ``p_harm``: p-value of no loss beyond the margin; ``detectable_loss``: the loss
    detected with 80% power at the Holm level of its rank; ``note``: why it was not judged.
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
    p_harm: float = math.nan
    detectable_loss: float = math.nan
    note: str = ""

    @property
    def name(self) -> str:
        """``axis=subgroup``, e.g. ``sex=F``."""
        return f"{self.axis}={self.subgroup}"


@dataclass(frozen=True)
class SubgroupVerdict:
    """Outcome of the subgroup rule: ``passed`` unless Holm found harm in some subgroup.

    ``margin``: the subgroup margin; ``alpha``: the family-wise one-sided level.
    """

    passed: bool
    reasons: tuple[str, ...]
    comparisons: tuple[SubgroupComparison, ...]
    margin: float
    min_patients: int
    min_covid_patients: int
    alpha: float = math.nan

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
            for key in ("difference", "ci_low", "ci_high", "p_harm", "detectable_loss"):
                item[key] = None if math.isnan(item[key]) else item[key]
        return record


def gather_subgroups(
    candidate: pd.DataFrame,
    champion: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    settings: GateSettings,
    comparator: str = "champion",
) -> tuple[SubgroupTest, ...]:
    """The subgroup evidence: per subgroup, its size and its studentized harm test.

    ``candidate``, ``champion``: prediction tables (``covidct.evaluation`` schema, one row per
    slice, a ``series`` column when known) over the same patients and slices; ``roster``:
    :func:`covidct.evaluation.subgroups.patient_roster` rows for sex, age and slice thickness.
    Raises ValueError if the two tables hold different patients.
    """
    from covidct.promotion.sensitivity import sensitivity_test

    edges = settings.age_band_edges
    ours = evaluated_rows(annotate(candidate, roster, age_band_edges=edges))
    theirs = evaluated_rows(annotate(champion, roster, age_band_edges=edges))
    if set(ours["patient_id"]) != set(theirs["patient_id"]):
        differ = set(ours["patient_id"]) ^ set(theirs["patient_id"])
        raise ValueError(
            f"subgroup gate: candidate and {comparator} were not evaluated on the same patients "
            f"({len(differ)} differ, e.g. {sorted(differ)[:3]})"
        )
    everyone = len(ours)
    tests = []
    for axis, level, rows in iter_subgroups(ours, age_band_edges=edges, include_all=False):
        counts = patient_counts(rows)
        whole = len(rows) >= everyone  # every slice of every patient: the overall comparison
        judged = (
            not whole
            and counts["n_patients"] >= settings.subgroup_min_patients
            and counts["n_covid_patients"] >= settings.subgroup_min_covid_patients
        )
        test = None
        if judged:
            other = theirs.loc[theirs[axis].astype(str) == level]
            test = sensitivity_test(
                _plain(rows), _plain(other), margin=settings.subgroup_margin,
                n_boot=settings.n_boot, seed=settings.seed, alpha=settings.alpha,
            )  # fmt: skip
        tests.append(
            SubgroupTest(
                axis, level, counts["n_patients"], counts["n_covid_patients"], bool(whole), test
            )
        )
    return tuple(tests)


def decide_subgroups(
    tests: Sequence[SubgroupTest], settings: GateSettings, *, comparator: str = "champion"
) -> SubgroupVerdict:
    """The subgroup rule (module doc) on its evidence: Holm across the judged subgroups."""
    judged = [t for t in tests if t.test is not None]
    p_values = [t.test.p_harm for t in judged if t.test is not None]
    rejected = dict(zip((t.name for t in judged), holm(p_values, settings.alpha), strict=True))
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rank = {judged[i].name: j for j, i in enumerate(order)}
    margin = settings.subgroup_margin
    comparisons = []
    for item in tests:
        name = item.name
        if item.test is None:
            note = "whole set: judged as the overall comparison" if item.whole_set else (
                "below the minimum size"
            )  # fmt: skip
            comparisons.append(
                SubgroupComparison(
                    item.axis,
                    item.subgroup,
                    item.n_patients,
                    item.n_covid_patients,
                    False,
                    math.nan,
                    math.nan,
                    math.nan,
                    True,
                    "",
                    note=note,
                )  # fmt: skip
            )
            continue
        test = item.test
        level = settings.alpha / (len(judged) - rank[name])
        harmed = bool(rejected[name])
        reason = (
            f"{name}: COVID sensitivity lost beyond the margin {margin:.4f} (vs {comparator}: "
            f"difference {test.difference:+.4f}, studentized 95% CI [{test.lower:+.4f}, "
            f"{test.upper:+.4f}], p {test.p_harm:.4f} within Holm's level {level:.4f}; "
            f"{item.n_patients} patients, {item.n_covid_patients} with COVID)"
            if harmed
            else ""
        )
        comparisons.append(
            SubgroupComparison(
                item.axis,
                item.subgroup,
                item.n_patients,
                item.n_covid_patients,
                True,
                float(test.difference),
                float(test.lower),
                float(test.upper),
                not harmed,
                reason,
                float(test.p_harm),
                margin + detectable_gain(test.se, alpha=level),
            )  # fmt: skip
        )
    reasons = tuple(c.reason for c in comparisons if not c.passed)
    return SubgroupVerdict(
        not reasons, reasons, tuple(comparisons), margin, settings.subgroup_min_patients,
        settings.subgroup_min_covid_patients, settings.alpha,
    )  # fmt: skip


def judge_subgroups(
    candidate: pd.DataFrame,
    champion: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    settings: GateSettings,
    paired_bootstrap: PairedBootstrap | None = None,
    comparator: str = "champion",
) -> SubgroupVerdict:
    """:func:`gather_subgroups` then :func:`decide_subgroups` (``paired_bootstrap`` is no longer
    used: the subgroup tests are studentized; kept for callers)."""
    del paired_bootstrap
    tests = gather_subgroups(candidate, champion, roster, settings=settings, comparator=comparator)
    return decide_subgroups(tests, settings, comparator=comparator)


def _plain(rows: pd.DataFrame) -> pd.DataFrame:
    """Drop the subgroup columns: the tests get the evaluation schema only."""
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
