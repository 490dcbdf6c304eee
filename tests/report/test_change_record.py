"""The model card's change record against the previous version (issue 33, item 2), on a real
MLflow registry (SQLite under a temporary COVIDCT_HOME) and a real lake folder: what changed in
data, training specification, sequestered metrics (with intervals) and the gate's verdict."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from covidct.config import Settings
from covidct.lake.layout import RunLayout
from covidct.promotion import registry
from covidct.report.model_card import change_html
from covidct.training import TrainingSpec

RUNS = ("manual__2026-12-01T08:00:00+00:00", "manual__2026-12-08T08:00:00+00:00")


def _gate_models(version: str, auc: tuple[float, float, float]) -> dict:
    value, low, high = auc
    return {"vgg16": {
        "version": version, "patients": 50, "no_better_than_chance": low <= 0.5 <= high,
        "metrics": {"image_roc_auc": value, "patient_balanced_accuracy": 0.6},
        "intervals": {"image_roc_auc": {"value": value, "ci_low": low, "ci_high": high},
                      "patient_balanced_accuracy": {"value": 0.6, "ci_low": 0.5, "ci_high": 0.7}},
    }}  # fmt: skip


def test_change_record_lists_what_changed_since_the_previous_version(
    tmp_path: Path, monkeypatch, isolated_mlflow_uris
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    (home / "lake").mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COVIDCT_HOME", str(home))
    settings = Settings.from_env({"COVIDCT_HOME": str(home)})
    client = registry.client(settings.mlflow.tracking_uri)
    run_id = client.create_run(client.create_experiment("cards")).info.run_id
    name = settings.mlflow.model_name
    client.create_registered_model(name)
    specs = [TrainingSpec.of_profile("cpu-smoke", epochs=epochs) for epochs in (1, 3)]
    gates = []
    for index, (dag_run, spec) in enumerate(zip(RUNS, specs, strict=True)):
        verdict = ("refused", "passed")[index]
        tags = {"dag_run_id": dag_run, "backbone": "vgg16", "dataset_version": f"v{index + 1}",
                "train_params": spec.to_tag(), "gate_verdict": verdict}  # fmt: skip
        version = client.create_model_version(name, str(tmp_path), run_id, tags=tags).version
        auc = ((0.52, 0.41, 0.63), (0.81, 0.72, 0.9))[index]
        gate = {"version": str(version), "champion_before": None,
                "champion_after": None if index == 0 else str(version),
                "verdict": {"status": ("refuse", "promote")[index]},
                "models": _gate_models(str(version), auc)}  # fmt: skip
        key = home / "lake" / RunLayout.of(dag_run).gate
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text(json.dumps(gate))
        gates.append(gate)
    page = change_html(client, settings, "2", gates[1])
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert "this version became champion; champion none → v2" in text
    assert "Compared with the previous version, v1:" in text
    assert "Data: dataset version v1 → v2." in text
    assert "Training specification: epochs 1 → 3." in text
    assert (
        "Sequestered metrics (each scored on the sequestered patients of the run that registered "
        "it): ROC AUC (image) 0.520 (95% CI 0.410 to 0.630) → 0.810 (95% CI 0.720 to 0.900); "
        "balanced accuracy (patient) 60.0% (95% CI 50.0% to 70.0%) → 60.0%"
    ) in text
    assert "Gate verdict: refused → passed." in text
    assert "<th>previous version v1</th><th>this version v2</th>" in page
    assert "+0.2900" in page  # the AUC's change, a fraction; a rate's would be in points
    # the first version has nothing before it
    first = change_html(client, settings, "1", gates[0])
    assert "nothing to compare" in first and "Compared with" not in first
