"""The one reader (and writer) of slice files: every TIFF of a batch is opened here.

:func:`read_slice` reads one contract slice for training and prediction (header and
decompression-bomb checks first); :func:`read_slice_facts` records the facts of any file,
hostile ones included, for the manifest without raising; :func:`write_slice` writes the
contract's deterministic bytes.

Pixel statistics of integer images come from one histogram (``numpy.bincount``) instead of
sorting: min, max, mean and the 1st/99th percentiles are exact and equal to ``numpy.min``,
``numpy.max``, ``numpy.mean`` and ``numpy.percentile(..., method="linear")``.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from covidct import schema
from covidct.batch.files import read_regular

SLICE_NAME_FORMAT = "IM{index:05d}.tif"


#: Resource limits checked from a TIFF's header before any pixel is decoded (a contract slice is
#: 512x512 uint16: 524,288 decoded bytes, about 0.5 MB on disk uncompressed). They bound one
#: manifest reader to one file's bytes, one decoded image and its statistics' float64 copies:
#: measured at most 130 MiB per reader process on the worst batch these limits admit, so
#: validation peaks at the validating process (about 0.3 GB with Great Expectations loaded)
#: plus ``workers`` x 130 MiB (``benchmarks/hostile_memory.py``).
MAX_SLICE_FILE_BYTES = 16 * 2**20


MAX_DECODED_BYTES = 4 * 2**20


MAX_BITS_PER_SAMPLE = 64


#: Largest decoded/stored ratio of the image data (deflate of real CT gives about 2 to 4).
MAX_DECODE_RATIO = 1024


class SliceReadError(ValueError):
    """A file is not a readable Negin slice. ``path`` names the file, ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def slice_name(index: int) -> str:
    """Return the file name of the ``index``-th slice of a series (1-based): ``IM00001.tif``."""
    if index < 1:
        raise ValueError(f"slice index must be >= 1, got {index}")
    return SLICE_NAME_FORMAT.format(index=index)


def read_slice(
    path: str | Path, *, expected_shape: tuple[int, int] | None = schema.SLICE_SHAPE
) -> np.ndarray:
    """Read one Negin slice.

    Returns a native-endian uint16 array of shape ``expected_shape`` (default (512, 512)), DICOM
    stored values, HU = value - 1024. Compressed or big-endian TIFFs are decoded when tifffile
    can (the contract asks writers for uncompressed ones; :func:`write_slice` does that).
    ``expected_shape=None`` accepts any 2-D shape.

    Raises SliceReadError (a ValueError; ``.path``, ``.reason``) when the file is missing, is not
    a TIFF, is truncated or corrupt, has more than one page, is not 2-D single-channel, is not
    16-bit unsigned, or has another shape than expected.
    """
    path = Path(path)
    if not path.is_file():
        raise SliceReadError(path, "no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            n_pages = len(tif.pages)
            if n_pages != 1:
                raise SliceReadError(path, f"expected a single-page TIFF, found {n_pages} pages")
            page = tif.pages.first
            problem = tiff_header_problem(page)
            if problem is not None:
                raise SliceReadError(path, problem)
            array = page.asarray()
    except SliceReadError:
        raise
    except Exception as error:  # tifffile raises TiffFileError, ValueError, OSError, ...
        raise SliceReadError(
            path, f"cannot decode TIFF ({type(error).__name__}: {error})"
        ) from error
    return _checked_slice(path, array, expected_shape)


def tiff_header_problem(page: tifffile.TiffPage) -> str | None:
    """Why the first page of a TIFF may not be decoded, judged from its header alone; or None.

    Refused: bits per sample over ``MAX_BITS_PER_SAMPLE`` or a sample format numpy cannot hold,
    a declared image over ``MAX_DECODED_BYTES`` decoded (a "decompression bomb": a small file
    declaring e.g. 20000x20000 pixels), or a decoded/stored ratio over ``MAX_DECODE_RATIO``.
    The reason states the declared shape, the decoded and stored byte counts and the limit.
    """
    bits = int(page.bitspersample)
    if bits > MAX_BITS_PER_SAMPLE:
        return f"declares {bits} bits per sample (limit {MAX_BITS_PER_SAMPLE}); not decoded"
    if page.dtype is None:
        return f"sample format {page.sampleformat} with {bits} bits is not supported; not decoded"
    decoded = math.prod(page.shaped) * page.dtype.itemsize
    stored = max(sum(page.databytecounts), 1)
    shape = "x".join(str(n) for n in page.shape)
    if decoded > MAX_DECODED_BYTES:
        return (
            f"declares {shape} {page.dtype} pixels ({decoded:,} bytes decoded from {stored:,}"
            f" stored), over the {MAX_DECODED_BYTES:,}-byte limit; refused before decoding"
        )
    if decoded / stored > MAX_DECODE_RATIO:
        return (
            f"declares {shape} pixels decoding {stored:,} stored bytes into {decoded:,}"
            f" (ratio {decoded / stored:,.0f}:1, limit {MAX_DECODE_RATIO}:1);"
            " refused before decoding"
        )
    return None


def _checked_slice(
    path: Path, array: np.ndarray, expected_shape: tuple[int, int] | None
) -> np.ndarray:
    if array.ndim != 2:
        raise SliceReadError(path, f"expected a 2-D single-channel image, got shape {array.shape}")
    if array.dtype.kind != "u" or array.dtype.itemsize != 2:
        raise SliceReadError(path, f"expected uint16 pixels, got {array.dtype}")
    if expected_shape is not None and tuple(array.shape) != tuple(expected_shape):
        raise SliceReadError(path, f"expected shape {tuple(expected_shape)}, got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.uint16)


def write_slice(path: str | Path, array: np.ndarray) -> None:
    """Write one Negin slice: ``array`` uint16 (rows, cols), DICOM stored values.

    The TIFF is single-page, uncompressed, little-endian, MinIsBlack, with no description,
    software or date tag (tifffile ``metadata=None``, ``software=False``). Parent folders are
    created. Raises ValueError if ``array`` is not a 2-D uint16 array; the contract's 512x512 shape
    is checked by readers and validation, not here.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{path}: a slice must be 2-D, got shape {array.shape}")
    if array.dtype != np.uint16:
        raise ValueError(f"{path}: a slice must be uint16, got {array.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        np.ascontiguousarray(array, dtype="<u2"),
        byteorder="<",
        photometric="minisblack",
        compression=None,
        metadata=None,
        software=False,
    )


#: Width in pixels of the image frame whose mean is ``border_mean`` (air in a chest CT).
BORDER_WIDTH = 16


#: ASCII TIFF tags that may name a person or a place; present at all -> identifying.
IDENTIFYING_TAG_NAMES: frozenset[str] = frozenset(
    {"Artist", "HostComputer", "DocumentName", "PageName", "Copyright", "Make", "Model"}
)


#: Text in any ASCII tag that looks like DICOM patient identity (name, birth date, id).
IDENTIFYING_TEXT = re.compile(
    r"patient\s*'?s?\s*(name|birth|id\b)|birth\s*date|date\s*of\s*birth|\bdob\b"
    r"|\(0010,\s*00(10|20|30)\)|00100010|00100030",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- one file


def pixel_stats(pixels: np.ndarray) -> dict[str, float | int | None]:
    """Return min, max, mean, p01, p99, border_mean and dark_pixels of a 2-D image.

    ``pixels``: 2-D array (H, W), any numeric dtype. Percentiles follow
    ``numpy.percentile(method="linear")``; unsigned integer images use an exact histogram.
    ``dark_pixels`` counts values < ``schema.DARK_THRESHOLD`` in
    ``pixels[DARK_ROWS[0]:DARK_ROWS[1], DARK_COLS[0]:DARK_COLS[1]]`` (COVID-CTset selection
    window, Rahimzadeh et al. 2021), None when the image is smaller than that window.
    ``border_mean`` is the mean of the outer ``BORDER_WIDTH``-pixel frame (air in chest CT).
    Raises ValueError when ``pixels`` is not 2-D or is empty.
    """
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"pixel_stats expects a non-empty 2-D image, got shape {pixels.shape}")
    if pixels.dtype.kind == "u" and pixels.dtype.itemsize <= 2:
        stats = _histogram_stats(pixels)
    else:
        stats = _sorted_stats(pixels)
    stats["border_mean"] = _border_mean(pixels)
    stats["dark_pixels"] = _dark_pixels(pixels)
    return stats


def _histogram_stats(pixels: np.ndarray) -> dict[str, float | int | None]:
    counts = np.bincount(pixels.ravel())
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    values = np.arange(counts.size, dtype=np.float64)

    def kth(k: int) -> float:
        return float(np.searchsorted(cumulative, k, side="right"))

    def percentile(q: float) -> float:
        position = q * (n - 1)
        low = int(np.floor(position))
        low_value = kth(low)
        return low_value + (position - low) * (kth(min(low + 1, n - 1)) - low_value)

    return {
        "min": kth(0),
        "max": float(counts.size - 1),
        "mean": float(np.dot(counts, values) / n),
        "p01": percentile(0.01),
        "p99": percentile(0.99),
    }


def _sorted_stats(pixels: np.ndarray) -> dict[str, float | int | None]:
    data = pixels.astype(np.float64, copy=False)
    p01, p99 = np.percentile(data, [1.0, 99.0])
    return {
        "min": float(data.min()),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "p01": float(p01),
        "p99": float(p99),
    }


def _border_mean(pixels: np.ndarray) -> float:
    height, width = pixels.shape
    if min(height, width) <= 2 * BORDER_WIDTH:
        return float(pixels.mean())
    inner = pixels[BORDER_WIDTH:-BORDER_WIDTH, BORDER_WIDTH:-BORDER_WIDTH]
    total = float(pixels.sum(dtype=np.float64)) - float(inner.sum(dtype=np.float64))
    return total / (pixels.size - inner.size)


def _dark_pixels(pixels: np.ndarray) -> int | None:
    (row0, row1), (col0, col1) = schema.DARK_ROWS, schema.DARK_COLS
    if pixels.shape[0] < row1 or pixels.shape[1] < col1:
        return None
    return int(np.count_nonzero(pixels[row0:row1, col0:col1] < schema.DARK_THRESHOLD))


def identifying_tags(page: tifffile.TiffPage) -> list[str]:
    """Return names of ASCII tags of ``page`` that may identify a person.

    A tag counts when its name is in ``IDENTIFYING_TAG_NAMES``, when it is a private tag
    (code >= 32768) holding text, or when its text matches ``IDENTIFYING_TEXT`` (patient
    name, birth date or id, spelled out or as the DICOM tag (0010,0010)/(0010,0030)).
    """
    names = []
    for tag in page.tags:
        if not isinstance(tag.value, str | bytes):
            continue
        text = tag.value.decode("latin-1") if isinstance(tag.value, bytes) else tag.value
        private_text = tag.code >= 32768 and tag.dtype in (1, 2, 7) and text.strip("\0 ")
        if tag.name in IDENTIFYING_TAG_NAMES or private_text or IDENTIFYING_TEXT.search(text):
            names.append(tag.name)
    return names


def _header_facts(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> dict[str, Any]:
    tags = identifying_tags(page)
    return {
        "pages": len(tif.pages),
        "samples_per_pixel": int(page.samplesperpixel),
        "compression": _enum_name(page.compression),
        "photometric": _enum_name(page.photometric),
        "identifying_tags": ",".join(tags) if tags else None,
    }


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _check_complete(page: tifffile.TiffPage, size: int) -> None:
    """Raise ValueError when a strip or tile of ``page`` lies beyond the file's ``size``."""
    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
    if not ends or max(ends) > size:
        last = max(ends) if ends else 0
        raise ValueError(f"truncated: image data ends at byte {last}, file has {size} bytes")


def _decode(page: tifffile.TiffPage, size: int) -> np.ndarray:
    _check_complete(page, size)
    try:
        return page.asarray()
    except Exception as error:  # noqa: BLE001 - any decoder failure becomes a named reason
        codec = _enum_name(page.compression)
        raise ValueError(f"cannot decode compression {codec}: {error}") from error


def _pixel_facts(pixels: np.ndarray) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "dtype": str(pixels.dtype),
        "ndim": int(pixels.ndim),
        "shape": "x".join(str(n) for n in pixels.shape),
        "height": int(pixels.shape[0]) if pixels.ndim >= 1 else None,
        "width": int(pixels.shape[1]) if pixels.ndim >= 2 else None,
    }
    if pixels.ndim == 2 and pixels.size:
        facts.update(pixel_stats(pixels))
    return facts


def read_slice_facts(file: Path) -> dict[str, Any]:
    """Return the content facts of one file: sha256, bytes, header and pixel facts.

    Reads the file once. Never raises for a bad file: ``read_error`` holds the reason (not a
    TIFF, truncated, undecodable codec named, unreadable) and the facts gathered so far stay.
    """
    facts: dict[str, Any] = {"read_error": None}
    try:
        data = read_regular(file, max_bytes=MAX_SLICE_FILE_BYTES)
    except OSError as error:
        facts["read_error"] = f"cannot read file: {error}"
        return facts
    facts["sha256"] = hashlib.sha256(data).hexdigest()
    facts["bytes"] = len(data)
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            facts.update(_header_facts(tif, page))
            problem = tiff_header_problem(page)
            if problem is not None:
                facts["read_error"] = problem
                return facts
            facts.update(_pixel_facts(_decode(page, len(data))))
    except Exception as error:  # noqa: BLE001 - every failure is recorded, never raised
        facts["read_error"] = _error_text(error)
    return facts


def _error_text(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, tifffile.TiffFileError | IndexError | EOFError | OSError):
        return f"not a readable TIFF: {text}"
    return text
