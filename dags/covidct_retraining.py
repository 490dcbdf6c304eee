"""
### covidct_retraining

Weekly retraining of the COVID-19 CT-slice classifiers (see `docs/architecture.md`).

discover new batches -> validate each (Great Expectations over a per-slice manifest) ->
quarantine failing batches (byte-identical, with the report) -> curate -> sequester a share of
the patients (20% unless configured; a stable rule; never trained, validated or thresholded on)
and build patient-level folds of the rest -> train (backbone x fold, queue `gpu`, pool `gpu`)
-> evaluate on each fold's unbalanced test set -> aggregate (leaderboard; selects the
candidate) -> confirm (the candidate's and ResNet152's k-fold ensembles registered, then scored
from the registry with the champion on the sequestered patients) -> gate and promote (pool
`promote`, one slot) -> regression check.

Trigger it by hand with the parameter form (backbones, folds, profile, epochs, steps per epoch,
image size, dry run).

**Safe defaults.** The form's default profile, which scheduled runs and runs triggered with an
empty configuration train with, is the deployment's `COVIDCT_DEFAULT_PROFILE`
(`covidct/config.py`): `cpu-smoke` on the embedded default (CPU only), the profile its GPU
workers run in the compose stack (`gpu-fast` in `.env.example`). The schedule is weekly, Sunday
00:00 UTC, and never runs on unpause: there is no start date and the cron timetable's
`run_immediately` is 0, so ticking "Unpause on trigger" in the form starts only the run asked
for; the first scheduled run is the next Sunday after the DAG is unpaused.

**Early, short errors.** The form's enums and bounds are the library's
(`covidct/training/spec.py`); the first task, `plan`, checks the run configuration
(`RunRequest.from_form`) and fails in seconds, without retrying, with one line naming the field,
the bad value and the allowed values, before any batch is read or model trained. The plan
carries the run's `TrainingSpec` (every value resolved) to training, evaluation, confirmation
and the registered version's `train_params` tag.

Tasks are thin calls into the `covidct` library; nothing heavy is imported when the scheduler
parses this file.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from airflow.sdk import (
    Asset,
    DeadlineAlert,
    DeadlineReference,
    Param,
    SyncCallback,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.timetables.trigger import CronTriggerTimetable
from covidct_alerting import on_run_late, on_task_failure, send  # plugins/ is on the path

# Keras-free: the names the run form offers, defined once in the library.
from covidct.config import SettingError, deadline_hours, default_profile, task_retries
from covidct.schema import BACKBONE_NAMES, PROFILE_NAMES
from covidct.training.spec import (
    FOLDS_RANGE,
    IMAGE_SIZE_RANGE,
    WEIGHTS_NAMES,
    RunRequest,
    form_defaults,
)

log = logging.getLogger(__name__)

#: the deployment's default training profile (COVIDCT_DEFAULT_PROFILE; embedded: cpu-smoke)
DEFAULT_PROFILE = default_profile(os.environ)
#: the form's defaults for that profile (cpu-smoke: 2 backbones x 2 folds)
FORM = form_defaults(DEFAULT_PROFILE)

#: published by ``curate`` each time it records the curated dataset (extra: its version and the
#: batches accepted); a DAG scheduled on it runs on new curated data
#: (names only: a URI with a scheme makes Airflow load every provider's URI normaliser, boto3
#: included, while the scheduler parses this file)
CURATED_DATASET = Asset(name="covidct_curated_dataset")
#: published only when the gate moved ``@champion`` (extra: the version, the one before and
#: the run); a DAG scheduled on it (``schedule=[CHAMPION]``) runs when the champion changes
CHAMPION = Asset(name="covidct_champion")

default_args = {
    "owner": "covidct",
    # COVIDCT_TASK_RETRIES lets tests fail fast; production keeps two retries.
    "retries": task_retries(os.environ),
    "retry_delay": timedelta(minutes=1),
    "on_failure_callback": on_task_failure,
}


def _deadline() -> DeadlineAlert | None:
    """Run-late alert: fires when a run is not done COVIDCT_DEADLINE_HOURS (36) after queueing.

    0 disables it: `airflow dags test` in Airflow 3.3.2 crashes while looking the deadline up
    at the end of the run (its runs have no queued_at), so the embedded demo sets 0.
    """
    hours = deadline_hours(os.environ)
    if hours <= 0:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=hours),
        callback=SyncCallback(on_run_late, kwargs={"expected": f"done within {hours:g} h"}),
    )


def _settings():
    from covidct.config import Settings

    return Settings.from_env(os.environ)


def _skip(reason: str) -> None:
    """Skip the running task, saying why in its log first: Airflow's own "Skipping task" line
    sits in the log view's collapsed "Post Execute" group."""
    log.info("skipped: %s", reason)
    raise AirflowSkipException(reason)


def _run_id() -> str:
    return str(get_current_context()["run_id"])


@dag(
    dag_id="covidct_retraining",
    # Weekly at Sunday 00:00 UTC. No start_date and run_immediately=0: with catchup=False a cron
    # timetable schedules the latest past tick at once whenever a start date is set, or (without
    # one) when run_immediately allows it; this way unpausing the DAG creates no run.
    schedule=CronTriggerTimetable("0 0 * * 0", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=48),
    deadline=_deadline(),
    default_args=default_args,
    doc_md=__doc__,
    tags=["covidct", "retraining", "ml"],
    params={
        # The UI's number box clamps a value out of its minimum/maximum to the bound when the
        # field loses focus (1 fold became 2, 16 px became 32, silently). So: the folds are a
        # list to choose from, and the free integers carry exclusive bounds, which the box does
        # not clamp and Airflow's schema check refuses when the run is triggered.
        "backbones": Param(
            FORM["backbones"],
            type="array",
            minItems=1,
            items={"type": "string", "enum": list(BACKBONE_NAMES)},
            examples=list(BACKBONE_NAMES),  # the form's multi-select offers the registry's names
            title="Backbones",
            description="Backbones to train; resnet152 is the baseline the gate compares with.",
        ),
        "folds": Param(
            FORM["folds"],
            type="integer",
            enum=list(range(FOLDS_RANGE[0], FOLDS_RANGE[1] + 1)),
            title="Folds (k)",
        ),
        "seed": Param(FORM["seed"], type="integer", exclusiveMinimum=-1, title="Fold seed"),
        "profile": Param(
            DEFAULT_PROFILE,
            type="string",
            enum=list(PROFILE_NAMES),
            title="Training profile",
            description=(
                "paper = the seed's Table 5; gpu-fast; cpu-smoke for CPU machines. The default "
                f"({DEFAULT_PROFILE}) is this deployment's COVIDCT_DEFAULT_PROFILE."
            ),
        ),
        "epochs": Param(
            None, type=["null", "integer"], exclusiveMinimum=0, title="Epochs (override)"
        ),
        "steps_per_epoch": Param(
            None, type=["null", "integer"], exclusiveMinimum=0, title="Steps per epoch (override)"
        ),
        "image_size": Param(
            None,
            type=["null", "integer"],
            exclusiveMinimum=IMAGE_SIZE_RANGE[0] - 1,
            exclusiveMaximum=IMAGE_SIZE_RANGE[1] + 1,
            title="Image size (override)",
            description=(
                f"pixels, {IMAGE_SIZE_RANGE[0]} to {IMAGE_SIZE_RANGE[1]}; empty: the profile's"
            ),
        ),
        "weights": Param(
            None,
            type=["null", "string"],
            enum=[None, *WEIGHTS_NAMES],
            title="Initial weights",
            description=(
                "null = random initialisation; imagenet = ImageNet weights read from the "
                "workers' COVIDCT_WEIGHTS_CACHE (local folder or s3:// prefix; never downloaded)."
            ),
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Validate, curate and fold only: nothing is trained, gated or promoted.",
        ),
        "force_retrain": Param(
            False, type="boolean", title="Retrain even when no new batch was accepted"
        ),
    },
)
def covidct_retraining():
    @task
    def setup() -> str:
        from covidct import pipeline

        return pipeline.setup_mlflow(_settings())

    @task
    def discover() -> list[str]:
        from covidct import pipeline

        return pipeline.discover(_settings())

    @task(map_index_template="{{ batch_id }}")
    def validate(batch_id: str) -> dict:
        from covidct import pipeline

        return pipeline.validate(_settings(), batch_id, _run_id(), send=send)

    @task(map_index_template="{{ verdict['batch_id'] }}")
    def quarantine(verdict: dict) -> dict:
        from covidct import pipeline

        if verdict["passed"]:
            raise AirflowSkipException(f"batch {verdict['batch_id']} passed validation")
        return pipeline.quarantine(_settings(), verdict, _run_id(), send=send)

    @task(trigger_rule="none_failed", outlets=[CURATED_DATASET])
    def curate(verdicts: list[dict] | None = None) -> dict:
        from covidct import pipeline

        curated = pipeline.curate(_settings(), list(verdicts or []), _run_id())
        get_current_context()["outlet_events"][CURATED_DATASET].extra = {
            "dataset_version": curated.get("dataset_version"),
            "accepted": list(curated.get("accepted") or []),
        }
        return curated

    @task
    def make_folds(curated: dict) -> list[dict]:
        from covidct import pipeline

        params = get_current_context()["params"]
        if curated["dataset_version"] is None:
            _skip("no curated data yet: nothing to train on")
        if params["dry_run"]:
            log.info("DRY RUN: the folds are made and nothing is trained, gated or promoted")
        if not curated["accepted"] and not params["force_retrain"]:
            _skip("no new batch accepted; set force_retrain to retrain")
        return pipeline.make_folds(
            _settings(), curated, params["folds"], params["seed"], dag_run_id=_run_id()
        )

    @task
    def plan(params: dict | None = None) -> dict:
        """The run's plan from its checked form; a bad field or a bad COVIDCT_* setting fails
        the run here, in one line, before any other task."""
        try:
            _settings()  # every COVIDCT_* variable parsed and range-checked
        except SettingError as error:
            raise AirflowFailException(f"settings: {error}") from None
        try:
            request = RunRequest.from_form(dict(params or {}), default_profile=DEFAULT_PROFILE)
        except ValueError as error:
            # AirflowFailException: failed at once, not retried (a user's mistake)
            raise AirflowFailException(f"run configuration: {error}") from None
        if request.dry_run:
            log.info(
                "DRY RUN: this run validates, curates and folds; it trains, evaluates, gates and "
                "promotes nothing, and `covidct report` keeps showing the last run that trained"
            )
        return request.plan()

    @task
    def backbones_of(the_plan: dict) -> list[str]:
        if not the_plan["backbones"]:  # a dry run's plan has none
            _skip(
                "dry run: no backbone is trained, so train, evaluate, aggregate, confirm, "
                "gate_and_promote, publish_champion and regression_check are skipped too"
            )
        return the_plan["backbones"]

    @task(
        queue="gpu",
        pool="gpu",
        map_index_template="{{ backbone }} fold {{ fold_spec['fold'] }}",
        execution_timeout=timedelta(hours=12),
    )
    def train(backbone: str, fold_spec: dict, the_plan: dict) -> dict:
        from covidct import pipeline

        return pipeline.train(_settings(), backbone, fold_spec, the_plan["train_params"], _run_id())

    @task(
        queue="gpu",
        pool="gpu",
        map_index_template="{{ trained['backbone'] }} fold {{ trained['fold'] }}",
    )
    def evaluate(trained: dict) -> dict:
        from covidct import pipeline

        return pipeline.evaluate(_settings(), trained, _run_id())

    @task
    def aggregate(evaluations: list[dict]) -> dict:
        from covidct import pipeline

        return pipeline.aggregate(_settings(), list(evaluations), _run_id())

    @task(queue="gpu", pool="gpu")
    def confirm(aggregated: dict) -> dict:
        from covidct import pipeline

        return pipeline.confirm(_settings(), aggregated, _run_id())

    @task(pool="promote", retries=1)
    def gate_and_promote(confirmed: dict) -> dict:
        from covidct import pipeline

        return pipeline.gate_and_promote(_settings(), confirmed, _run_id(), send=send)

    @task(outlets=[CHAMPION])
    def publish_champion(gated: dict) -> dict:
        """Publish the CHAMPION asset when the gate moved ``@champion``; skip otherwise."""
        if gated.get("champion_after") == gated.get("champion_before"):
            raise AirflowSkipException(
                f"@champion unchanged (v{gated.get('champion_before')}): nothing to publish"
            )
        event = {
            "version": gated.get("champion_after"),
            "previous": gated.get("champion_before"),
            "candidate": gated.get("candidate"),
            "dag_run_id": _run_id(),
        }
        get_current_context()["outlet_events"][CHAMPION].extra = event
        return event

    @task
    def regression_check(gated: dict) -> dict:
        from covidct import pipeline

        return pipeline.regression_check(_settings(), gated, _run_id(), send=send)

    @task(trigger_rule="all_done")
    def summarize() -> dict:
        from covidct import report

        return report.write_summary(_settings(), _run_id())

    the_plan = plan()  # first: nothing starts before the run configuration is checked
    ready = setup()
    batches = discover()
    the_plan >> ready >> batches
    verdicts = validate.expand(batch_id=batches)
    quarantine.expand(verdict=verdicts)
    curated = curate(verdicts)
    fold_specs = make_folds(curated)
    trained = train.partial(the_plan=the_plan).expand(
        backbone=backbones_of(the_plan), fold_spec=fold_specs
    )
    evaluated = evaluate.expand(trained=trained)
    aggregated = aggregate(evaluated)
    gated = gate_and_promote(confirm(aggregated))
    publish_champion(gated)
    checked = regression_check(gated)
    checked >> summarize()


covidct_retraining()
