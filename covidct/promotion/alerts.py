"""Metric-regression detection; the alert schema of :mod:`covidct.alerts`, named here too.

The alert schema, the notifier interface and the JSONL notifier live on the bottom floor
(:mod:`covidct.alerts`), since validation raises alerts too; they are named here as well, so
``covidct.promotion.alerts.Alert`` keeps working for the DAG, the plugins and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from covidct.alerts import (
    ALERT_SCHEMA_VERSION as ALERT_SCHEMA_VERSION,
    Alert as Alert,
    AlertKind as AlertKind,
    JsonlNotifier as JsonlNotifier,
    Notifier as Notifier,
    Severity as Severity,
    airflow_run_url as airflow_run_url,
    mlflow_run_url as mlflow_run_url,
    one_line as one_line,
    read_alerts as read_alerts,
)


@dataclass(frozen=True)
class Regression:
    """One metric that dropped by more than its threshold."""

    metric: str
    previous: float
    current: float
    drop: float
    threshold: float


def detect_regressions(
    previous: Mapping[str, float],
    current: Mapping[str, float],
    thresholds: Mapping[str, float],
) -> list[Regression]:
    """Return the metrics whose value fell by more than their threshold.

    ``previous`` and ``current``: metric name -> value (higher is better, fractions in [0, 1]).
    ``thresholds``: metric name -> largest tolerated absolute drop. Metrics missing from either
    side, or NaN on either side, are not compared. Ordered as ``thresholds``.
    """
    regressions: list[Regression] = []
    for metric, threshold in thresholds.items():
        if metric not in previous or metric not in current:
            continue
        before, after = float(previous[metric]), float(current[metric])
        if math.isnan(before) or math.isnan(after):
            continue
        drop = before - after
        if drop > threshold:
            regressions.append(Regression(metric, before, after, drop, threshold))
    return regressions
