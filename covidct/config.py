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
``COVIDCT_TASK_RETRIES``         retries of a failed DAG task (2)
``COVIDCT_DEADLINE_HOURS``       run-late alert after this many hours (36; 0: none)
=============================== ===============================================================

Every variable is parsed and range-checked once, in :meth:`Settings.from_env` (the ranges:
:data:`RANGES`); an empty variable means its default. A value outside its range, ``nan``, ``inf``
or a non-number raises :class:`SettingError`, whose one-line message names the variable, its
value and what is allowed; the command line exits 2 with it before any work, and the DAG's first
task (``plan``) fails with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from covidct.schema import PROFILE_NAMES

E = TypeVar("E", bound=StrEnum)

#: the profile of the embedded default (``make demo``): CPU only, so ``cpu-smoke``
EMBEDDED_DEFAULT_PROFILE = "cpu-smoke"


class SettingError(ValueError):
    """A ``COVIDCT_*`` variable holds a value outside what it allows (message: one line naming
    the variable, its value and the allowed values)."""

    def __init__(self, variable: str, value: str, allowed: str) -> None:
        self.variable = variable
        self.value = value
        self.allowed = allowed
        super().__init__(f"{variable}={value!r} is not allowed: expected {allowed}")

    def __str__(self) -> str:
        if self.allowed.startswith("one of "):  # the wording of parse_enum, kept for choices
            return f"{self.variable}: expected {self.allowed}; got {self.value!r}"
        return super().__str__()


#: The numeric settings: variable -> (type, low, high, low bound included, high included).
#: Margins are differences of fractions (an AUC, a sensitivity): 0.5 is already a model change
#: no gate could ever see; the bootstrap needs a few hundred resamples for a 2.5% tail and more
#: than 100,000 only costs hours; the sequestered share must leave patients on both sides.
RANGES: dict[str, tuple[type[int] | type[float], float, float, bool, bool]] = {
    "COVIDCT_GATE_MARGIN": (float, 0.0, 0.5, True, True),
    "COVIDCT_GATE_SENS_MARGIN": (float, 0.0, 0.5, True, True),
    "COVIDCT_GATE_N_BOOT": (int, 100, 100_000, True, True),
    "COVIDCT_SEQUESTERED_SHARE": (float, 0.0, 1.0, False, False),
    "COVIDCT_SUBGROUP_MIN_PATIENTS": (int, 1, 1_000_000, True, True),
    "COVIDCT_SUBGROUP_MIN_COVID": (int, 1, 1_000_000, True, True),
    "COVIDCT_DRIFT_HU_LIMIT": (float, 0.0, 4000.0, False, True),
    "COVIDCT_TASK_RETRIES": (int, 0, 10, True, True),
    "COVIDCT_DEADLINE_HOURS": (float, 0.0, 24.0 * 365, True, True),
}
#: URL settings and the schemes each allows.
URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "COVIDCT_LAKE_URI": ("file://", "s3://"),
    "COVIDCT_S3_ENDPOINT_URL": ("http://", "https://"),
    "COVIDCT_AIRFLOW_URL": ("http://", "https://"),
    "COVIDCT_MLFLOW_URL": ("http://", "https://"),
}


def _allowed(variable: str) -> str:
    kind, low, high, low_in, high_in = RANGES[variable]
    what = "an integer" if kind is int else "a finite number"
    return f"{what} in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def env_number(env: Mapping[str, str], variable: str, default: float) -> float:
    """The value of the numeric ``variable`` (its :data:`RANGES` entry) in ``env``, or
    ``default`` when unset or empty. Raises :class:`SettingError` for a non-number (an integer
    setting also refuses ``2.5``), ``nan``, ``inf`` or a value outside the range."""
    text = (env.get(variable) or "").strip()
    if not text:
        return default
    kind, low, high, low_in, high_in = RANGES[variable]
    try:
        value = float(int(text)) if kind is int else float(text)
    except ValueError:
        raise SettingError(variable, text, _allowed(variable)) from None
    inside = (low <= value if low_in else low < value) and (
        value <= high if high_in else value < high
    )
    if not math.isfinite(value) or not inside:
        raise SettingError(variable, text, _allowed(variable))
    return value


def env_url(env: Mapping[str, str], variable: str, default: str | None) -> str | None:
    """The URL ``variable`` in ``env`` (default when unset or empty); raises
    :class:`SettingError` unless it starts with one of its :data:`URL_SCHEMES` and holds no
    blank or control character."""
    text = env.get(variable) or ""
    if not text:
        return default
    schemes = URL_SCHEMES[variable]
    if not text.startswith(schemes) or not text.isprintable() or any(c.isspace() for c in text):
        raise SettingError(variable, text, "a URL starting with " + " or ".join(schemes))
    return text


def task_retries(env: Mapping[str, str]) -> int:
    """Retries of a failed DAG task: ``COVIDCT_TASK_RETRIES`` (default 2, range
    :data:`RANGES`); raises :class:`SettingError`."""
    return int(env_number(env, "COVIDCT_TASK_RETRIES", 2))


def deadline_hours(env: Mapping[str, str]) -> float:
    """Hours after queueing when a run counts as late: ``COVIDCT_DEADLINE_HOURS`` (default 36;
    0 disables the alert); raises :class:`SettingError`."""
    return env_number(env, "COVIDCT_DEADLINE_HOURS", 36.0)


def default_profile(env: Mapping[str, str]) -> str:
    """The deployment's default training profile: ``COVIDCT_DEFAULT_PROFILE`` or ``cpu-smoke``.

    Scheduled runs and runs triggered with an empty configuration train with it, so it must be a
    profile the deployment's workers can run. Raises ValueError naming the valid profiles.
    """
    value = env.get("COVIDCT_DEFAULT_PROFILE") or EMBEDDED_DEFAULT_PROFILE
    if value not in PROFILE_NAMES:
        valid = ", ".join(PROFILE_NAMES)
        raise SettingError("COVIDCT_DEFAULT_PROFILE", value, f"one of {valid}")
    return value


def parse_enum(kind: type[E], value: str, what: str) -> E:
    """Return ``kind(value)``; raise ValueError naming ``what`` and the valid values otherwise."""
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise ValueError(f"{what}: expected one of {valid}; got {value!r}") from None


def env_choice(kind: type[E], env: Mapping[str, str], variable: str, default: E) -> E:
    """The member of ``kind`` that ``variable`` names in ``env`` (``default`` when unset or
    empty); raises :class:`SettingError` naming the valid values."""
    value = env.get(variable) or default.value
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise SettingError(variable, value, f"one of {valid}") from None


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

        Raises :class:`SettingError` (a ValueError) naming the variable, its value and what is
        allowed for a number outside its :data:`RANGES`, a URL of another scheme, an unknown
        alert channel, first-run policy or default profile.
        """
        home = Path(env.get("COVIDCT_HOME") or Path.home() / ".covidct").expanduser().resolve()
        gate = GateSettings()
        s3_endpoint_url = env_url(env, "COVIDCT_S3_ENDPOINT_URL", None)
        task_retries(env), deadline_hours(env)  # the DAG's own two, checked with the rest
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        on_server = tracking_uri.startswith(("http://", "https://"))
        return cls(
            home=home,
            work_dir=Path(env.get("COVIDCT_WORK_DIR") or home / "work"),
            lake=LakeSettings(
                uri=str(env_url(env, "COVIDCT_LAKE_URI", f"file://{home / 'lake'}")),
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
                channel=env_choice(AlertChannel, env, "COVIDCT_ALERTS", AlertChannel.JSONL),
                jsonl_path=Path(env.get("COVIDCT_ALERTS_PATH") or home / "alerts.jsonl"),
                airflow_url=str(env_url(env, "COVIDCT_AIRFLOW_URL", "http://localhost:8080")),
                mlflow_url=str(env_url(env, "COVIDCT_MLFLOW_URL", "http://localhost:5000")),
                smtp_to=env.get("COVIDCT_SMTP_TO") or "",
            ),
            gate=GateSettings(
                margin=env_number(env, "COVIDCT_GATE_MARGIN", gate.margin),
                sensitivity_margin=env_number(
                    env, "COVIDCT_GATE_SENS_MARGIN", gate.sensitivity_margin
                ),
                first_run_policy=env_choice(
                    FirstRunPolicy, env, "COVIDCT_GATE_FIRST_RUN", gate.first_run_policy
                ),
                n_boot=int(env_number(env, "COVIDCT_GATE_N_BOOT", gate.n_boot)),
                sequestered_share=env_number(
                    env, "COVIDCT_SEQUESTERED_SHARE", gate.sequestered_share
                ),
                subgroup_min_patients=int(
                    env_number(env, "COVIDCT_SUBGROUP_MIN_PATIENTS", gate.subgroup_min_patients)
                ),
                subgroup_min_covid_patients=int(
                    env_number(env, "COVIDCT_SUBGROUP_MIN_COVID", gate.subgroup_min_covid_patients)
                ),
            ),
            weights=WeightsSettings(
                cache=env.get("COVIDCT_WEIGHTS_CACHE") or str(home / "weights"),
                s3_endpoint_url=s3_endpoint_url,
            ),
            drift=DriftSettings(
                hu_wasserstein_limit=env_number(
                    env, "COVIDCT_DRIFT_HU_LIMIT", DriftSettings.hu_wasserstein_limit
                ),
            ),
            default_profile=default_profile(env),
            truth_dir=Path(env["COVIDCT_TRUTH_DIR"]) if env.get("COVIDCT_TRUTH_DIR") else None,
        )
