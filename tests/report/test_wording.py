"""Plain words for confirmed models: "no better than chance" exactly when the AUC interval
includes 0.5; rates in percent, AUC as a fraction."""

from __future__ import annotations

import pytest

from covidct.pipeline.decision import no_better_than_chance
from covidct.report import wording


@pytest.mark.parametrize(
    ("low", "high", "chance"),
    [
        (0.40, 0.56, True),
        (0.50, 0.70, True),  # the bound itself counts
        (0.30, 0.50, True),
        (0.51, 0.90, False),
        (0.10, 0.45, False),  # worse than chance is not "no better than chance": it is worse
        (None, None, True),  # undefined (one class only): nothing shows it ranks
    ],
)
def test_no_better_than_chance(low: float | None, high: float | None, chance: bool) -> None:
    assert no_better_than_chance({"ci_low": low, "ci_high": high}) is chance


def _record(chance: bool) -> dict:
    return {
        "version": "3",
        "patients": 75,
        "no_better_than_chance": chance,
        "intervals": {
            "image_roc_auc": {"value": 0.477, "ci_low": 0.401, "ci_high": 0.552},
            "patient_balanced_accuracy": {"value": 0.476, "ci_low": 0.341, "ci_high": 0.623},
        },
    }


def test_model_sentence_says_chance_in_words() -> None:
    text = wording.model_sentence("resnet152", _record(True))
    assert text == (
        "resnet152 v3 on 75 sequestered patients: image ROC AUC 0.477 (95% CI 0.401 to 0.552), "
        "patient balanced accuracy 47.6% (95% CI 34.1% to 62.3%): no better than chance: its "
        "ROC AUC interval includes 0.5"
    )
    assert "chance" not in wording.model_sentence("resnet152", _record(False))
    worse = _record(False)
    worse["intervals"]["image_roc_auc"] = {"value": 0.2, "ci_low": 0.1, "ci_high": 0.45}
    assert wording.model_sentence("vgg16", worse).endswith(f": {wording.WORSE_WORDS}")
    assert 'class="fail"' in wording.models_html({"models": {"vgg16": worse}})


def test_severity_and_pointing_sentences() -> None:
    record = {
        "severity": {
            "severe": {"patients": 1, "value": 1.0, "ci_low": 0.2, "ci_high": 1.0},
            "mild": {"patients": 4, "value": 0.25, "ci_low": 0.0, "ci_high": 0.75},
        },
        "metrics": {"gradcam_pointing_game": 0.5},
        "gradcam_pointing_slices": 12,
        "gradcam_pointing_chance": 0.375,
        "gradcam_cells": "2x2",
    }
    assert wording.severity_sentence(record) == (
        "COVID sensitivity by severity: mild 25.0% (95% CI 0.0% to 75.0%) of 4 patients; "
        "severe 100.0% (95% CI 20.0% to 100.0%) of 1 patients"
    )
    assert wording.pointing_sentence(record) == (
        "Grad-CAM pointing game 50% of 12 true-positive slices on a 2x2 map (a cell drawn at "
        "random: 38%)"
    )
    assert wording.severity_sentence({}) is None and wording.pointing_sentence({}) is None


@pytest.mark.parametrize(
    ("metric", "shown"),
    [
        ("image_roc_auc", "resnet152 image ROC AUC 0.760 (95% CI 0.606 to 0.895)"),
        ("patient_balanced_accuracy", "resnet152 patient balanced accuracy 76.0% (95% CI 60.6% "),
    ],
)
def test_the_candidates_figure_is_shown_in_its_metrics_unit(metric: str, shown: str) -> None:
    from covidct.report.summary import confirmation_lines

    gate = {
        "sequestered_patients": 50,
        "candidate": "resnet152",
        "candidate_primary": {"metric": metric, "value": 0.76, "ci_low": 0.606, "ci_high": 0.895},
    }
    assert confirmation_lines(gate)[1].strip().startswith(shown)
