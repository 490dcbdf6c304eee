"""Typed settings, built once at the edge (CLI, DAG) from an environment mapping and passed down.

Library code never reads ``os.environ``: the CLI and the DAG call :meth:`Settings.from_env` with
``os.environ`` and hand the frozen result to every function that needs it.

Environment variables (all optional; the defaults are the embedded stack of ``make demo``):

=============================== ===============================================================
``COVIDCT_HOME``                 base folder of the embedded stack (default ``~/.covidct``)
``COVIDCT_LAKE_URI``             data lake root, ``file:///abs/path`` or ``s3://bucket/prefix``
                                 (default ``file://$COVIDCT_HOME/lake``)
``COVIDCT_S3_ENDPOINT_URL``      S3 endpoint for a non-AWS server (SeaweedFS, MinIO)
``COVIDCT_WORK_DIR``             local scratch for downloads and caches (``$COVIDCT_HOME/work``)
``COVIDCT_WEIGHTS_CACHE``        ImageNet "notop" weights files for ``weights=imagenet``: a local
                                 folder or ``s3://bucket/prefix`` (copied into
                                 ``$COVIDCT_WORK_DIR/weights``; same S3 endpoint as the lake);
                                 default ``$COVIDCT_HOME/weights``
``MLFLOW_TRACKING_URI``          MLflow tracking URI (``sqlite:///$COVIDCT_HOME/mlflow.db``)
``COVIDCT_MLFLOW_ARTIFACTS``     artifact root for new experiments (``$COVIDCT_HOME/mlartifacts``)
``COVIDCT_EXPERIMENT``           MLflow experiment name (``covidct``)
``COVIDCT_MODEL_NAME``           registered model name (``covidct-classifier``)
``COVIDCT_ALERTS``               ``jsonl`` (default), ``slack`` or ``smtp``
``COVIDCT_ALERTS_PATH``          the ``alerts.jsonl`` file (``$COVIDCT_HOME/alerts.jsonl``)
``COVIDCT_SMTP_TO``              recipients of ``smtp`` alerts (comma-separated; empty: none)
``COVIDCT_AIRFLOW_URL``          base URL of the Airflow UI, for links in alerts
``COVIDCT_MLFLOW_URL``           base URL of the MLflow UI, for links in alerts
``COVIDCT_GATE_MARGIN``          gate margin on the primary metric's difference (0.0)
``COVIDCT_GATE_SENS_MARGIN``     COVID-sensitivity non-inferiority margin (0.05)
``COVIDCT_GATE_FIRST_RUN``       first-run policy: ``beat-baseline`` (default), ``promote-best``
``COVIDCT_GATE_N_BOOT``          bootstrap resamples for the gate (1000)
``COVIDCT_SEQUESTERED_SHARE``    share of patients sequestered for confirmation (0.2); changing it
                                 needs ``covidct sequester relock`` (see ``covidct.sequester``)
=============================== ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)


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
    """What the gate does when no champion exists yet (see ``covidct.gate``)."""

    BEAT_BASELINE = "beat-baseline"
    PROMOTE_BEST = "promote-best"


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
    """Promotion gate (see ``covidct.gate`` for the rule and the defaults' rationale).

    ``margin``: the lower bound of the 95% paired-bootstrap interval of the primary metric's
    difference (candidate - comparator) must exceed it. ``sensitivity_margin``: COVID
    sensitivity may not fall by more than this (absolute, fraction).
    """

    primary_metric: str = "patient_balanced_accuracy"
    margin: float = 0.0
    sensitivity_margin: float = 0.05
    first_run_policy: FirstRunPolicy = FirstRunPolicy.BEAT_BASELINE
    n_boot: int = 1000
    seed: int = 0
    #: share of patients set aside, by label and source, for confirmation (covidct.sequester)
    sequestered_share: float = 0.2
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
class Settings:
    """All settings of one process."""

    home: Path
    work_dir: Path
    lake: LakeSettings
    mlflow: MlflowSettings
    alerts: AlertSettings
    gate: GateSettings
    weights: WeightsSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping (pass ``os.environ`` at the edge).

        Raises ValueError for an unknown alert channel or first-run policy, naming the valid values.
        """
        home = Path(env.get("COVIDCT_HOME") or Path.home() / ".covidct").expanduser().resolve()
        gate_defaults = GateSettings()
        s3_endpoint_url = env.get("COVIDCT_S3_ENDPOINT_URL") or None
        return cls(
            home=home,
            work_dir=Path(env.get("COVIDCT_WORK_DIR") or home / "work"),
            lake=LakeSettings(
                uri=env.get("COVIDCT_LAKE_URI") or f"file://{home / 'lake'}",
                s3_endpoint_url=s3_endpoint_url,
            ),
            mlflow=MlflowSettings(
                tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
                artifact_root=env.get("COVIDCT_MLFLOW_ARTIFACTS") or str(home / "mlartifacts"),
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
            ),
            weights=WeightsSettings(
                cache=env.get("COVIDCT_WEIGHTS_CACHE") or str(home / "weights"),
                s3_endpoint_url=s3_endpoint_url,
            ),
        )
