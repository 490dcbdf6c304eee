"""Servers for ``test_interrupt.py``, started in a child pytest that the test then interrupts.

Not collected by the suite (no ``test_`` prefix): ``test_interrupt.py`` runs this file in a
child ``pytest`` with ``COVIDCT_INTERRUPT_READY`` (where to write what was started) and
``COVIDCT_INTERRUPT_SERVERS`` (a comma-separated subset of ``s3,postgres,redis,mlflow``). The
servers are started exactly as the topology test starts them; the test then waits until it is
interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from topology import (
    Supervisor,
    mlflow_accounts,
    postmaster_pid,
    sqlalchemy_url,
    start_mlflow,
    start_postgres,
    start_redis,
)

#: How long the child waits to be interrupted before giving up on its own.
WAIT_S = 300


def test_start_servers_then_wait_for_a_signal(
    request: pytest.FixtureRequest, s3_server: Any, tmp_path: Path
) -> None:
    ready = Path(os.environ["COVIDCT_INTERRUPT_READY"])
    servers = set(os.environ["COVIDCT_INTERRUPT_SERVERS"].split(","))
    supervisor = Supervisor(tmp_path / "logs")
    request.addfinalizer(supervisor.stop_all)
    started: dict[str, Any] = {
        "ports": [urlparse(s3_server.endpoint_url).port],
        "pids": {},
        "logs": str(tmp_path / "logs"),
    }
    if servers & {"postgres", "mlflow"}:
        pg_root = Path(tempfile.mkdtemp(prefix="covidct-pg-"))
        supervisor.on_stop("pgdata", lambda: shutil.rmtree(pg_root, ignore_errors=True))
        postgres = start_postgres(pg_root / "pgdata", ["mlflow", "mlflow_auth"], supervisor)
        started["pids"]["postgres"] = postmaster_pid(pg_root / "pgdata")
    if "redis" in servers:
        broker = start_redis(tmp_path / "redis", secrets.token_urlsafe(16), supervisor)
        started["ports"].append(urlparse(broker).port)
    if "mlflow" in servers:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
            **mlflow_accounts(sqlalchemy_url(postgres, "mlflow_auth")),
        }
        url = start_mlflow(
            sqlalchemy_url(postgres, "mlflow"),
            f"s3://{s3_server.bucket}/interrupt-{secrets.token_hex(4)}",
            env,
            supervisor,
        )
        started["ports"].append(urlparse(url).port)
    started["pids"].update({name: process.pid for name, process in supervisor.processes})
    partial = ready.with_suffix(".partial")
    partial.write_text(json.dumps(started))
    partial.replace(ready)
    time.sleep(WAIT_S)
    pytest.fail(f"not interrupted within {WAIT_S} s")
