"""DAG integrity: the retraining DAG parses cheaply and is wired as docs/architecture.md says."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "covidct_retraining.py"
DAG_ID = "covidct_retraining"
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
    assert dag.doc_md and "COVIDCT_DEFAULT_PROFILE" in dag.doc_md  # the DAG file says so
    # no start date: a cron timetable with one schedules the latest past tick on unpause
    assert dag.start_date is None
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
    assert params["profile"] == os.environ.get("COVIDCT_DEFAULT_PROFILE", "cpu-smoke")
    assert "resnet152" in params["backbones"]


def test_run_late_deadline_is_on_by_default(dag) -> None:  # type: ignore[no-untyped-def]
    assert dag.deadline, "a run-late DeadlineAlert must be configured unless disabled"


#: Parse the DAG file with a real DagBag in a fresh interpreter (the file reads the deployment's
#: environment when it is parsed) and print the form's defaults, or the import errors.
PARAMS_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
if bag.import_errors:
    print("ERRORS=" + json.dumps(list(bag.import_errors.values())))
else:
    print("PARAMS=" + json.dumps(bag.dags["covidct_retraining"].params.dump()))
"""


def _parse(airflow_env: dict[str, str], **extra: str) -> str:
    env = {k: v for k, v in airflow_env.items() if k != "COVIDCT_DEFAULT_PROFILE"}
    out = subprocess.run(
        [sys.executable, "-c", PARAMS_PROBE, str(DAG_FILE)],
        env={**env, **extra},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("extra", "profile"),
    [({}, "cpu-smoke"), ({"COVIDCT_DEFAULT_PROFILE": "gpu-fast"}, "gpu-fast")],
    ids=["embedded", "compose"],
)
def test_form_defaults_come_from_the_deployment(
    airflow_env: dict[str, str], extra: dict[str, str], profile: str
) -> None:
    line = _parse(airflow_env, **extra)
    assert line.startswith("PARAMS="), line
    params = json.loads(line.removeprefix("PARAMS="))
    # an empty run configuration (a scheduled run) takes exactly these
    assert params["profile"] == profile
    assert params["weights"] is None and params["dry_run"] is False
    assert params["epochs"] is None and params["steps_per_epoch"] is None
    assert params["image_size"] is None


def test_bad_default_profile_is_an_import_error_naming_it(airflow_env: dict[str, str]) -> None:
    line = _parse(airflow_env, COVIDCT_DEFAULT_PROFILE="gpu")
    assert line.startswith("ERRORS="), line
    assert "COVIDCT_DEFAULT_PROFILE: expected one of paper, gpu-fast, cpu-smoke; got 'gpu'" in line


#: What the scheduler does on unpause: sync the DAG to a real metadata DB, unpause it with the
#: CLI, then ask the scheduler's own query which DAGs need a run now.
SCHEDULER_PROBE = """
from airflow.models.dag import DagModel
from airflow.utils.session import create_session
with create_session() as session:
    model = session.get(DagModel, "covidct_retraining")
    query, _ = DagModel.dags_needing_dagruns(session)
    due = [m.dag_id for m in query]
    print(f"RESULT={model.is_paused}|{model.next_dagrun_create_after.isoformat()}|{due}")
"""


def test_unpausing_creates_no_scheduled_run(airflow_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in airflow_env.items() if k != "COVIDCT_DEFAULT_PROFILE"}
    env |= {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }
    airflow = [sys.executable, "-m", "airflow"]
    for command in (["db", "migrate"], ["dags", "reserialize"], ["dags", "unpause", DAG_ID]):
        done = subprocess.run(airflow + command, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    out = subprocess.run(
        [sys.executable, "-c", SCHEDULER_PROBE], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = out.stdout.strip().splitlines()[-1].removeprefix("RESULT=")
    paused, create_after, due = result.split("|")
    assert paused == "False"
    assert due == "[]"  # nothing to create now: the form's run is the only one
    next_run = datetime.fromisoformat(create_after)
    assert next_run > datetime.now(UTC)
    assert next_run.weekday() == 6 and (next_run.hour, next_run.minute) == (0, 0)  # Sunday 00:00


# --------------------------------------------------------------------- the form -> the spec


def test_form_bounds_and_defaults_are_the_librarys(dag) -> None:  # type: ignore[no-untyped-def]
    from covidct.schema import BACKBONE_NAMES
    from covidct.training.spec import (
        FOLDS_RANGE,
        FORM_DEFAULTS,
        IMAGE_SIZE_RANGE,
        WEIGHTS_NAMES,
        form_defaults,
    )

    params = dag.params
    assert list(params.keys()) == list(FORM_DEFAULTS)  # check-conf knows every field of the form
    profile = os.environ.get("COVIDCT_DEFAULT_PROFILE", "cpu-smoke")
    defaults = {name: params[name] for name in FORM_DEFAULTS if name != "profile"}
    assert defaults == {k: v for k, v in form_defaults(profile).items() if k != "profile"}
    folds = params.get_param("folds").schema
    assert folds["enum"] == list(range(FOLDS_RANGE[0], FOLDS_RANGE[1] + 1))
    size = params.get_param("image_size").schema
    assert (size["exclusiveMinimum"] + 1, size["exclusiveMaximum"] - 1) == IMAGE_SIZE_RANGE
    assert params.get_param("weights").schema["enum"] == [None, *WEIGHTS_NAMES]
    # issue 33 item 4: the UI's number box clamps to minimum/maximum on blur; no field has them
    for name in params:
        schema = params.get_param(name).schema
        assert "minimum" not in schema and "maximum" not in schema, name
    backbones = params.get_param("backbones").schema  # a multi-select of the registry's names
    assert backbones["examples"] == backbones["items"]["enum"] == list(BACKBONE_NAMES)


def test_cpu_smoke_defaults_fit_the_cpu() -> None:
    """Issue 33 item 4: cpu-smoke's form trains 2 backbones x 2 folds, the others 3 x 5."""
    from covidct.training.spec import RunRequest, form_defaults

    smoke = RunRequest.from_form({}, default_profile="cpu-smoke")
    assert (len(smoke.backbones), smoke.folds) == (2, 2)
    assert "resnet152" in smoke.backbones  # the gate's baseline
    paper = RunRequest.from_form({"profile": "paper"}, default_profile="cpu-smoke")
    assert (len(paper.backbones), paper.folds) == (3, 5)
    assert form_defaults("gpu-fast")["folds"] == 5
    form_defaults("cpu-smoke")["backbones"].append("vgg16")  # a copy: the table is unchanged
    assert len(form_defaults("cpu-smoke")["backbones"]) == 2


def test_curate_and_the_champion_publish_assets(dag) -> None:  # type: ignore[no-untyped-def]
    """Issue 33 item 4: a downstream DAG can be scheduled on a champion change."""
    outlets = {
        task_id: [asset.name for asset in dag.get_task(task_id).outlets]
        for task_id in ("curate", "publish_champion")
    }
    assert outlets == {
        "curate": ["covidct_curated_dataset"],
        "publish_champion": ["covidct_champion"],
    }
    assert "gate_and_promote" in dag.get_task("publish_champion").upstream_task_ids


def test_plan_runs_first(dag) -> None:  # type: ignore[no-untyped-def]
    assert dag.get_task("plan").upstream_task_ids == set()
    assert "plan" in dag.get_task("setup").upstream_task_ids


#: (run configuration, the one line the library's check gives, or None when it is valid)
FORM_ROWS = [
    ({}, None),
    ({"profile": "paper", "image_size": 256, "weights": "imagenet", "folds": 3}, None),
    ({"profile": "cpu-smoke", "epochs": 1, "steps_per_epoch": 2, "image_size": 32}, None),
    ({"backbones": ["vgg16", "vgg16"], "dry_run": True}, None),
    ({"profile": "gpu"}, "profile: expected one of paper, gpu-fast, cpu-smoke; got 'gpu'"),
    ({"image_size": 16}, "image_size: expected an integer from 32 to 1024 or null; got 16"),
    ({"image_size": 1025}, "image_size: expected an integer from 32 to 1024 or null; got 1025"),
    ({"folds": 1}, "folds: expected an integer from 2 to 10; got 1"),
    ({"steps_per_epoch": 0}, "steps_per_epoch: expected an integer >= 1 or null; got 0"),
    ({"seed": -1}, "seed: expected an integer >= 0; got -1"),
    ({"folds": 11}, "folds: expected an integer from 2 to 10; got 11"),
    ({"epochs": 0}, "epochs: expected an integer >= 1 or null; got 0"),
    ({"backbones": []}, "backbones: expected a non-empty list of"),
    ({"backbones": ["alexnet"]}, "backbones: expected names among"),
    ({"weights": "imagenett"}, "weights: expected one of null, imagenet; got 'imagenett'"),
]


def _resolve(dag, conf: dict) -> dict:  # type: ignore[no-untyped-def]
    """Airflow's resolution of ``conf`` for the ``plan`` task (``process_params``, as a task run
    does), on copies of the Params: resolving sets their values, and a task process parses the
    DAG afresh where the module-scoped ``dag`` fixture must stay clean."""
    from airflow.sdk.definitions.param import process_params

    task = SimpleNamespace(params=copy.deepcopy(dag.get_task("plan").params))
    return process_params(
        SimpleNamespace(params=copy.deepcopy(dag.params)), task, conf, suppress_exception=False
    )


@pytest.mark.parametrize(("conf", "error"), FORM_ROWS)
def test_form_to_spec_through_the_dags_own_plan_task(dag, conf: dict, error: str | None) -> None:  # type: ignore[no-untyped-def]
    """Airflow resolves the form as a task run does (``process_params``), then the DAG's own
    ``plan`` callable builds the spec: Airflow's schema and the library agree on every row."""
    from airflow.sdk.exceptions import ParamValidationError

    from covidct.training.spec import RunRequest, TrainingSpec

    plan = dag.get_task("plan")
    default = os.environ.get("COVIDCT_DEFAULT_PROFILE", "cpu-smoke")
    if error is not None:
        with pytest.raises(ParamValidationError):
            _resolve(dag, conf)
        with pytest.raises(ValueError, match=re.escape(error)):
            RunRequest.from_form(conf, default_profile=default)
        return
    resolved = _resolve(dag, conf)
    planned = plan.python_callable(params=resolved)
    spec = TrainingSpec.from_dict(planned["train_params"])  # the one reader
    assert spec == RunRequest.from_form(conf, default_profile=default).training
    assert spec.profile.value == conf.get("profile", default)
    if "image_size" in conf:
        assert spec.image_size == conf["image_size"]
    expected = [] if conf.get("dry_run") else list(dict.fromkeys(resolved["backbones"]))
    assert planned["backbones"] == expected
    json.dumps(planned)  # XCom-safe


def test_a_conf_airflow_lets_through_fails_the_plan_in_one_line(dag) -> None:  # type: ignore[no-untyped-def]
    """A key the form does not have passes Airflow's schema (it becomes a new Param); the plan
    task refuses it, without retries, naming the field and the allowed ones."""
    from airflow.sdk.exceptions import AirflowFailException

    plan = dag.get_task("plan")
    resolved = _resolve(dag, {"profle": "paper"})
    with pytest.raises(AirflowFailException) as caught:
        plan.python_callable(params=resolved)
    message = str(caught.value)
    assert message.startswith("run configuration: profle: unknown field of the run configuration")
    assert "expected backbones, folds, seed, profile," in message and "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [("COVIDCT_GATE_MARGIN", "nan"), ("COVIDCT_GATE_N_BOOT", "-5"),
     ("COVIDCT_SEQUESTERED_SHARE", "3"), ("COVIDCT_DRIFT_HU_LIMIT", "forty")],
)  # fmt: skip
def test_a_nonsense_setting_fails_the_plan_in_one_line(
    dag, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:  # type: ignore[no-untyped-def]
    """Issue 32: the run's first task reads every COVIDCT_* setting and fails, not retried,
    naming the variable, its value and the allowed range (these were accepted before)."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv(variable, value)
    with pytest.raises(AirflowFailException) as caught:
        dag.get_task("plan").python_callable(params=_resolve(dag, {}))
    message = str(caught.value)
    assert message.startswith(f"settings: {variable}={value!r} is not allowed: expected ")
    assert "\n" not in message
