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
    mark_selected,
    select_batch,
    select_open_lung,
    select_sequence,
    selected_only,
    selection_threshold,
    with_selection,
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


# --------------------------------------------------------------------------- selection as data


def _manifest(rows: list[tuple[str, str, int, int | None]]) -> pd.DataFrame:
    """(patient_key, series, instance, dark_pixels) rows as a manifest; path from them."""
    frame = pd.DataFrame(rows, columns=["patient_key", "series", "instance", "dark_pixels"])
    frame["path"] = [f"b/{p}/{s}/IM{i:05d}.tif" for p, s, i, _ in rows]
    frame["instance"] = frame["instance"].astype("Int64")
    frame["dark_pixels"] = frame["dark_pixels"].astype("Int64")
    return frame


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # one sequence, rows out of order: judged as one sequence (threshold 66.7)
        ([("p", "SR_2", 3, 100), ("p", "SR_2", 1, 0), ("p", "SR_2", 2, 90)], [True, False, True]),
        # two series of one patient are two sequences (SR_3 alone: threshold 0, keeps count > 0)
        ([("p", "SR_2", 1, 0), ("p", "SR_2", 2, 90), ("p", "SR_3", 1, 5)], [False, True, True]),
        # two patients with the same series are two sequences
        ([("a", "SR_2", 1, 10), ("a", "SR_2", 2, 100), ("b", "SR_2", 1, 10)], [False, True, True]),
        # no count (image smaller than the window): not selected, the rest judged without it
        ([("p", "SR_2", 1, None), ("p", "SR_2", 2, 0), ("p", "SR_2", 3, 90)], [False, False, True]),
    ],
    ids=["unordered", "series", "patients", "no-count"],
)
def test_mark_selected_judges_each_sequence(rows: list, expected: list[bool]) -> None:
    assert mark_selected(_manifest(rows)).tolist() == expected


def test_selected_only_refuses_an_unmarked_manifest() -> None:
    with pytest.raises(KeyError, match="selected"):
        selected_only(_manifest([("p", "SR_2", 1, 5)]))
    marked = with_selection(_manifest([("p", "SR_2", 1, 0), ("p", "SR_2", 2, 90)]))
    assert selected_only(marked)["instance"].tolist() == [2]


def _roster_shaped_counts(instances: list[int], rng: np.random.Generator) -> dict[int, int]:
    """Dark-pixel counts of a whole sequence around a roster sequence's listed instances: the
    listed (selected) ones open (lungs 70-100% of the max), 1-5 closed slices at each end and
    in every gap between listed instances."""
    low, high = min(instances), max(instances)
    counts = {i: int(rng.integers(0, 6_000)) for i in range(max(low - 5, 1), high + 6)}
    for instance in instances:
        counts[instance] = int(rng.integers(17_500, 25_000))
    return counts


def test_an_already_selected_batch_keeps_every_slice_on_roster_shaped_sequences() -> None:
    """COVID-CTset publishes its selected images (all.csv, gaps in the instance numbers): a
    batch of them must keep every slice when it is selected again. Every sequence of the real
    roster is rebuilt with closed slices around and between its listed instances, selected,
    then the kept slices alone selected again."""
    from covidct.batch.roster import load_default_roster

    roster = load_default_roster(None)
    roster = roster[~roster["duplicate"]]
    rng = np.random.default_rng(0)
    rows_full, rows_kept = [], []
    for (patient, series), group in roster.groupby(["patient_id", "series"]):
        counts = _roster_shaped_counts(sorted(group["instance"].astype(int)), rng)
        full = _manifest([(patient, series, i, c) for i, c in counts.items()])
        kept = full[mark_selected(full).to_numpy()]
        rows_full.append(len(full))
        rows_kept.append(kept.reset_index(drop=True))
    again = pd.concat(rows_kept, ignore_index=True)
    assert len(rows_kept) == 526 and sum(rows_full) > len(again) >= len(roster)
    assert mark_selected(again).all()


def test_a_synthetic_batch_cut_to_its_selected_slices_keeps_them_all(tmp_path: Path) -> None:
    """The real data path: phantom slices, their manifest, selection; then the closed-lung
    slices and every third kept one removed (gaps), the manifest built again: all kept."""
    from covidct.batch.manifest import build_manifest

    batch = tmp_path / "b"
    write_synthetic_batch(batch, patients=4, seed=5, max_slices_per_patient=12)
    manifest = build_manifest(batch, workers=1, progress=False, executor="serial")
    keep = mark_selected(manifest)
    assert not keep.all() and keep.any()
    for index, path in enumerate(manifest["path"]):
        if not keep.iloc[index] or index % 3 == 0:
            (batch / path).unlink()
    again = build_manifest(batch, workers=1, progress=False, executor="serial")
    assert 0 < len(again) < int(keep.sum())
    assert mark_selected(again).all()
