"""Tests for covidct.report: the terminal summary states the gate's evidence."""

from __future__ import annotations

import json
from dataclasses import asdict

from covidct.gate import Comparison
from covidct.report import evidence_lines, format_summary, leaderboard_text
from covidct.schema import HEADLINE_METRICS


def _gate(passed: bool) -> dict:
    comparison = Comparison(
        "baseline", "resnet152", "patient_balanced_accuracy", 0.125, 0.03125, 0.25,
        0.1, -0.025, 0.2, 40, 0, passed, (),
    )  # fmt: skip
    record = json.loads(json.dumps(asdict(comparison)))  # as gate.json stores it
    verdict = {"passed": passed, "reasons": ["why"], "comparisons": [record]}
    return {"candidate": "resnet50", "version": "3", "verdict": verdict,
            "champion_before": None, "champion_after": "3" if passed else None}  # fmt: skip


def test_evidence_line_gives_difference_interval_and_sensitivity() -> None:
    (line,) = evidence_lines("resnet50", _gate(True)["verdict"]["comparisons"])
    assert "vs baseline resnet152" in line
    assert "patient balanced accuracy of resnet50 minus theirs +12.5 points" in line
    assert "(95% CI +3.1 to +25.0)" in line
    assert "on 40 sequestered patients (overlap 0)" in line
    assert "COVID sensitivity +10.0 points (95% CI -2.5 to +20.0)" in line


def test_summary_shows_decision_and_evidence() -> None:
    summary = {
        "dag_run_id": "manual__1", "batches": [], "leaderboard": [], "gate": _gate(False),
        "quarantined": [], "run_prefix": "runs/x", "lake": "file:///l", "mlflow": "sqlite://",
        "alerts": "a.jsonl",
    }  # fmt: skip
    text = format_summary(summary)
    assert "candidate resnet50 (version 3): NOT promoted" in text
    assert "evidence vs baseline resnet152" in text
    assert evidence_lines("resnet50", []) == []


def test_text_leaderboard_shows_six_headline_metrics_in_order() -> None:
    board = [{"backbone": "resnet50", "folds": 2}]
    board[0] |= {f"{name}_mean": 0.5 for name in HEADLINE_METRICS}
    board[0] |= {f"{name}_sd": 0.125 for name in HEADLINE_METRICS}
    header = leaderboard_text(board).splitlines()[0].split()
    assert header == [
        "backbone",
        "image_accuracy",
        "image_covid_sensitivity",
        "image_covid_specificity",
        "image_covid_precision",
        "image_roc_auc",
        "patient_balanced_accuracy",
    ]
    assert "50.00 ±   12.50" in leaderboard_text(board)
