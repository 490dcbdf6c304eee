"""Alerts: one schema and one notifier interface, for every floor that raises one.

Validation's drift check (:func:`covidct.batch.drift.drift_alert`), the DAG steps
(:mod:`covidct.pipeline.context`) and the gate all build the same :class:`Alert`. The embedded
notifier (:class:`JsonlNotifier`) writes a structured log line and appends one JSON line to
``alerts.jsonl``. Slack and SMTP notifiers live in ``plugins/`` (they go through the
Airflow providers); all of them take the same :class:`Alert`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

logger = logging.getLogger(__name__)

#: Version of the alert line schema; bump when a field changes meaning.
ALERT_SCHEMA_VERSION = 1


class AlertKind(StrEnum):
    """What happened."""

    BATCH_QUARANTINED = "batch_quarantined"
    TASK_FAILED = "task_failed"
    NOT_PROMOTED = "not_promoted"
    PROMOTED = "promoted"
    METRIC_REGRESSION = "metric_regression"
    RUN_LATE = "run_late"
    BATCH_DRIFT = "batch_drift"
    REGISTRY_DISAGREES = "registry_disagrees"


class Severity(StrEnum):
    """How loud."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    """One alert. ``details`` must be JSON-serialisable; links may be empty strings."""

    kind: AlertKind
    severity: Severity
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    dag_id: str = ""
    run_id: str = ""
    airflow_url: str = ""
    mlflow_url: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    schema_version: int = ALERT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as a JSON-safe dict (the stable line schema)."""
        record = asdict(self)
        record["kind"] = self.kind.value
        record["severity"] = self.severity.value
        record["details"] = dict(self.details)
        return record

    @property
    def title(self) -> str:
        """One line, e.g. ``[covidct] WARNING metric_regression: <summary>`` (for subjects):
        every line break or control character of the summary becomes a space
        (:func:`one_line`), so a summary cannot add a mail header or a forged log line."""
        return (
            f"[covidct] {self.severity.value.upper()} {self.kind.value}: {one_line(self.summary)}"
        )

    def links(self) -> dict[str, str]:
        """Return the non-empty links, ``{"Airflow run": url, "MLflow run": url}``."""
        named = {"Airflow run": self.airflow_url, "MLflow run": self.mlflow_url}
        return {name: url for name, url in named.items() if url}

    def to_text(self) -> str:
        """Plain-text rendering (title, DAG run, links, details as JSON) for chat and mail."""
        lines = [self.title]
        if self.dag_id or self.run_id:
            lines.append(f"DAG run: {self.dag_id} / {self.run_id}")
        lines += [f"{name}: {url}" for name, url in self.links().items()]
        if self.details:
            lines.append(json.dumps(dict(self.details), sort_keys=True, default=str))
        return "\n".join(lines)


def one_line(text: str) -> str:
    """``text`` with every character that ends a line (``str.splitlines``: CR, LF, VT, FF, the
    file/group/record separators, NEL, U+2028/2029) or is another control character replaced
    by a space."""
    return "".join(" " if not char.isprintable() or char in _LINE_ENDS else char for char in text)


_LINE_ENDS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def airflow_run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """Return the Airflow 3 UI page of a DAG run (``<base>/dags/<dag_id>/runs/<run_id>``).

    ``run_id`` is percent-encoded (manual run ids hold ``:`` and ``+``); empty when it is empty.
    """
    if not run_id:
        return ""
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_run_url(base_url: str, mlflow_run_id: str) -> str:
    """Return the MLflow UI page of a run (``<base>/#/runs/<run_id>``); empty when no run id."""
    if not mlflow_run_id:
        return ""
    return f"{base_url.rstrip('/')}/#/runs/{quote(mlflow_run_id, safe='')}"


class Notifier(Protocol):
    """Anything that delivers an :class:`Alert`."""

    def send(self, alert: Alert) -> None:  # pragma: no cover - protocol
        """Deliver one alert; raise on delivery failure."""


class JsonlNotifier:
    """Embedded notifier: a structured log line plus one line in ``path`` (created if absent)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, alert: Alert) -> None:
        """Append ``alert`` as one JSON line to the file and log it."""
        record = alert.to_dict()
        line = json.dumps(record, sort_keys=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        log = logger.warning if alert.severity != Severity.INFO else logger.info
        summary = one_line(alert.summary)
        log("covidct alert %s: %s", alert.kind.value, summary, extra={"alert": record})


def read_alerts(path: Path) -> list[dict[str, Any]]:
    """Return every alert line of an ``alerts.jsonl`` file (empty list if the file is absent)."""
    if not Path(path).exists():
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
