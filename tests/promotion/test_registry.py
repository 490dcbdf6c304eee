"""The MLflow registry on a real SQLite backend: idempotent versions, compare-and-set, ledger."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from covidct.lake.backends import open_store
from covidct.promotion import registry
from covidct.schema import ALIAS_CHAMPION

NAME = "covidct-test"


@pytest.fixture()
def setup(tmp_path: Path, isolated_mlflow_uris: None):  # type: ignore[no-untyped-def]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # `models:/` URIs below resolve here whatever ran before
    experiment = mlflow.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    model_uris = []
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    for _ in range(3):
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 0, 1, 1]), name="m")
            model_uris.append((info.model_uri, run.info.run_id))
    client = registry.client(uri)
    store = open_store(f"file://{tmp_path / 'lake'}")
    return client, store, model_uris


def _register(client, uris, index: int, dag_run: str) -> str:  # type: ignore[no-untyped-def]
    model_uri, run_id = uris[index]
    return registry.register_version(
        client, NAME, model_uri=model_uri, run_id=run_id, dag_run_id=dag_run,
        backbone="resnet50", tags={"dataset_version": "d1"},
    )  # fmt: skip


def test_register_is_idempotent_per_run(setup) -> None:  # type: ignore[no-untyped-def]
    client, _, uris = setup
    first = _register(client, uris, 0, "run-1")
    again = _register(client, uris, 0, "run-1")
    other = _register(client, uris, 1, "run-2")
    assert first == again != other
    assert len(client.search_model_versions(f"name='{NAME}'")) == 2
    assert client.get_model_version(NAME, first).tags["dataset_version"] == "d1"


def test_promote_moves_alias_and_writes_ledger(setup) -> None:  # type: ignore[no-untyped-def]
    client, store, uris = setup
    v1 = _register(client, uris, 0, "run-1")
    v2 = _register(client, uris, 1, "run-2")
    assert registry.get_champion(client, NAME).version is None
    registry.promote(client, store, NAME, version=v1, expected_champion=None, reason="first",
                     dag_run_id="run-1", figures={"acc": 0.9})  # fmt: skip
    registry.promote(client, store, NAME, version=v2, expected_champion=v1, reason="better",
                     dag_run_id="run-2", figures={"acc": 0.95})  # fmt: skip
    assert str(client.get_model_version_by_alias(NAME, ALIAS_CHAMPION).version) == v2
    assert client.get_model_version(NAME, v1).tags["superseded_by"] == v2
    history = registry.read_ledger(store)
    assert [(h["version"], h["previous_champion"]) for h in history] == [(v1, None), (v2, v1)]


def test_promote_aborts_when_champion_moved(setup) -> None:  # type: ignore[no-untyped-def]
    client, store, uris = setup
    v1 = _register(client, uris, 0, "run-1")
    v2 = _register(client, uris, 1, "run-2")
    v3 = _register(client, uris, 2, "run-3")
    registry.promote(client, store, NAME, version=v1, expected_champion=None, reason="a",
                     dag_run_id="run-1", figures={})  # fmt: skip
    # a second promoter read the champion (v1) before the first moved it to v2
    registry.promote(client, store, NAME, version=v2, expected_champion=v1, reason="b",
                     dag_run_id="run-2", figures={})  # fmt: skip
    with pytest.raises(registry.ChampionMovedError, match="expected 1"):
        registry.promote(client, store, NAME, version=v3, expected_champion=v1, reason="c",
                         dag_run_id="run-3", figures={})  # fmt: skip
    assert registry.get_champion(client, NAME).version == v2
    assert len(registry.read_ledger(store)) == 2


def test_rollback_is_audited(setup) -> None:  # type: ignore[no-untyped-def]
    client, store, uris = setup
    v1 = _register(client, uris, 0, "run-1")
    v2 = _register(client, uris, 1, "run-2")
    registry.promote(client, store, NAME, version=v1, expected_champion=None, reason="a",
                     dag_run_id="run-1", figures={})  # fmt: skip
    registry.promote(client, store, NAME, version=v2, expected_champion=v1, reason="b",
                     dag_run_id="run-2", figures={})  # fmt: skip
    registry.rollback(client, store, NAME, v1, "v2 misbehaves in production")
    assert registry.get_champion(client, NAME).version == v1
    last = registry.read_ledger(store)[-1]
    assert last["action"] == "rollback" and last["previous_champion"] == v2
    with pytest.raises(ValueError, match="no version 99"):
        registry.rollback(client, store, NAME, "99", "typo")
    loaded = mlflow.sklearn.load_model(f"models:/{NAME}@{ALIAS_CHAMPION}")
    assert loaded.predict(np.array([[3.0]]))[0] == 1


def test_setup_marks_the_experiment_as_model_training(
    tmp_path: Path, isolated_mlflow_uris: None
) -> None:
    """Issue 17 item 4: on the embedded default the MLflow UI opens on the training runs."""
    from covidct import pipeline
    from covidct.config import Settings
    from covidct.promotion.mlflow_ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING

    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path)})
    experiment_id = pipeline.setup_mlflow(settings)
    # read back from the store by a fresh client, as the MLflow UI's server does
    reader = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert reader.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    assert MODEL_TRAINING == "custom_model_development"  # MLflow's "Model training", not GenAI
    # an experiment created before (no kind) is marked on the next run; a person's choice is kept
    reader.delete_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG)
    assert EXPERIMENT_KIND_TAG not in reader.get_experiment(experiment_id).tags
    assert pipeline.setup_mlflow(settings) == experiment_id
    assert reader.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    reader.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "genai_development")
    pipeline.setup_mlflow(settings)
    assert reader.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_record_verdict_is_one_path_for_promotion_and_refusal(setup) -> None:  # type: ignore[no-untyped-def]
    """Issue 34 item 2: promote and refuse through record.record_verdict, tags and ledger alike."""
    from covidct.promotion import record
    from covidct.schema import ALIAS_CHALLENGER

    client, store, uris = setup
    registry.ensure_registered_model(client, NAME)
    first = _register(client, uris, 0, "run-1")
    second = _register(client, uris, 1, "run-2")
    figures = {"patient_balanced_accuracy": 0.9, "image_roc_auc": None}
    promoted = record.record_verdict(
        client, store, NAME, passed=True, version=first, expected_champion=None,
        reason="beats", dag_run_id="run-1", figures=figures,
        figures_basis="selection-corrected: ...", patients_used=75,
    )  # fmt: skip
    assert promoted["action"] == "promote" and promoted["patients_used"] == 75
    assert str(client.get_model_version_by_alias(NAME, ALIAS_CHAMPION).version) == first
    refused = record.record_verdict(
        client, store, NAME, passed=False, version=second, expected_champion=first,
        reason="not shown better", dag_run_id="run-2", figures=figures,
        figures_basis="as measured", patients_used=80,
    )  # fmt: skip
    assert refused["action"] == "refuse" and refused["previous_champion"] == first
    # issue 33 item 5: a refused version carries no alias (no @challenger)
    assert ALIAS_CHALLENGER not in client.get_registered_model(NAME).aliases
    assert str(client.get_model_version_by_alias(NAME, ALIAS_CHAMPION).version) == first
    tags = client.get_model_version(NAME, second).tags
    assert tags["gate_verdict"] == "refused" and tags["figures_basis"] == "as measured"
    assert tags["metric.patient_balanced_accuracy"] == "0.9000"
    assert tags["metric.image_roc_auc"] == "nan"
    assert client.get_model_version(NAME, first).tags["gate_verdict"] == "passed"
    actions = [(r["action"], r["version"]) for r in registry.read_ledger(store)]
    assert actions == [("promote", first), ("refuse", second)]


def test_status_reports_an_alias_moved_outside_the_gate(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 33 item 5: the gate's moves agree with the ledger; a move by hand (what the MLflow
    UI does on the embedded default: set_registered_model_alias) is reported by
    ``alias_disagreements``, by ``covidct registry status`` (exit 1, a DISAGREES line) and by an
    alert."""
    import os
    import subprocess
    import sys

    from covidct.promotion import audit, record
    from covidct.schema import ALIAS_CHALLENGER

    client, store, uris = setup
    registry.ensure_registered_model(client, NAME)
    first = _register(client, uris, 0, "run-1")
    second = _register(client, uris, 1, "run-2")
    assert audit.alias_status(client, store, NAME) == []
    record.record_verdict(
        client, store, NAME, passed=True, version=first, expected_champion=None,
        reason="beats", dag_run_id="run-1", figures={},
    )  # fmt: skip
    record.record_verdict(
        client, store, NAME, passed=False, version=second, expected_champion=first,
        reason="not shown better", dag_run_id="run-2", figures={},
    )  # fmt: skip
    (state,) = audit.alias_status(client, store, NAME)
    assert (state.alias, state.registry_version, state.ledger_version, state.agrees) == (
        ALIAS_CHAMPION, first, first, True,
    )  # fmt: skip
    assert audit.alias_disagreements(client, store, NAME) == []
    assert audit.disagreement_alert([], NAME) is None

    # three clicks in the MLflow UI: @champion and @challenger on the refused version
    client.set_registered_model_alias(NAME, ALIAS_CHAMPION, second)
    client.set_registered_model_alias(NAME, ALIAS_CHALLENGER, second)
    moved = {state.alias: state for state in audit.alias_disagreements(client, store, NAME)}
    assert set(moved) == {ALIAS_CHAMPION, ALIAS_CHALLENGER}
    assert (moved[ALIAS_CHAMPION].registry_version, moved[ALIAS_CHAMPION].ledger_version) == (
        second, first,
    )  # fmt: skip
    assert "refused" in moved[ALIAS_CHALLENGER].detail
    alert = audit.disagreement_alert(list(moved.values()), NAME)
    assert alert is not None and alert.kind.value == "registry_disagrees"
    assert f"v{second}" in alert.summary and alert.severity.value == "critical"

    # the next run's report: gate.json carries the disagreements (pipeline.decision), and the
    # page and the terminal summary say so
    from covidct.report import html_report, summary

    gate = {
        "verdict": {"passed": False, "status": "refused", "reasons": ["not shown better"]},
        "candidate": "resnet50", "version": second, "champion_before": second,
        "champion_after": second,
        "registry_disagreements": [state.to_dict() for state in moved.values()],
    }  # fmt: skip
    page = str(html_report.gate_html(gate))
    assert "registry disagrees" in page.lower() and f"@{ALIAS_CHAMPION}" in page
    assert (
        "registry disagrees"
        not in str(html_report.gate_html({**gate, "registry_disagreements": []})).lower()
    )
    text = summary.format_summary({
        "dag_run_id": "run-3", "batches": [], "leaderboard": [], "gate": gate, "quarantined": [],
        "run_prefix": "runs/run-3", "lake": "lake", "mlflow": "mlflow", "alerts": "a.jsonl",
    })  # fmt: skip
    assert f"REGISTRY DISAGREES: @{ALIAS_CHAMPION}" in text

    # the command, in a separate process on the same registry and lake
    env = {
        **os.environ,
        "COVIDCT_HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "COVIDCT_MODEL_NAME": NAME,
        "COVIDCT_LAKE_URI": f"file://{tmp_path / 'lake'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "covidct.cli", "registry", "status"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("@")}
    champion_line = lines[f"@{ALIAS_CHAMPION}"]
    assert "DISAGREES" in champion_line and f"v{second}" in champion_line
    assert "DISAGREES" in lines[f"@{ALIAS_CHALLENGER}"]

    # put back through the gate's ledger: agrees again, exit 0
    registry.rollback(client, store, NAME, first, "undo the hand move")
    client.delete_registered_model_alias(NAME, ALIAS_CHALLENGER)
    done = subprocess.run(
        [sys.executable, "-m", "covidct.cli", "registry", "status"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agrees" in done.stdout and "DISAGREES" not in done.stdout
