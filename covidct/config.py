"""Typed settings, built once at the edge (CLI, DAG) from an environment mapping and passed down.

Library code never reads ``os.environ``: the CLI and the DAG call :meth:`Settings.from_env` with
``os.environ`` and hand the frozen result to every function that needs it.

Environment variables (all optional; the defaults are the embedded stack of ``make demo``):

=============================== ===============================================================
``COVIDCT_HOME``                 base folder of the embedded stack (default ``~/.covidct``; the
                                 command line uses ``./.demo`` when it holds a lake, see
                                 :func:`discover_home`)
``COVIDCT_LAKE_URI``             data lake root, ``file:///abs/path`` or ``s3://bucket/prefix``
                                 (default ``file://$COVIDCT_HOME/lake``)
``COVIDCT_S3_ENDPOINT_URL``      S3 endpoint for a non-AWS server (SeaweedFS, MinIO)
``COVIDCT_WORK_DIR``             local scratch for downloads and caches (``$COVIDCT_HOME/work``)
``COVIDCT_WEIGHTS_CACHE``        ImageNet "notop" weights files for ``weights=imagenet``: a local
                                 folder or ``s3://bucket/prefix`` (copied into
                                 ``$COVIDCT_WORK_DIR/weights``; same S3 endpoint as the lake);
                                 default ``$COVIDCT_HOME/weights``
``MLFLOW_TRACKING_URI``          MLflow tracking URI (``sqlite:///$COVIDCT_HOME/mlflow.db``)
``COVIDCT_MLFLOW_ARTIFACTS``     artifact root for new experiments (``$COVIDCT_HOME/mlartifacts``;
                                 with an ``http(s)://`` tracking server: the server's own root,
                                 ``mlflow-artifacts:/<experiment id>``, which its basic-auth app
                                 needs to authorise artifact uploads by experiment)
``COVIDCT_EXPERIMENT``           MLflow experiment name (``covidct``)
``COVIDCT_MODEL_NAME``           registered model name (``covidct-classifier``)
``COVIDCT_ALERTS``               ``jsonl`` (default), ``slack`` or ``smtp``
``COVIDCT_ALERTS_PATH``          the ``alerts.jsonl`` file (``$COVIDCT_HOME/alerts.jsonl``)
``COVIDCT_SMTP_TO``              recipients of ``smtp`` alerts (comma-separated; empty: none)
``COVIDCT_AIRFLOW_URL``          base URL of the Airflow UI, for links in alerts
``COVIDCT_MLFLOW_URL``           base URL of the MLflow UI, for links in alerts
``COVIDCT_GATE_MARGIN``          superiority margin on the primary metric's difference (0.01)
``COVIDCT_GATE_SENS_MARGIN``     floor of the COVID-sensitivity non-inferiority margin (0.05)
``COVIDCT_GATE_FIRST_RUN``       first-run policy: ``beat-baseline`` (default), ``promote-best``
``COVIDCT_GATE_N_BOOT``          bootstrap resamples for the gate (1000)
``COVIDCT_SUBGROUP_MIN_PATIENTS`` smallest subgroup the subgroup table reports without a flag and
                                 the gate judges (20; ``covidct.evaluation.subgroups``)
``COVIDCT_SUBGROUP_MIN_COVID``   COVID patients a subgroup needs before the gate judges its COVID
                                 sensitivity (10; ``covidct.promotion.subgroup_gate``)
``COVIDCT_DEFAULT_PROFILE``      training profile of scheduled runs and of runs triggered without
                                 one: ``cpu-smoke`` (default, the embedded CPU stack), ``gpu-fast``
                                 or ``paper`` (the compose stack sets one its GPU workers can run)
``COVIDCT_SEQUESTERED_SHARE``    share of patients sequestered for confirmation (0.2); changing it
                                 needs ``covidct sequester relock`` (see ``covidct.data.sequester``)
``COVIDCT_DRIFT_HU_LIMIT``       batch drift: largest Wasserstein distance in HU (40)
=============================== ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from covidct.schema import PROFILE_NAMES

E = TypeVar("E", bound=StrEnum)

#: the profile of the embedded default (``make demo``): CPU only, so ``cpu-smoke``
EMBEDDED_DEFAULT_PROFILE = "cpu-smoke"


def default_profile(env: Mapping[str, str]) -> str:
    """The deployment's default training profile: ``COVIDCT_DEFAULT_PROFILE`` or ``cpu-smoke``.

    Scheduled runs and runs triggered with an empty configuration train with it, so it must be a
    profile the deployment's workers can run. Raises ValueError naming the valid profiles.
    """
    value = env.get("COVIDCT_DEFAULT_PROFILE") or EMBEDDED_DEFAULT_PROFILE
    if value not in PROFILE_NAMES:
        valid = ", ".join(PROFILE_NAMES)
        raise ValueError(f"COVIDCT_DEFAULT_PROFILE: expected one of {valid}; got {value!r}")
    return value


def parse_enum(kind: type[E], value: str, what: str) -> E:
    """Return ``kind(value)``; raise ValueError naming ``what`` and the valid values otherwise."""
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise ValueError(f"{what}: expected one of {valid}; got {value!r}") from None


class AlertChannel(StrEnum):
    """Where alerts go."""

    JSONL = "jsonl"
    SLACK = "slack"
    SMTP = "smtp"


class FirstRunPolicy(StrEnum):
    """What the gate does when no champion exists yet (see ``covidct.promotion.gate``)."""

    BEAT_BASELINE = "beat-baseline"
    PROMOTE_BEST = "promote-best"


#: the home ``make demo`` fills, relative to the repository root
DEMO_HOME = ".demo"


def discover_home(env: Mapping[str, str], cwd: Path) -> tuple[dict[str, str], str | None]:
    """The command line's rule for finding the demo: ``(environment to use, note for stderr)``.

    When neither ``COVIDCT_HOME`` nor ``COVIDCT_LAKE_URI`` is set and ``cwd/.demo/lake`` is a
    folder (``make demo`` was run here, the repository root), the home is ``cwd/.demo`` and the
    note says so; otherwise ``env`` is returned unchanged with no note.
    """
    demo = cwd / DEMO_HOME
    if env.get("COVIDCT_HOME") or env.get("COVIDCT_LAKE_URI") or not (demo / "lake").is_dir():
        return dict(env), None
    note = f"covidct: COVIDCT_HOME is not set; using the demo's home {demo.resolve()}"
    return {**env, "COVIDCT_HOME": str(demo.resolve())}, note


def where_home_was_looked_for(env: Mapping[str, str], cwd: Path) -> str:
    """Say, for an error message, why the lake is where it is (which variable, or the default)."""
    if env.get("COVIDCT_LAKE_URI"):
        return f"COVIDCT_LAKE_URI={env['COVIDCT_LAKE_URI']}"
    if env.get("COVIDCT_HOME"):
        return f"COVIDCT_HOME={env['COVIDCT_HOME']}"
    return f"COVIDCT_HOME is not set and {cwd / DEMO_HOME / 'lake'} does not exist"


@dataclass(frozen=True)
class LakeSettings:
    """Data lake root (landing, quarantine, curated, folds, runs, ledger live under it)."""

    uri: str
    s3_endpoint_url: str | None = None


@dataclass(frozen=True)
class WeightsSettings:
    """Where ``weights="imagenet"`` files are read from (see ``covidct.models.WeightsCache``).

    ``cache``: a local folder or an object store URI (``s3://bucket/prefix``); nothing is ever
    downloaded from the internet. ``s3_endpoint_url``: S3 endpoint of a non-AWS server.
    """

    cache: str
    s3_endpoint_url: str | None = None


@dataclass(frozen=True)
class MlflowSettings:
    """MLflow tracking and registry."""

    tracking_uri: str
    artifact_root: str | None
    experiment: str = "covidct"
    model_name: str = "covidct-classifier"


@dataclass(frozen=True)
class AlertSettings:
    """Alert channel and the links that alerts carry."""

    channel: AlertChannel = AlertChannel.JSONL
    jsonl_path: Path = Path("alerts.jsonl")
    airflow_url: str = "http://localhost:8080"
    mlflow_url: str = "http://localhost:5000"
    slack_conn_id: str = "slack_alerts"
    smtp_conn_id: str = "smtp_alerts"
    smtp_to: str = ""


@dataclass(frozen=True)
class GateSettings:
    """Promotion gate (see ``covidct.promotion.gate`` for the rule and the defaults' rationale).

    ``margin``: the lower bound of the 95% paired-bootstrap interval of the primary metric's
    difference (candidate - comparator) must exceed it. ``sensitivity_margin``: the floor of the
    COVID-sensitivity non-inferiority margin (absolute, fraction); the rule is ``docs/gate.md``.
    """

    primary_metric: str = "image_roc_auc"
    #: superiority margin: the smallest gain worth a model change (1 point of image ROC AUC; a
    #: 5-point gain in patient balanced accuracy is about 5 points of image AUC in the data model
    #: of benchmarks/gate_null.py); it keeps a year of weekly decisions' false discoveries low
    margin: float = 0.01
    #: clinical floor of the COVID-sensitivity non-inferiority margin; the margin used is the
    #: power analysis's for the COVID patients compared, never below it
    #: (covidct.promotion.sensitivity.noninferiority_margin, docs/gate.md)
    sensitivity_margin: float = 0.05
    #: planning SD, across COVID patients, of the paired per-patient sensitivity difference
    #: (benchmarks/gate_null.py's data model: 0.19, raised to 0.21 for the studentized bound's
    #: heavier tail at 19 COVID patients)
    sensitivity_planning_sd: float = 0.21
    #: a subgroup's COVID sensitivity is harmed when shown below the comparator's by more than
    #: this (Holm across the judged subgroups, family-wise one-sided level ``alpha``)
    subgroup_margin: float = 0.05
    #: one-sided level of every test of the gate (the lower bound of a two-sided 95% interval)
    alpha: float = 0.025
    first_run_policy: FirstRunPolicy = FirstRunPolicy.BEAT_BASELINE
    n_boot: int = 1000
    seed: int = 0
    #: share of patients set aside, by label and source, for confirmation (covidct.data.sequester)
    sequestered_share: float = 0.2
    #: subgroups (covidct.evaluation.subgroups) with fewer patients are flagged ``below_min_size``
    #: in the subgroup table and not judged by the subgroup rule of the gate
    #: (covidct.promotion.subgroup_gate)
    subgroup_min_patients: int = 20
    #: the subgroup rule also needs this many COVID patients: only they enter COVID sensitivity
    subgroup_min_covid_patients: int = 10
    #: age-band edges in years: (40, 60) gives <40, 40-59, 60+ (rationale in
    #: covidct.evaluation.subgroups)
    age_band_edges: tuple[int, ...] = (40, 60)
    #: per-metric drop (absolute) that counts as a regression against the previous run
    regression_thresholds: Mapping[str, float] = field(
        default_factory=lambda: {
            "patient_balanced_accuracy": 0.05,
            "image_accuracy": 0.05,
            "image_covid_sensitivity": 0.05,
            "image_roc_auc": 0.05,
        }
    )


@dataclass(frozen=True)
class DriftSettings:
    """Limits of batch drift against the curated reference (see ``covidct.batch.drift``).

    ``hu_wasserstein_limit``: largest tolerated 1-D Wasserstein distance (HU) between the pooled
    pixel HU distributions; it drifts only when also ``p < alpha`` (patient permutation test,
    ``permutations`` draws). 40 HU is several times a scanner's water calibration tolerance
    (ACR CT accreditation: water 0 +/- 7 HU) and well above the distance between two synthetic
    batches of different patients (tests/test_drift.py); tune it on real weekly batches.
    ``stat_outside_share_limit``: largest share of a batch's slices whose manifest statistic lies
    outside the reference's ``stat_quantiles`` range widened by ``stat_tolerance_hu`` on each
    side for HU statistics (about 2% expected without drift; the widening keeps a reference
    whose slices barely vary, such as the air around the body, from flagging scanner noise).
    ``unseen_category_share_limit``: largest share of slices with an acquisition value (source,
    slice thickness, kernel) the reference never had (0: any new one counts).
    ``max_slices_per_patient``, ``max_reference_patients`` and ``seed``: the deterministic
    sample read for the HU comparison.
    """

    hu_wasserstein_limit: float = 40.0
    alpha: float = 0.01
    permutations: int = 999
    stat_quantiles: tuple[float, float] = (0.01, 0.99)
    stat_outside_share_limit: float = 0.2
    stat_tolerance_hu: float = 10.0
    unseen_category_share_limit: float = 0.0
    max_slices_per_patient: int = 8
    max_reference_patients: int = 100
    seed: int = 0


@dataclass(frozen=True)
class Settings:
    """All settings of one process."""

    home: Path
    work_dir: Path
    lake: LakeSettings
    mlflow: MlflowSettings
    alerts: AlertSettings
    gate: GateSettings
    weights: WeightsSettings
    drift: DriftSettings = field(default_factory=DriftSettings)
    #: training profile of scheduled runs and of runs triggered without one (see default_profile)
    default_profile: str = EMBEDDED_DEFAULT_PROFILE
    #: folder of known-disease truth written beside synthetic batches (``<batch_id>.truth/``,
    #: ``covidct.batch.synth``), read only to score models against it (``COVIDCT_TRUTH_DIR``;
    #: None: no truth); training never reads it
    truth_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping (pass ``os.environ`` at the edge).

        Raises ValueError for an unknown alert channel, first-run policy or default profile, naming
        the valid values.
        """
        home = Path(env.get("COVIDCT_HOME") or Path.home() / ".covidct").expanduser().resolve()
        gate_defaults = GateSettings()
        s3_endpoint_url = env.get("COVIDCT_S3_ENDPOINT_URL") or None
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        on_server = tracking_uri.startswith(("http://", "https://"))
        return cls(
            home=home,
            work_dir=Path(env.get("COVIDCT_WORK_DIR") or home / "work"),
            lake=LakeSettings(
                uri=env.get("COVIDCT_LAKE_URI") or f"file://{home / 'lake'}",
                s3_endpoint_url=s3_endpoint_url,
            ),
            mlflow=MlflowSettings(
                tracking_uri=tracking_uri,
                artifact_root=env.get("COVIDCT_MLFLOW_ARTIFACTS")
                or (None if on_server else str(home / "mlartifacts")),
                experiment=env.get("COVIDCT_EXPERIMENT") or "covidct",
                model_name=env.get("COVIDCT_MODEL_NAME") or "covidct-classifier",
            ),
            alerts=AlertSettings(
                channel=parse_enum(
                    AlertChannel, env.get("COVIDCT_ALERTS") or "jsonl", "COVIDCT_ALERTS"
                ),
                jsonl_path=Path(env.get("COVIDCT_ALERTS_PATH") or home / "alerts.jsonl"),
                airflow_url=env.get("COVIDCT_AIRFLOW_URL") or "http://localhost:8080",
                mlflow_url=env.get("COVIDCT_MLFLOW_URL") or "http://localhost:5000",
                smtp_to=env.get("COVIDCT_SMTP_TO") or "",
            ),
            gate=GateSettings(
                margin=float(env.get("COVIDCT_GATE_MARGIN") or gate_defaults.margin),
                sensitivity_margin=float(
                    env.get("COVIDCT_GATE_SENS_MARGIN") or gate_defaults.sensitivity_margin
                ),
                first_run_policy=parse_enum(
                    FirstRunPolicy,
                    env.get("COVIDCT_GATE_FIRST_RUN") or gate_defaults.first_run_policy.value,
                    "COVIDCT_GATE_FIRST_RUN",
                ),
                n_boot=int(env.get("COVIDCT_GATE_N_BOOT") or gate_defaults.n_boot),
                sequestered_share=float(
                    env.get("COVIDCT_SEQUESTERED_SHARE") or gate_defaults.sequestered_share
                ),
                subgroup_min_patients=int(
                    env.get("COVIDCT_SUBGROUP_MIN_PATIENTS") or gate_defaults.subgroup_min_patients
                ),
                subgroup_min_covid_patients=int(
                    env.get("COVIDCT_SUBGROUP_MIN_COVID")
                    or gate_defaults.subgroup_min_covid_patients
                ),
            ),
            weights=WeightsSettings(
                cache=env.get("COVIDCT_WEIGHTS_CACHE") or str(home / "weights"),
                s3_endpoint_url=s3_endpoint_url,
            ),
            drift=DriftSettings(
                hu_wasserstein_limit=float(
                    env.get("COVIDCT_DRIFT_HU_LIMIT") or DriftSettings.hu_wasserstein_limit
                ),
            ),
            default_profile=default_profile(env),
            truth_dir=Path(env["COVIDCT_TRUTH_DIR"]) if env.get("COVIDCT_TRUTH_DIR") else None,
        )
