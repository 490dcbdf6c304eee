"""Tests for covidct.data.selection: hand-computed rows, real Lung-PET-CT-Dx and synthetic
sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from covidct import schema
from covidct.batch.dicom import ingest_dicom
from covidct.batch.synth import write_synthetic_batch
from covidct.data.selection import (
    SELECTION_COLUMNS,
    dark_pixel_count,
    select_batch,
    select_open_lung,
    select_sequence,
    selection_threshold,
)

TCIA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tcia"
WINDOW_PIXELS = (schema.DARK_ROWS[1] - schema.DARK_ROWS[0]) * (
    schema.DARK_COLS[1] - schema.DARK_COLS[0]
)


def _bright() -> np.ndarray:
    return np.full(schema.SLICE_SHAPE, 1064, dtype=np.uint16)  # soft tissue everywhere


def _with_dark(points: list[tuple[int, int]]) -> np.ndarray:
    image = _bright()
    for row, col in points:
        image[row, col] = 24
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.zeros(schema.SLICE_SHAPE, np.uint16), WINDOW_PIXELS),
        (np.full(schema.SLICE_SHAPE, 299, np.uint16), WINDOW_PIXELS),
        (np.full(schema.SLICE_SHAPE, 300, np.uint16), 0),
        (_bright(), 0),
        (_with_dark([(240, 120)]), 1),
        (_with_dark([(339, 369)]), 1),
        (_with_dark([(340, 120), (240, 370), (239, 200), (300, 119)]), 0),
        (_with_dark([(250, 130), (250, 131), (0, 0), (511, 511)]), 2),
    ],
    ids=[
        "all-air",
        "just-below",
        "at-threshold",
        "soft-tissue",
        "first-corner",
        "last-corner",
        "just-outside",
        "inside-and-outside",
    ],
)
def test_dark_pixel_count(image: np.ndarray, expected: int) -> None:
    assert dark_pixel_count(image) == expected


@pytest.mark.parametrize(
    "image", [np.zeros((512,), np.uint16), np.zeros((300, 512), np.uint16), np.zeros((2, 512, 512))]
)
def test_dark_pixel_count_refuses_wrong_shapes(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2-D slice"):
        dark_pixel_count(image)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0, 10, 100, 90, 5], [False, False, True, True, False]),  # threshold 66.7
        ([10, 30], [False, True]),  # threshold 13.3
        (
            [100, 110, 130],
            [True, True, True],
        ),  # threshold 20: min + (max-min)/1.5 would keep 130 only
        ([5, 5, 5], [True, True, True]),  # constant: threshold 0
        ([0, 0], [False, False]),  # no dark pixel anywhere
        ([7], [True]),
        ([0, 150, 100, 101], [False, True, False, True]),  # threshold 100, strictly greater
        ([], []),
    ],
    ids=["typical", "two", "high-floor", "constant", "all-zero", "single", "strict", "empty"],
)
def test_select_open_lung(counts: list[int], expected: list[bool]) -> None:
    mask = select_open_lung(counts)
    assert mask.dtype == bool
    assert mask.tolist() == expected
    np.testing.assert_array_equal(select_open_lung(np.asarray(counts, dtype=np.int64)), mask)


@pytest.mark.parametrize(
    ("counts", "threshold"), [([0, 10, 100], 100 / 1.5), ([100, 130], 20.0), ([4, 4], 0.0)]
)
def test_selection_threshold(counts: list[int], threshold: float) -> None:
    assert selection_threshold(counts) == pytest.approx(threshold)


@pytest.mark.parametrize("counts", [[1, -1], [1.0, float("nan")], [[1, 2], [3, 4]]])
def test_select_open_lung_refuses_bad_counts(counts: list) -> None:
    with pytest.raises(ValueError, match="counts must be"):
        select_open_lung(counts)


# --------------------------------------------------------------------------- real sequences


@pytest.fixture(scope="module")
def lung_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("selection") / "lung-pet-ct-dx"
    ingest_dicom(TCIA / "lung-pet-ct-dx", out, "Negative", "lung-pet-ct-dx")
    return out


def _reference_mask(paths: list[Path]) -> tuple[list[int], list[bool]]:
    """The reference code's rule, written out independently on tifffile reads."""
    counts = [int((tifffile.imread(path)[240:340, 120:370] < 300).sum()) for path in paths]
    threshold = (max(counts) - min(counts)) / 1.5
    return counts, [count > threshold for count in counts]


@pytest.mark.parametrize("series", ["SR_2", "SR_3"])
def test_real_sequence_selection(lung_batch: Path, series: str) -> None:
    paths = sorted((lung_batch / "Lung_Dx-A0002" / series).glob("*.tif"))
    assert len(paths) == 30
    result = select_sequence(paths)
    assert tuple(result.columns) == SELECTION_COLUMNS
    assert result["path"].tolist() == [str(path) for path in paths]
    counts, keep = _reference_mask(paths)
    assert result["dark_pixels"].tolist() == counts
    assert result["keep"].tolist() == keep
    # the apex and the base of the thorax have closed lungs: both ends are rejected
    assert not result["keep"].iloc[:2].any() and not result["keep"].iloc[-2:].any()
    assert 0 < result["keep"].sum() < len(paths)


def test_both_kernels_of_the_same_breath_hold_agree(lung_batch: Path) -> None:
    table = select_batch(lung_batch)
    kept = {
        series: set(group.loc[group["keep"], "position"])
        for series, group in table.groupby("series")
    }
    assert set(kept) == {"SR_2", "SR_3"}
    overlap = len(kept["SR_2"] & kept["SR_3"]) / len(kept["SR_2"] | kept["SR_3"])
    assert overlap >= 0.8


def test_synthetic_sequences_keep_exactly_the_open_lung_slices(tmp_path: Path) -> None:
    report = write_synthetic_batch(tmp_path / "b", patients=4, seed=11, max_slices_per_patient=14)
    table = select_batch(tmp_path / "b")
    for patient in report.patients:
        for series in patient.series:
            rows = table[
                (table["patient_id"] == patient.patient_id) & (table["series"] == series.name)
            ]
            assert rows["keep"].tolist() == list(series.open_lung), (
                patient.patient_id,
                series.name,
            )


def test_select_batch_of_an_empty_folder(tmp_path: Path) -> None:
    table = select_batch(tmp_path)
    assert table.empty
    assert list(table.columns) == ["patient_id", "series", *SELECTION_COLUMNS]


def test_select_sequence_of_nothing() -> None:
    table = select_sequence([])
    assert isinstance(table, pd.DataFrame) and table.empty
