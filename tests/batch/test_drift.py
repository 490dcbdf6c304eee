"""Batch drift on synthetic Negin batches: a +150 HU shift drifts, another seed does not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from covidct import schema
from covidct.batch.drift import (
    DriftReport,
    acquisition_frame,
    acquisition_measures,
    batch_drift,
    drift_alert,
    format_drift,
    slice_stat_measures,
    slice_stat_ranges,
)
from covidct.batch.hu_distribution import N_BINS, wasserstein_hu
from covidct.batch.manifest import build_manifest
from covidct.batch.slices import read_slice, write_slice
from covidct.batch.synth import write_synthetic_batch
from covidct.config import DriftSettings, Settings
from covidct.promotion.alerts import AlertKind, JsonlNotifier, read_alerts

SHIFT_HU = 150


def _manifest(batch: Path) -> pd.DataFrame:
    return build_manifest(batch, workers=1, progress=False, executor="thread")


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("drift")
    write_synthetic_batch(root / "reference", patients=8, seed=1, max_slices_per_patient=6)
    write_synthetic_batch(root / "same", patients=4, seed=2, max_slices_per_patient=6)
    write_synthetic_batch(root / "shifted", patients=4, seed=2, max_slices_per_patient=6)
    for file in sorted((root / "shifted").rglob("*.tif")):
        shifted = read_slice(file).astype(np.int32) + SHIFT_HU
        write_slice(file, np.clip(shifted, 0, 65535).astype(np.uint16))
    names = ("reference", "same", "shifted")
    return {name: (root / name, _manifest(root / name)) for name in names}


def _report(batches: dict, name: str, settings: DriftSettings | None = None) -> DriftReport:
    ref_dir, ref = batches["reference"]
    new_dir, new = batches[name]
    return batch_drift(
        name, ref, ref_dir, new, new_dir, settings or Settings.from_env({}).drift,
        reference_acquisition=acquisition_frame(ref_dir, ref),
        batch_acquisition=acquisition_frame(new_dir, new),
    )  # fmt: skip


def test_same_generator_other_seed_does_not_drift(batches: dict) -> None:
    report = _report(batches, "same")
    hu = report.measure("hu_wasserstein")
    assert not report.drifted, format_drift(report)
    assert hu.value < hu.limit and hu.p_value is not None and hu.p_value > 0.05
    assert {"slice_mean", "slice_p01", "slice_p99", "unseen_source", "unseen_thickness_mm"} <= {
        m.name for m in report.measures
    }
    assert drift_alert(report) is None
    assert (report.batch_patients, report.reference_patients) == (4, 8)


def test_shifted_batch_drifts_and_alerts(batches: dict, tmp_path: Path) -> None:
    report = _report(batches, "shifted")
    hu = report.measure("hu_wasserstein")
    # the shifted batch is the "same" batch with every pixel moved by 150 HU, so by the
    # triangle inequality its distance to the reference is 150 HU +/- the unshifted distance
    base = _report(batches, "same").measure("hu_wasserstein").value
    assert hu.drifted and abs(hu.value - SHIFT_HU) <= base + 1e-6
    assert hu.p_value is not None and hu.p_value < 0.01
    assert {"hu_wasserstein", "slice_p01", "slice_border_mean"} <= set(report.drifted_measures)
    assert not report.measure("unseen_source").drifted
    alert = drift_alert(report, dag_id="covidct_retraining", run_id="r1")
    assert alert is not None and alert.kind is AlertKind.BATCH_DRIFT
    assert "hu_wasserstein" in alert.summary and "shifted" in alert.summary
    JsonlNotifier(tmp_path / "alerts.jsonl").send(alert)
    (line,) = read_alerts(tmp_path / "alerts.jsonl")
    assert line["kind"] == "batch_drift"
    assert "hu_wasserstein" in line["details"]["drifted_measures"]
    json.dumps(report.to_dict())  # JSON-safe for the run report


def test_a_looser_limit_accepts_the_shift(batches: dict) -> None:
    """The limit is what decides: above the observed distance the HU measure does not drift."""
    report = _report(batches, "shifted", DriftSettings(hu_wasserstein_limit=200.0))
    assert not report.measure("hu_wasserstein").drifted


def test_report_is_deterministic(batches: dict) -> None:
    assert _report(batches, "same") == _report(batches, "same")


def test_unseen_source_and_thickness(batches: dict) -> None:
    ref_dir, ref = batches["reference"]
    reference = acquisition_frame(ref_dir, ref)
    batch = reference.head(10).assign(source="tcia-sbu")
    batch.loc[batch.index[:5], "thickness_mm"] = "0.625"
    measures = {m.name: m for m in acquisition_measures(reference, batch, DriftSettings())}
    assert measures["unseen_source"].drifted and measures["unseen_source"].value == 1.0
    assert measures["unseen_thickness_mm"].value == 0.5
    assert "0.625" in measures["unseen_thickness_mm"].detail
    assert "unseen_kernel" not in measures  # no kernel recorded on either side


def test_kernel_from_batch_json(batches: dict, tmp_path: Path) -> None:
    ref_dir, ref = batches["reference"]
    (tmp_path / schema.PATIENT_DETAILS).write_bytes((ref_dir / schema.PATIENT_DETAILS).read_bytes())
    (tmp_path / schema.BATCH_INFO).write_text(json.dumps({"source": "synth", "kernel": "B70f"}))
    frame = acquisition_frame(tmp_path, ref)
    assert set(frame["kernel"]) == {"B70f"}
    assert frame["thickness_mm"].notna().all()


@pytest.mark.parametrize("name", ["same", "shifted"])
def test_great_expectations_shares_match_a_direct_count(batches: dict, name: str) -> None:
    """GE's unexpected share of each slice statistic equals counting the slices outside."""
    _, ref = batches["reference"]
    _, new = batches[name]
    settings = DriftSettings()
    ranges = slice_stat_ranges(ref, settings)
    assert -1100 < ranges["p01"][0] < ranges["p01"][1] < -900  # air, in HU
    for measure in slice_stat_measures(ref, new, settings):
        stat = measure.name.removeprefix("slice_")
        low, high = ranges[stat]
        values = new[stat].astype(float) - (0 if stat == "dark_pixels" else schema.HU_OFFSET)
        outside = float(((values < low) | (values > high)).mean())
        assert measure.value == pytest.approx(outside)
        assert measure.drifted == (outside > settings.stat_outside_share_limit)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wasserstein_hu_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, N_BINS, 500)
    b = rng.integers(0, N_BINS, 300) // 2
    hist = [np.bincount(x, minlength=N_BINS) for x in (a, b)]
    assert wasserstein_hu(*hist) == pytest.approx(wasserstein_distance(a, b), rel=1e-9)


def test_empty_batch_is_refused_with_its_name(batches: dict) -> None:
    ref_dir, ref = batches["reference"]
    with pytest.raises(ValueError, match="batch empty.*no readable slice"):
        batch_drift("empty", ref, ref_dir, ref.iloc[:0], ref_dir, DriftSettings())
