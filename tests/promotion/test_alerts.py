"""Alerts: table-driven regression detection and the embedded JSONL notifier."""

from __future__ import annotations

import json
import math

import pytest

from covidct.promotion.alerts import (
    Alert,
    AlertKind,
    JsonlNotifier,
    Severity,
    detect_regressions,
    read_alerts,
)

THRESHOLDS = {"acc": 0.05, "sens": 0.02}


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ({"acc": 0.90, "sens": 0.95}, {"acc": 0.90, "sens": 0.95}, []),
        ({"acc": 0.90, "sens": 0.95}, {"acc": 0.86, "sens": 0.95}, []),  # drop 0.04 < 0.05
        ({"acc": 0.90, "sens": 0.95}, {"acc": 0.84, "sens": 0.95}, ["acc"]),
        ({"acc": 0.90, "sens": 0.95}, {"acc": 0.80, "sens": 0.90}, ["acc", "sens"]),
        ({"acc": 0.90, "sens": 0.95}, {"acc": 0.99, "sens": 0.99}, []),  # improvements
        ({"acc": 0.90}, {"acc": 0.70, "sens": 0.10}, ["acc"]),  # missing on one side
        ({"acc": math.nan, "sens": 0.95}, {"acc": 0.10, "sens": 0.95}, []),  # NaN not compared
    ],
)
def test_detect_regressions(previous, current, expected) -> None:  # type: ignore[no-untyped-def]
    found = detect_regressions(previous, current, THRESHOLDS)
    assert [r.metric for r in found] == expected
    for regression in found:
        assert regression.drop == pytest.approx(
            previous[regression.metric] - current[regression.metric]
        )


def test_jsonl_notifier_appends_stable_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sub" / "alerts.jsonl"
    notifier = JsonlNotifier(path)
    notifier.send(
        Alert(AlertKind.BATCH_QUARANTINED, Severity.WARNING, "batch b1 quarantined", {"n": 2})
    )
    notifier.send(Alert(AlertKind.NOT_PROMOTED, Severity.INFO, "kept champion", run_id="r1"))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == {
        "kind", "severity", "summary", "details", "dag_id", "run_id", "airflow_url",
        "mlflow_url", "created_at", "schema_version",
    }  # fmt: skip
    assert first["kind"] == "batch_quarantined" and first["details"] == {"n": 2}
    assert [a["kind"] for a in read_alerts(path)] == ["batch_quarantined", "not_promoted"]
