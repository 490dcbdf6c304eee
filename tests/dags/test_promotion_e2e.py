"""Two real DAG runs: the first promotes, the second (weaker, retrained) is refused.

Run 1 uses the first-run policy ``promote-best`` so that the tiny cpu-smoke models can become
champion; run 2 retrains on the same folds with less training and must beat that champion,
re-evaluated on the same test folds, by the paired patient bootstrap: it cannot, so the
champion stays, a ``not_promoted`` alert is written, and `covidct registry history` lists both
decisions with their reasons.
"""

from __future__ import annotations

import json

import pytest
from test_retraining_e2e import BIN, TINY, _run, embedded_env, land_inputs, run_dag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("covidct_two_runs")
    env = {**embedded_env(home), "COVIDCT_GATE_FIRST_RUN": "promote-best"}
    land_inputs(home, env)
    _, first = run_dag(env, {**TINY, "steps_per_epoch": 3})
    _, second = run_dag(env, {**TINY, "steps_per_epoch": 1, "force_retrain": True})
    history = json.loads(_run([str(BIN / "covidct"), "registry", "history", "--json"], env))
    text = _run([str(BIN / "covidct"), "registry", "history"], env)
    alerts = [json.loads(x) for x in (home / "alerts.jsonl").read_text().splitlines()]
    return {"home": home, "first": first, "second": second, "history": history, "text": text,
            "alerts": alerts}  # fmt: skip


def test_first_run_promotes_second_is_refused(two_runs: dict) -> None:
    first, second = two_runs["first"]["gate"], two_runs["second"]["gate"]
    assert first["verdict"]["passed"] and first["verdict"]["status"] == "first-run"
    assert first["champion_after"] == first["version"]
    assert not second["verdict"]["passed"] and second["verdict"]["status"] == "refuse"
    assert second["champion_before"] == second["champion_after"] == first["version"]
    assert any("vs champion" in reason for reason in second["verdict"]["reasons"])


def test_history_and_alerts_explain_both_decisions(two_runs: dict) -> None:
    actions = [(r["action"], r["version"]) for r in two_runs["history"]]
    first, second = two_runs["first"]["gate"], two_runs["second"]["gate"]
    assert actions == [("promote", first["version"]), ("refuse", second["version"])]
    assert all(r["reason"] for r in two_runs["history"])
    assert "promote" in two_runs["text"] and "refuse" in two_runs["text"]
    kinds = [a["kind"] for a in two_runs["alerts"]]
    assert "not_promoted" in kinds and "batch_quarantined" in kinds


def test_champion_resolves_to_the_first_runs_model(two_runs: dict) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{two_runs['home']}/mlflow.db")
    champion = client.get_model_version_by_alias("covidct-classifier", "champion")
    assert str(champion.version) == two_runs["first"]["gate"]["version"]
    assert champion.tags["gate_verdict"] == "passed"
    assert client.get_model_version_by_alias("covidct-classifier", "baseline-resnet152")
