"""The promotion gate as one pure function: :func:`judge` (issue 31, issue 34 item 2).

From the evidence (:class:`GateEvidence`: the comparisons with their bootstrap tests, the
subgroup tests, the serving check's result, the overlap and digest facts) and the settings to a
frozen :class:`covidct.promotion.gate.GateVerdict`; nothing is read or written. The rule, with its
error rates, is ``docs/gate.md``:

1. primary, against the baseline and the champion (intersection-union, each at one-sided
   ``alpha``; :func:`covidct.promotion.gate.judge_comparison`): the paired patient-bootstrap
   lower bound of the image ROC AUC difference above the margin;
2. secondary, against the champion (the baseline when there is none): COVID sensitivity
   non-inferior (studentized interval, margin by power analysis); and no subgroup smaller than
   the whole set shown to lose COVID sensitivity beyond ``subgroup_margin`` (Holm, family-wise
   ``alpha``; :func:`covidct.promotion.subgroup_gate.decide_subgroups`);
3. vetoes, as data in the verdict (``vetoes``): a model scored on patients it saw, a scored
   model whose digest is not the registered one, a failed serving check. Any veto refuses.

A promoted candidate's figures were selected on the patients that decided (winner's curse): the
verdict's ``figures`` are then corrected for that selection (the conditional maximum-likelihood
difference of the binding comparison, :func:`covidct.promotion.stats.selection_corrected`,
carried to each figure through its bootstrap regression on that difference) and
``figures_basis`` says so; a refused candidate's figures are as measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from covidct.config import FirstRunPolicy, GateSettings
from covidct.promotion.gate import (
    Comparison,
    ComparisonEvidence,
    GateStatus,
    GateVerdict,
    decide,
    judge_comparison,
)
from covidct.promotion.stats import selection_corrected
from covidct.promotion.subgroup_gate import SubgroupTest, decide_subgroups, with_subgroups

#: ``figures_basis`` of a figure corrected for the promotion's selection
SELECTION_CORRECTED = "selection-corrected"
#: ``figures_basis`` of figures as measured on the sequestered patients of the decision
AS_MEASURED = "as measured"


@dataclass(frozen=True)
class GateEvidence:
    """Everything the gate judges, gathered beforehand (``covidct.pipeline.decision``).

    ``comparisons``: one :class:`covidct.promotion.gate.ComparisonEvidence` per comparator
    (``baseline``, ``champion``); ``subgroups``: the subgroup tests against the champion (None:
    no champion to compare with); ``candidate_overlap``: sequestered patients the candidate saw
    in development; ``altered``: scored models whose digest differs from the registered one
    (``"<name> v<version>"``); ``serving_passed``/``serving_reason``: the serving check;
    ``notes``: the confirmation's notes, shown first; ``patients_used``: sequestered patient ids
    the decision used; ``figures``: the candidate's figures on them; ``figure_slopes``: per
    comparator, per figure, the bootstrap regression slope of the figure on the primary
    difference (for the selection correction).
    """

    candidate: str
    has_champion: bool
    comparisons: tuple[ComparisonEvidence, ...] = ()
    subgroups: tuple[SubgroupTest, ...] | None = None
    subgroup_comparator: str = "champion"
    candidate_version: str = ""
    candidate_overlap: int = 0
    altered: tuple[str, ...] = ()
    serving_passed: bool = True
    serving_reason: str = ""
    notes: tuple[str, ...] = ()
    patients_used: tuple[str, ...] = ()
    figures: Mapping[str, float] = field(default_factory=dict)
    figure_slopes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def vetoes(evidence: GateEvidence) -> tuple[str, ...]:
    """The vetoes the evidence raises (module doc, item 3), as reasons."""
    found = []
    if evidence.altered:  # what was scored is not what the registry holds: never promote on it
        found.append(
            f"model scored is not the model registered (digests differ): {list(evidence.altered)}"
        )
    if evidence.candidate_overlap:  # even with nothing to compare with (first run)
        found.append(
            f"{evidence.candidate} v{evidence.candidate_version} saw "
            f"{evidence.candidate_overlap} of the sequestered patients it was scored on in "
            "development: its figures are not clean"
        )
    if not evidence.serving_passed:
        found.append(
            f"serving check of v{evidence.candidate_version} failed: {evidence.serving_reason}"
        )
    return tuple(found)


def secondary_comparator(evidence: GateEvidence) -> str:
    """The comparator of the COVID-sensitivity rule: the champion when compared, else the
    baseline."""
    names = {c.comparator for c in evidence.comparisons}
    return "champion" if "champion" in names else "baseline"


def judge(evidence: GateEvidence, settings: GateSettings) -> GateVerdict:
    """The gate's verdict on its evidence (module doc): a pure function."""
    secondary = secondary_comparator(evidence)
    comparisons: dict[str, Comparison] = {}
    for item in evidence.comparisons:
        if item.comparator != secondary and item.sensitivity is not None:
            item = replace(item, sensitivity=None)
        comparisons[item.comparator] = judge_comparison(item, settings)
    verdict = decide(
        evidence.candidate, comparisons, has_champion=evidence.has_champion, settings=settings,
        figures=evidence.figures,
    )  # fmt: skip
    subgroups = None
    if evidence.subgroups is not None:
        subgroups = decide_subgroups(
            evidence.subgroups, settings, comparator=evidence.subgroup_comparator
        )
        verdict = with_subgroups(verdict, subgroups)
    if evidence.notes:
        verdict = replace(verdict, reasons=(*evidence.notes, *verdict.reasons))
    found = vetoes(evidence)
    if found:
        verdict = replace(
            verdict, passed=False, status=GateStatus.REFUSE, reasons=(*verdict.reasons, *found)
        )
    figures, basis = recorded_figures(evidence, verdict, settings)
    return replace(
        verdict, vetoes=found, patients_used=tuple(evidence.patients_used), figures=figures,
        figures_basis=basis, subgroups=subgroups,
    )  # fmt: skip


def recorded_figures(
    evidence: GateEvidence, verdict: GateVerdict, settings: GateSettings
) -> tuple[dict[str, float], str]:
    """The candidate's figures as the registry records them, and what they are (module doc).

    Promoted on the comparisons: each figure minus its slope times the optimism of the binding
    comparison (the smallest ``difference / se``), ``difference - selection_corrected(...)``.
    """
    figures = dict(evidence.figures)
    n = len(evidence.patients_used)
    measured = f"{AS_MEASURED} on the {n} sequestered patients of this decision"
    tested = [c for c in verdict.comparisons if math.isfinite(c.se) and c.se > 0]
    promote_best = (
        verdict.status == GateStatus.FIRST_RUN
        and settings.first_run_policy == FirstRunPolicy.PROMOTE_BEST
    )
    if not verdict.passed or not tested or promote_best:
        return figures, measured
    binding = min(tested, key=lambda c: c.difference / c.se)
    optimism = binding.difference - selection_corrected(
        binding.difference, binding.se, alpha=settings.alpha
    )
    slopes = evidence.figure_slopes.get(binding.comparator, {})
    corrected = {
        key: (value - slopes[key] * optimism if key in slopes and value is not None else value)
        for key, value in figures.items()
    }
    basis = (
        f"{SELECTION_CORRECTED}: measured on the {n} sequestered patients that selected it "
        f"(optimistic by about {optimism:+.4f} {binding.metric} against {binding.comparator}), "
        "corrected by the conditional maximum-likelihood difference; re-estimated on patients "
        "this decision did not use once the pool holds them"
    )
    return corrected, basis
