"""DICOM as the standard says (issue 32 item 5): JPEG Lossless and JPEG 2000 slices decode
through a permissively licensed decoder (GDCM, BSD-3-Clause), and a MONOCHROME1 slice whose HU
are implausible is refused, naming the file and the ``--invert-monochrome1`` flag.

The compressed files are real: a real TCIA CT slice transcoded by GDCM's own encoder, and the
CT slice that pydicom ships compressed in its wheel (``J2K_pixelrep_mismatch.dcm``)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import SHARED_DATA
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1

from covidct.batch.dicom import MAX_CORNER_HU, corner_hounsfield, ingest_dicom
from covidct.cli import EXIT_INVALID, main

LUNG_SERIES = SHARED_DATA / "tcia" / "lung-pet-ct-dx" / "Lung_Dx-A0002" / "B40f-8mm"
#: the pydicom transfer syntax -> the GDCM name of the same syntax
GDCM_SYNTAX = {
    JPEGLosslessSV1: "JPEGLosslessProcess14_1",
    JPEGLossless: "JPEGLosslessProcess14",
    JPEG2000Lossless: "JPEG2000Lossless",
}


def transcode(source: Path, target: Path, syntax: str) -> Path:
    """Re-encode ``source`` into the transfer syntax ``syntax`` with GDCM's encoder."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read(), source
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, GDCM_SYNTAX[syntax])))
    change.SetInput(reader.GetImage())
    assert change.Change(), syntax
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write(), target
    assert pydicom.dcmread(target, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    return target


def negin(path: Path) -> np.ndarray:
    """Expected Negin values of an uncompressed slice, computed here from its tags."""
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return np.clip(np.rint(hu + 1024), 0, 65535).astype(np.uint16)


def test_the_decoder_is_permissively_licensed() -> None:
    """python-gdcm's wrapper is Apache-2.0 over GDCM (BSD-3-Clause); the GPL JPEG plugin
    (pylibjpeg-libjpeg) is not installed."""
    meta = importlib.metadata.metadata("python-gdcm")
    licence = meta.get("License-Expression") or meta.get("License") or ""
    assert licence in {"Apache-2.0", "BSD-3-Clause", "BSD"}, licence
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("pylibjpeg-libjpeg")


@pytest.mark.parametrize("syntax", list(GDCM_SYNTAX), ids=["jpeg-ll-sv1", "jpeg-ll", "j2k-ll"])
def test_compressed_slices_convert_like_their_uncompressed_source(
    tmp_path: Path, syntax: str
) -> None:
    """Issue 32: JPEG Lossless and JPEG 2000 slices were skipped (no decoder installed)."""
    sources = sorted(LUNG_SERIES.glob("*.dcm"))[10:13]
    for index, source in enumerate(sources):
        transcode(source, tmp_path / "in" / "S1" / "series" / f"{index}.dcm", syntax)
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "s")
    assert report.skipped == ()
    assert report.written == {"S1": 3}
    by_source = {Path(src).name: out for src, out in report.files}
    for index, source in enumerate(sources):
        written = tifffile.imread(tmp_path / "out" / by_source[f"{index}.dcm"])
        np.testing.assert_array_equal(written, negin(source))


def test_the_ct_slice_pydicom_ships_in_jpeg_2000_converts(tmp_path: Path) -> None:
    """pydicom's bundled 512x512 CT slice, JPEG 2000 lossless (in the wheel: read offline; its
    gantry tilt of 22 degrees is set to axial here, the compressed pixels are untouched)."""
    bundled = get_testdata_file("J2K_pixelrep_mismatch.dcm", download=False)
    assert bundled is not None
    ds = pydicom.dcmread(bundled)
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless and ds.Modality == "CT"
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    target = tmp_path / "in" / "S1" / "series" / "j2k.dcm"
    target.parent.mkdir(parents=True)
    ds.save_as(target)
    report = ingest_dicom(tmp_path / "in", tmp_path / "out", "Negative", "s")
    assert report.skipped == (), report.skipped
    written = tifffile.imread(tmp_path / "out" / "S1" / "SR_2" / "IM00001.tif")
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    expected = np.clip(np.rint(ds.pixel_array * slope + intercept + 1024), 0, 65535)
    np.testing.assert_array_equal(written, expected)
    hu = written.astype(np.float64) - 1024
    corners = corner_hounsfield(hu)
    assert corners is not None and corners < -900  # air or padding at the corners


def _display_inverted(source: Path, target: Path) -> np.ndarray:
    """Write ``source`` as a MONOCHROME1 file whose stored values are display-inverted (the
    broken producer of the finding); return the original's expected Negin values."""
    ds = pydicom.dcmread(source)
    expected = negin(source)
    high = 2 ** int(ds.BitsStored) - 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    stored = high - ds.pixel_array.astype(np.int64)
    ds.PixelData = stored.astype(ds.pixel_array.dtype).tobytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return expected


def test_a_display_inverted_monochrome1_series_is_refused_naming_file_and_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 32: it converted with exit 0 and no warning, air at about +2800 HU."""
    sources = sorted(LUNG_SERIES.glob("*.dcm"))[10:12]
    for index, source in enumerate(sources):
        _display_inverted(source, tmp_path / "in" / "S1" / "series" / f"{index}.dcm")
    args = ["ingest-dicom", str(tmp_path / "in"), str(tmp_path / "out")]
    assert main([*args, "--label", "Negative", "--source", "s"]) == EXIT_INVALID
    out = capsys.readouterr().out
    assert "S1/series/0.dcm" in out and "--invert-monochrome1" in out
    assert "MONOCHROME1 slice with implausible HU" in out
    assert not list((tmp_path / "out").rglob("*.tif"))


def test_a_correct_monochrome1_file_converts_as_hu_and_the_flag_is_refused(
    tmp_path: Path,
) -> None:
    """By the standard the Modality LUT output is HU whatever the polarity: a MONOCHROME1 tag
    on correct values converts to the same HU; mirroring it with the flag gives implausible HU
    and is refused, naming the flag."""
    source = sorted(LUNG_SERIES.glob("*.dcm"))[12]
    ds = pydicom.dcmread(source)
    ds.PhotometricInterpretation = "MONOCHROME1"
    target = tmp_path / "in" / "S1" / "series" / "a.dcm"
    target.parent.mkdir(parents=True)
    ds.save_as(target)
    report = ingest_dicom(tmp_path / "in", tmp_path / "kept", "Negative", "s")
    assert report.skipped == ()
    written = tifffile.imread(tmp_path / "kept" / "S1" / "SR_2" / "IM00001.tif")
    np.testing.assert_array_equal(written, negin(source))
    flipped = ingest_dicom(
        tmp_path / "in", tmp_path / "flipped", "Negative", "s", invert_monochrome1=True
    )
    ((file, reason),) = flipped.skipped
    assert file == "S1/series/a.dcm"
    assert "--invert-monochrome1" in reason and "convert without it" in reason


def test_corner_hounsfield_leaves_padding_out() -> None:
    hu = np.full((64, 64), 3000.0)  # padding stored high all round the circle
    hu[3, 3] = hu[60, 60] = -1000.0  # air inside the circle reaching two corner squares
    padding = hu == 3000.0
    assert corner_hounsfield(hu) == 3000.0
    assert corner_hounsfield(hu) > MAX_CORNER_HU
    assert corner_hounsfield(hu, padding) == -1000.0
    assert corner_hounsfield(hu, np.ones_like(padding)) is None
