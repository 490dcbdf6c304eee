"""Alert delivery through the Airflow providers to real servers on 127.0.0.1.

A tiny HTTP listener stands in for Slack's webhook endpoint and ``aiosmtpd`` for the mail
server; connections arrive the production way, as ``AIRFLOW_CONN_*`` variables, with
``AIRFLOW_HOME`` in a temporary folder. The run-late callback is driven through Airflow's own
callback runners (the executor's ``execute_callback`` and the triggerer's ``CallbackTrigger``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import html
import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from covidct.promotion.alerts import Alert, AlertKind, Severity, airflow_run_url, read_alerts

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
if str(PLUGINS) not in sys.path:  # Airflow puts plugins/ on sys.path; do the same here
    sys.path.insert(0, str(PLUGINS))

import covidct_alerting  # noqa: E402

AIRFLOW_UI = "http://airflow.test:8080"
MLFLOW_UI = "http://mlflow.test:5000"
RUN_ID = "scheduled__2026-03-01T00:00:00+00:00"
MLFLOW_RUN = "0123456789abcdef0123456789abcdef"
WEBHOOK_PATH = "/services/T000/B000/covidct"


# ------------------------------------------------------------------------- local servers


@dataclass
class Webhook:
    """A Slack-webhook stand-in: records every POST and answers ``status``."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


def _handler(webhook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            webhook.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body}
            )
            self.send_response(webhook.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if webhook.status == 200 else b"invalid_payload")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """Serve a webhook endpoint on 127.0.0.1 (free port) in a thread."""
    hook = Webhook(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hook))
    hook.url = f"http://127.0.0.1:{server.server_port}{WEBHOOK_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


class Mailbox:
    """``aiosmtpd`` handler keeping every envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """Run an SMTP server (aiosmtpd) on 127.0.0.1; yield its mailbox and port."""
    from aiosmtpd.controller import Controller

    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def airflow_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook: Webhook, mailbox: tuple[Mailbox, int]
) -> Path:
    """Point Airflow and covidct at ``tmp_path`` and both servers; return alerts.jsonl's path."""
    _, smtp_port = mailbox
    slack = {"conn_type": "slackwebhook", "password": webhook.url}
    smtp = {
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"from_email": "covidct@example.org", "disable_ssl": True, "disable_tls": True,
                  "timeout": 5, "retry_limit": 0},
    }  # fmt: skip
    alerts_path = tmp_path / "alerts.jsonl"
    for name, value in {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps(slack),
        "AIRFLOW_CONN_SMTP_ALERTS": json.dumps(smtp),
        "COVIDCT_HOME": str(tmp_path / "covidct"),
        "COVIDCT_ALERTS_PATH": str(alerts_path),
        "COVIDCT_AIRFLOW_URL": AIRFLOW_UI,
        "COVIDCT_MLFLOW_URL": MLFLOW_UI,
        "COVIDCT_SMTP_TO": "ml-ops@example.org, radiology@example.org",
    }.items():
        monkeypatch.setenv(name, value)
    return alerts_path


def _alert(summary: str = "champion metrics regressed: image_accuracy 0.950->0.880") -> Alert:
    return Alert(
        AlertKind.METRIC_REGRESSION,
        Severity.WARNING,
        summary,
        {"regressions": [{"metric": "image_accuracy", "previous": 0.95, "current": 0.88}]},
        "covidct_retraining",
        RUN_ID,
        airflow_run_url(AIRFLOW_UI, "covidct_retraining", RUN_ID),
        f"{MLFLOW_UI}/#/runs/{MLFLOW_RUN}",
    )


def _mail_text(envelope: Any) -> tuple[Any, str]:
    message = email.message_from_bytes(envelope.content)
    parts = [p for p in message.walk() if p.get_content_type() == "text/html"]
    body = "".join(p.get_payload(decode=True).decode() for p in parts)
    return message, html.unescape(body)  # the text a mail client shows


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("channel", "slack_posts", "mails"),
    [("jsonl", 0, 0), ("slack", 1, 0), ("smtp", 0, 1)],
)
def test_channel_choice_and_payloads(  # type: ignore[no-untyped-def]
    channel, slack_posts, mails, airflow_env, webhook, mailbox, monkeypatch
) -> None:
    monkeypatch.setenv("COVIDCT_ALERTS", channel)
    alert = _alert()
    covidct_alerting.deliver(alert)
    box, _ = mailbox
    assert [a["summary"] for a in read_alerts(airflow_env)] == [alert.summary]  # always written
    assert (len(webhook.requests), len(box.envelopes)) == (slack_posts, mails)
    expected = (alert.summary, alert.airflow_url, alert.mlflow_url)
    if slack_posts:
        request = webhook.requests[0]
        payload = json.loads(request["body"])
        assert request["path"] == WEBHOOK_PATH
        shown = [covidct_alerting.slack_escape(text) for text in expected]  # "->" is "-&gt;"
        assert all(text in payload["text"] for text in shown)
        blocks = json.dumps(payload["blocks"])
        assert all(text in blocks for text in shown) and "image_accuracy" in blocks
    if mails:
        message, body = _mail_text(box.envelopes[0])
        assert box.envelopes[0].rcpt_tos == ["ml-ops@example.org", "radiology@example.org"]
        assert message["From"] == "covidct@example.org"
        assert (
            "metric_regression" in message["Subject"] and alert.summary[:60] in message["Subject"]
        )
        assert all(text in body for text in expected) and "image_accuracy" in body


def test_braces_in_summary_are_not_templated(airflow_env, webhook, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_ALERTS", "slack")
    covidct_alerting.deliver(_alert("batch {{ ds }} quarantined: bad <patient&1>"))
    assert (  # Slack's control characters arrive escaped (issue 32), the braces as sent
        "batch {{ ds }} quarantined: bad &lt;patient&amp;1&gt;"
        in json.loads(webhook.requests[0]["body"])["text"]
    )


def test_slack_markup_in_a_batch_id_is_shown_not_obeyed() -> None:
    """Issue 32: a batch named ``<!channel>`` must not ping the whole channel."""
    alert = _alert("batch <!channel> & <@U123|boss> quarantined")
    alert = dataclasses.replace(alert, dag_id="<!here>", details={"batch": "<!channel>"})
    blocks = json.dumps(covidct_alerting.slack_blocks(alert))
    text = covidct_alerting.slack_text(alert)
    for rendered in (blocks, text):
        assert "<!channel>" not in rendered and "<!here>" not in rendered and "<@U" not in rendered
        assert "&lt;!channel&gt; &amp; &lt;@U123|boss&gt;" in rendered
    assert f"<{alert.airflow_url}|" in blocks  # our own link markup stays a link


@pytest.mark.parametrize("status", [500, 404])
def test_refused_delivery_raises_but_keeps_the_jsonl_line(  # type: ignore[no-untyped-def]
    status, airflow_env, webhook, monkeypatch
) -> None:
    monkeypatch.setenv("COVIDCT_ALERTS", "slack")
    webhook.status = status
    with pytest.raises(Exception, match=str(status)):
        covidct_alerting.deliver(_alert())
    assert len(webhook.requests) == 1
    assert [a["kind"] for a in read_alerts(airflow_env)] == ["metric_regression"]


def test_a_bad_setting_does_not_silence_the_alert_of_the_failure_it_causes(  # type: ignore[no-untyped-def]
    airflow_env, webhook, monkeypatch, caplog
) -> None:
    """Issue 32: the plan task fails on COVIDCT_GATE_MARGIN=nan; its failure alert still goes
    out (Slack, as configured), the bad variable named once in the log."""
    monkeypatch.setenv("COVIDCT_ALERTS", "slack")
    monkeypatch.setenv("COVIDCT_GATE_MARGIN", "nan")
    covidct_alerting.send(_alert())
    assert len(webhook.requests) == 1
    assert [a["kind"] for a in read_alerts(airflow_env)] == ["metric_regression"]
    assert "COVIDCT_GATE_MARGIN='nan' is not allowed" in caplog.text


def test_smtp_without_recipients_is_refused(airflow_env, mailbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_ALERTS", "smtp")
    monkeypatch.setenv("COVIDCT_SMTP_TO", "")
    with pytest.raises(ValueError, match="COVIDCT_SMTP_TO"):
        covidct_alerting.deliver(_alert())
    assert mailbox[0].envelopes == []


class _TaskInstance:
    """The attributes Airflow's task instance exposes to a failure callback."""

    dag_id, task_id, map_index, run_id = "covidct_retraining", "train", 3, RUN_ID


@pytest.mark.parametrize("status", [200, 500])
def test_task_failure_callback(status, airflow_env, webhook, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_ALERTS", "slack")
    webhook.status = status
    context = {"task_instance": _TaskInstance(), "run_id": RUN_ID,
               "exception": RuntimeError("CUDA out of memory")}  # fmt: skip
    covidct_alerting.on_task_failure(context)  # never raises, even when Slack refuses
    [line] = read_alerts(airflow_env)
    assert line["kind"] == "task_failed" and line["details"]["map_index"] == 3
    assert line["airflow_url"] == airflow_run_url(AIRFLOW_UI, "covidct_retraining", RUN_ID)
    text = json.loads(webhook.requests[0]["body"])["text"]
    assert "task train failed: CUDA out of memory" in text and line["airflow_url"] in text


def _deadline_context() -> dict[str, Any]:
    """What the scheduler's ``Deadline.handle_miss`` passes (Airflow 3.3): run and deadline."""
    return {
        "dag_run": {"dag_run_id": RUN_ID, "dag_id": "covidct_retraining", "state": "running",
                    "queued_at": "2026-03-01T00:00:05+00:00",
                    "start_date": "2026-03-01T00:00:07+00:00"},
        "deadline": {"id": "0199-deadline", "deadline_time": "2026-03-02T12:00:05+00:00"},
    }  # fmt: skip


def _run_sync(callback: Any) -> None:
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    kwargs = {**callback.kwargs, "context": _deadline_context()}
    ok, error = execute_callback(callback.path, kwargs, "", None, structlog.get_logger())
    assert ok, error


def _run_async(callback: Any) -> None:
    from airflow.triggers.callback import CallbackTrigger

    async def events() -> list[Any]:
        trigger = CallbackTrigger(
            callback.path, {**callback.kwargs, "context": _deadline_context()}
        )
        return [event async for event in trigger.run()]

    final = asyncio.run(events())[-1].payload
    assert final["state"] == "success", final


@pytest.mark.parametrize(
    ("kind", "function", "runner"),
    [
        ("SyncCallback", "on_run_late", _run_sync),
        ("AsyncCallback", "on_run_late_async", _run_async),
    ],
)
def test_run_late_deadline_alert(  # type: ignore[no-untyped-def]
    kind, function, runner, airflow_env, webhook, monkeypatch
) -> None:
    import airflow.sdk as sdk

    monkeypatch.setenv("COVIDCT_ALERTS", "slack")
    callback = getattr(sdk, kind)(getattr(covidct_alerting, function),
                                  kwargs={"expected": "36 h after queued"})  # fmt: skip
    sdk.DeadlineAlert(
        reference=sdk.DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=36),
        callback=callback,
    )
    assert callback.path == f"covidct_alerting.{function}"
    runner(callback)
    [line] = read_alerts(airflow_env)
    assert line["kind"] == "run_late" and line["run_id"] == RUN_ID
    assert line["details"]["deadline_time"] == "2026-03-02T12:00:05+00:00"
    assert line["details"]["expected"] == "36 h after queued"
    text = json.loads(webhook.requests[0]["body"])["text"]
    assert RUN_ID in text and "late" in text and line["airflow_url"] in text
