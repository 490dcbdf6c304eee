"""Tests for covidct.batch.dicom on the real TCIA slices and on tiny DICOMs built with pydicom."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    RLELossless,
    generate_uid,
)
from tiff_tags import BASELINE_TAGS

from covidct import schema
from covidct.batch.contract import read_patient_details
from covidct.batch.dicom import (
    IngestReport,
    SizePolicy,
    hounsfield_to_negin,
    ingest_dicom,
    is_axial,
    resample_hounsfield,
)
from covidct.batch.slices import read_slice
from covidct.config import parse_enum

TCIA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tcia"
SBU, LUNG = TCIA / "covid19-ny-sbu", TCIA / "lung-pet-ct-dx"
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]


# --------------------------------------------------------------------------- helpers


def make_ct(
    path: Path,
    pixels: np.ndarray,
    *,
    signed: bool = False,
    bits_stored: int = 16,
    photometric: str = "MONOCHROME2",
    rescale: tuple[float | None, float | None] = (1.0, -1024.0),
    orientation: Sequence[float] | None = AXIAL,
    z: float | None = 0.0,
    instance: int = 1,
    series_uid: str = "1.2.826.0.1.3680043.8.498.1",
    series_number: int = 1,
    modality: str = "CT",
    modality_lut: tuple[list[int], list[int]] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    thickness: float | None = 5.0,
    sop_uid: str | None = None,
) -> Path:
    """Write a minimal CT slice; ``pixels`` are the stored values."""
    sop_uid = sop_uid or generate_uid(entropy_srcs=[str(path)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sop_uid, modality
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "SECRET-ID-7", "19700101"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = series_uid, series_number, instance
    if orientation is not None:
        ds.ImageOrientationPatient = list(orientation)
    if z is not None:
        ds.ImagePositionPatient = [-100.0, -100.0, z]
    if thickness is not None:
        ds.SliceThickness = thickness
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    slope, intercept = rescale
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    if modality_lut is not None:
        item = Dataset()
        descriptor, data = modality_lut
        item.add_new(0x00283002, "US", descriptor)  # LUTDescriptor
        item.add_new(0x00283006, "US", data)  # LUTData
        item.ModalityLUTType = "HU"
        ds.ModalityLUTSequence = [item]
    stored = pixels.astype("<i2" if signed else "<u2")
    ds.PixelData = stored.tobytes()
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, stored)
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.PixelData = encapsulate([b"\xff\xd8 not really compressed \xff\xd9"])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def tiled(values: Sequence[float], dtype: str) -> np.ndarray:
    return np.resize(np.asarray(values, dtype=dtype), schema.SLICE_SHAPE)


def negin_by_pydicom(path: Path) -> np.ndarray:
    """The independent expectation: pydicom's Modality LUT, then HU + 1024 rounded, clipped."""
    ds = pydicom.dcmread(path)
    hu = apply_modality_lut(ds.pixel_array, ds)
    return np.clip(np.rint(hu + 1024), 0, 65535).astype(np.uint16)


def headers(root: Path) -> dict[str, Dataset]:
    return {
        path.relative_to(root).as_posix(): pydicom.dcmread(path, stop_before_pixels=True)
        for path in sorted(root.rglob("*.dcm"))
    }


def looks_axial(ds: Dataset) -> bool:
    cosines = [float(v) for v in ds.ImageOrientationPatient]
    return abs(cosines[0]) > 0.98 and abs(cosines[4]) > 0.98


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def sbu(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestReport]:
    out = tmp_path_factory.mktemp("sbu") / "batch"
    return out, ingest_dicom(SBU, out, "Positive", "tcia-sbu")


@pytest.fixture(scope="module")
def lung(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestReport]:
    out = tmp_path_factory.mktemp("lung") / "batch"
    return out, ingest_dicom(LUNG, out, "Negative", "tcia-lung")


def test_sbu_writes_exactly_the_axial_512_slices(sbu) -> None:
    out, report = sbu
    found = headers(SBU)
    expected = {
        rel
        for rel, ds in found.items()
        if looks_axial(ds) and (ds.Rows, ds.Columns) == (512, 512)  # at any depth
    }
    assert {source for source, _ in report.files} == expected
    assert report.slices_written == len(expected) == len(list(out.rglob("*.tif")))
    skipped = dict(report.skipped)
    assert set(skipped) == set(found) - expected
    assert any(len(Path(rel).parts) == 2 for rel in skipped)  # <subject>/<file> is read too
    for rel, reason in skipped.items():
        assert "not axial" in reason
        if (found[rel].Rows, found[rel].Columns) != (512, 512):
            assert f"size {found[rel].Rows}x{found[rel].Columns}" in reason


@pytest.mark.parametrize("collection", ["sbu", "lung"])
def test_every_written_slice_matches_pydicom_exactly(request, collection: str) -> None:
    out, report = request.getfixturevalue(collection)
    root = SBU if collection == "sbu" else LUNG
    intercepts = set()
    for source, output in report.files:
        expected = negin_by_pydicom(root / source)
        got = read_slice(out / output)
        np.testing.assert_array_equal(got, expected, err_msg=f"{source} -> {output}")
        intercepts.add(
            float(pydicom.dcmread(root / source, stop_before_pixels=True).RescaleIntercept)
        )
    if collection == "sbu":
        assert intercepts == {0.0, -1024.0}  # both kinds were exercised


@pytest.mark.parametrize("collection", ["sbu", "lung"])
def test_no_identifying_bytes_and_no_extra_tags(request, collection: str) -> None:
    out, report = request.getfixturevalue(collection)
    root = SBU if collection == "sbu" else LUNG
    for source, output in report.files:
        ds = pydicom.dcmread(root / source, stop_before_pixels=True)
        data = (out / output).read_bytes()
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID"):
            value = str(ds.get(keyword, "") or "")
            if value:
                assert value.encode() not in data, f"{keyword} found in {output}"
        with tifffile.TiffFile(out / output) as tif:
            assert {tag.name for tag in tif.pages[0].tags.values()} == BASELINE_TAGS


def test_lung_series_are_ordered_head_to_feet_and_numbered(lung) -> None:
    out, report = lung
    by_folder: dict[str, list[tuple[str, str]]] = {}
    for source, output in report.files:
        by_folder.setdefault(Path(output).parent.as_posix(), []).append((source, output))
    assert set(by_folder) == {"Lung_Dx-A0002/SR_2", "Lung_Dx-A0002/SR_3"}
    for folder, pairs in by_folder.items():
        names = [Path(output).name for _, output in pairs]
        assert names == [f"IM{i:05d}.tif" for i in range(1, 31)]
        z = [
            float(pydicom.dcmread(LUNG / s, stop_before_pixels=True).ImagePositionPatient[2])
            for s, _ in pairs
        ]
        assert all(a > b for a, b in zip(z, z[1:], strict=False)), folder
    numbers = {a.sr_folder: (a.series_number, a.source_folders) for a in report.series}
    assert numbers == {"SR_2": (2, ("B70f-8mm",)), "SR_3": (3, ("B40f-8mm",))}
    text = (out / schema.PATIENT_DETAILS).read_text().splitlines()
    thickness = float(
        pydicom.dcmread(LUNG / "Lung_Dx-A0002" / "B70f-8mm" / "1-01.dcm").SliceThickness
    )
    assert text[1] == f"Lung_Dx-A0002,,,,Negative,{thickness:g},{thickness:g},"


def test_batch_files_of_a_real_ingest(sbu) -> None:
    out, report = sbu
    details = read_patient_details(out / schema.PATIENT_DETAILS)
    patients = sorted(p for p, n in report.written.items() if n > 0)
    assert list(details["Patient ID"]) == patients
    assert set(details["COVID-19 Infection"]) == {"Positive"}
    assert details[["SEX", "AGE", "Date"]].isna().all().all()
    for assignment in report.series:
        row = details[details["Patient ID"] == assignment.patient_id].iloc[0]
        assert row[f"{assignment.sr_folder} Folder thickness(mm)"] == assignment.thickness_mm
    info = json.loads((out / schema.BATCH_INFO).read_text())
    assert info["source"] == "tcia-sbu"
    assert info["ingest"] == json.loads(json.dumps(report.to_dict()))
    assert len(info["ingest"]["skipped"]) == len(report.skipped) > 0
    # no tag value is copied (file paths are recorded as given, and SBU's names hold dates)
    text = (out / schema.BATCH_INFO).read_text() + (out / schema.PATIENT_DETAILS).read_text()
    for ds in headers(SBU).values():
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyTime"):
            assert str(ds.get(keyword)) not in text


def test_ingest_is_deterministic(tmp_path: Path, lung) -> None:
    out, _ = lung
    again = tmp_path / "again"
    ingest_dicom(LUNG, again, "Negative", "tcia-lung")
    assert digest(again) == digest(out)


@pytest.fixture(scope="module")
def odd_sizes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real 568x568 and 616x616 slices (coronal/sagittal reformats), relabelled axial."""
    root = tmp_path_factory.mktemp("odd") / "dicom"
    for source in sorted(SBU.rglob("*.dcm")):
        ds = pydicom.dcmread(source)
        if (ds.Rows, ds.Columns) != (512, 512) and "coronal" in source.parts:
            ds.ImageOrientationPatient = AXIAL
            target = root / "A067967" / "axial" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target)
    return root


def test_odd_sizes_are_skipped_under_skip(tmp_path: Path, odd_sizes: Path) -> None:
    report = ingest_dicom(odd_sizes, tmp_path / "b", "Positive", "x", size_policy="skip")
    assert report.slices_written == 0
    sizes = sorted(reason for _, reason in report.skipped)
    assert sizes == [
        "size 568x568, expected 512x512 (size_policy=skip)",
        "size 616x616, expected 512x512 (size_policy=skip)",
    ]
    assert not list((tmp_path / "b").rglob("*.tif"))


def test_odd_sizes_are_resampled_under_resample(tmp_path: Path, odd_sizes: Path) -> None:
    report = ingest_dicom(odd_sizes, tmp_path / "b", "Positive", "x", size_policy="resample")
    assert report.slices_written == 2 and not report.skipped
    for source, output in report.files:
        direct = negin_by_pydicom(odd_sizes / source)
        assert direct.shape in {(568, 568), (616, 616)}
        got = read_slice(tmp_path / "b" / output)
        assert got.dtype == np.uint16 and got.shape == (512, 512)
        assert direct.min() <= got.min() and got.max() <= direct.max()
        assert abs(float(got.mean()) - float(direct.mean())) < 0.01 * float(direct.max())
        # the centre pixel maps back onto the centre of the original field of view
        centre = direct.shape[0] // 2
        window = direct[centre - 2 : centre + 2, centre - 2 : centre + 2]
        assert window.min() - 1 <= got[255:257, 255:257].mean() <= window.max() + 1


# --------------------------------------------------------------------------- synthetic edge rows

EDGE_ROWS = [
    # id, make_ct keyword arguments, stored values, expected Negin values, ingest keyword arguments
    ("intercept-1024", {"bits_stored": 12}, [0, 24, 1024, 4095], [0, 24, 1024, 4095], {}),
    (
        "intercept-0-signed",
        {"signed": True, "rescale": (1.0, 0.0)},
        [-2000, -1024, -1000, 0, 3000],
        [0, 0, 24, 1024, 4024],
        {},
    ),
    (
        "fractional-slope",
        {"rescale": (0.5, -1024.0)},
        [0, 2047, 2049, 2051, 4000],
        [0, 1024, 1024, 1026, 2000],  # 1023.5 and 1024.5 round half to even
        {},
    ),
    # no intercept: converted only with a stated one (pydicom applies no rescale at all)
    (
        "absent-rescale-assumed",
        {"rescale": (None, None)},
        [0, 100, 1000],
        [1024, 1124, 2024],
        {"assume_intercept": 0.0, "pydicom": "same"},
    ),
    (
        "absent-rescale-assumed-1024",
        {"rescale": (None, None)},
        [0, 24, 1000],
        [0, 24, 1000],
        {"assume_intercept": -1024.0},
    ),
    ("slope-only", {"rescale": (2.0, None)}, [0, 10], [1024, 1044], {"assume_intercept": 0.0}),
    # the slope alone absent: 1 (pydicom then applies no rescale at all)
    ("intercept-only", {"rescale": (None, -1000.0)}, [0, 976], [24, 1000], {"pydicom": "differs"}),
    (
        "signed-12-bit",
        {"signed": True, "bits_stored": 12, "rescale": (1.0, 0.0)},
        [-2048, -1, 0, 2047],
        [0, 1023, 1024, 3071],
        {},
    ),
    (
        "monochrome1-kept-as-hu",
        {"photometric": "MONOCHROME1", "bits_stored": 12},
        [0, 1000, 4095],
        [0, 1000, 4095],
        {},
    ),
    (  # display-inverted stored values (air stored high): the flag mirrors them back
        "monochrome1-inverted",
        {"photometric": "MONOCHROME1", "bits_stored": 12},
        [4095, 3095, 0],
        [0, 1000, 4095],
        {"invert_monochrome1": True},
    ),
    (
        "modality-lut",
        {"rescale": (None, None), "modality_lut": ([256, 0, 16], [4 * i for i in range(256)])},
        [0, 10, 255],
        [1024, 1064, 2044],
        {},
    ),
    (
        "rle-compressed",
        {"transfer_syntax": RLELossless},
        [0, 24, 1024, 3000],
        [0, 24, 1024, 3000],
        {},
    ),
]


@pytest.mark.parametrize(
    ("make_kwargs", "stored", "expected", "ingest_kwargs"),
    [row[1:] for row in EDGE_ROWS],
    ids=[row[0] for row in EDGE_ROWS],
)
def test_edge_rows_convert_to_negin_values(
    tmp_path: Path, make_kwargs: dict, stored: list, expected: list, ingest_kwargs: dict
) -> None:
    dtype = "int16" if make_kwargs.get("signed") else "uint16"
    source = make_ct(
        tmp_path / "in" / "S1" / "axial" / "a.dcm", tiled(stored, dtype), **make_kwargs
    )
    ingest_kwargs = dict(ingest_kwargs)
    pydicom_row = ingest_kwargs.pop("pydicom", "differs" if ingest_kwargs else "same")
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "edge", **ingest_kwargs)
    assert report.skipped == ()
    got = read_slice(tmp_path / "out" / "S1" / "SR_2" / "IM00001.tif")
    np.testing.assert_array_equal(got, tiled(expected, "uint16"))
    if pydicom_row == "same":  # the same as pydicom's own Modality LUT
        np.testing.assert_array_equal(got, negin_by_pydicom(source))
    else:
        assert not np.array_equal(got, negin_by_pydicom(source))
    data = (tmp_path / "out" / "S1" / "SR_2" / "IM00001.tif").read_bytes()
    for secret in (b"Doe^Jane", b"SECRET-ID-7", b"19700101"):
        assert secret not in data


@pytest.mark.parametrize(
    ("orientation", "axial"),
    [
        (AXIAL, True),
        ([-1, 0, 0, 0, -1, 0], True),
        ([0.9962, 0.0872, 0, -0.0872, 0.9962, 0], True),  # 5 degrees in-plane
        ([1, 0, 0, 0, 0.9848, -0.1736], True),  # 10 degrees gantry tilt
        ([1, 0, 0, 0, 0.9397, -0.3420], False),  # 20 degrees
        (CORONAL, False),
        ([0, 1, 0, 0, 0, -1], False),  # sagittal
        ([1.0, -0.013, 0.0, 0.0, 0.0, -1.0], False),  # SBU coronal reformat
        ([0, 1, 0, 1, 0, 0], False),  # transposed axial
    ],
)
def test_is_axial(orientation: list[float], axial: bool) -> None:
    assert is_axial(orientation) is axial


def test_is_axial_needs_six_numbers() -> None:
    with pytest.raises(ValueError, match="6 numbers"):
        is_axial([1, 0, 0])


@pytest.mark.parametrize(
    ("hu", "expected"),
    [
        ([-1024.0, -1000.0, 0.0, 3000.0], [0, 24, 1024, 4024]),
        ([-5000.0, 70000.0], [0, 65535]),
        ([-0.5, 0.5], [1024, 1024]),
    ],
)
def test_hounsfield_to_negin(hu: list[float], expected: list[int]) -> None:
    got = hounsfield_to_negin(np.asarray(hu))
    assert got.dtype == np.uint16 and got.tolist() == expected


def test_resample_keeps_range_and_shape() -> None:
    hu = np.linspace(-1000, 1000, 600 * 600).reshape(600, 600)
    out = resample_hounsfield(hu)
    assert out.shape == (512, 512)
    assert hu.min() <= out.min() and out.max() <= hu.max()


def _subject(root: Path, name: str = "S1") -> Path:
    return root / "in" / name


def test_series_become_sr_folders_by_series_number(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    for number in (7, 3, 5, 9):
        for instance in (1, 2):
            make_ct(
                subject / f"s{number}" / f"{instance}.dcm",
                tiled([1000 + number], "uint16"),
                series_uid=f"1.2.3.{number}",
                series_number=number,
                instance=instance,
                z=float(-instance),
                thickness=float(number),
            )
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Positive", "s")
    assert [(a.sr_folder, a.series_number) for a in report.series] == [
        ("SR_2", 3),
        ("SR_3", 5),
        ("SR_4", 7),
    ]
    assert sorted(f for f, _ in report.skipped) == ["S1/s9/1.dcm", "S1/s9/2.dcm"]
    assert all("extra axial series (SeriesNumber 9" in reason for _, reason in report.skipped)
    for sr, number in (("SR_2", 3), ("SR_3", 5), ("SR_4", 7)):
        assert read_slice(tmp_path / "out" / "S1" / sr / "IM00002.tif")[0, 0] == 1000 + number
    details = read_patient_details(tmp_path / "out" / schema.PATIENT_DETAILS)
    assert details.iloc[0, 5:].tolist() == [3.0, 5.0, 7.0]


def test_one_folder_holding_two_series_gives_two_sr_folders(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    make_ct(subject / "axial" / "a.dcm", tiled([1], "uint16"), series_uid="1.9.1", z=5.0)
    make_ct(
        subject / "axial" / "b.dcm",
        tiled([2], "uint16"),
        series_uid="1.9.2",
        z=50.0,
        thickness=None,
    )
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Positive", "s")
    assert [(a.sr_folder, a.slices) for a in report.series] == [("SR_2", 1), ("SR_3", 1)]
    # SR_3's thickness is unknown (N/A: the folder exists), SR_4 does not exist (empty)
    text = (tmp_path / "out" / schema.PATIENT_DETAILS).read_text().splitlines()
    assert text[1] == "S1,,,,Positive,5,N/A,"


@pytest.mark.parametrize(
    ("slices", "expected_order"),
    [
        # (file name, z, instance): ordered by z descending whatever names and instances say
        ([("a.dcm", 10.0, 1), ("b.dcm", 30.0, 3), ("c.dcm", 20.0, 2)], ["b.dcm", "c.dcm", "a.dcm"]),
        ([("a.dcm", -5.0, 9), ("b.dcm", -50.0, 1), ("c.dcm", 0.0, 4)], ["c.dcm", "a.dcm", "b.dcm"]),
        # one slice without ImagePositionPatient: the series falls back to InstanceNumber
        ([("a.dcm", None, 3), ("b.dcm", 30.0, 1), ("c.dcm", 20.0, 2)], ["b.dcm", "c.dcm", "a.dcm"]),
        ([("a.dcm", None, 2), ("b.dcm", None, 1), ("c.dcm", None, 3)], ["b.dcm", "a.dcm", "c.dcm"]),
    ],
    ids=["z", "negative-z", "fallback-partial", "fallback-all"],
)
def test_slices_are_ordered_head_to_feet(
    tmp_path: Path, slices: list[tuple[str, float | None, int]], expected_order: list[str]
) -> None:
    subject = _subject(tmp_path)
    for value, (name, z, instance) in enumerate(slices, start=100):
        make_ct(subject / "axial" / name, tiled([value], "uint16"), z=z, instance=instance)
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "s")
    order = [Path(source).name for source, _ in report.files]
    assert order == expected_order
    assert [Path(output).name for _, output in report.files] == [
        "IM00001.tif",
        "IM00002.tif",
        "IM00003.tif",
    ]


def _undecodable(uid: str) -> bool:
    return not get_decoder(uid).is_available


SKIP_ROWS = [
    ("coronal", {"orientation": CORONAL}, "not axial"),
    ("no-orientation", {"orientation": None}, "no ImageOrientationPatient"),
    ("pet", {"modality": "PT"}, "modality PT is not CT"),
    ("size", {"pixels": np.zeros((600, 600), np.uint16)}, "size 600x600, expected 512x512"),
]


@pytest.mark.parametrize(
    ("make_kwargs", "reason"), [r[1:] for r in SKIP_ROWS], ids=[r[0] for r in SKIP_ROWS]
)
def test_unusable_slices_are_skipped_with_reason(
    tmp_path: Path, make_kwargs: dict, reason: str
) -> None:
    kwargs = dict(make_kwargs)
    pixels = kwargs.pop("pixels", tiled([1000], "uint16"))
    make_ct(_subject(tmp_path) / "axial" / "bad.dcm", pixels, **kwargs)
    make_ct(_subject(tmp_path) / "axial" / "good.dcm", tiled([1000], "uint16"), z=10.0)
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "s")
    assert len(report.skipped) == 1
    file, why = report.skipped[0]
    assert file == "S1/axial/bad.dcm" and reason in why
    assert report.written == {"S1": 1}


@pytest.mark.skipif(not _undecodable(HTJ2KLossless), reason="an HTJ2K decoder is installed here")
def test_undecodable_transfer_syntax_is_named(tmp_path: Path) -> None:
    """High-Throughput JPEG 2000: no installed handler (GDCM decodes JPEG-LS, JPEG Lossless
    and JPEG 2000), so the slice is skipped with the syntax's name and UID."""
    make_ct(
        _subject(tmp_path) / "axial" / "htj2k.dcm",
        tiled([1], "uint16"),
        transfer_syntax=HTJ2KLossless,
    )
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "s")
    ((file, reason),) = report.skipped
    assert file == "S1/axial/htj2k.dcm"
    assert "High-Throughput JPEG 2000" in reason and HTJ2KLossless in reason
    assert report.written == {"S1": 0}
    assert read_patient_details(tmp_path / "out" / schema.PATIENT_DETAILS).empty


def test_layout_oddities_are_reported(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    make_ct(subject / "axial" / "ok.dcm", tiled([1000], "uint16"))
    make_ct(subject / "top.dcm", tiled([1000], "uint16"))  # directly under the subject
    make_ct(subject / "axial" / "deeper" / "x.dcm", tiled([1000], "uint16"))
    make_ct(tmp_path / "in" / "root.dcm", tiled([1000], "uint16"))
    (subject / "axial" / "notes.txt").write_text("hello")
    (subject / "axial" / ".DS_Store").write_bytes(b"\0\0")
    make_ct(subject / ".trash" / "old.dcm", tiled([1000], "uint16"))
    shutil.copy(subject / "axial" / "ok.dcm", subject / "axial" / "copy.dcm")  # same SOP UID
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "s")
    reasons = dict(report.skipped)
    assert set(reasons) == {
        "root.dcm",
        "S1/axial/notes.txt",
        "S1/axial/.DS_Store",
        "S1/.trash/old.dcm",
        "S1/axial/ok.dcm",
    }
    assert "not inside a subject folder" in reasons["root.dcm"]
    assert "not a readable DICOM" in reasons["S1/axial/notes.txt"]
    assert reasons["S1/axial/.DS_Store"] == "hidden file"
    assert reasons["S1/.trash/old.dcm"] == "inside a hidden folder"
    assert reasons["S1/axial/ok.dcm"] == "duplicate SOPInstanceUID of S1/axial/copy.dcm"
    # any depth below the subject is read; one SeriesInstanceUID is one series
    assert {source for source, _ in report.files} == {
        "S1/axial/copy.dcm",
        "S1/axial/deeper/x.dcm",
        "S1/top.dcm",
    }
    assert {output for _, output in report.files} == {f"S1/SR_2/IM0000{i}.tif" for i in (1, 2, 3)}


def test_patients_and_keys(tmp_path: Path) -> None:
    for subject in ("P2", "P1", "EMPTY"):
        (tmp_path / "in" / subject).mkdir(parents=True)
    make_ct(_subject(tmp_path, "P1") / "a" / "1.dcm", tiled([1], "uint16"))
    make_ct(_subject(tmp_path, "P2") / "a" / "1.dcm", tiled([2], "uint16"), sop_uid="1.2.3.99")
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", schema.Label.POSITIVE, "site-a")
    assert report.written == {"EMPTY": 0, "P1": 1, "P2": 1}
    assert report.to_dict()["patients"] == 2
    details = read_patient_details(tmp_path / "out" / schema.PATIENT_DETAILS)
    assert details["Patient ID"].tolist() == ["P1", "P2"]
    assert not (tmp_path / "out" / "EMPTY").exists()
    assert json.loads((tmp_path / "out" / schema.BATCH_INFO).read_text())["source"] == "site-a"
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"label": "positive"}, ValueError, r"label must be one of \['Positive', 'Negative'\]"),
        (
            {"size_policy": "crop"},
            ValueError,
            "size_policy: expected one of skip, resample; got 'crop'",
        ),
        ({"source": "a/b"}, ValueError, "source must be"),
        ({"source": ""}, ValueError, "source must be"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    make_ct(_subject(tmp_path) / "a" / "1.dcm", tiled([1], "uint16"))
    arguments = {"label": "Positive", "source": "s", **kwargs}
    with pytest.raises(error, match=message):
        ingest_dicom(tmp_path / "in", tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_refuses_missing_input_and_non_empty_output(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest_dicom(tmp_path / "nothing", tmp_path / "out", "Positive", "s")
    make_ct(_subject(tmp_path) / "a" / "1.dcm", tiled([1], "uint16"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        ingest_dicom(tmp_path / "in", tmp_path / "out", "Positive", "s")
    with pytest.raises(ValueError, match="inside the DICOM folder"):
        ingest_dicom(tmp_path / "in", tmp_path / "in" / "out", "Positive", "s")


def test_size_policy_enum() -> None:
    assert parse_enum(SizePolicy, "resample", "size_policy") is SizePolicy.RESAMPLE
    assert pd.Series([p.value for p in SizePolicy]).tolist() == ["skip", "resample"]
