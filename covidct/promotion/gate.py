"""The promotion gate's comparisons: a verdict, never an exception (as TFX's blessing).

Rule (issue 31; written down with its error rates in ``docs/gate.md``). The candidate backbone is
*selected* by the development cross-validation; its deployable model is *confirmed* on the
sequestered patients, which no model of any run trained, validated or picked a threshold on. On
those patients it is compared with (a) the same run's ResNet152 deployable and (b) the current
champion. Against each comparator (:func:`judge_comparison`, a pure function of the evidence):

* no patient it is scored on was seen by either model (``overlap_patients`` is 0);
* primary: the one-sided (1 - ``alpha``) lower bound of the paired patient-bootstrap difference
  of image ROC AUC (candidate - comparator; threshold-free, clustered in patients) exceeds
  ``GateSettings.margin``. Intersection-union over the comparators: each at ``alpha``, no
  correction. A refusal says whether the difference was shown worse or only not shown better,
  with the smallest true gain the comparison detects with 80% power on its patients;
* secondary (against the champion, or the baseline when there is none): image-level COVID
  sensitivity non-inferior, the studentized patient-bootstrap lower bound at or above minus the
  margin the power analysis gives for the COVID patients compared
  (:func:`covidct.promotion.sensitivity.noninferiority_margin`).

Selection and confirmation use different patients, so picking the best of N backbones does not
bias the confirmation (``benchmarks/gate_null.py`` measures the promotion rates).

No champion yet is its own named verdict (:attr:`GateStatus.FIRST_RUN`); the policy
``beat-baseline`` (default) still requires beating ResNet152, ``promote-best`` rubber-stamps the
best backbone as TFX does. :func:`covidct.promotion.rule.judge` composes the comparisons, the
subgroup rule and the vetoes into one verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from covidct.config import FirstRunPolicy, GateSettings
from covidct.promotion.stats import NoninferiorityTest, PrimaryTest, primary_test
from covidct.schema import BASELINE_BACKBONE


class GateStatus(StrEnum):
    """Named outcomes of the gate."""

    PROMOTE = "promote"
    REFUSE = "refuse"
    FIRST_RUN = "first-run"


class Outcome(StrEnum):
    """What the primary comparison showed."""

    BETTER = "better"
    #: not shown better and not shown worse: the comparison lacked the power to tell
    UNDERPOWERED = "not shown better (lack of power)"
    WORSE = "worse"


@dataclass(frozen=True)
class Comparison:
    """Candidate against one comparator (``baseline`` or ``champion``) on the same patients.

    ``difference``/``ci_low``/``ci_high``: the primary metric, candidate - comparator, with the
    one-sided (1 - alpha) bounds (the two-sided 95% interval at alpha 0.025) of the paired patient
    bootstrap; ``sensitivity_*``: the studentized interval of image-level COVID sensitivity
    (NaN when not judged against this comparator). ``n_patients``: patients compared;
    ``overlap_patients``: how many of them either model saw in development (must be 0).
    ``se``: bootstrap standard error of the primary difference; ``detectable_gain``: the smallest
    true difference detected with 80% power at that error; ``sensitivity_margin``: the
    non-inferiority margin used; ``outcome``: :class:`Outcome` value.
    """

    comparator: str
    comparator_name: str
    metric: str
    difference: float
    ci_low: float
    ci_high: float
    sensitivity_difference: float
    sensitivity_ci_low: float
    sensitivity_ci_high: float
    n_patients: int
    overlap_patients: int
    passed: bool
    reasons: tuple[str, ...]
    se: float = math.nan
    detectable_gain: float = math.nan
    sensitivity_margin: float = math.nan
    outcome: str = ""


@dataclass(frozen=True)
class ComparisonEvidence:
    """What the data say about the candidate against one comparator, before any rule.

    ``primary``: the paired patient-bootstrap test of the primary metric; ``sensitivity``: the
    studentized COVID-sensitivity test (None: not computed); ``n_covid_patients``: COVID
    patients compared (sets the non-inferiority margin).
    """

    comparator: str
    comparator_name: str
    metric: str
    primary: PrimaryTest
    sensitivity: NoninferiorityTest | None
    n_patients: int
    n_covid_patients: int
    overlap_patients: int = 0


@dataclass(frozen=True)
class GateVerdict:
    """Outcome of the gate: ``passed`` means move ``@champion`` to the candidate.

    ``vetoes``: refusals that no comparison can outweigh (overlap, digests, serving check), as
    data; ``endpoint``: the primary metric; ``detectable_gain``: the smallest true gain the
    decision detects with 80% power on its patients (the largest over the comparators: it must
    beat each); ``patients_used``: the sequestered patients the decision used;
    ``figures_basis``: how the candidate's figures were estimated.
    """

    passed: bool
    status: GateStatus
    candidate: str
    reasons: tuple[str, ...]
    comparisons: tuple[Comparison, ...] = ()
    figures: Mapping[str, float] = field(default_factory=dict)
    vetoes: tuple[str, ...] = ()
    endpoint: str = ""
    detectable_gain: float | None = None
    patients_used: tuple[str, ...] = ()
    figures_basis: str = ""
    #: the subgroup rule's :class:`covidct.promotion.subgroup_gate.SubgroupVerdict`, or None
    subgroups: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of the verdict (NaN as None)."""
        record = asdict(replace(self, subgroups=None))
        record["subgroups"] = None if self.subgroups is None else self.subgroups.to_dict()
        record["status"] = self.status.value
        record["figures"] = dict(self.figures)
        record["patients_used"] = list(self.patients_used)
        record["vetoes"] = list(self.vetoes)
        return _json_safe(record)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: (candidate predictions, comparator predictions, metric) -> a paired bootstrap result (with
#: ``difference`` and ``distribution``, :class:`covidct.evaluation.PairedBootstrapResult`) or
#: ``(difference, ci_low, ci_high)``
PairedBootstrap = Callable[[pd.DataFrame, pd.DataFrame, str], Any]

#: the non-inferiority metric
SENSITIVITY_METRIC = "image_covid_sensitivity"


def as_primary_test(result: Any, n_patients: int, *, alpha: float) -> PrimaryTest:
    """A :class:`PrimaryTest` from a paired bootstrap result or a ``(difference, low, high)``
    tuple (its standard error then read off the interval's width, normal approximation)."""
    if hasattr(result, "distribution"):
        return primary_test(float(result.difference), result.distribution, n_patients, alpha=alpha)
    difference, low, high = (float(v) for v in result)
    from covidct.promotion.stats import detectable_gain, z

    se = (high - low) / (2 * z(1 - alpha)) if np.isfinite(high - low) else math.nan
    return PrimaryTest(difference, low, high, se, detectable_gain(se, alpha=alpha), n_patients)


def gather(
    comparator: str,
    comparator_name: str,
    candidate_predictions: pd.DataFrame,
    comparator_predictions: pd.DataFrame,
    *,
    settings: GateSettings,
    paired_bootstrap: PairedBootstrap,
    overlap_patients: int = 0,
    sensitivity: bool = True,
) -> ComparisonEvidence:
    """The evidence of one comparison: primary test and (``sensitivity``) the studentized
    COVID-sensitivity test, on the same patients. Raises ValueError if the patient sets differ.
    """
    from covidct.promotion.sensitivity import noninferiority_margin, sensitivity_test

    patients_a = set(candidate_predictions["patient_id"])
    patients_b = set(comparator_predictions["patient_id"])
    if patients_a != patients_b:
        raise ValueError(
            f"gate: candidate and {comparator} were not evaluated on the same patients "
            f"({len(patients_a ^ patients_b)} differ)"
        )
    labels = candidate_predictions.groupby("patient_id")["y_true"].first().astype(str)
    n_covid = int(labels.str.lower().eq("covid").sum())
    result = paired_bootstrap(
        candidate_predictions, comparator_predictions, settings.primary_metric
    )
    primary = as_primary_test(result, len(patients_a), alpha=settings.alpha)
    test = None
    if sensitivity:
        margin = noninferiority_margin(
            n_covid, floor=settings.sensitivity_margin,
            planning_sd=settings.sensitivity_planning_sd, alpha=settings.alpha,
        )  # fmt: skip
        test = sensitivity_test(
            candidate_predictions, comparator_predictions, margin=margin,
            n_boot=settings.n_boot, seed=settings.seed, alpha=settings.alpha,
        )  # fmt: skip
    return ComparisonEvidence(
        comparator, comparator_name, settings.primary_metric, primary, test, len(patients_a),
        n_covid, int(overlap_patients),
    )  # fmt: skip


def judge_comparison(evidence: ComparisonEvidence, settings: GateSettings) -> Comparison:
    """Apply the per-comparator rule (module doc) to its evidence: a pure function."""
    primary, name = evidence.primary, f"{evidence.comparator} {evidence.comparator_name}"
    metric = evidence.metric
    reasons: list[str] = []
    if evidence.overlap_patients:
        reasons.append(
            f"vs {name}: {evidence.overlap_patients} of the {evidence.n_patients} sequestered "
            "patients were seen in development by a compared model; the comparison is not clean"
        )
    interval = (
        f"{metric} difference {_diff(metric, primary.difference)}, 95% CI "
        f"[{_diff(metric, primary.lower)}, {_diff(metric, primary.upper)}]"
    )
    power = (
        f"with {evidence.n_patients} patients ({evidence.n_covid_patients} COVID) this comparison "
        f"detects {_diff(metric, primary.detectable)} with 80% power"
    )
    if primary.lower > settings.margin:
        outcome = Outcome.BETTER
    elif primary.upper < settings.margin:
        outcome = Outcome.WORSE
        reasons.append(f"vs {name}: worse: {interval}, upper bound below the margin")
    else:
        outcome = Outcome.UNDERPOWERED
        reasons.append(
            f"vs {name}: not shown better, not shown worse (lack of power): {interval}; {power}"
        )
    test = evidence.sensitivity
    sens = (
        (math.nan,) * 4 if test is None else (test.difference, test.lower, test.upper, test.margin)
    )
    if test is not None and not test.noninferior:
        sens_diff = _diff(SENSITIVITY_METRIC, test.difference)
        reasons.append(
            f"vs {name}: COVID sensitivity difference {sens_diff}, "
            f"studentized 95% CI [{_diff(SENSITIVITY_METRIC, test.lower)}, "
            f"{_diff(SENSITIVITY_METRIC, test.upper)}]; non-inferiority needs the lower bound at "
            f"or above {_diff(SENSITIVITY_METRIC, -test.margin)} (margin for "
            f"{evidence.n_covid_patients} COVID patients)"
        )
    return Comparison(
        evidence.comparator, evidence.comparator_name, metric, primary.difference, primary.lower,
        primary.upper, sens[0], sens[1], sens[2], evidence.n_patients, evidence.overlap_patients,
        not reasons, tuple(reasons), primary.se, primary.detectable, sens[3], outcome.value,
    )  # fmt: skip


def compare(
    comparator: str,
    comparator_name: str,
    candidate_predictions: pd.DataFrame,
    comparator_predictions: pd.DataFrame,
    *,
    settings: GateSettings,
    paired_bootstrap: PairedBootstrap,
    overlap_patients: int = 0,
    sensitivity: bool = True,
) -> Comparison:
    """:func:`gather` then :func:`judge_comparison`: the candidate against one comparator.

    Both prediction tables have columns ``patient_id, y_true, p_covid`` (one row per slice) over
    the same patients. ``overlap_patients``: how many of those patients either model saw in
    development; any is a refusal naming the comparator. Raises ValueError if the patient sets
    differ.
    """
    evidence = gather(
        comparator, comparator_name, candidate_predictions, comparator_predictions,
        settings=settings, paired_bootstrap=paired_bootstrap, overlap_patients=overlap_patients,
        sensitivity=sensitivity,
    )  # fmt: skip
    return judge_comparison(evidence, settings)


def _diff(metric: str, value: float) -> str:
    """A difference as the reports show it: percentage points for a rate, a signed fraction
    for MCC and the AUCs (``covidct.report.html_report.UNITS``)."""
    if str(metric).endswith(("mcc", "roc_auc", "pr_auc")):
        return f"{value:+.4f}"
    return f"{100 * value:+.2f} points"


def decide(
    candidate: str,
    comparisons: Mapping[str, Comparison],
    *,
    has_champion: bool,
    settings: GateSettings,
    figures: Mapping[str, float] | None = None,
) -> GateVerdict:
    """Combine the comparisons into a verdict (intersection-union: every comparison must pass).

    ``comparisons`` maps ``"baseline"`` and/or ``"champion"`` to :func:`compare` results; a
    candidate that *is* the baseline backbone has no baseline comparison. With no champion,
    the first-run policy decides (module doc).
    """
    figures = dict(figures or {})
    done = tuple(comparisons.values())
    failed = tuple(reason for item in done for reason in item.reasons)
    detectable = [c.detectable_gain for c in done if math.isfinite(c.detectable_gain)]
    extra: dict[str, Any] = {
        "endpoint": settings.primary_metric,
        "detectable_gain": max(detectable) if detectable else None,
    }
    if not has_champion:
        if settings.first_run_policy == FirstRunPolicy.PROMOTE_BEST:
            reason = f"no champion yet; first-run policy promote-best promotes {candidate}"
            return GateVerdict(
                True, GateStatus.FIRST_RUN, candidate, (reason,), done, figures, **extra
            )
        if "baseline" not in comparisons:
            reason = (
                f"no champion yet and the best backbone is the {BASELINE_BACKBONE} baseline "
                "itself; first-run policy beat-baseline requires another backbone to beat it"
            )
            return GateVerdict(
                False, GateStatus.FIRST_RUN, candidate, (reason,), done, figures, **extra
            )
        head = "no champion yet; first-run policy beat-baseline"
        if failed:
            return GateVerdict(
                False, GateStatus.FIRST_RUN, candidate, (head, *failed), done, figures, **extra
            )
        ok = f"{head}: {candidate} beats the {BASELINE_BACKBONE} baseline"
        return GateVerdict(True, GateStatus.FIRST_RUN, candidate, (ok,), done, figures, **extra)
    if failed:
        return GateVerdict(False, GateStatus.REFUSE, candidate, failed, done, figures, **extra)
    if not done:
        reason = (
            f"{candidate} has no clean comparison (no baseline of its own and a champion that "
            "cannot be scored on sequestered patients it never saw): not promoted"
        )
        return GateVerdict(False, GateStatus.REFUSE, candidate, (reason,), done, figures, **extra)
    beaten = " and ".join(f"{c.comparator} {c.comparator_name}" for c in done)
    reason = f"{candidate} beats {beaten} beyond the margins"
    return GateVerdict(True, GateStatus.PROMOTE, candidate, (reason,), done, figures, **extra)
