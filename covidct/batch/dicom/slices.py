"""One DICOM CT slice: header checks and the stored -> HU -> Negin pixel maths.

Rules 2, 5, 6 and 7 of :mod:`covidct.batch.dicom` (slice checks, Modality LUT and rescale,
MONOCHROME1, resampling).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum
from math import cos, radians

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, get_decoder
from scipy import ndimage

from covidct import schema

logger = logging.getLogger(__name__)

#: Highest plausible median HU of a slice's four corner squares (padding pixels left out): the
#: corners of an axial CT lie outside the body (air, -1000 HU) or outside the reconstruction
#: circle (padding, -1024 to -3024 HU); at most a small field of view puts soft tissue (about
#: +40 HU) there. Display-inverted air lands at +999 HU (signed 12/16-bit, intercept 0) or far
#: above (+3047 HU: 12-bit, intercept -1024).
MAX_CORNER_HU: float = 500.0
#: Side of each corner square, as a fraction of the image side (32 pixels of 512).
CORNER_FRACTION: float = 1 / 16
#: Largest angle (degrees) between a row/column cosine and the x/y axis for a slice to be axial.
AXIAL_TOLERANCE_DEG: float = 10.0
_NEGIN_MAX = int(np.iinfo(np.uint16).max)


class SizePolicy(StrEnum):
    """What to do with a slice that is not 512x512."""

    SKIP = "skip"
    RESAMPLE = "resample"


# --------------------------------------------------------------------------- pixel maths


def is_axial(orientation: Sequence[float], tolerance_deg: float = AXIAL_TOLERANCE_DEG) -> bool:
    """True when ImageOrientationPatient (row cosine x,y,z, column cosine x,y,z) is axial.

    Axial: the row cosine within ``tolerance_deg`` of +-x and the column cosine within it of +-y.
    Raises ValueError when ``orientation`` does not hold six numbers.
    """
    values = np.asarray(orientation, dtype=float)
    if values.shape != (6,):
        raise ValueError(f"ImageOrientationPatient needs 6 numbers, got {list(orientation)}")
    row, column = values[:3], values[3:]
    row = row / (np.linalg.norm(row) or 1.0)
    column = column / (np.linalg.norm(column) or 1.0)
    limit = cos(radians(tolerance_deg))
    return bool(abs(row[0]) >= limit and abs(column[1]) >= limit)


def _has_value(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and ds[keyword].value not in (None, "")


def rescale_problem(ds: Dataset, assume_intercept: float | None = None) -> str | None:
    """Why the HU of a slice cannot be known (rule 5 of the module docstring); None when it can.

    RescaleIntercept absent and no ModalityLUTSequence to use instead: HU is unknown (an intercept
    of 0 and of -1024 are both common), unless ``assume_intercept`` states it.
    """
    if _has_value(ds, "RescaleIntercept") or assume_intercept is not None:
        return None
    if "ModalityLUTSequence" in ds and not _has_value(ds, "RescaleSlope"):
        return None
    return (
        "no RescaleIntercept: HU unknown (0 and -1024 are both common); convert only with an"
        " explicit assumption (--assume-intercept, e.g. -1024)"
    )


def rescale_assumption(ds: Dataset, assume_intercept: float | None = None) -> str | None:
    """The assumption converting ``ds`` rests on (recorded in ``batch.json``); None when none."""
    has_slope, has_intercept = _has_value(ds, "RescaleSlope"), _has_value(ds, "RescaleIntercept")
    if has_slope and has_intercept:
        return None
    if not has_slope and not has_intercept and "ModalityLUTSequence" in ds:
        return None
    assumed = [] if has_slope else ["RescaleSlope absent: 1 assumed"]
    if not has_intercept:
        assumed.append(
            f"RescaleIntercept absent: {assume_intercept:g} assumed (--assume-intercept)"
        )
    return "; ".join(assumed)


def stored_to_hounsfield(
    stored: np.ndarray, ds: Dataset, assume_intercept: float | None = None
) -> np.ndarray:
    """Apply the Modality LUT: stored values (as from ``ds.pixel_array``) -> HU, float64.

    HU = stored x RescaleSlope + RescaleIntercept (slope absent: 1; intercept absent:
    ``assume_intercept``); with both absent, a ModalityLUTSequence is applied by pydicom's
    ``apply_modality_lut``. Shapes are kept. Raises ValueError when the intercept is absent,
    no LUT replaces it and ``assume_intercept`` is None (:func:`rescale_problem`).
    """
    problem = rescale_problem(ds, assume_intercept)
    if problem is not None:
        raise ValueError(problem)
    has_slope, has_intercept = _has_value(ds, "RescaleSlope"), _has_value(ds, "RescaleIntercept")
    if not has_slope and not has_intercept and "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    slope = float(ds.RescaleSlope) if has_slope else 1.0
    intercept = float(ds.RescaleIntercept) if has_intercept else float(assume_intercept or 0.0)
    return stored.astype(np.float64) * slope + intercept


def hounsfield_to_negin(hu: np.ndarray) -> np.ndarray:
    """HU (any real dtype) -> Negin uint16 values ``clip(rint(HU + 1024), 0, 65535)``."""
    values = np.rint(np.asarray(hu, dtype=np.float64) + schema.HU_OFFSET)
    return np.clip(values, 0, _NEGIN_MAX).astype(np.uint16)


def invert_stored(stored: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Mirror stored values inside their representable range: ``min + max - stored``.

    Range: [0, 2**bits - 1] unsigned, [-2**(bits-1), 2**(bits-1) - 1] signed. Returns int64.
    """
    low, high = (
        (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1)
        if signed
        else (0, 2**bits_stored - 1)
    )
    return low + high - stored.astype(np.int64)


def resample_hounsfield(hu: np.ndarray, shape: tuple[int, int] = schema.SLICE_SHAPE) -> np.ndarray:
    """Resample a 2-D HU image to ``shape`` (bilinear, pixel-area grid, edges replicated).

    Returns float64 of exactly ``shape``; see rule 7 of the module docstring.
    """
    factors = (shape[0] / hu.shape[0], shape[1] / hu.shape[1])
    out = ndimage.zoom(
        np.asarray(hu, dtype=np.float64), factors, order=1, mode="nearest", grid_mode=True
    )
    if out.shape != tuple(shape):  # zoom rounds the output size; guard against an off-by-one
        raise ValueError(f"resampling {hu.shape} gave {out.shape}, expected {tuple(shape)}")
    return out


def corner_hounsfield(hu: np.ndarray, padding: np.ndarray | None = None) -> float | None:
    """Median HU (float) of the four corner squares of the 2-D image ``hu`` (side
    :data:`CORNER_FRACTION` of the image's, at least 1 pixel), leaving out the pixels where
    the boolean mask ``padding`` (same shape) is True; None when every corner pixel is padding."""
    rows, columns = hu.shape
    side_r, side_c = max(1, int(rows * CORNER_FRACTION)), max(1, int(columns * CORNER_FRACTION))
    mask = np.zeros(hu.shape, dtype=bool)
    for r in (slice(0, side_r), slice(rows - side_r, rows)):
        for c in (slice(0, side_c), slice(columns - side_c, columns)):
            mask[r, c] = True
    if padding is not None:
        mask &= ~padding
    return float(np.median(hu[mask])) if mask.any() else None


def _padding_mask(stored: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """Pixels equal to PixelPaddingValue (or inside it and PixelPaddingRangeLimit)."""
    if "PixelPaddingValue" not in ds or ds.PixelPaddingValue is None:
        return None
    first = int(ds.PixelPaddingValue)
    limit = ds.get("PixelPaddingRangeLimit")
    last = int(limit) if limit is not None else first
    low, high = min(first, last), max(first, last)
    return (stored >= low) & (stored <= high)


def monochrome1_problem(
    hu: np.ndarray, stored: np.ndarray, ds: Dataset, inverted: bool
) -> str | None:
    """Why the HU of a MONOCHROME1 slice are implausible (rule 6 of :mod:`covidct.batch.dicom`),
    or None: the median HU of its corners (:func:`corner_hounsfield`, padding left out) is above
    :data:`MAX_CORNER_HU`, where air or padding belongs. The reason names the figure and the
    ``--invert-monochrome1`` flag (to add when ``inverted`` is False, to drop when True).
    ``hu``: float HU before resampling; ``stored``: the stored values as decoded (before any
    inversion), same shape."""
    if str(ds.get("PhotometricInterpretation", "")) != "MONOCHROME1":
        return None
    corners = corner_hounsfield(hu, _padding_mask(stored, ds))
    if corners is None or corners <= MAX_CORNER_HU:
        return None
    advice = (
        "the flag --invert-monochrome1 mirrored a file already stored as HU: convert without it"
        if inverted
        else "the file stores display-inverted values against PS3.3 C.7.6.3.1.2; convert it "
        "with --invert-monochrome1 if it is known to"
    )
    return (
        f"MONOCHROME1 slice with implausible HU: its corners read about "
        f"{round(corners, -2):+.0f} HU (air is -1000, the limit {MAX_CORNER_HU:+.0f}); {advice}"
    )


def dataset_to_negin(
    ds: Dataset,
    *,
    size_policy: SizePolicy = SizePolicy.SKIP,
    invert_monochrome1: bool = False,
    assume_intercept: float | None = None,
) -> np.ndarray:
    """Decode one CT slice and return it as a Negin uint16 (512, 512) array (HU = value - 1024).

    Raises ValueError when the slice is not 512x512 under ``SizePolicy.SKIP``, its rescale is
    unknown (:func:`stored_to_hounsfield`, ``assume_intercept``) or it is a MONOCHROME1 slice
    whose HU are implausible (:func:`monochrome1_problem`, with or without
    ``invert_monochrome1``); pydicom's errors (no decoder, corrupt pixel data) propagate.
    """
    decoded = stored = ds.pixel_array
    if invert_monochrome1 and str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        stored = invert_stored(stored, int(ds.BitsStored), int(ds.PixelRepresentation) == 1)
    hu = stored_to_hounsfield(stored, ds, assume_intercept)
    problem = monochrome1_problem(hu, decoded, ds, invert_monochrome1)
    if problem is not None:
        raise ValueError(problem)
    if hu.shape != schema.SLICE_SHAPE:
        if size_policy is not SizePolicy.RESAMPLE:
            raise ValueError(f"size {hu.shape[0]}x{hu.shape[1]}, expected 512x512")
        hu = resample_hounsfield(hu)
    return hounsfield_to_negin(hu)


# --------------------------------------------------------------------------- header checks


def _transfer_syntax_problem(ds: Dataset) -> str | None:
    uid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if uid is None:
        return None
    try:
        available = get_decoder(uid).is_available
    except NotImplementedError:
        available = False
    if available:
        return None
    return (
        f"transfer syntax {uid.name} ({uid}) cannot be decoded with the installed pydicom handlers"
    )


def _geometry_problems(ds: Dataset, size_policy: SizePolicy) -> list[str]:
    problems: list[str] = []
    orientation = ds.get("ImageOrientationPatient")
    if orientation is None or len(orientation) != 6:
        problems.append("no ImageOrientationPatient, cannot confirm an axial slice")
    elif not is_axial([float(value) for value in orientation]):
        cosines = [round(float(value), 3) for value in orientation]
        problems.append(
            f"not axial: ImageOrientationPatient {cosines} (tolerance {AXIAL_TOLERANCE_DEG} deg)"
        )
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if (rows, columns) != schema.SLICE_SHAPE and size_policy is SizePolicy.SKIP:
        problems.append(f"size {rows}x{columns}, expected 512x512 (size_policy=skip)")
    return problems


def slice_problems(
    ds: Dataset, size_policy: SizePolicy = SizePolicy.SKIP, assume_intercept: float | None = None
) -> list[str]:
    """Reasons (possibly none) why a DICOM header cannot become a Negin slice; rules 2 and 5."""
    problems: list[str] = []
    modality = ds.get("Modality")
    if modality and str(modality) != "CT":
        problems.append(f"modality {modality} is not CT")
    if "PixelData" not in ds:
        return [*problems, "no PixelData"]
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        problems.append(f"multi-frame ({ds.NumberOfFrames} frames)")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        problems.append(f"{ds.SamplesPerPixel} samples per pixel, expected 1")
    problems.extend(_geometry_problems(ds, size_policy))
    rescale = rescale_problem(ds, assume_intercept)
    problems.extend([rescale] if rescale else [])
    codec = _transfer_syntax_problem(ds)
    return problems + ([codec] if codec else [])
