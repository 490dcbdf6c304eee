"""Settings are built from an explicit mapping; bad values name the variable and the options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from covidct.config import (
    AlertChannel,
    FirstRunPolicy,
    SettingError,
    Settings,
    deadline_hours,
    task_retries,
)


def test_embedded_defaults_live_under_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path)})
    assert settings.lake.uri == f"file://{tmp_path}/lake"
    assert settings.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert settings.alerts.channel is AlertChannel.JSONL
    assert settings.alerts.jsonl_path == tmp_path / "alerts.jsonl"
    assert settings.gate.first_run_policy is FirstRunPolicy.BEAT_BASELINE
    assert settings.weights.cache == str(tmp_path / "weights")
    assert settings.weights.s3_endpoint_url is None
    assert settings.default_profile == "cpu-smoke"  # the embedded default runs on CPU


def test_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "COVIDCT_HOME": str(tmp_path),
            "COVIDCT_LAKE_URI": "s3://lake/covidct",
            "COVIDCT_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
            "COVIDCT_GATE_MARGIN": "0.02",
            "COVIDCT_GATE_FIRST_RUN": "promote-best",
            "COVIDCT_WEIGHTS_CACHE": "s3://models/imagenet",
            "COVIDCT_DEFAULT_PROFILE": "gpu-fast",
        }
    )
    assert settings.lake.uri == "s3://lake/covidct"
    assert settings.lake.s3_endpoint_url == "http://127.0.0.1:8333"
    assert settings.gate.margin == 0.02
    assert settings.gate.first_run_policy is FirstRunPolicy.PROMOTE_BEST
    assert settings.weights.cache == "s3://models/imagenet"
    assert settings.weights.s3_endpoint_url == "http://127.0.0.1:8333"  # the lake's endpoint
    assert settings.default_profile == "gpu-fast"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COVIDCT_ALERTS", "pager"),
        ("COVIDCT_GATE_FIRST_RUN", "always"),
        ("COVIDCT_DEFAULT_PROFILE", "gpu"),
    ],
)
def test_unknown_option_names_variable_and_valid_values(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as error:
        Settings.from_env({variable: value})
    assert value in str(error.value)


def test_a_tracking_server_keeps_its_own_artifact_root(tmp_path: Path) -> None:
    """MLflow's basic-auth app authorises proxied uploads by the experiment id in the path."""
    server = Settings.from_env(
        {"COVIDCT_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": "http://m:5000"}
    )
    assert server.mlflow.artifact_root is None  # the server's mlflow-artifacts:/<experiment id>
    local = Settings.from_env({"COVIDCT_HOME": str(tmp_path)})
    assert local.mlflow.artifact_root == str(tmp_path / "mlartifacts")


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("COVIDCT_GATE_MARGIN", "nan", "a finite number in [0, 0.5]"),
        ("COVIDCT_GATE_MARGIN", "inf", "a finite number in [0, 0.5]"),
        ("COVIDCT_GATE_MARGIN", "-0.1", "a finite number in [0, 0.5]"),
        ("COVIDCT_GATE_N_BOOT", "-5", "an integer in [100, 100000]"),
        ("COVIDCT_GATE_N_BOOT", "2.5e3", "an integer in [100, 100000]"),
        ("COVIDCT_SEQUESTERED_SHARE", "3", "a finite number in (0, 1)"),
        ("COVIDCT_SEQUESTERED_SHARE", "0", "a finite number in (0, 1)"),
        ("COVIDCT_GATE_SENS_MARGIN", "five percent", "a finite number in [0, 0.5]"),
        ("COVIDCT_SUBGROUP_MIN_PATIENTS", "0", "an integer in [1, 1e+06]"),
        ("COVIDCT_DRIFT_HU_LIMIT", "-40", "a finite number in (0, 4000]"),
        ("COVIDCT_TASK_RETRIES", "many", "an integer in [0, 10]"),
        ("COVIDCT_DEADLINE_HOURS", "nan", "a finite number in [0, 8760]"),
        ("COVIDCT_LAKE_URI", "ftp://lake", "a URL starting with file:// or s3://"),
        ("COVIDCT_AIRFLOW_URL", "javascript:alert(1)", "a URL starting with http://"),
    ],
)
def test_nonsense_settings_are_refused_naming_variable_value_and_range(
    variable: str, value: str, allowed: str
) -> None:
    """Issue 32: nan, a negative resample count, a share of 3 and non-numbers were accepted
    (or failed without naming the variable)."""
    with pytest.raises(SettingError) as error:
        Settings.from_env({variable: value})
    message = str(error.value)
    assert "\n" not in message
    assert f"{variable}={value!r}" in message
    assert allowed in message


def test_settings_in_range_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "COVIDCT_HOME": str(tmp_path),
            "COVIDCT_GATE_N_BOOT": "200",
            "COVIDCT_SEQUESTERED_SHARE": "0.4",
            "COVIDCT_GATE_SENS_MARGIN": " 0.1 ",
            "COVIDCT_DRIFT_HU_LIMIT": "",  # empty: the default
        }
    )
    assert settings.gate.n_boot == 200
    assert isinstance(settings.gate.n_boot, int)
    assert settings.gate.sequestered_share == 0.4
    assert settings.gate.sensitivity_margin == 0.1
    assert settings.drift.hu_wasserstein_limit == 40.0
    assert task_retries({"COVIDCT_TASK_RETRIES": "0"}) == 0
    assert deadline_hours({}) == 36.0


@pytest.mark.parametrize(
    "command",
    [
        ["validate", "/nonexistent"],
        ["land", "/nonexistent"],
        ["registry", "history"],
        ["folds", "--roster", "r", "--labels", "l", "--out", "o"],
    ],
)
def test_every_command_fails_in_one_line_before_any_work(
    command: list[str], tmp_path: Path
) -> None:
    """A real ``covidct`` process: exit 2, one stderr line naming the variable, no traceback,
    nothing written under the home."""
    env = {**os.environ, "COVIDCT_HOME": str(tmp_path / "home"), "COVIDCT_GATE_MARGIN": "nan"}
    done = subprocess.run(
        [sys.executable, "-m", "covidct.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "COVIDCT_GATE_MARGIN='nan'" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists()
