"""Tests for covidct.batch.synth: roster-shaped batches, CT-like values, byte-for-byte
determinism, literature-shaped lesions and look-alikes, truth beside the batch, scanners."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from covidct import schema
from covidct.batch.contract import read_patient_details
from covidct.batch.lesions import BANDS, _severity
from covidct.batch.roster import load_default_roster, series_counts
from covidct.batch.slices import read_slice
from covidct.batch.synth import SynthReport, write_synthetic_batch
from covidct.batch.synth_truth import (
    read_lesion_mask,
    read_lookalike_mask,
    read_lung_mask,
    read_truth,
)

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
    truth = _digests(tmp_path / "a.truth")
    assert sorted(truth) == ["masks.npz", "patients.csv", "slices.csv", "truth.json"]
    assert truth == _digests(tmp_path / "b.truth")
    assert truth != _digests(tmp_path / "c.truth")


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
    _, slices = read_truth(Path(f"{out}.truth"))
    labels = {p.patient_id: p.label for p in report.patients}
    slices["label"] = slices["patient_id"].map(labels)
    with_lesion = slices[(slices["label"] == "Positive") & (slices["lesion_pixels"] > 2_000)]
    without = slices[(slices["label"] == "Negative") & slices["open_lung"]]
    without = without[without["lookalike_pixels"] == 0]
    ggo_fraction = {}
    for label, path in (
        ("Positive", with_lesion["path"].iloc[0]),
        ("Negative", without["path"].iloc[0]),
    ):
        image = read_slice(out / path)
        corner = image[:40, :40]
        assert abs(float(np.median(corner)) - 24) < 10  # air, -1000 HU
        lung = _lung_pixels(image)
        assert lung.size > 10_000 and abs(float(np.median(lung)) - 174) < 15  # -850 HU
        centre_column = image[:, 250:262]
        assert abs(float(np.median(centre_column)) - 1064) < 40  # soft tissue, 40 HU
        assert image.max() >= 1024 + 700  # bone
        assert image.max() <= 1024 + 1600
        ggo_fraction[label] = float(np.mean((image >= 324) & (image <= 724)))  # -700..-300 HU
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


# --------------------------------------------------------------------------- lesions and truth


@pytest.fixture(scope="module")
def cohort(
    roster: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """200 roster-shaped patients, 3 slices each (one open), and their truth."""
    out = tmp_path_factory.mktemp("cohort") / "batch"
    write_synthetic_batch(out, patients=200, seed=0, roster=roster, max_slices_per_patient=3)
    patients, slices = read_truth(Path(f"{out}.truth"))
    return out, patients, slices


@pytest.fixture(scope="module")
def mostly_positive(roster: pd.DataFrame) -> pd.DataFrame:
    """The roster's Positive patients and two Negative ones (batches of them are mostly COVID)."""
    negative = roster.loc[roster["label"] == "Negative", "patient_id"].drop_duplicates()[:2]
    keep = (roster["label"] == "Positive") | roster["patient_id"].isin(negative)
    return roster.loc[keep].reset_index(drop=True)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else math.nan


def test_truth_lies_beside_the_batch_and_matches_it(cohort) -> None:
    out, patients, slices = cohort
    assert not (out / "patients.csv").exists() and Path(f"{out}.truth", "masks.npz").is_file()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tif"))
    assert sorted(slices["path"]) == written
    assert list(patients["patient_id"]) == sorted(
        set(slices["patient_id"]), key=list(patients["patient_id"]).index
    )
    info = json.loads((out / schema.BATCH_INFO).read_text())
    open_truth = {
        f"{p['patient_id']}/{s['name']}/IM{i:05d}.tif": is_open
        for p in info["synthetic"]["patients"]
        for s in p["series"]
        for i, is_open in enumerate(s["open_lung"], start=1)
    }
    assert dict(zip(slices["path"], slices["open_lung"], strict=True)) == open_truth


def test_masks_lie_in_the_lungs_of_positive_patients_only(cohort) -> None:
    out, patients, slices = cohort
    truth = Path(f"{out}.truth")
    label = slices["patient_id"].map(patients.set_index("patient_id")["label"])
    assert (slices.loc[label == "Negative", "lesion_pixels"] == 0).all()
    assert (
        (slices.loc[~slices["open_lung"], ["lesion_pixels", "lookalike_pixels"]] == 0).all().all()
    )
    marked = slices[(slices["lesion_pixels"] > 0) | (slices["lookalike_pixels"] > 0)]
    assert len(marked) >= 20
    for row in marked.itertuples():
        lungs = read_lung_mask(truth, row.path)
        lesion, lookalike = read_lesion_mask(truth, row.path), read_lookalike_mask(truth, row.path)
        assert lesion.shape == (512, 512) and lesion.dtype == bool
        assert int(lungs.sum()) == row.lung_pixels
        assert not (lesion & ~lungs).any() and not (lookalike & ~lungs).any()
        assert (int(lesion.sum()), int(lookalike.sum())) == (
            row.lesion_pixels,
            row.lookalike_pixels,
        )
        assert row.involvement == pytest.approx(lesion.sum() / lungs.sum(), abs=1e-6)
    empty = slices.loc[slices["lesion_pixels"] == 0, "path"].iloc[0]
    assert not read_lesion_mask(truth, empty).any()
    with pytest.raises(KeyError, match="no slice"):
        read_lesion_mask(truth, "patient0/SR_2/IM00001.tif")


def test_patient_involvement_is_measured_from_the_masks(cohort) -> None:
    _, patients, slices = cohort
    opened = slices[slices["open_lung"]].groupby("patient_id")[["lesion_pixels", "lung_pixels"]]
    sums = opened.sum()
    recomputed = 100 * sums["lesion_pixels"] / sums["lung_pixels"]
    recorded = patients.set_index("patient_id")["involvement_percent"]
    assert np.allclose(recorded[recomputed.index], recomputed, atol=1e-3)


@pytest.mark.parametrize(
    ("band", "share"),
    # Chung et al.: 3/21 normal; MosMedData CT-1..4 of abnormal CTs; CT-1 log-uniform 0.5-25%
    [("none", 0.143), ("mild", 0.403), ("moderate", 0.282), ("severe", 0.172)],
)
def test_severity_bands_follow_the_published_shape(band: str, share: float) -> None:
    rng = np.random.default_rng(0)
    draws = [_severity(rng) for _ in range(4000)]
    got = float(np.mean([name == band for name, _ in draws]))
    assert abs(got - share) < 0.03, f"{band}: {got:.3f} against {share}"
    low, high = BANDS[band]
    percents = [percent for name, percent in draws if name == band]
    assert all(low <= p < high or p == high == 0 for p in percents)


def test_bands_of_the_written_patients(cohort) -> None:
    _, patients, _ = cohort
    assert (patients.loc[patients["label"] == "Negative", "severity_band"] == "").all()
    positive = patients[patients["label"] == "Positive"]
    assert set(positive["severity_band"]) == set(BANDS)
    for band, (low, high) in BANDS.items():
        target = positive.loc[positive["severity_band"] == band, "target_percent"]
        assert ((target >= low) & (target <= high)).all(), band
    assert (positive.loc[positive["severity_band"] == "none", "lesions"] == 0).all()
    drawn = positive[positive["severity_band"] != "none"]
    ratio = drawn["whole_lung_percent"] / drawn["target_percent"]  # lesions follow the draw
    assert ((ratio > 0.5) & (ratio < 1.6)).all() and 0.9 < float(ratio.median()) < 1.3


def test_at_least_a_quarter_of_positive_patients_are_mild(cohort) -> None:
    _, patients, _ = cohort
    positive = patients[patients["label"] == "Positive"]
    assert len(positive) >= 40
    assert float((positive["target_percent"] < 5).mean()) >= 0.25


@pytest.mark.parametrize(
    ("lookalike", "rate"), [("nodule", 0.27), ("atelectasis", 0.20), ("emphysema", 0.15)]
)
def test_negative_patients_carry_lookalikes_at_the_stated_rates(cohort, lookalike, rate) -> None:
    _, patients, _ = cohort
    negative = patients[patients["label"] == "Negative"]
    assert len(negative) >= 120
    assert (negative["lesions"] == 0).all() and (negative["findings"] == "").all()
    share = float(
        negative["lookalikes"].str.split(";").apply(lambda names: lookalike in names).mean()
    )
    se = math.sqrt(rate * (1 - rate) / len(negative))
    assert abs(share - rate) < 4 * se, f"{lookalike}: {share:.3f} against {rate}"


def test_findings_of_positive_patients(cohort) -> None:
    _, patients, _ = cohort
    abnormal = patients[(patients["label"] == "Positive") & (patients["severity_band"] != "none")]
    findings = abnormal["findings"].str.split(";")
    assert abnormal["lesions"].min() >= 1
    assert findings.apply(lambda f: "ggo_peripheral" in f).mean() > 0.5
    for name in ("ggo_rounded", "consolidation", "crazy_paving"):
        assert 0.05 < findings.apply(lambda f, n=name: n in f).mean() < 0.7, name
    assert 0.5 < abnormal["bilateral"].mean() <= 0.95


def _adjacent_dice(truth: Path, slices: pd.DataFrame) -> tuple[list[float], list[float]]:
    """Dice of neighbouring open slices' lesion masks in a series, and of slices of different
    patients at the same position."""
    opened = slices[slices["open_lung"] & (slices["lesion_pixels"] > 0)]
    near, far = [], []
    for _, series in opened.groupby(["patient_id", "series"]):
        paths = list(series["path"])
        numbers = [int(p[-9:-4]) for p in paths]
        for k in range(len(paths) - 1):
            if numbers[k + 1] == numbers[k] + 1:
                a, b = read_lesion_mask(truth, paths[k]), read_lesion_mask(truth, paths[k + 1])
                near.append(_dice(a, b))
    firsts = list(opened.drop_duplicates("patient_id")["path"])
    for a, b in zip(firsts, firsts[1:], strict=False):
        far.append(_dice(read_lesion_mask(truth, a), read_lesion_mask(truth, b)))
    return near, far


@pytest.mark.parametrize("scanner", ["negin", "sharp-thin", "soft-thick"])
def test_lesions_are_coherent_between_neighbouring_slices(
    tmp_path: Path, mostly_positive: pd.DataFrame, scanner: str
) -> None:
    out = tmp_path / "b"
    write_synthetic_batch(
        out, patients=14, seed=2, roster=mostly_positive, max_slices_per_patient=8, scanner=scanner
    )
    _, slices = read_truth(Path(f"{out}.truth"))
    near, far = _adjacent_dice(Path(f"{out}.truth"), slices)
    assert len(near) >= 8 and len(far) >= 4
    assert np.median(near) > 0.5
    assert np.median(near) > np.median(far) + 0.3


def test_thicker_slices_change_lesions_faster(
    tmp_path: Path, mostly_positive: pd.DataFrame
) -> None:
    medians = {}
    for scanner in ("sharp-thin", "soft-thick"):  # 1.5 mm and 8 mm slices
        out = tmp_path / scanner
        write_synthetic_batch(
            out,
            patients=14,
            seed=2,
            roster=mostly_positive,
            max_slices_per_patient=8,
            scanner=scanner,
        )
        near, _ = _adjacent_dice(Path(f"{out}.truth"), read_truth(Path(f"{out}.truth"))[1])
        medians[scanner] = float(np.median(near))
    assert medians["sharp-thin"] > medians["soft-thick"]


def _uniform_sd(image: np.ndarray) -> float:
    """Sd (HU) in a 20x20 box of the mediastinum's soft tissue, between the lungs."""
    return float(image[246:266, 246:266].astype(np.float64).std())


@pytest.mark.parametrize(
    ("scanner", "noise_sd", "thickness"),
    [("negin", 12.0, None), ("soft-thick", 8.0, 8.0), ("sharp-thin", 25.0, 1.5)],
)
def test_scanners_differ_in_noise_and_thickness(
    tmp_path: Path, roster: pd.DataFrame, scanner: str, noise_sd: float, thickness: float | None
) -> None:
    out = tmp_path / "b"
    report = write_synthetic_batch(
        out, patients=3, seed=4, roster=roster, max_slices_per_patient=4, scanner=scanner
    )
    assert report.scanner == scanner
    sds = [_uniform_sd(read_slice(path)) for path in sorted(out.rglob("*.tif"))]
    assert abs(float(np.median(sds)) - noise_sd) < 0.12 * noise_sd
    details = read_patient_details(out / schema.PATIENT_DETAILS)
    written = details["SR_2 Folder thickness(mm)"]
    if thickness is not None:
        assert (written == thickness).all()
    assert json.loads((out / schema.BATCH_INFO).read_text())["synthetic"]["scanner"] == scanner


@pytest.mark.parametrize("scanner", ["negin", "soft-thick", "sharp-thin"])
def test_the_batch_still_validates(tmp_path: Path, roster: pd.DataFrame, scanner: str) -> None:
    from covidct.batch.validation import validate_batch

    out = tmp_path / "b"
    write_synthetic_batch(
        out, patients=4, seed=7, roster=roster, max_slices_per_patient=4, scanner=scanner
    )
    verdict = validate_batch(out, progress=False)
    assert verdict.passed, verdict.reasons


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scanner": "ct9000"}, ValueError, r"unknown scanner 'ct9000'; valid: \['negin'"),
        ({"truth_dir": "INSIDE"}, ValueError, "must lie outside the batch"),
        ({"truth_dir": "FULL"}, FileExistsError, "truth folder"),
    ],
)
def test_bad_truth_and_scanner_arguments(
    tmp_path: Path, roster: pd.DataFrame, kwargs: dict, error: type, message: str
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    where = {"INSIDE": tmp_path / "b" / "truth", "FULL": tmp_path / "full"}
    kwargs = {k: where.get(v, v) for k, v in kwargs.items()}
    with pytest.raises(error, match=message):
        write_synthetic_batch(tmp_path / "b", patients=2, seed=1, roster=roster, **kwargs)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_cli_lists_the_scanners_and_takes_a_truth_dir(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from covidct.cli import main

    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "a"), "--patients", "2", "--scanner", "ct9000"])
    assert "'negin', 'soft-thick', 'sharp-thin'" in capsys.readouterr().err
    code = main(
        ["synth", str(tmp_path / "a"), "--patients", "2", "--max-slices", "3",
         "--scanner", "sharp-thin", "--truth-dir", str(tmp_path / "t")]
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["truth_dir"] == str(tmp_path / "t")
    assert (tmp_path / "t" / "slices.csv").is_file() and not (tmp_path / "a.truth").exists()
