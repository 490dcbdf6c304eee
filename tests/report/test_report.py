"""Tests for covidct.report: the terminal summary states the gate's evidence; a run writes one
HTML page, ``runs/<run>/report/report.html``, with its pictures beside it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from covidct.config import Settings
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.pipeline import headline_metrics, lake, leaderboard
from covidct.promotion.gate import Comparison
from covidct.report import (
    REPORT_FOLDER,
    evidence_lines,
    format_summary,
    leaderboard_text,
    write_summary,
)
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


def test_champion_line_says_none_never_python_none() -> None:
    summary = {
        "dag_run_id": "manual__1", "batches": [{"batch_id": None, "passed": True, "reasons": []}],
        "leaderboard": [], "gate": _gate(False) | {"version": None}, "quarantined": [],
        "run_prefix": "runs/x", "lake": "file:///l", "mlflow": "sqlite://", "alerts": "a.jsonl",
    }  # fmt: skip
    text = format_summary(summary)
    assert "  champion: none -> none\n" in text  # no champion before or after a refusal
    assert "(version none): NOT promoted" in text and "None" not in text
    summary["gate"] = _gate(True) | {"champion_before": "2"}
    assert "  champion: v2 -> v3\n" in format_summary(summary)


def test_text_leaderboard_shows_six_headline_metrics_in_order() -> None:
    """Issue 33: the terminal leaderboard was 196 columns of keys; it is one row per metric in
    words, one column per backbone, under 100 columns for three backbones."""
    board = [{"backbone": name, "folds": 2} for name in ("resnet50", "resnet152", "inceptionv3")]
    for row in board:
        row |= {f"{name}_mean": 0.5 for name in HEADLINE_METRICS}
        row |= {f"{name}_sd": 0.125 for name in HEADLINE_METRICS}
    lines = leaderboard_text(board).splitlines()
    assert lines[0].split() == ["metric", "resnet50", "resnet152", "inceptionv3"]
    titles = [re.split(r"\s{2,}", line)[0] for line in lines[2:8]]
    assert titles == [
        "accuracy (image)",
        "COVID sensitivity (image)",
        "COVID specificity (image)",
        "COVID precision (image)",
        "ROC AUC (image)",
        "balanced accuracy (patient)",
    ]
    assert max(len(line) for line in lines[:8]) < 100
    text = leaderboard_text(board)
    # the HTML report's units: rates in percent, AUCs as fractions, said once
    assert "50.00 ± 12.50" in text and "0.5000 ± 0.1250" in text
    assert "Rates in percent; MCC and AUCs as fractions" in text


def test_text_leaderboard_shows_a_single_folds_value_without_a_spread() -> None:
    board = [{"backbone": "vgg16", "folds": 2}]
    board[0] |= {f"{name}_mean": 0.1575 for name in HEADLINE_METRICS}
    board[0] |= {f"{name}_sd": float("nan") for name in HEADLINE_METRICS}
    board[0] |= {"image_accuracy_mean": float("nan")}
    rows = leaderboard_text(board).splitlines()
    assert "n/a ± n/a" in rows[2] and "15.75 ±" not in rows[2]  # accuracy: undefined
    assert "15.75 (1 fold)" in rows[3] and "0.1575 (1 fold)" in rows[6]


def _fold_predictions(fold: int) -> pd.DataFrame:
    """2 covid and 2 normal patients x 3 slices of one fold, scores separated by label."""
    rows = [
        (f"negin/p{patient}", "covid" if patient < 2 else "normal", score, f"p{patient}/IM{i}")
        for patient in range(4)
        for i, score in enumerate((0.9, 0.6, 0.7) if patient < 2 else (0.1, 0.4, 0.2))
    ]
    frame = pd.DataFrame(rows, columns=["patient_id", "y_true", "p_covid", "slice_id"])
    return frame.assign(fold=fold, patient_threshold=0.5)


def _lake_run(tmp_path: Path, trained: bool) -> tuple[Settings, Any, str, str]:
    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path)})
    store = lake(settings)
    run = "manual__2026-01-04T00:00:00+00:00"
    layout = RunLayout.of(run)
    verdict = {"batch_id": "batch-7", "passed": True, "reasons": []}
    store.write_bytes(layout.validation_verdict("batch-7"), json.dumps(verdict).encode())
    if trained:
        evaluations = []
        for fold in (0, 1):
            frame = _fold_predictions(fold)
            store.write_bytes(layout.predictions("vgg16", fold), frame.to_csv(index=False).encode())
            metrics = headline_metrics(frame, None)
            evaluations.append({"backbone": "vgg16", "fold": fold, "metrics": metrics})
        board = leaderboard(evaluations)
        store.write_bytes(layout.leaderboard, board.to_csv().encode())  # as aggregate
    return settings, store, run, layout.prefix


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sources += [str(value) for name, value in attrs if tag == "img" and name == "src"]


@pytest.mark.parametrize(("trained", "expected_text"), [
    (False, "No model was trained in this run."),
    (True, "vgg16: confusion matrix, images pooled over folds"),
])  # fmt: skip
def test_write_summary_writes_one_html_page_with_its_pictures(
    tmp_path: Path, trained: bool, expected_text: str
) -> None:
    settings, store, run, prefix = _lake_run(tmp_path, trained)
    written = write_summary(settings, run)
    page_key = "runs/manual__2026-01-04T00_00_00_00_00/report/report.html"  # the real key
    assert RunLayout.of(run).report_html == page_key == f"{prefix}/{REPORT_FOLDER}/report.html"
    assert [key for key in store.list(prefix) if key.endswith(".html")] == [page_key]
    assert written == {
        "summary": store.uri(RunLayout.of(run).summary_json),
        "report": store.uri(page_key),
    }
    page = store.read_bytes(page_key).decode()
    assert "<pre>" not in page
    assert "batch-7" in page and expected_text in page
    links = _Links()
    links.feed(page)
    assert len(links.sources) == (3 if trained else 0)  # confusion, ROC, PR
    for source in links.sources:  # every picture sits beside the page
        assert store.read_bytes(f"{prefix}/{REPORT_FOLDER}/{source}").startswith(b"\x89PNG")
    assert "Leaderboard:" in store.read_bytes(RunLayout.of(run).summary_txt).decode()
    assert store.read_bytes("runs/LATEST").decode() == run == store.read_text(LakeLayout.LATEST)
