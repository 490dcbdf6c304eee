"""covidct.batch.manifest: per-slice facts from real TIFF files, derived patient and batch
tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import BatchFactory, ct_slice, set_compression_tag

from covidct import schema
from covidct.batch.manifest import (
    MANIFEST_COLUMNS,
    ExecutorKind,
    batch_table,
    build_manifest,
    parse_instance,
    patient_table,
)
from covidct.batch.slices import pixel_stats, read_slice_facts

# ------------------------------------------------------------------------------ pixel stats


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        # hand-computed: values 0..3 (16 pixels each of a 8x8 image), linear percentiles
        (
            np.repeat(np.arange(4, dtype=np.uint16), 16).reshape(8, 8),
            {"min": 0.0, "max": 3.0, "mean": 1.5, "p01": 0.0, "p99": 3.0},
        ),
        # 1..100 in a 10x10 image: p01 = 1 + 0.01 * 99 = 1.99, p99 = 1 + 0.99 * 99 = 99.01
        (
            np.arange(1, 101, dtype=np.uint16).reshape(10, 10),
            {"min": 1.0, "max": 100.0, "mean": 50.5, "p01": 1.99, "p99": 99.01},
        ),
        (
            np.full((4, 4), 7, dtype=np.uint8),
            {"min": 7.0, "max": 7.0, "mean": 7.0, "p01": 7.0, "p99": 7.0},
        ),
        (
            np.array([[-1000, 0], [20, 3000]], dtype=np.int16),
            {"min": -1000.0, "max": 3000.0, "mean": 505.0},
        ),
    ],
)
def test_pixel_stats_hand_computed(pixels: np.ndarray, expected: dict[str, float]) -> None:
    stats = pixel_stats(pixels)
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value), name


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int16, np.float32])
def test_pixel_stats_match_numpy(dtype: type) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 200 if dtype is np.uint8 else 4000, (512, 512)).astype(dtype)
    stats = pixel_stats(pixels)
    as_float = pixels.astype(np.float64)
    assert stats["min"] == as_float.min() and stats["max"] == as_float.max()
    assert stats["mean"] == pytest.approx(as_float.mean(), rel=1e-9)
    assert stats["p01"] == pytest.approx(np.percentile(as_float, 1))
    assert stats["p99"] == pytest.approx(np.percentile(as_float, 99))


def test_dark_pixels_count_the_covid_ctset_window() -> None:
    pixels = np.full((512, 512), 1000, dtype=np.uint16)
    pixels[240:340, 120:370] = 1000
    pixels[250, 130] = 299  # inside, dark
    pixels[339, 369] = 0  # last row and column of the window, dark
    pixels[340, 200] = 0  # row 340 is outside
    pixels[300, 370] = 0  # column 370 is outside
    pixels[260, 140] = 300  # not < 300
    assert pixel_stats(pixels)["dark_pixels"] == 2
    assert pixel_stats(pixels[:300, :300])["dark_pixels"] is None  # smaller than the window


def test_border_mean_sees_air_around_the_body() -> None:
    stats = pixel_stats(ct_slice(1))
    assert stats["border_mean"] < 60 < stats["mean"]
    inverted = pixel_stats(4095 - ct_slice(1))
    assert inverted["border_mean"] > inverted["mean"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("IM00010.tif", 10), ("IM1.tiff", 1), ("slice_007.tif", 7), ("IM.tif", None), ("9", 9)],
)
def test_parse_instance(name: str, expected: int | None) -> None:
    assert parse_instance(name) == expected


# ------------------------------------------------------------------------------- one file


def test_read_slice_facts_of_a_good_slice(tmp_path: Path) -> None:
    pixels = ct_slice(5)
    file = tmp_path / "IM00001.tif"
    tifffile.imwrite(file, pixels)
    facts = read_slice_facts(file)
    assert facts["read_error"] is None
    assert facts["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert facts["bytes"] == file.stat().st_size
    assert (facts["dtype"], facts["ndim"], facts["shape"]) == ("uint16", 2, "512x512")
    assert (facts["pages"], facts["samples_per_pixel"]) == (1, 1)
    assert (facts["compression"], facts["photometric"]) == ("NONE", "MINISBLACK")
    assert facts["max"] == pixels.max() and facts["min"] == pixels.min()
    assert facts["identifying_tags"] is None


@pytest.mark.parametrize(
    "write_kwargs",
    [
        {"compression": "zlib"},
        {"compression": "zlib", "predictor": True},
        {"byteorder": ">"},
        {"tile": (128, 128)},
        {"rowsperstrip": 16},
    ],
)
def test_encodings_decode_identically(tmp_path: Path, write_kwargs: dict[str, object]) -> None:
    pixels = ct_slice(6)
    tifffile.imwrite(tmp_path / "plain.tif", pixels)
    tifffile.imwrite(tmp_path / "other.tif", pixels, **write_kwargs)
    plain, other = (
        read_slice_facts(tmp_path / "plain.tif"),
        read_slice_facts(tmp_path / "other.tif"),
    )
    stats = ("min", "max", "mean", "p01", "p99", "dark_pixels", "border_mean", "shape", "dtype")
    assert other["read_error"] is None
    assert {k: other[k] for k in stats} == {k: plain[k] for k in stats}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not a tiff at all", "not a readable TIFF"),
        (b"", "not a readable TIFF"),
    ],
)
def test_unreadable_files_get_a_reason(tmp_path: Path, content: bytes, fragment: str) -> None:
    file = tmp_path / "IM00001.tif"
    file.write_bytes(content)
    facts = read_slice_facts(file)
    assert fragment in facts["read_error"]
    assert facts["sha256"] == hashlib.sha256(content).hexdigest()


def test_truncated_tiff_is_named(tmp_path: Path) -> None:
    file = tmp_path / "IM00001.tif"
    tifffile.imwrite(file, ct_slice(2))
    file.write_bytes(file.read_bytes()[:300_000])
    assert "truncated" in read_slice_facts(file)["read_error"]


def test_undecodable_codec_is_named(tmp_path: Path) -> None:
    file = tmp_path / "IM00001.tif"
    tifffile.imwrite(file, ct_slice(2))
    set_compression_tag(file, 34712)  # JPEG 2000: needs imagecodecs, which is not installed
    assert "cannot decode compression JPEG2000" in read_slice_facts(file)["read_error"]


def test_identifying_tags_are_found(tmp_path: Path) -> None:
    file = tmp_path / "IM00001.tif"
    tifffile.imwrite(
        file,
        ct_slice(2),
        description="PatientName=DOE^JANE PatientBirthDate=19670407",
        metadata=None,
        extratags=[(315, "s", 0, "Dr. Who", True)],  # Artist
    )
    assert read_slice_facts(file)["identifying_tags"] == "ImageDescription,Artist"


# ----------------------------------------------------------------------------- whole batch


def test_manifest_rows_columns_and_labels(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(slices_per_series=2, source="hospitalB")
    (batch / "patient3" / "SR_2").mkdir(parents=True)  # not in Patient_details.csv
    tifffile.imwrite(batch / "patient3" / "SR_2" / "IM00001.tif", ct_slice(99))
    (batch / "patient1" / "SR_2" / "notes.txt").write_text("hello")
    manifest = build_manifest(batch, progress=False)
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert len(manifest) == 2 * 3 * 2 + 1 + 1
    assert manifest["path"].is_monotonic_increasing
    assert set(manifest["source"]) == {"hospitalB"}
    row = manifest.set_index("path").loc["patient1/SR_3/IM00002.tif"]
    assert (row["patient_key"], row["series"], row["instance"]) == (
        "hospitalB/patient1",
        "SR_3",
        2,
    )
    assert row["label"] == "Positive"
    assert manifest.set_index("path").loc["patient3/SR_2/IM00001.tif", "label"] is None
    notes = manifest.set_index("path").loc["patient1/SR_2/notes.txt"]
    assert "not a readable TIFF" in notes["read_error"] and pd.isna(notes["max"])


def test_source_argument_overrides_batch_json(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(source="hospitalB")
    manifest = build_manifest(batch, source="override", progress=False)
    assert set(manifest["patient_key"]) == {"override/patient1", "override/patient2"}
    (batch / "batch.json").unlink()
    default = build_manifest(batch, progress=False)
    assert set(default["source"]) == {schema.DEFAULT_SOURCE}


def test_bad_batch_json_raises_naming_the_file(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write()
    (batch / "batch.json").write_text(json.dumps({"source": "a/b"}))
    with pytest.raises(ValueError, match="batch.json"):
        build_manifest(batch, progress=False)


@pytest.mark.parametrize("executor", [k.value for k in ExecutorKind])
def test_executors_agree(batch_factory: BatchFactory, executor: str) -> None:
    batch = batch_factory.write(slices_per_series=3)
    serial = build_manifest(batch, executor="serial", progress=False)
    other = build_manifest(batch, executor=executor, workers=2, chunk_size=2, progress=False)
    pd.testing.assert_frame_equal(serial, other)


def test_unknown_executor_lists_valid_ones(batch_factory: BatchFactory) -> None:
    message = "executor: expected one of process, thread, serial; got 'gpu'"
    with pytest.raises(ValueError, match=message):
        build_manifest(batch_factory.write(), executor="gpu", progress=False)


def test_missing_batch_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_manifest(tmp_path / "nowhere", progress=False)


def test_patient_and_batch_tables(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(
        patients={"p1": "Positive", "p2": "Negative", "p3": "Negative"},
        series=("SR_2", "SR_4"),
        slices_per_series=2,
    )
    (batch / "p3" / "SR_4" / "IM00002.tif").write_bytes(b"broken")
    manifest = build_manifest(batch, progress=False)
    patients = patient_table(manifest).set_index("patient_key")
    assert patients.loc["negin/p1", "n_slices"] == 4
    assert patients.loc["negin/p1", "series"] == "SR_2,SR_4"
    assert patients.loc["negin/p3", "n_read_errors"] == 1
    assert patients.loc["negin/p2", "label"] == "Negative"
    batch_row = batch_table(manifest, batch_id="b1").iloc[0]
    assert batch_row["n_slices"] == 12 and batch_row["n_patients"] == 3
    assert (batch_row["n_positive_patients"], batch_row["n_negative_patients"]) == (1, 2)
    assert batch_row["n_read_errors"] == 1 and batch_row["n_distinct_sha256"] == 12
    assert batch_row["bytes"] == sum(p.stat().st_size for p in batch.glob("*/*/*.tif"))
