"""Tests for covidct.batch.synth: roster-shaped batches, CT-like values, byte-for-byte
determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from covidct import schema
from covidct.batch.contract import read_patient_details
from covidct.batch.roster import load_default_roster, series_counts
from covidct.batch.slices import read_slice
from covidct.batch.synth import SynthReport, write_synthetic_batch

ROSTER_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "covid-ctset"


@pytest.fixture(scope="module")
def roster() -> pd.DataFrame:
    return load_default_roster(ROSTER_DIR)


@pytest.fixture(scope="module")
def full_batch(
    roster: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, SynthReport]:
    out = tmp_path_factory.mktemp("synth") / "batch"
    return out, write_synthetic_batch(out, patients=8, seed=3, roster=roster)


def _digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_the_same_bytes(tmp_path: Path, roster: pd.DataFrame) -> None:
    kwargs = {"patients": 3, "seed": 5, "roster": roster, "max_slices_per_patient": 8}
    write_synthetic_batch(tmp_path / "a", **kwargs)
    write_synthetic_batch(tmp_path / "b", **kwargs)
    write_synthetic_batch(tmp_path / "c", **{**kwargs, "seed": 6})
    first = _digests(tmp_path / "a")
    assert len(first) > 3
    assert first == _digests(tmp_path / "b")
    assert first != _digests(tmp_path / "c")


def test_full_batch_mirrors_the_roster(full_batch, roster: pd.DataFrame) -> None:
    out, report = full_batch
    counts = series_counts(roster).set_index(["patient_id", "series"])
    labels = roster.drop_duplicates("patient_id").set_index("patient_id")["label"]
    assert len(report.patients) == 8
    assert {patient.label for patient in report.patients} == {"Positive", "Negative"}
    for patient in report.patients:
        assert labels[patient.patient_id] == patient.label
        expected_series = sorted(counts.loc[patient.patient_id].index)
        assert [series.name for series in patient.series] == expected_series
        for series in patient.series:
            assert sum(series.open_lung) == counts.loc[(patient.patient_id, series.name), "slices"]
            closed_top = series.open_lung.index(True)
            closed_bottom = series.open_lung[::-1].index(True)
            assert 1 <= closed_top <= 3 and 1 <= closed_bottom <= 3
            files = sorted((out / patient.patient_id / series.name).glob("*.tif"))
            assert [f.name for f in files] == [
                f"IM{i:05d}.tif" for i in range(1, series.slices + 1)
            ]
    assert report.slices_written == len(list(out.rglob("*.tif")))


def test_patient_details_and_batch_json(full_batch, roster: pd.DataFrame) -> None:
    out, report = full_batch
    details = read_patient_details(out / schema.PATIENT_DETAILS).set_index("Patient ID")
    assert list(details.index) == [patient.patient_id for patient in report.patients]
    for patient in report.patients:
        row = details.loc[patient.patient_id]
        assert row["COVID-19 Infection"] == patient.label
        published = roster[roster["patient_id"] == patient.patient_id].iloc[0]
        assert (row["SEX"], row["AGE"]) == (published["sex"], published["age"])
        assert pd.isna(row["Date"])
        thickness = roster[roster["patient_id"] == patient.patient_id].drop_duplicates("series")
        for series, value in zip(thickness["series"], thickness["thickness_mm"], strict=True):
            got = row[f"{series} Folder thickness(mm)"]
            assert (pd.isna(got) and pd.isna(value)) or got == value
    text = pd.read_csv(out / schema.PATIENT_DETAILS, dtype=str, keep_default_na=False)
    for patient, (_, row) in zip(report.patients, text.iterrows(), strict=True):
        written = {series.name for series in patient.series}
        for series in schema.SERIES:
            cell = row[f"{series} Folder thickness(mm)"]
            assert (cell != "") == (series in written)  # empty: no folder; N/A: unknown
    info = json.loads((out / schema.BATCH_INFO).read_text())
    assert info["source"] == "synth"
    assert info["synthetic"]["seed"] == 3
    assert info["synthetic"]["patients"] == report.to_dict()["patients"]


@pytest.mark.parametrize("patients", [2, 3, 5])
def test_both_classes_whenever_two_or_more_patients(
    tmp_path: Path, roster: pd.DataFrame, patients: int
) -> None:
    report = write_synthetic_batch(
        tmp_path / "b", patients=patients, seed=patients, roster=roster, max_slices_per_patient=3
    )
    assert {p.label for p in report.patients} == {"Positive", "Negative"}
    assert len({p.patient_id for p in report.patients}) == patients


@pytest.mark.parametrize("cap", [3, 4, 7, 20])
def test_cap_keeps_closed_ends_and_the_limit(
    tmp_path: Path, roster: pd.DataFrame, cap: int
) -> None:
    report = write_synthetic_batch(
        tmp_path / "b", patients=6, seed=9, roster=roster, max_slices_per_patient=cap
    )
    for patient in report.patients:
        assert 3 <= sum(series.slices for series in patient.series) <= cap
        assert patient.series[0].name == "SR_2"
        for series in patient.series:
            assert series.slices >= 3
            assert not series.open_lung[0] and not series.open_lung[-1]
            assert any(series.open_lung)


def _lung_pixels(image: np.ndarray) -> np.ndarray:
    return image[(image >= 100) & (image < 300)]


def test_pixels_look_like_ct_in_negin_values(full_batch) -> None:
    out, report = full_batch
    positive = next(p for p in report.patients if p.label == "Positive")
    negative = next(p for p in report.patients if p.label == "Negative")
    ggo_fraction = {}
    for patient in (positive, negative):
        series = patient.series[0]
        open_index = series.open_lung.index(True) + sum(series.open_lung) // 2
        image = read_slice(out / patient.patient_id / series.name / f"IM{open_index + 1:05d}.tif")
        corner = image[:40, :40]
        assert abs(float(np.median(corner)) - 24) < 10  # air, -1000 HU
        lung = _lung_pixels(image)
        assert lung.size > 10_000 and abs(float(np.median(lung)) - 174) < 15  # -850 HU
        centre_column = image[:, 250:262]
        assert abs(float(np.median(centre_column)) - 1064) < 40  # soft tissue, 40 HU
        assert image.max() >= 1024 + 700  # bone
        assert image.max() <= 1024 + 1600
        ggo_fraction[patient.label] = float(np.mean((image >= 524) & (image <= 724)))
    assert ggo_fraction["Positive"] > 0.0005
    assert ggo_fraction["Negative"] < ggo_fraction["Positive"] / 5


def test_closed_slices_have_little_lung(full_batch) -> None:
    out, report = full_batch
    patient = report.patients[0]
    series = patient.series[0]
    folder = out / patient.patient_id / series.name
    areas = [
        _lung_pixels(read_slice(folder / f"IM{i:05d}.tif")).size
        for i in range(1, series.slices + 1)
    ]
    closed = [a for a, is_open in zip(areas, series.open_lung, strict=True) if not is_open]
    opened = [a for a, is_open in zip(areas, series.open_lung, strict=True) if is_open]
    assert max(closed) < 0.2 * min(opened)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"patients": 0}, ValueError, "patients must be in"),
        ({"patients": 10_000}, ValueError, "patients must be in"),
        ({"patients": 2, "max_slices_per_patient": 2}, ValueError, ">= 3"),
        ({"patients": 2, "source": ""}, ValueError, "source"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, roster: pd.DataFrame, kwargs: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        write_synthetic_batch(tmp_path / "b", seed=1, roster=roster, **kwargs)


def test_refuses_a_non_empty_folder(tmp_path: Path, roster: pd.DataFrame) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        write_synthetic_batch(tmp_path, patients=2, seed=1, roster=roster)


def test_default_roster_and_custom_source(tmp_path: Path) -> None:
    report = write_synthetic_batch(
        tmp_path / "b", patients=1, seed=0, source="demo", max_slices_per_patient=3
    )
    info = json.loads((tmp_path / "b" / schema.BATCH_INFO).read_text())
    assert info["source"] == "demo" == report.source
    assert report.slices_written == 3
