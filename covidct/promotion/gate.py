"""The promotion gate: a verdict, never an exception (CONVENTIONS 9; TFX blessing semantics).

Rule (issue 13). The candidate backbone is *selected* by the development cross-validation (the
leaderboard's fold means); its deployable model (the k fold models as one ensemble, registered
before it is scored) is then *confirmed* on the sequestered patients, which no model of any run
trained, validated or picked a threshold on (:mod:`covidct.data.sequester`). On those patients it is
compared with (a) the same run's ResNet152 deployable and (b) the current champion. Against each
comparator it passes when

* no patient it is scored on was seen by either model (``overlap_patients`` is 0);
* the lower bound of the 95% paired bootstrap interval (the unit is the patient) of the primary
  metric's difference (candidate - comparator) exceeds ``GateSettings.margin``; and
* COVID sensitivity is non-inferior: the lower bound of the 95% paired bootstrap interval of the
  image-level COVID-sensitivity difference is not below ``-GateSettings.sensitivity_margin``.

Selection and confirmation use different patients, so picking the best of N backbones does not
bias the confirmation (no winner's curse; ``benchmarks/gate_null.py`` measures the
false-promotion rate with 1 and 7 challengers).

Defaults: primary metric patient-level balanced accuracy (the test set is unbalanced, about
1:17 in images, so accuracy rewards calling everything normal; a patient-level metric matches the
unit of diagnosis and of the bootstrap), margin 0.0, sensitivity margin 0.05.

No champion yet is its own named verdict (:attr:`GateStatus.FIRST_RUN`); the policy
``beat-baseline`` (default) still requires beating ResNet152, ``promote-best`` rubber-stamps the
best backbone as TFX does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from covidct.config import FirstRunPolicy, GateSettings
from covidct.schema import BASELINE_BACKBONE


class GateStatus(StrEnum):
    """Named outcomes of the gate."""

    PROMOTE = "promote"
    REFUSE = "refuse"
    FIRST_RUN = "first-run"


@dataclass(frozen=True)
class Comparison:
    """Candidate against one comparator (``baseline`` or ``champion``) on the same patients.

    ``difference``/``ci_low``/``ci_high``: the primary metric, candidate - comparator, with its
    95% paired bootstrap interval; ``sensitivity_*``: the same for image-level COVID
    sensitivity. ``n_patients``: patients compared; ``overlap_patients``: how many of them
    either model trained, validated or picked a threshold on (must be 0).
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


@dataclass(frozen=True)
class GateVerdict:
    """Outcome of the gate: ``passed`` means move ``@champion`` to the candidate."""

    passed: bool
    status: GateStatus
    candidate: str
    reasons: tuple[str, ...]
    comparisons: tuple[Comparison, ...] = ()
    figures: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of the verdict."""
        record = asdict(self)
        record["status"] = self.status.value
        record["figures"] = dict(self.figures)
        return record


#: (candidate predictions, comparator predictions, metric) -> (difference, ci_low, ci_high)
PairedBootstrap = Callable[[pd.DataFrame, pd.DataFrame, str], tuple[float, float, float]]

#: the non-inferiority metric
SENSITIVITY_METRIC = "image_covid_sensitivity"


def compare(
    comparator: str,
    comparator_name: str,
    candidate_predictions: pd.DataFrame,
    comparator_predictions: pd.DataFrame,
    *,
    settings: GateSettings,
    paired_bootstrap: PairedBootstrap,
    overlap_patients: int = 0,
) -> Comparison:
    """Judge the candidate against one comparator on the same patients (rule in module doc).

    Both prediction tables have columns ``patient_id, y_true, p_covid`` (one row per slice,
    plus each model's ``patient_threshold``) over the same patients. ``overlap_patients``: how
    many of those patients either model saw in development (counted by the caller from the
    models' lineage); any is a refusal naming the comparator. Raises ValueError if the
    patient sets differ.
    """
    patients_a = set(candidate_predictions["patient_id"])
    patients_b = set(comparator_predictions["patient_id"])
    if patients_a != patients_b:
        raise ValueError(
            f"gate: candidate and {comparator} were not evaluated on the same patients "
            f"({len(patients_a ^ patients_b)} differ)"
        )
    difference, low, high = paired_bootstrap(
        candidate_predictions, comparator_predictions, settings.primary_metric
    )
    sens, sens_low, sens_high = paired_bootstrap(
        candidate_predictions, comparator_predictions, SENSITIVITY_METRIC
    )
    reasons: list[str] = []
    if overlap_patients:
        reasons.append(
            f"vs {comparator} {comparator_name}: {overlap_patients} of the {len(patients_a)} "
            "sequestered patients were seen in development by a compared model; the "
            "comparison is not clean"
        )
    metric = settings.primary_metric
    if not low > settings.margin:
        reasons.append(
            f"vs {comparator} {comparator_name}: {metric} difference "
            f"{_diff(metric, difference)}, 95% CI [{_diff(metric, low)}, {_diff(metric, high)}]; "
            f"lower bound not above the margin {_diff(metric, settings.margin)}"
        )
    if not sens_low >= -settings.sensitivity_margin:
        reasons.append(
            f"vs {comparator} {comparator_name}: COVID sensitivity difference "
            f"{_diff(SENSITIVITY_METRIC, sens)}, 95% CI [{_diff(SENSITIVITY_METRIC, sens_low)}, "
            f"{_diff(SENSITIVITY_METRIC, sens_high)}]; non-inferiority needs the lower bound at "
            f"or above {_diff(SENSITIVITY_METRIC, -settings.sensitivity_margin)}"
        )
    return Comparison(
        comparator, comparator_name, settings.primary_metric, difference, low, high,
        sens, sens_low, sens_high, len(patients_a), int(overlap_patients), not reasons,
        tuple(reasons),
    )  # fmt: skip


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
    """Combine the comparisons into a verdict.

    ``comparisons`` maps ``"baseline"`` and/or ``"champion"`` to :func:`compare` results; a
    candidate that *is* the baseline backbone has no baseline comparison. With no champion,
    the first-run policy decides (module doc).
    """
    figures = dict(figures or {})
    done = tuple(comparisons.values())
    failed = tuple(reason for item in done for reason in item.reasons)
    if not has_champion:
        if settings.first_run_policy == FirstRunPolicy.PROMOTE_BEST:
            reason = f"no champion yet; first-run policy promote-best promotes {candidate}"
            return GateVerdict(True, GateStatus.FIRST_RUN, candidate, (reason,), done, figures)
        if "baseline" not in comparisons:
            reason = (
                f"no champion yet and the best backbone is the {BASELINE_BACKBONE} baseline "
                "itself; first-run policy beat-baseline requires another backbone to beat it"
            )
            return GateVerdict(False, GateStatus.FIRST_RUN, candidate, (reason,), done, figures)
        head = "no champion yet; first-run policy beat-baseline"
        if failed:
            return GateVerdict(
                False, GateStatus.FIRST_RUN, candidate, (head, *failed), done, figures
            )
        ok = f"{head}: {candidate} beats the {BASELINE_BACKBONE} baseline"
        return GateVerdict(True, GateStatus.FIRST_RUN, candidate, (ok,), done, figures)
    if failed:
        return GateVerdict(False, GateStatus.REFUSE, candidate, failed, done, figures)
    if not done:
        reason = (
            f"{candidate} has no clean comparison (no baseline of its own and a champion that "
            "cannot be scored on sequestered patients it never saw): not promoted"
        )
        return GateVerdict(False, GateStatus.REFUSE, candidate, (reason,), done, figures)
    beaten = " and ".join(f"{c.comparator} {c.comparator_name}" for c in done)
    reason = f"{candidate} beats {beaten} beyond the margins"
    return GateVerdict(True, GateStatus.PROMOTE, candidate, (reason,), done, figures)
