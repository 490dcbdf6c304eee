"""The promotion gate (issue 31): each rule against a case computed by hand.

covidct.promotion.stats (Holm, the studentized clustered proportion, detectable gain, weighted
patient AUC, the selection correction), covidct.promotion.sensitivity (the margin of the power
analysis), covidct.promotion.gate (the per-comparator rule and the decision table) and
covidct.promotion.rule.judge (vetoes as data, the recorded figures).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from covidct.config import FirstRunPolicy, GateSettings
from covidct.promotion import rule, stats
from covidct.promotion.gate import (
    Comparison,
    ComparisonEvidence,
    GateStatus,
    Outcome,
    compare,
    decide,
    judge_comparison,
)
from covidct.promotion.sensitivity import noninferiority_margin, sensitivity_test
from covidct.promotion.stats import NoninferiorityTest, PrimaryTest
from covidct.promotion.subgroup_gate import SubgroupTest, decide_subgroups

STRICT = GateSettings()
RUBBER = GateSettings(first_run_policy=FirstRunPolicy.PROMOTE_BEST)


def _comparison(name: str, passed: bool) -> Comparison:
    reasons = () if passed else (f"vs {name}: worse",)
    low = 0.05 if passed else -0.01
    return Comparison(
        name, name, "m", 0.1, low, 0.2, 0.0, -0.02, 0.02, 40, 0, passed, reasons, 0.03, 0.084
    )


@pytest.mark.parametrize(
    ("candidate", "results", "has_champion", "settings", "passed", "status"),
    [
        ("resnet50", {"baseline": True}, False, STRICT, True, GateStatus.FIRST_RUN),
        ("resnet50", {"baseline": False}, False, STRICT, False, GateStatus.FIRST_RUN),
        ("resnet152", {}, False, STRICT, False, GateStatus.FIRST_RUN),
        ("resnet152", {}, False, RUBBER, True, GateStatus.FIRST_RUN),
        ("resnet50", {"baseline": False}, False, RUBBER, True, GateStatus.FIRST_RUN),
        ("resnet50", {"baseline": True, "champion": True}, True, STRICT, True, GateStatus.PROMOTE),
        ("resnet50", {"baseline": True, "champion": False}, True, STRICT, False, GateStatus.REFUSE),
        ("resnet50", {"baseline": False, "champion": True}, True, STRICT, False, GateStatus.REFUSE),
        ("resnet152", {"champion": True}, True, STRICT, True, GateStatus.PROMOTE),
        ("resnet152", {"champion": False}, True, RUBBER, False, GateStatus.REFUSE),
    ],
)
def test_decision_table(candidate, results, has_champion, settings, passed, status) -> None:  # type: ignore[no-untyped-def]
    """Intersection-union: every comparison must pass; the first-run policy as before."""
    comparisons = {name: _comparison(name, ok) for name, ok in results.items()}
    verdict = decide(candidate, comparisons, has_champion=has_champion, settings=settings)
    assert (verdict.passed, verdict.status) == (passed, status)
    assert verdict.reasons, "every verdict explains itself"
    assert verdict.to_dict()["status"] == status.value
    assert verdict.endpoint == "image_roc_auc"
    assert verdict.detectable_gain == (0.084 if comparisons else None)


# ------------------------------------------------------------------------ statistics by hand


def test_holm_step_down_by_hand() -> None:
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 stops (0.04 not reached)
    assert stats.holm([0.01, 0.04, 0.03, 0.005], 0.05).tolist() == [True, False, False, True]
    assert stats.holm([0.02, 0.01], 0.025).tolist() == [True, True]  # 0.01<=0.0125, 0.02<=0.025
    assert stats.holm([0.02, 0.03], 0.025).tolist() == [False, False]  # 0.02 > 0.0125
    assert stats.holm([math.nan, 0.001], 0.025).tolist() == [False, True]


def test_studentized_difference_and_standard_error_by_hand() -> None:
    # two COVID patients of 4 slices: candidate 3 and 2 hits, comparator 2 and 2
    # d = (1 + 0) / 8 = 0.125; residuals 1 - 0.5 = 0.5 and 0 - 0.5 = -0.5
    # se = sqrt(2 / 1 * (0.25 + 0.25)) / 8 = 0.125
    weights = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    test = stats.studentized_noninferiority(
        np.array([3, 2]), np.array([2, 2]), np.array([4, 4]), weights, margin=0.1
    )
    assert test.difference == pytest.approx(0.125)
    assert test.se == pytest.approx(0.125)
    assert test.n_clusters == 2
    identical = stats.studentized_noninferiority(
        np.array([3, 2]), np.array([3, 2]), np.array([4, 4]), weights, margin=0.05
    )
    assert (identical.difference, identical.se, identical.noninferior) == (0.0, 0.0, True)


def test_studentized_interval_holds_its_level() -> None:
    """Lower bound above the truth about 2.5% of the time (19 COVID patients, as the gate's
    smallest pool; the old percentile interval: 4.8%, issue 31)."""
    rng = np.random.default_rng(0)
    above = 0
    sims = 300
    weights = np.random.default_rng(1).multinomial(19, np.full(19, 1 / 19), 400).astype(float)
    for _ in range(sims):
        base = rng.uniform(0.4, 0.95, 19)
        a = rng.binomial(30, np.clip(base + rng.normal(0, 0.12, 19), 0, 1))
        b = rng.binomial(30, np.clip(base + rng.normal(0, 0.12, 19), 0, 1))
        test = stats.studentized_noninferiority(a, b, np.full(19, 30), weights, margin=0.0)
        above += test.lower > 0.0  # the truth: equal
    assert above / sims <= 0.05


def test_detectable_gain_and_margin_by_hand() -> None:
    # (z_0.975 + z_0.80) * se = (1.95996 + 0.84162) * 0.01
    assert stats.detectable_gain(0.01) == pytest.approx(0.0280158, abs=1e-6)
    # (z_0.975 + z_0.90) * 0.19 / sqrt(19) = 3.24151 * 0.043589 = 0.14129
    assert noninferiority_margin(19, floor=0.05, planning_sd=0.19) == pytest.approx(
        0.14129, abs=1e-4
    )
    assert noninferiority_margin(500, floor=0.05, planning_sd=0.19) == 0.05  # the floor


def test_weighted_patient_auc_by_hand() -> None:
    scores, truth = np.array([0.9, 0.4, 0.5, 0.1]), np.array([True, True, False, False])
    # pairs: 0.9 beats both, 0.4 beats 0.1 only: 3 of 4; weights 2,1,1,1: (2*2 + 1) / (3 * 2)
    # a tie counts one half: 0.5 vs 0.5
    values = stats.weighted_patient_auc(scores, truth, np.array([[1, 1, 1, 1], [2, 1, 1, 1]]))
    assert values.tolist() == pytest.approx([0.75, 5 / 6])
    tied = stats.weighted_patient_auc(np.array([0.5, 0.5]), np.array([True, False]), np.ones(2))
    assert tied.tolist() == [0.5]


def test_selection_correction_by_hand() -> None:
    se = 0.01
    c = 1.959964 * se
    assert stats.selection_corrected(0.01, se) == 0.01  # not selected by the rule: unchanged
    assert stats.selection_corrected(0.1, se) == pytest.approx(0.1, abs=1e-6)  # far: unchanged
    corrected = stats.selection_corrected(0.025, se)
    assert corrected < 0.025
    # its truncated mean is the observation: mu + se * phi(a) / (1 - Phi(a)), a = (c - mu) / se
    a = (c - corrected) / se
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(a / math.sqrt(2))
    assert corrected + se * phi / tail == pytest.approx(0.025, abs=1e-6)


def test_sensitivity_test_on_tables_by_hand() -> None:
    def table(hits: list[int]) -> pd.DataFrame:
        rows = []
        for patient, count in zip(["a", "b", "c"], hits, strict=True):
            for j in range(4):
                rows.append({"patient_id": patient, "y_true": "covid" if patient != "c"
                             else "normal", "p_covid": 0.9 if j < count else 0.1})  # fmt: skip
        return pd.DataFrame(rows)

    test = sensitivity_test(table([3, 2, 4]), table([2, 2, 0]), margin=0.1, n_boot=200, seed=0)
    assert test.difference == pytest.approx(0.125)  # normal patient c does not count
    assert test.se == pytest.approx(0.125)


# ------------------------------------------------------------------------ per-comparator rule


def _evidence(low: float, high: float, *, se: float = 0.02, sens_low: float = 0.0,
              overlap: int = 0) -> ComparisonEvidence:  # fmt: skip
    primary = PrimaryTest((low + high) / 2, low, high, se, stats.detectable_gain(se), 75)
    sens = NoninferiorityTest(0.0, sens_low, 0.1, 0.03, 0.14, 0.01, 0.99, 19)
    return ComparisonEvidence("champion", "v1", "image_roc_auc", primary, sens, 75, 19, overlap)


@pytest.mark.parametrize(
    ("low", "high", "sens_low", "overlap", "passed", "outcome", "text"),
    [
        (0.02, 0.05, 0.0, 0, True, Outcome.BETTER, None),
        (-0.01, 0.05, 0.0, 0, False, Outcome.UNDERPOWERED, "lack of power"),
        (-0.05, -0.01, 0.0, 0, False, Outcome.WORSE, "worse"),
        (0.02, 0.05, -0.15, 0, False, Outcome.BETTER, "non-inferiority needs the lower bound"),
        (0.02, 0.05, 0.0, 3, False, Outcome.BETTER, "not clean"),
    ],
)
def test_judge_comparison(low, high, sens_low, overlap, passed, outcome, text) -> None:  # type: ignore[no-untyped-def]
    result = judge_comparison(_evidence(low, high, sens_low=sens_low, overlap=overlap), STRICT)
    assert (result.passed, result.outcome) == (passed, outcome.value)
    assert result.detectable_gain == pytest.approx(0.0560, abs=1e-4)  # 2.8016 * 0.02
    if text:
        assert any(text in reason for reason in result.reasons)
    if outcome == Outcome.UNDERPOWERED:  # says what it could detect, not that it is worse
        assert "detects +0.0560 with 80% power" in result.reasons[0]
        assert "worse:" not in result.reasons[0]


def test_compare_gathers_then_judges() -> None:
    truth = ["covid", "covid", "normal", "normal"]

    def table(p: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"patient_id": list("abcd"), "y_true": truth, "p_covid": p})

    def fixed(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
        return 0.2, 0.1, 0.3

    ours, theirs = table([0.9, 0.9, 0.1, 0.1]), table([0.9, 0.1, 0.9, 0.1])
    result = compare("baseline", "v1", ours, theirs, settings=STRICT, paired_bootstrap=fixed)
    assert result.passed and result.outcome == Outcome.BETTER.value
    assert result.se == pytest.approx(0.2 / (2 * 1.959964), rel=1e-5)
    assert result.sensitivity_difference == pytest.approx(0.5)
    other = table([0.5] * 4).assign(patient_id=list("abcz"))
    with pytest.raises(ValueError, match="same patients"):
        compare("champion", "v1", table([0.5] * 4), other, settings=STRICT,
                paired_bootstrap=fixed)  # fmt: skip


def test_a_champion_without_a_clean_comparison_is_not_beaten() -> None:
    verdict = decide("resnet152", {}, has_champion=True, settings=STRICT)
    assert (verdict.passed, verdict.status) == (False, GateStatus.REFUSE)
    assert "no clean comparison" in verdict.reasons[0]


# ------------------------------------------------------------------------ subgroups


def _subgroup(name: str, p_harm: float, *, whole: bool = False) -> SubgroupTest:
    axis, level = name.split("=")
    test = None if whole else NoninferiorityTest(-0.1, -0.2, -0.07, 0.02, 0.05, 0.9, p_harm, 12)
    return SubgroupTest(axis, level, 75 if whole else 30, 19 if whole else 12, whole, test)


def test_subgroups_holm_and_whole_set_by_hand() -> None:
    tests = [_subgroup("sex=F", 0.02), _subgroup("sex=M", 0.01),
             _subgroup("source=negin", 0.0, whole=True)]  # fmt: skip
    verdict = decide_subgroups(tests, STRICT)
    # 0.01 <= 0.025 / 2 and 0.02 <= 0.025 / 1: both harmed
    assert not verdict.passed
    assert [r.split(":")[0] for r in verdict.reasons] == ["sex=F", "sex=M"]
    assert verdict.not_judged == ("source=negin",)
    whole = next(c for c in verdict.comparisons if c.name == "source=negin")
    assert whole.note.startswith("whole set")
    spared = decide_subgroups([_subgroup("sex=F", 0.02), _subgroup("sex=M", 0.03)], STRICT)
    assert spared.passed  # 0.02 > 0.025 / 2: Holm stops at once


# ------------------------------------------------------------------------ the one pure function


def test_judge_vetoes_are_data() -> None:
    good = _evidence(0.02, 0.05)  # lower bound above the 0.01 superiority margin
    evidence = rule.GateEvidence(
        candidate="resnet50", has_champion=True, comparisons=(good,), candidate_version="7",
        candidate_overlap=2, altered=("resnet50 v7",), serving_passed=False,
        serving_reason="latency", patients_used=("p1", "p2"),
    )  # fmt: skip
    verdict = rule.judge(evidence, STRICT)
    assert not verdict.passed and verdict.status == GateStatus.REFUSE
    assert len(verdict.vetoes) == 3
    assert verdict.vetoes[0].startswith("model scored is not the model registered")
    assert "saw 2 of the sequestered patients" in verdict.vetoes[1]
    assert verdict.vetoes[2] == "serving check of v7 failed: latency"
    assert verdict.to_dict()["patients_used"] == ["p1", "p2"]
    clean = rule.judge(rule.GateEvidence("resnet50", True, (good,)), STRICT)
    assert clean.passed and clean.vetoes == ()


def test_judge_corrects_a_promoted_candidates_figures() -> None:
    # binding comparison: difference 0.03, se 0.01 (z 3); corrected by the conditional MLE
    primary = PrimaryTest(0.03, 0.011, 0.05, 0.01, stats.detectable_gain(0.01), 75)
    sens = NoninferiorityTest(0.0, -0.01, 0.01, 0.005, 0.14, 0.0, 1.0, 19)
    evidence = rule.GateEvidence(
        candidate="resnet50", has_champion=True,
        comparisons=(ComparisonEvidence("champion", "v1", "image_roc_auc", primary, sens, 75, 19),),
        figures={"patient_balanced_accuracy": 0.9, "image_accuracy": 0.8},
        figure_slopes={"champion": {"patient_balanced_accuracy": 0.5}},
        patients_used=tuple(f"p{i}" for i in range(75)),
    )  # fmt: skip
    verdict = rule.judge(evidence, STRICT)
    assert verdict.passed
    optimism = 0.03 - stats.selection_corrected(0.03, 0.01)
    assert optimism > 0
    assert verdict.figures["patient_balanced_accuracy"] == pytest.approx(0.9 - 0.5 * optimism)
    assert verdict.figures["image_accuracy"] == 0.8  # no slope: as measured
    assert verdict.figures_basis.startswith("selection-corrected")
    refused = rule.judge(
        rule.GateEvidence("resnet50", True, (_evidence(-0.01, 0.05),), figures={"x": 0.9}), STRICT
    )
    assert refused.figures == {"x": 0.9} and refused.figures_basis.startswith("as measured")
