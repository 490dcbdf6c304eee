"""Settings are built from an explicit mapping; bad values name the variable and the options."""

from __future__ import annotations

from pathlib import Path

import pytest

from covidct.config import AlertChannel, FirstRunPolicy, Settings


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
