"""The gate's subgroup rule (covidct.promotion.subgroup_gate) with the real studentized patient
bootstrap (issue 31: harm judged with Holm across the subgroups smaller than the whole set)."""

from __future__ import annotations

import pandas as pd
import pytest
import subgroup_sim as sim

from covidct import evaluation
from covidct.config import GateSettings
from covidct.evaluation.subgroups import patient_roster
from covidct.promotion.gate import GateStatus, GateVerdict, compare
from covidct.promotion.subgroup_gate import judge_subgroups, with_subgroups

SETTINGS = GateSettings(n_boot=1000, subgroup_min_patients=20, subgroup_min_covid_patients=10)


def _bootstrap(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
    result = evaluation.paired_bootstrap(a, b, metric, n_boot=SETTINGS.n_boot, seed=SETTINGS.seed)
    return result.as_tuple()


def _champion(patient: dict[str, object]) -> int:
    return 8


def _regresses_in_women(patient: dict[str, object]) -> int:
    """Better for men (10 of 10 slices), worse for women (5-7 of 10) than the champion's 8: a
    loss of 20 points in women, 15 beyond the margin (Holm among 8 subgroups needs it clear)."""
    return 10 if patient["sex"] == "M" else 5 + int(str(patient["id"])[1:]) % 3


def _better_everywhere(patient: dict[str, object]) -> int:
    return 8 + int(str(patient["id"])[1:]) % 3


@pytest.fixture(scope="module")
def roster() -> pd.DataFrame:
    return patient_roster(sim.details())


def test_a_regression_in_one_subgroup_is_refused_naming_it(roster: pd.DataFrame) -> None:
    candidate, champion = sim.predictions(_regresses_in_women), sim.predictions(_champion)
    overall = compare(
        "champion", "v1", candidate, champion, settings=SETTINGS, paired_bootstrap=_bootstrap
    )
    assert overall.sensitivity_ci_low >= -overall.sensitivity_margin  # overall rule misses it
    verdict = judge_subgroups(
        candidate, champion, roster, settings=SETTINGS, paired_bootstrap=_bootstrap
    )
    assert not verdict.passed
    assert any(
        reason.startswith("sex=F: COVID sensitivity lost beyond the margin")
        for reason in verdict.reasons
    )
    assert not any(reason.startswith("sex=M") for reason in verdict.reasons)
    women = next(c for c in verdict.comparisons if c.name == "sex=F")
    expected = sum(
        _regresses_in_women(p) - 8 for p in sim.patients() if p["covid"] and p["sex"] == "F"
    )
    assert women.difference == pytest.approx(
        expected / (20 * 10)
    )  # about -0.2, from the definition
    assert women.ci_high < -SETTINGS.subgroup_margin  # shown worse by more than the margin
    assert f"[{women.ci_low:+.4f}, {women.ci_high:+.4f}]" in women.reason
    assert women.p_harm <= SETTINGS.alpha / 8  # 8 judged subgroups: Holm's first level
    men = next(c for c in verdict.comparisons if c.name == "sex=M")
    assert men.judged and men.passed and men.ci_low > 0


def test_a_candidate_without_regression_passes(roster: pd.DataFrame) -> None:
    verdict = judge_subgroups(
        sim.predictions(_better_everywhere), sim.predictions(_champion), roster,
        settings=SETTINGS, paired_bootstrap=_bootstrap,
    )  # fmt: skip
    assert verdict.passed and verdict.reasons == ()
    judged = [c.name for c in verdict.comparisons if c.judged]
    assert judged == [
        "sex=F", "sex=M", "age_band=<40", "age_band=40-59", "series=SR_2", "series=SR_3",
        "slice_thickness=1.5 mm", "slice_thickness=5 mm",
    ]  # fmt: skip  # source=negin holds every slice: the whole set, not judged again
    assert all(c.ci_low >= 0 for c in verdict.comparisons if c.judged)
    whole = next(c for c in verdict.comparisons if c.name == "source=negin")
    assert not whole.judged and whole.note.startswith("whole set")


def test_small_subgroups_are_listed_not_judged(roster: pd.DataFrame) -> None:
    def worse_when_old(patient: dict[str, object]) -> int:
        return 0 if patient["age"] >= 60 else 8  # type: ignore[operator]

    verdict = judge_subgroups(
        sim.predictions(worse_when_old), sim.predictions(_champion), roster,
        settings=SETTINGS, paired_bootstrap=_bootstrap,
    )  # fmt: skip
    assert verdict.not_judged == ("age_band=60+", "source=negin")
    old = next(c for c in verdict.comparisons if c.name == "age_band=60+")
    assert (old.n_patients, old.n_covid_patients, old.passed) == (6, 3, True)
    # the 3 old COVID patients still drag the larger subgroups they belong to
    assert all("60+" not in reason for reason in verdict.reasons)
    frame = verdict.to_frame()
    assert frame.loc[frame["subgroup"] == "60+", "judged"].tolist() == [False]
    record = verdict.to_dict()
    assert record["not_judged"] == ["age_band=60+", "source=negin"]
    assert record["comparisons"][2]["ci_low"] is not None  # <40 was judged


def test_minimum_covid_patients_applies_too(roster: pd.DataFrame) -> None:
    strict = GateSettings(n_boot=100, subgroup_min_patients=20, subgroup_min_covid_patients=21)
    verdict = judge_subgroups(
        sim.predictions(_regresses_in_women), sim.predictions(_champion), roster,
        settings=strict, paired_bootstrap=_bootstrap,
    )  # fmt: skip
    assert "sex=F" in verdict.not_judged and "sex=M" in verdict.not_judged
    assert "series=SR_2" not in verdict.not_judged  # 40 COVID patients


def test_different_patients_are_an_error(roster: pd.DataFrame) -> None:
    champion = sim.predictions(_champion)
    champion = champion[champion["patient_id"] != "negin/p5"]
    with pytest.raises(ValueError, match="same patients"):
        judge_subgroups(
            sim.predictions(_champion), champion, roster,
            settings=SETTINGS, paired_bootstrap=_bootstrap,
        )  # fmt: skip


def test_with_subgroups_turns_a_promotion_into_a_refusal(roster: pd.DataFrame) -> None:
    subgroups = judge_subgroups(
        sim.predictions(_regresses_in_women), sim.predictions(_champion), roster,
        settings=SETTINGS, paired_bootstrap=_bootstrap,
    )  # fmt: skip
    promote = GateVerdict(True, GateStatus.PROMOTE, "resnet50", ("resnet50 beats champion v1",))
    refused = with_subgroups(promote, subgroups)
    assert (refused.passed, refused.status) == (False, GateStatus.REFUSE)
    assert refused.reasons == subgroups.reasons
    already = GateVerdict(False, GateStatus.REFUSE, "resnet50", ("vs baseline: worse",))
    assert with_subgroups(already, subgroups).reasons == ("vs baseline: worse", *subgroups.reasons)
    clean = judge_subgroups(
        sim.predictions(_better_everywhere), sim.predictions(_champion), roster,
        settings=SETTINGS, paired_bootstrap=_bootstrap,
    )  # fmt: skip
    assert with_subgroups(promote, clean) is promote
