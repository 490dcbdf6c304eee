"""Batch drift through the pipeline's validate step, on a real lake with a real alert notifier.

A synthetic batch is landed, validated and curated (it becomes the reference); a second batch of
other patients with every pixel moved by +150 HU is landed and validated: it passes validation,
its drift record lands in the run folder and a ``batch_drift`` alert names the measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from covidct import pipeline
from covidct.batch.slices import read_slice, write_slice
from covidct.batch.synth import write_synthetic_batch
from covidct.config import Settings
from covidct.lake.landing import land_batch
from covidct.promotion.alerts import read_alerts

SHIFT_HU = 150


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    home = tmp_path_factory.mktemp("evidence_home")
    settings = Settings.from_env({"COVIDCT_HOME": str(home)})
    local = tmp_path_factory.mktemp("evidence_batches")
    write_synthetic_batch(local / "reference", patients=8, seed=1, max_slices_per_patient=6)
    write_synthetic_batch(local / "shifted", patients=4, seed=2, max_slices_per_patient=6)
    for file in sorted((local / "shifted").rglob("*.tif")):
        shifted = read_slice(file).astype(np.int32) + SHIFT_HU
        write_slice(file, np.clip(shifted, 0, 65535).astype(np.uint16))
    return settings, local


def test_shifted_batch_raises_batch_drift_through_validate(lake_home) -> None:  # type: ignore[no-untyped-def]
    settings, local = lake_home
    store = pipeline.lake(settings)
    land_batch(store, local / "reference", "reference")
    first = pipeline.validate(settings, "reference", "manual__week1")
    assert first["passed"], first["reasons"]
    assert "no curated reference yet" in first["drift"]["note"]  # nothing to compare with
    pipeline.curate(settings, [first], "manual__week1")

    land_batch(store, local / "shifted", "shifted")
    verdict = pipeline.validate(settings, "shifted", "manual__week2")
    assert verdict["passed"], verdict["reasons"]  # drift does not quarantine
    drift = verdict["drift"]
    assert drift["drifted"] and "hu_wasserstein" in drift["drifted_measures"]
    record = json.loads(store.read_bytes("runs/manual__week2/drift/shifted.json"))
    hu = next(m for m in record["measures"] if m["name"] == "hu_wasserstein")
    assert hu["drifted"] and hu["value"] > settings.drift.hu_wasserstein_limit
    assert record["reference_patients"] == 8
    alerts = [a for a in read_alerts(settings.alerts.jsonl_path) if a["kind"] == "batch_drift"]
    (alert,) = alerts
    assert alert["details"]["batch_id"] == "shifted"
    assert "hu_wasserstein" in alert["summary"]
    assert alert["run_id"] == "manual__week2"
    # the batch is still curated
    curated = pipeline.curate(settings, [verdict], "manual__week2")
    assert curated["accepted"] == ["shifted"]
