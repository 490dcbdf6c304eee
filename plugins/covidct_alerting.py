"""Airflow glue for covidct alerts: the failure callback and the Slack / SMTP notifiers.

The library (``covidct.alerts``) owns the alert schema and the embedded ``alerts.jsonl``
notifier; this module delivers the same :class:`covidct.alerts.Alert` through the Airflow
providers' notifiers when ``COVIDCT_ALERTS`` is ``slack`` or ``smtp`` (connections
``slack_alerts`` / ``smtp_alerts``, see README).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

logger = logging.getLogger(__name__)


def deliver(alert: Any) -> None:
    """Send ``alert`` through the configured channel (``COVIDCT_ALERTS``)."""
    from covidct.alerts import JsonlNotifier
    from covidct.config import AlertChannel, Settings

    settings = Settings.from_env(os.environ)
    JsonlNotifier(settings.alerts.jsonl_path).send(alert)  # always keep the local record
    text = f"[covidct] {alert.summary}\n{alert.airflow_url}\n{alert.mlflow_url}".strip()
    if settings.alerts.channel == AlertChannel.SLACK:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        notifier = SlackWebhookNotifier(
            slack_webhook_conn_id=settings.alerts.slack_conn_id, text=text
        )
        notifier.notify({})
    elif settings.alerts.channel == AlertChannel.SMTP:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifier = SmtpNotifier(
            smtp_conn_id=settings.alerts.smtp_conn_id,
            to=settings.alerts.smtp_to,
            subject=f"[covidct] {alert.kind.value}: {alert.summary[:120]}",
            html_content=f"<pre>{json.dumps(alert.to_dict(), indent=2, default=str)}</pre>",
        )
        notifier.notify({})


def on_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: one ``task_failed`` alert naming the task and the error."""
    from covidct.alerts import Alert, AlertKind, Severity
    from covidct.config import Settings

    settings = Settings.from_env(os.environ)
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "covidct_retraining")
    run_id = str(context.get("run_id", ""))
    task_id = getattr(ti, "task_id", "?")
    error = context.get("exception")
    alert = Alert(
        AlertKind.TASK_FAILED,
        Severity.CRITICAL,
        f"task {task_id} failed: {error!s}"[:500],
        {"task_id": task_id, "map_index": getattr(ti, "map_index", -1), "error": repr(error)},
        dag_id,
        run_id,
        f"{settings.alerts.airflow_url}/dags/{dag_id}/runs/{run_id}",
        "",
    )
    try:
        deliver(alert)
    except Exception:  # an alert failure must not hide the task failure
        logger.exception("could not deliver the task-failure alert")
