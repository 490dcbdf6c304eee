"""The DAG's intake steps keep custody as ``covidct land`` and ``curation.ingest_batch`` do.

A synthetic batch is landed with :func:`covidct.lake.landing.land_batch` (what ``covidct land``
runs) into a real local lake, validated by ``pipeline.validate`` and curated by
``pipeline.curate``: the content that is moved is the content that was validated, under the
hash of the landing receipt; a batch whose landed bytes change after validation is refused and
left in landing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from covidct import pipeline
from covidct.batch.synth import write_synthetic_batch
from covidct.config import Settings
from covidct.lake.custody import BatchLedger, batch_content_hash
from covidct.lake.landing import land_batch
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.lake.storage import read_parquet


@pytest.fixture
def landed(tmp_path: Path) -> tuple[Settings, str]:
    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path / "home")})
    write_synthetic_batch(tmp_path / "w1", patients=4, seed=3, max_slices_per_patient=3)
    receipt = land_batch(pipeline.lake(settings), tmp_path / "w1", "w1")
    return settings, receipt.content_hash


def test_curate_moves_the_validated_content_under_the_receipts_hash(landed) -> None:  # type: ignore[no-untyped-def]
    settings, receipt_hash = landed
    store = pipeline.lake(settings)
    verdict = pipeline.validate(settings, "w1", "manual__week1")
    assert verdict["passed"], verdict["reasons"]
    assert verdict["content_hash"] == receipt_hash
    run = RunLayout.of("manual__week1")
    assert json.loads(store.read_text(run.validation_verdict("w1")))["passed"] is True
    curated = pipeline.curate(settings, [verdict], "manual__week1")
    assert curated["accepted"] == ["w1"]
    assert store.list(LakeLayout.landing_batch("w1") + "/") == []
    assert batch_content_hash(store, LakeLayout.curated_batch("w1")) == receipt_hash
    entry = BatchLedger(store).get(receipt_hash)
    assert entry is not None and entry.location == "curated/batches/w1"  # the real key
    assert pipeline.curate(settings, [verdict], "manual__week1")["accepted"] == ["w1"]  # retry


def test_curate_refuses_a_batch_changed_after_validation(landed) -> None:  # type: ignore[no-untyped-def]
    settings, receipt_hash = landed
    store = pipeline.lake(settings)
    verdict = pipeline.validate(settings, "w1", "manual__week1")
    first = sorted(store.list(LakeLayout.landing_batch("w1") + "/"))[0]
    store.write_bytes(first, store.read_bytes(first) + b"\x00")  # changed after validation
    with pytest.raises(
        ValueError, match=r"landing/w1 changed: found \w+, expected " + receipt_hash[:12]
    ):
        pipeline.curate(settings, [verdict], "manual__week1")
    assert store.list(LakeLayout.CURATED_BATCHES + "/") == []
    assert BatchLedger(store).get(receipt_hash) is None


def test_one_dataset_version_is_one_table_whatever_order_its_batches_were_accepted_in(
    tmp_path: Path,
) -> None:
    """Airflow finishes the validate tasks in no fixed order, and the ledger lists batches as
    they were accepted; the dataset manifest, the sequestered table and every fold manifest
    must not follow it (training draws its batches by row position: the demo trained other
    models from the same data before the manifest was sorted)."""
    for name, seed in (("w1", 3), ("w2", 4)):
        write_synthetic_batch(tmp_path / name, patients=10, seed=seed, max_slices_per_patient=3)
    tables = []
    for order in (["w1", "w2"], ["w2", "w1"]):
        settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path / "-".join(order))})
        store = pipeline.lake(settings)
        for name in order:
            land_batch(store, tmp_path / name, name)
        for name in order:  # the ledger's clock counts seconds: one second apart
            verdict = pipeline.validate(settings, name, "manual__week1")
            curated = pipeline.curate(settings, [verdict], "manual__week1")
            time.sleep(1.1)
        specs = pipeline.make_folds(settings, curated, 2, 0, dag_run_id="manual__week1")
        keys = [curated["manifest_key"]] + [spec["key"] for spec in specs]
        frames = [read_parquet(store, key) for key in keys]
        assert frames[0]["path"].is_monotonic_increasing
        tables.append((curated["dataset_version"], frames))
    (version_a, frames_a), (version_b, frames_b) = tables
    assert version_a == version_b
    assert len(frames_a) == len(frames_b) == 3
    for a, b in zip(frames_a, frames_b, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_selection_is_marked_once_and_only_selected_slices_reach_folds(tmp_path: Path) -> None:
    """The dataset manifest keeps every slice with its ``selected`` mark; the folds and the
    sequestered table hold selected (open-lung) slices only; the run records the counts. The
    phantom's own truth (``batch.json``: open_lung per slice) says which slices are open."""
    report = write_synthetic_batch(tmp_path / "w1", patients=24, seed=7, max_slices_per_patient=8)
    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path / "home")})
    store = pipeline.lake(settings)
    land_batch(store, tmp_path / "w1", "w1")
    verdict = pipeline.validate(settings, "w1", "manual__week1")
    curated = pipeline.curate(settings, [verdict], "manual__week1")
    manifest = read_parquet(store, curated["manifest_key"])
    truth = {
        f"w1/{p.patient_id}/{s.name}/IM{i + 1:05d}.tif": is_open
        for p in report.patients
        for s in p.series
        for i, is_open in enumerate(s.open_lung)
    }
    assert dict(zip(manifest["path"], manifest["selected"], strict=True)) == truth
    closed = set(manifest.loc[~manifest["selected"], "path"])
    assert curated["n_not_diagnostic"] == len(closed) > 0
    recorded = json.loads(store.read_bytes(RunLayout.of("manual__week1").curation))
    assert recorded["n_selected"] + recorded["n_not_diagnostic"] == len(manifest)
    assert recorded["batches"][0]["n_not_diagnostic"] == len(closed)
    specs = pipeline.make_folds(settings, curated, 2, 0, dag_run_id="manual__week1")
    held = read_parquet(store, LakeLayout.sequestered_manifest(curated["dataset_version"]))
    used = pd.concat([read_parquet(store, spec["key"]) for spec in specs] + [held])
    assert not closed & set(used["path"]) and used["selected"].all()
    assert set(used["path"]) == set(manifest.loc[manifest["selected"], "path"])
