"""Airflow glue for covidct alerts: Slack / SMTP delivery and the failure and run-late callbacks.

The library (``covidct.promotion.alerts``) owns the alert schema and the embedded ``alerts.jsonl``
notifier. This module delivers the same :class:`covidct.promotion.alerts.Alert` through the Airflow
providers' notifiers, chosen by ``COVIDCT_ALERTS``:

============ ==================================================================================
``jsonl``     (default) only the JSON line in ``COVIDCT_ALERTS_PATH`` and a structured log line
``slack``     the JSON line, then ``SlackWebhookNotifier`` on connection ``slack_alerts``
``smtp``      the JSON line, then ``SmtpNotifier`` on connection ``smtp_alerts`` to
              ``COVIDCT_SMTP_TO`` (comma-separated addresses)
============ ==================================================================================

The JSON line is always written first, so a Slack or mail outage never loses an alert.
Connections come from Airflow (UI, secrets backend, or environment), for example::

    AIRFLOW_CONN_SLACK_ALERTS='{"conn_type": "slackwebhook",
                                "password": "https://hooks.slack.com/services/T0/B0/XXXX"}'
    AIRFLOW_CONN_SMTP_ALERTS='{"conn_type": "smtp", "host": "smtp.example.org", "port": 587,
                               "login": "covidct", "password": "...",
                               "extra": {"from_email": "covidct@example.org",
                                         "disable_ssl": true}}'

Library steps take a ``send`` callable (``covidct.pipeline.send_alert(..., send=...)``): pass
:func:`send` from DAG tasks so their alerts follow ``COVIDCT_ALERTS`` too.

Wiring in ``dags/covidct_retraining.py``
----------------------------------------
* task failures: ``default_args["on_failure_callback"] = on_task_failure``.
* run late: Airflow 3 replaced SLAs with Deadline Alerts. The scheduler checks each run's
  deadline; when it passes while the run is still going, it queues the callback with
  ``context={"dag_run": {...DAGRunResponse as JSON...}, "deadline": {"id", "deadline_time"}}``
  plus the ``kwargs`` given here::

      from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback
      from covidct_alerting import on_run_late

      @dag(...,
           deadline=DeadlineAlert(
               reference=DeadlineReference.DAGRUN_QUEUED_AT,
               interval=timedelta(hours=36),
               callback=SyncCallback(on_run_late, kwargs={"expected": "36 h after queued"}),
           ))

  ``SyncCallback`` runs on the executor (LocalExecutor and CeleryExecutor support callback
  workloads in Airflow 3.3); ``AsyncCallback(on_run_late_async, kwargs=...)`` runs the same in
  the triggerer instead. ``airflow dags test`` does not evaluate deadlines (no scheduler).

Template fields of the providers' notifiers are never rendered here (we call ``notify``, not
``__call__``), so ``{{`` in an alert summary reaches Slack and mail verbatim.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

#: Slack rejects a section text longer than 3,000 characters.
SLACK_TEXT_LIMIT = 2900
_SEVERITY_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}


def _settings() -> Any:
    """Settings from the environment. A ``COVIDCT_*`` value out of its range (which the DAG's
    ``plan`` task reports, failing the run) is left out here, with one log line, so that the
    alert of that very failure is still delivered (with the variable's default)."""
    from covidct.config import SettingError, Settings

    env = dict(os.environ)
    for _ in range(len(env) + 1):
        try:
            return Settings.from_env(env)
        except SettingError as error:
            logger.error("alert settings: %s; its default is used for the alert", error)
            env.pop(error.variable, None)
    return Settings.from_env(env)


# ------------------------------------------------------------------------------ rendering


def slack_escape(text: object) -> str:
    """Return ``text`` with Slack's three control characters escaped (``&`` -> ``&amp;``, ``<``
    -> ``&lt;``, ``>`` -> ``&gt;``; Slack API docs, "Formatting text for app surfaces"), so that
    a batch named ``<!channel>`` is shown, not obeyed."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(alert: Any) -> str:
    """Return the plain-text fallback of ``alert`` (``to_text``) escaped for Slack."""
    return slack_escape(alert.to_text())


def slack_blocks(alert: Any) -> list[dict[str, Any]]:
    """Return Slack Block Kit blocks for ``alert``: title, DAG run, links, details (truncated).

    Every text from the alert is escaped (:func:`slack_escape`); only the link markup is ours.
    """
    emoji = _SEVERITY_EMOJI.get(alert.severity.value, "")
    lines = [f"{emoji} *{slack_escape(alert.title)}*".strip()]
    if alert.dag_id or alert.run_id:
        lines.append(f"DAG run: `{slack_escape(alert.dag_id)}` / `{slack_escape(alert.run_id)}`")
    lines += [
        f"<{slack_escape(url).replace('|', '%7C')}|{slack_escape(name)}>"
        for name, url in alert.links().items()
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:SLACK_TEXT_LIMIT]}}
    ]
    if alert.details:
        details = json.dumps(dict(alert.details), indent=1, sort_keys=True, default=str)
        details = slack_escape(details)
        text = f"```{details[: SLACK_TEXT_LIMIT - 6]}```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    return blocks


def email_html(alert: Any) -> str:
    """Return the HTML body of the alert mail: summary, DAG run, links, the full JSON record."""
    escape = html.escape
    links = "".join(
        f'<li><a href="{escape(url)}">{escape(name)}</a>: {escape(url)}</li>'
        for name, url in alert.links().items()
    )
    record = json.dumps(alert.to_dict(), indent=2, sort_keys=True, default=str)
    return (
        f"<h3>{escape(alert.kind.value)} ({escape(alert.severity.value)})</h3>"
        f"<p>{escape(alert.summary)}</p>"
        f"<p>DAG run: {escape(alert.dag_id)} / {escape(alert.run_id)}</p>"
        f"<ul>{links}</ul><pre>{escape(record)}</pre>"
    )


# ------------------------------------------------------------------------------- delivery


def slack_notifier(alert: Any, conn_id: str) -> Any:
    """Return the providers' ``SlackWebhookNotifier`` carrying ``alert`` (text and blocks)."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    return SlackWebhookNotifier(
        slack_webhook_conn_id=conn_id, text=slack_text(alert), blocks=slack_blocks(alert)
    )


def smtp_notifier(alert: Any, conn_id: str, to: str) -> Any:
    """Return the providers' ``SmtpNotifier`` mailing ``alert`` to ``to`` (comma-separated).

    The sender is the connection's ``from_email`` extra. Raises ValueError when ``to`` is empty.
    """
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    if not to.strip():
        raise ValueError("COVIDCT_ALERTS=smtp needs recipients in COVIDCT_SMTP_TO; got none")
    return SmtpNotifier(
        to=to,
        smtp_conn_id=conn_id,
        subject=alert.title[:200],
        html_content=email_html(alert),
    )


def deliver(alert: Any, settings: Any = None) -> None:
    """Write ``alert`` to ``alerts.jsonl``, then send it through the ``COVIDCT_ALERTS`` channel.

    ``settings``: a ``covidct.config.Settings`` (read from the environment when None). Raises
    whatever the provider raises when Slack or the mail server refuses (the JSON line is
    already written by then).
    """
    from covidct.config import AlertChannel
    from covidct.promotion.alerts import JsonlNotifier

    settings = settings or _settings()
    JsonlNotifier(settings.alerts.jsonl_path).send(alert)
    channel = settings.alerts.channel
    if channel == AlertChannel.SLACK:
        slack_notifier(alert, settings.alerts.slack_conn_id).notify({})
    elif channel == AlertChannel.SMTP:
        smtp_notifier(alert, settings.alerts.smtp_conn_id, settings.alerts.smtp_to).notify({})
    if channel != AlertChannel.JSONL:
        logger.info("alert %s delivered through %s", alert.kind.value, channel.value)


def send(alert: Any) -> None:
    """``send`` for ``covidct.pipeline.send_alert``: :func:`deliver` with environment settings."""
    deliver(alert)


class AirflowNotifier:
    """A ``covidct.promotion.alerts.Notifier`` that delivers through :func:`deliver` with fixed
    settings."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def send(self, alert: Any) -> None:
        """Deliver one alert; raises on delivery failure (after the JSON line is written)."""
        deliver(alert, self.settings)


def _deliver_quietly(alert: Any) -> None:
    """Deliver from a callback: a broken channel is logged, never raised over the real event."""
    try:
        deliver(alert)
    except Exception:
        logger.exception("could not deliver the %s alert", alert.kind.value)


# ------------------------------------------------------------------------------ callbacks


def _field(source: Any, name: str, default: Any = "") -> Any:
    """Read ``name`` from a mapping (deadline context) or an object (task context)."""
    if isinstance(source, Mapping):
        return source.get(name, default)
    return getattr(source, name, default)


def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback``: one ``task_failed`` alert naming the task and the error."""
    from covidct.promotion.alerts import Alert, AlertKind, Severity, airflow_run_url

    settings = _settings()
    ti = context.get("task_instance") or context.get("ti")
    dag_id = _field(ti, "dag_id", "") or "covidct_retraining"
    run_id = str(context.get("run_id", "") or _field(ti, "run_id", ""))
    task_id = _field(ti, "task_id", "?")
    error = context.get("exception")
    alert = Alert(
        AlertKind.TASK_FAILED,
        Severity.CRITICAL,
        f"task {task_id} failed: {error!s}"[:500],
        {"task_id": task_id, "map_index": _field(ti, "map_index", -1), "error": repr(error)},
        dag_id,
        run_id,
        airflow_run_url(settings.alerts.airflow_url, dag_id, run_id),
        "",
    )
    _deliver_quietly(alert)


def run_late_alert(context: Mapping[str, Any] | None, settings: Any, **kwargs: Any) -> Any:
    """Build the ``run_late`` alert from a deadline context (or a DAG callback context).

    ``context["dag_run"]``: the run as a mapping (deadline callbacks: ``dag_run_id``,
    ``dag_id``, ``state``, ``queued_at``, ``start_date``) or a DagRun object (``run_id``).
    ``context["deadline"]["deadline_time"]``: when it was due. ``kwargs`` go to ``details``.
    """
    from covidct.promotion.alerts import Alert, AlertKind, Severity, airflow_run_url

    context = context or {}
    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    run_id = str(_field(dag_run, "dag_run_id", "") or _field(dag_run, "run_id", ""))
    dag_id = str(_field(dag_run, "dag_id", "") or "covidct_retraining")
    state = str(_field(dag_run, "state", "") or "running")
    due = str(_field(deadline, "deadline_time", "") or "?")
    details = {
        "state": state,
        "deadline_time": due,
        "queued_at": str(_field(dag_run, "queued_at", "") or ""),
        "start_date": str(_field(dag_run, "start_date", "") or ""),
        **{key: str(value) for key, value in kwargs.items()},
    }
    summary = f"run {run_id} of {dag_id} is late: still {state} after its deadline {due}"
    url = airflow_run_url(settings.alerts.airflow_url, dag_id, run_id)
    return Alert(AlertKind.RUN_LATE, Severity.WARNING, summary, details, dag_id, run_id, url, "")


def on_run_late(context: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """Deadline Alert callback (``SyncCallback``): deliver one ``run_late`` alert.

    Airflow calls it with ``context`` (see :func:`run_late_alert`) and the ``kwargs`` given to
    ``SyncCallback``; see the module docstring for the DAG lines. Never raises.
    """
    _deliver_quietly(run_late_alert(context, _settings(), **kwargs))


async def on_run_late_async(context: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """Deadline Alert callback for ``AsyncCallback`` (runs in the triggerer; blocking I/O is
    moved to a worker thread so the triggerer's event loop keeps running)."""
    await asyncio.to_thread(on_run_late, context, **kwargs)
