"""The champion's figures re-estimated on sequestered patients its promotion did not use
(covidct.pipeline.gate_evidence.champion_figures, issue 31 item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from covidct.config import Settings
from covidct.lake.backends import LocalStore
from covidct.lake.layout import RunLayout
from covidct.pipeline import gate_evidence
from covidct.promotion import registry


def _frame(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        covid = i % 2 == 0
        for j in range(3):
            rows.append({"patient_id": f"p{i:03d}", "y_true": "covid" if covid else "normal",
                         "p_covid": 0.8 if covid else 0.2, "slice_id": f"p{i:03d}/{j}",
                         "patient_threshold": 0.5})  # fmt: skip
    return pd.DataFrame(rows)


def test_champion_figures_say_where_they_come_from(tmp_path: Path) -> None:
    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path)})
    store = LocalStore(tmp_path / "lake")
    frame = _frame(60)
    unknown, basis = gate_evidence.champion_figures(settings, store, frame, "3")
    assert "patients are unknown" in basis and unknown["image_accuracy"] == 1.0
    # v3 was promoted by run-1 on the first 30 patients
    registry.append_ledger(store, {"action": "promote", "version": "3", "dag_run_id": "run-1"})
    used = [f"p{i:03d}" for i in range(30)]
    gate = {"verdict": {"patients_used": used}}
    store.write_bytes(RunLayout.of("run-1").gate, json.dumps(gate).encode())
    figures, basis = gate_evidence.champion_figures(settings, store, frame, "3")
    assert basis == "re-estimated on the 30 sequestered patients its promotion did not use"
    assert figures["image_accuracy"] == 1.0
    # too few fresh patients: all of them, labelled optimistic
    _, basis = gate_evidence.champion_figures(settings, store, _frame(40), "3")
    assert basis.endswith("30 of which selected it: optimistic")
