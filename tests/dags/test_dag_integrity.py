"""DAG integrity: the retraining DAG parses cheaply and is wired as docs/architecture.md says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "covidct_retraining.py"
HEAVY = ("tensorflow", "keras", "mlflow", "great_expectations", "boto3", "sklearn")


@pytest.fixture(scope="module")
def dag(airflow_env: dict[str, str]):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["covidct_retraining"]


def test_parsing_imports_no_heavy_library(airflow_env: dict[str, str]) -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAG_FILE)],
        env=airflow_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


#: Run in a fresh interpreter: every way Airflow 3 looks a Variable or a Connection up (Task SDK
#: ``Variable.get``, ``Connection.get``, ``BaseHook.get_connection``, which all go through
#: ``execution_time.context``, and the core models) records the call, then the DAG file is run.
LOOKUP_PROBE = """
import runpy, sys
calls = []
def probe(what):
    def record(*args, **kwargs):
        calls.append(what + repr(args[-1:]))
    return record
from airflow.sdk.execution_time import context
for name in ("_get_variable", "_get_variable_keys", "_get_connection", "_async_get_connection"):
    setattr(context, name, probe(name))
from airflow.models.connection import Connection
from airflow.models.variable import Variable
Variable.get = classmethod(probe("models.Variable.get"))
Connection.get_connection_from_secrets = classmethod(probe("models.Connection.get"))
try:
    runpy.run_path(sys.argv[1])
finally:
    print("LOOKUPS=" + ";".join(calls))
"""


def test_parsing_looks_up_no_variable_or_connection(airflow_env: dict[str, str]) -> None:
    env = {
        k: v for k, v in airflow_env.items() if not k.startswith(("AIRFLOW_VAR_", "AIRFLOW_CONN_"))
    }
    out = subprocess.run(
        [sys.executable, "-c", LOOKUP_PROBE, str(DAG_FILE)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1] == "LOOKUPS=", (out.stdout[-2000:], out.stderr[-2000:])
    assert out.returncode == 0, out.stderr[-2000:]


def test_form_names_are_the_librarys(dag) -> None:  # type: ignore[no-untyped-def]
    from covidct import schema
    from covidct.models import BACKBONES
    from covidct.training import Profile

    backbones = dag.params.get_param("backbones").schema["items"]["enum"]
    profiles = dag.params.get_param("profile").schema["enum"]
    assert backbones == list(schema.BACKBONE_NAMES)  # the DAG uses the library's names
    assert sorted(backbones) == sorted(BACKBONES)
    assert profiles == list(schema.PROFILE_NAMES)
    assert sorted(profiles) == sorted(profile.value for profile in Profile)


def test_schedule_and_defaults(dag) -> None:  # type: ignore[no-untyped-def]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert "covidct" in dag.tags
    assert dag.doc_md
    assert dag.start_date.tzinfo is not None
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id


@pytest.mark.parametrize(
    ("task_id", "queue", "pool"),
    [
        ("train", "gpu", "gpu"),
        ("evaluate", "gpu", "gpu"),
        ("confirm", "gpu", "gpu"),
        ("gate_and_promote", None, "promote"),
    ],
)
def test_queues_and_pools(dag, task_id: str, queue: str | None, pool: str) -> None:  # type: ignore[no-untyped-def]
    task = dag.get_task(task_id)
    assert task.pool == pool
    if queue:
        assert task.queue == queue


def test_task_order(dag) -> None:  # type: ignore[no-untyped-def]
    order = [
        "discover", "validate", "curate", "make_folds", "train", "evaluate", "aggregate",
        "confirm", "gate_and_promote", "regression_check", "summarize",
    ]  # fmt: skip
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids or upstream in {
            t.task_id for t in dag.get_task(downstream).get_flat_relatives(upstream=True)
        }, (upstream, downstream)
    assert "validate" in dag.get_task("quarantine").upstream_task_ids


def test_params_form(dag) -> None:  # type: ignore[no-untyped-def]
    params = dag.params
    for name in (
        "backbones",
        "folds",
        "profile",
        "epochs",
        "steps_per_epoch",
        "image_size",
        "weights",
        "dry_run",
    ):
        assert name in params
    assert params["weights"] is None  # nothing is fetched unless a run asks for ImageNet
    assert params["profile"] == "paper"
    assert "resnet152" in params["backbones"]


def test_run_late_deadline_is_on_by_default(dag) -> None:  # type: ignore[no-untyped-def]
    assert dag.deadline, "a run-late DeadlineAlert must be configured unless disabled"
