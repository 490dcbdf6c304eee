"""Tests for covidct.batch.contract: Negin slices, Patient_details.csv and batch.json on real
files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from tiff_tags import BASELINE_TAGS

from covidct import schema
from covidct.batch.contract import (
    UNKNOWN_THICKNESS,
    PatientDetailsError,
    batch_source,
    field_problems,
    parse_thickness,
    read_batch_info,
    read_patient_details,
    read_patient_details_text,
    write_batch_info,
    write_patient_details,
)
from covidct.batch.slices import SliceReadError, read_slice, slice_name, write_slice

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_DETAILS = SHARED_DATA / "covid-ctset" / schema.PATIENT_DETAILS


def _ramp(shape: tuple[int, int] = schema.SLICE_SHAPE) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]) % 5000).astype(np.uint16).reshape(shape)


# --------------------------------------------------------------------------- slices


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(schema.SLICE_SHAPE, np.uint16),
        np.full(schema.SLICE_SHAPE, 65535, np.uint16),
        _ramp(),
        np.random.default_rng(0).integers(0, 65536, schema.SLICE_SHAPE).astype(np.uint16),
    ],
    ids=["zeros", "max", "ramp", "random"],
)
def test_write_then_read_gives_the_same_pixels(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "p" / "SR_2" / "IM00001.tif"
    write_slice(path, array)
    back = read_slice(path)
    assert back.dtype == np.uint16 and back.dtype.byteorder in "=<|"
    np.testing.assert_array_equal(back, array)


def test_written_slice_is_deterministic_and_carries_only_baseline_tags(tmp_path: Path) -> None:
    write_slice(tmp_path / "a.tif", _ramp())
    write_slice(tmp_path / "b.tif", _ramp())
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert len(tif.pages) == 1
        page = tif.pages[0]
        assert {tag.name for tag in page.tags.values()} == BASELINE_TAGS
        assert page.compression == 1  # none
        assert tif.byteorder == "<"
    assert b"tifffile" not in (tmp_path / "a.tif").read_bytes()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(schema.SLICE_SHAPE, np.float32), "uint16"),
        (np.zeros(schema.SLICE_SHAPE, np.int16), "uint16"),
        (np.zeros(schema.SLICE_SHAPE, np.uint8), "uint16"),
        (np.zeros((2, 512, 512), np.uint16), "2-D"),
        (np.zeros(512, np.uint16), "2-D"),
    ],
    ids=["float32", "int16", "uint8", "3-D", "1-D"],
)
def test_write_slice_refuses_non_uint16_or_non_2d(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    path = tmp_path / "bad.tif"
    with pytest.raises(ValueError, match=message):
        write_slice(path, array)
    assert not path.exists()


def _not_tiff(path: Path) -> None:
    path.write_bytes(b"hello, not an image\n" * 50)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    write_slice(path, _ramp())
    path.write_bytes(path.read_bytes()[:300_000])


def _header_only(path: Path) -> None:
    write_slice(path, _ramp())
    path.write_bytes(path.read_bytes()[:100])


def _multipage(path: Path) -> None:
    tifffile.imwrite(path, np.stack([_ramp(), _ramp()]), metadata=None)


def _tiff_of(dtype: str, shape: tuple[int, ...] = schema.SLICE_SHAPE, **kwargs: object):
    def write(path: Path) -> None:
        tifffile.imwrite(path, np.zeros(shape, dtype=dtype), metadata=None, **kwargs)

    return write


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_not_tiff, "cannot decode TIFF"),
        (_empty, "cannot decode TIFF"),
        (_truncated, "cannot decode TIFF"),
        (_header_only, "cannot decode TIFF"),
        (_multipage, "2 pages"),
        (_tiff_of("uint8"), "expected uint16 pixels, got uint8"),
        (_tiff_of("int16"), "expected uint16 pixels, got int16"),
        (_tiff_of("float32"), "expected uint16 pixels, got float32"),
        (_tiff_of("uint32"), "expected uint16 pixels, got uint32"),
        (_tiff_of("uint16", (512, 512, 3), photometric="rgb"), "2-D single-channel"),
        (_tiff_of("uint16", (256, 256)), "expected shape (512, 512), got (256, 256)"),
        (lambda path: None, "no such file"),
    ],
    ids=[
        "text",
        "empty",
        "truncated-pixels",
        "truncated-header",
        "multipage",
        "uint8",
        "int16",
        "float32",
        "uint32",
        "rgb",
        "256x256",
        "missing",
    ],
)
def test_read_slice_names_the_file_and_the_reason(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "IM00001.tif"
    make(path)
    with pytest.raises(SliceReadError) as caught:
        read_slice(path)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [{"byteorder": ">"}, {"compression": "zlib"}, {"byteorder": ">", "compression": "zlib"}],
    ids=["big-endian", "deflate", "big-endian-deflate"],
)
def test_read_slice_decodes_other_valid_encodings(tmp_path: Path, kwargs: dict) -> None:
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, _ramp(), metadata=None, **kwargs)
    back = read_slice(path)
    assert back.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(back, _ramp())


def test_read_slice_accepts_any_shape_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "small.tif"
    write_slice(path, _ramp((256, 300)))
    assert read_slice(path, expected_shape=None).shape == (256, 300)


@pytest.mark.parametrize(("index", "name"), [(1, "IM00001.tif"), (42, "IM00042.tif")])
def test_slice_name(index: int, name: str) -> None:
    assert slice_name(index) == name


def test_slice_name_refuses_zero() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        slice_name(0)


# --------------------------------------------------------------------------- Patient_details.csv


def test_patient_details_written_like_the_published_file(tmp_path: Path) -> None:
    rows = [
        {"Patient ID": "p1", "COVID-19 Infection": "Positive", "SR_2 Folder thickness(mm)": 5.0},
        {
            "Patient ID": "p2",
            "SEX": "F",
            "AGE": "053Y",
            "Date": "20200407",
            "COVID-19 Infection": "Negative",
            "SR_2 Folder thickness(mm)": 1.5,
            "SR_3 Folder thickness(mm)": math.nan,
            "SR_4 Folder thickness(mm)": 8,
        },
        {
            "Patient ID": "p3",
            "COVID-19 Infection": "Negative",
            "SR_2 Folder thickness(mm)": UNKNOWN_THICKNESS,
            "SR_3 Folder thickness(mm)": "6",
        },
    ]
    path = tmp_path / schema.PATIENT_DETAILS
    write_patient_details(path, rows)
    expected = (
        ",".join(schema.PATIENT_DETAILS_COLUMNS) + "\r\n"
        "p1,,,,Positive,5,,\r\n"
        "p2,F,053Y,20200407,Negative,1.5,,8\r\n"
        "p3,,,,Negative,N/A,6,\r\n"
    )
    assert path.read_bytes() == expected.encode()
    back = read_patient_details(path)
    assert tuple(back.columns) == schema.PATIENT_DETAILS_COLUMNS
    assert list(back["Patient ID"]) == ["p1", "p2", "p3"]
    assert back["Date"].iloc[1] == "20200407"
    assert pd.isna(back["SEX"].iloc[0])
    assert back["SR_2 Folder thickness(mm)"].dtype == np.float64
    assert back["SR_2 Folder thickness(mm)"].tolist()[:2] == [5.0, 1.5]
    assert math.isnan(back["SR_3 Folder thickness(mm)"].iloc[1])
    assert math.isnan(back["SR_2 Folder thickness(mm)"].iloc[2])  # N/A reads as unknown


def test_real_patient_details_round_trips_byte_for_byte(tmp_path: Path) -> None:
    details = read_patient_details(REAL_DETAILS)
    raw = pd.read_csv(REAL_DETAILS, dtype=str, keep_default_na=False)
    assert len(details) == len(raw)
    assert details["Patient ID"].is_unique
    assert (raw == UNKNOWN_THICKNESS).any().any()
    out = tmp_path / schema.PATIENT_DETAILS
    write_patient_details(out, raw.to_dict("records"))
    assert out.read_bytes() == REAL_DETAILS.read_bytes()
    # parsed numbers give the same file once unknown thicknesses are marked N/A again
    parsed = details.astype(object).where(details.notna(), UNKNOWN_THICKNESS)
    write_patient_details(out, parsed.to_dict("records"))
    assert out.read_bytes() == REAL_DETAILS.read_bytes()


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([{"Patient ID": "p1", "COVID-19 Infection": "Positive", "Name": "x"}], "unknown columns"),
        ([{"Patient ID": "p1", "COVID-19 Infection": "positive"}], "must be one of"),
        ([{"Patient ID": "p1"}], "must be one of"),
        ([{"COVID-19 Infection": "Positive"}], "has no 'Patient ID'"),
        (
            [
                {"Patient ID": "p1", "COVID-19 Infection": "Positive"},
                {"Patient ID": "p1", "COVID-19 Infection": "Negative"},
            ],
            "more than once",
        ),
        ([{"Patient ID": "p1", "COVID-19 Infection": "Positive", "SEX": "F\nM"}], "line breaks"),
        (
            [
                {
                    "Patient ID": "p1",
                    "COVID-19 Infection": "Positive",
                    "SR_2 Folder thickness(mm)": "x",
                }
            ],
            "must be a number, empty or 'N/A'",
        ),
    ],
    ids=[
        "unknown-column",
        "lowercase-label",
        "no-label",
        "no-id",
        "duplicate",
        "newline",
        "thickness",
    ],
)
def test_write_patient_details_refuses_bad_rows(tmp_path: Path, rows: list, reason: str) -> None:
    path = tmp_path / schema.PATIENT_DETAILS
    with pytest.raises(ValueError, match=reason):
        write_patient_details(path, rows)
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Patient ID,SEX\np1,F\n", "expected columns"),
        (
            ",".join(schema.PATIENT_DETAILS_COLUMNS) + ",Extra\np1,,,,Positive,,,,x\n",
            "expected columns",
        ),
        (",".join(schema.PATIENT_DETAILS_COLUMNS) + "\np1,,,,Positive,thin,,\n", "is not a number"),
        ("", "cannot parse"),
    ],
    ids=["missing-columns", "extra-column", "bad-thickness", "empty"],
)
def test_read_patient_details_refuses_malformed_files(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / schema.PATIENT_DETAILS
    path.write_text(text)
    with pytest.raises(PatientDetailsError, match=reason) as caught:
        read_patient_details(path)
    assert caught.value.path == path


def test_read_patient_details_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PatientDetailsError, match="no such file"):
        read_patient_details(tmp_path / schema.PATIENT_DETAILS)


# --------------------------------------------------------------------------- batch.json


def test_batch_without_batch_json_has_the_default_source(tmp_path: Path) -> None:
    assert batch_source(tmp_path) == schema.DEFAULT_SOURCE
    assert read_batch_info(tmp_path) == {"source": schema.DEFAULT_SOURCE}


def test_batch_info_round_trip_is_deterministic(tmp_path: Path) -> None:
    info = {"source": "tcia-sbu", "ingest": {"b": 2, "a": [1, 2]}}
    path = write_batch_info(tmp_path, info)
    first = path.read_bytes()
    write_batch_info(tmp_path, dict(reversed(list(info.items()))))
    assert path.read_bytes() == first
    assert read_batch_info(tmp_path) == info
    assert batch_source(tmp_path) == "tcia-sbu"


@pytest.mark.parametrize(
    ("content", "reason"),
    [("{not json", "cannot read JSON"), ("[1, 2]", "JSON object"), ('{"x": 1}', "source")],
    ids=["broken", "list", "no-source"],
)
def test_read_batch_info_refuses_bad_files(tmp_path: Path, content: str, reason: str) -> None:
    (tmp_path / schema.BATCH_INFO).write_text(content)
    with pytest.raises(ValueError, match=reason):
        read_batch_info(tmp_path)


def test_write_batch_info_needs_a_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        write_batch_info(tmp_path, {"source": ""})
    assert not (tmp_path / schema.BATCH_INFO).exists()
    write_batch_info(tmp_path, {"source": "x"})
    assert json.loads((tmp_path / schema.BATCH_INFO).read_text())["source"] == "x"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("5", 5.0), (" 2.5 ", 2.5), ("", None), (None, None), (math.nan, None), ("N/A", math.nan)],
)
def test_thickness_rule(cell: object, expected: float | None) -> None:
    mm = parse_thickness(cell)
    if expected is None or not math.isnan(expected):
        assert mm == expected
    else:
        assert mm is not None and math.isnan(mm)


@pytest.mark.parametrize("cell", ["thin", "5mm", "nan", "inf", "n/a"])
def test_thickness_rule_refuses(cell: str) -> None:
    with pytest.raises(ValueError, match="is not a thickness in mm, empty or N/A"):
        parse_thickness(cell)


@pytest.mark.parametrize(
    ("cell", "typed", "refused"),
    [("2.5", 2.5, False), ("N/A", math.nan, False), ("", math.nan, False), ("thin", None, True)],
)
def test_validation_and_the_typed_reader_read_thickness_alike(
    tmp_path: Path, cell: str, typed: float | None, refused: bool
) -> None:
    """What validation lets through, the typed reader (training, drift, subgroups) reads, and
    what the typed reader refuses, validation has refused already: one rule for both."""
    text = ",".join(schema.PATIENT_DETAILS_COLUMNS) + f"\np1,F,050Y,20200401,Positive,{cell},,\n"
    (tmp_path / schema.PATIENT_DETAILS).write_text(text)
    row = read_patient_details_text(tmp_path).iloc[0].to_dict()
    problems = field_problems(row)
    assert bool(problems) is refused, problems
    if refused:
        with pytest.raises(PatientDetailsError, match="is not a number"):
            read_patient_details(tmp_path / schema.PATIENT_DETAILS)
    else:
        value = read_patient_details(tmp_path / schema.PATIENT_DETAILS).iloc[0, 5]
        assert typed is not None
        assert value == typed or (math.isnan(value) and math.isnan(typed))
