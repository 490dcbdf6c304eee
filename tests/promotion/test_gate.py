"""The promotion gate's decision table (covidct.promotion.gate.decide) and its comparison rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from covidct.config import FirstRunPolicy, GateSettings
from covidct.promotion.gate import Comparison, GateStatus, compare, decide


def _comparison(name: str, passed: bool) -> Comparison:
    reasons = () if passed else (f"vs {name}: worse",)
    low = 0.05 if passed else -0.01
    return Comparison(name, name, "m", 0.1, low, 0.2, 0.0, -0.02, 0.02, 40, 0, passed, reasons)


STRICT = GateSettings()
RUBBER = GateSettings(first_run_policy=FirstRunPolicy.PROMOTE_BEST)


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
    comparisons = {name: _comparison(name, ok) for name, ok in results.items()}
    verdict = decide(candidate, comparisons, has_champion=has_champion, settings=settings)
    assert (verdict.passed, verdict.status) == (passed, status)
    assert verdict.reasons, "every verdict explains itself"
    assert verdict.to_dict()["status"] == status.value


def _predictions(p_covid: list[float]) -> pd.DataFrame:
    truth = ["covid", "covid", "normal", "normal"]
    return pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "y_true": truth, "p_covid": p_covid})


def _difference_of(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
    """Stand-in bootstrap: the point difference of accuracy (or of COVID sensitivity) +- 0.1."""

    def value(frame: pd.DataFrame) -> float:
        if metric == "image_covid_sensitivity":
            frame = frame[frame["y_true"] == "covid"]
        return float(np.mean((frame["p_covid"] > 0.5) == (frame["y_true"] == "covid")))

    diff = value(a) - value(b)
    return diff, diff - 0.1, diff + 0.1


@pytest.mark.parametrize(
    ("candidate", "comparator", "margin", "overlap", "passed", "reason"),
    [
        ([0.9, 0.9, 0.1, 0.1], [0.9, 0.1, 0.9, 0.1], 0.0, 0, True, None),
        ([0.9, 0.1, 0.9, 0.1], [0.9, 0.9, 0.1, 0.1], 0.0, 0, False, "lower bound"),
        ([0.9, 0.9, 0.1, 0.1], [0.9, 0.1, 0.9, 0.1], 0.5, 0, False, "lower bound"),
        ([0.1, 0.1, 0.1, 0.1], [0.9, 0.9, 0.9, 0.9], -1.0, 0, False, "non-inferiority"),
        ([0.9, 0.9, 0.1, 0.1], [0.9, 0.1, 0.9, 0.1], 0.0, 2, False, "not clean"),
    ],
)
def test_compare_rule(candidate, comparator, margin, overlap, passed, reason) -> None:  # type: ignore[no-untyped-def]
    result = compare(
        "baseline", "resnet152", _predictions(candidate), _predictions(comparator),
        settings=GateSettings(margin=margin), paired_bootstrap=_difference_of,
        overlap_patients=overlap,
    )  # fmt: skip
    assert result.passed is passed
    assert (result.n_patients, result.overlap_patients) == (4, overlap)
    if reason:
        assert any(reason in text for text in result.reasons)


def test_sensitivity_non_inferiority_is_judged_on_the_interval() -> None:
    """Equal point sensitivity passes; an interval reaching below -margin refuses."""

    def wide(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
        return (0.0, -0.2, 0.2) if metric == "image_covid_sensitivity" else (0.2, 0.1, 0.3)

    same = _predictions([0.9, 0.9, 0.1, 0.1])
    result = compare("baseline", "resnet152", same, same, settings=STRICT, paired_bootstrap=wide)
    assert not result.passed
    assert any("COVID sensitivity difference +0.00 points" in text for text in result.reasons)


def test_compare_refuses_different_patients() -> None:
    other = _predictions([0.5] * 4).assign(patient_id=["a", "b", "c", "z"])
    with pytest.raises(ValueError, match="same patients"):
        compare("champion", "v1", _predictions([0.5] * 4), other, settings=STRICT,
                paired_bootstrap=_difference_of)  # fmt: skip


def test_a_champion_without_a_clean_comparison_is_not_beaten() -> None:
    verdict = decide("resnet152", {}, has_champion=True, settings=STRICT)
    assert (verdict.passed, verdict.status) == (False, GateStatus.REFUSE)
    assert "no clean comparison" in verdict.reasons[0]
