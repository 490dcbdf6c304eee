"""The synthetic chest phantom's anatomy (:mod:`covidct.batch.synth`): body, lungs, vessels,
bones, and the lung openness along a sequence. HU floats on the 512x512 grid, about
:data:`PIXEL_MM` mm per pixel; lungs :data:`LUNG_HEIGHT_MM` mm from apex to base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from covidct import schema
from covidct.batch.scanners import ScannerProfile

SIZE = schema.SLICE_SHAPE[0]
#: HU values of the phantom's tissues.
AIR_HU, FAT_HU, SOFT_HU, LUNG_HU = -1000.0, -100.0, 40.0, -850.0
VESSEL_HU, CANCELLOUS_HU, CORTEX_HU, STERNUM_HU = 40.0, 700.0, 1400.0, 900.0
#: Lung openness of open-lung and of closed-lung slices.
OPEN_RANGE, CLOSED_MAX = (0.92, 1.0), 0.3
#: Pixel spacing (mm) and lung height (apex to base, mm) of the phantom.
PIXEL_MM, LUNG_HEIGHT_MM = 0.75, 250.0


@lru_cache(maxsize=1)
def pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of every pixel: two float32 (512, 512) arrays (cached)."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return rows, cols


def _ellipse_box(
    centre: tuple[float, float], radii: tuple[float, float]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Bounding box (row slice, column slice) and mask of an axis-aligned ellipse; None if tiny."""
    (cy, cx), (ry, rx) = centre, radii
    if ry <= 0.5 or rx <= 0.5:
        return None
    rows_box = slice(max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, SIZE))
    cols_box = slice(max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, SIZE))
    rows, cols = pixel_grid()
    inside = ((rows[rows_box, cols_box] - cy) / ry) ** 2 + (
        (cols[rows_box, cols_box] - cx) / rx
    ) ** 2
    return (rows_box, cols_box), inside <= 1.0


def _paint(
    image: np.ndarray,
    centre: tuple[float, float],
    radii: tuple[float, float],
    value: float,
    within: np.ndarray | None = None,
) -> None:
    """Set ``value`` inside an ellipse (and inside ``within`` when given), in place."""
    found = _ellipse_box(centre, radii)
    if found is None:
        return
    box, inside = found
    if within is not None:
        inside = inside & within[box]
    image[box][inside] = value


def ellipse_mask(centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Full-size boolean mask of an axis-aligned ellipse: bool (512, 512); ``centre`` (row,
    column) and ``radii`` (rows, columns) in pixels; all False for a radius of half a pixel or
    less."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    found = _ellipse_box(centre, radii)
    if found is not None:
        mask[found[0]] = found[1]
    return mask


@dataclass(frozen=True)
class Anatomy:
    """Per-patient anatomy: the base HU image without lungs, and lung geometry."""

    base: np.ndarray  # float32 (512, 512) HU
    centre: tuple[float, float]
    radii: tuple[float, float]


def draw_body(rng: np.random.Generator) -> Anatomy:
    """A random chest without lungs: fat, soft tissue, spine, sternum and ribs in HU (float32
    (512, 512)), with the inner ellipse's centre and radii in pixels."""
    cy, cx = 256.0 + rng.uniform(-6, 6), 256.0 + rng.uniform(-6, 6)
    ry, rx = rng.uniform(150, 172), rng.uniform(200, 225)
    fat = rng.uniform(8, 16)
    iy, ix = ry - fat, rx - fat  # inner (muscle and organ) ellipse
    base = np.full((SIZE, SIZE), AIR_HU, dtype=np.float32)
    _paint(base, (cy, cx), (ry, rx), FAT_HU)
    _paint(base, (cy, cx), (iy, ix), SOFT_HU)
    spine_y = cy + iy - 48
    _paint(base, (spine_y, cx), (26, 24), CORTEX_HU)
    _paint(base, (spine_y, cx), (20, 18), CANCELLOUS_HU)
    _paint(base, (cy - iy + 22, cx), (9, 16), STERNUM_HU)
    for degrees in (30, 55, 80, 105, 130):  # angle from the posterior midline, both sides
        theta = math.radians(degrees)
        for side in (-1.0, 1.0):
            centre = (cy + 0.9 * iy * math.cos(theta), cx + side * 0.9 * ix * math.sin(theta))
            _paint(base, centre, (6, 9), float(rng.uniform(1000, 1500)))
    return Anatomy(base=base, centre=(cy, cx), radii=(iy, ix))


def lung_centres(body: Anatomy) -> list[tuple[float, float]]:
    """Centres (row, column), in pixels, of the two lungs of ``body``."""
    (cy, cx), (_, rx) = body.centre, body.radii
    return [(cy - 8.0, cx - 0.45 * rx), (cy - 8.0, cx + 0.45 * rx)]


def lung_radii(body: Anatomy, openness: float) -> tuple[float, float]:
    """Radii (rows, columns), in pixels, of each lung at ``openness`` (0: closed, 1: widest)."""
    ry, rx = body.radii
    return 0.62 * ry * openness, 0.3 * rx * openness


def lung_mask(body: Anatomy, openness: float) -> np.ndarray:
    """Both lungs of ``body`` at ``openness``: a bool (512, 512) mask."""
    lungs = np.zeros((SIZE, SIZE), dtype=bool)
    for centre in lung_centres(body):
        lungs |= ellipse_mask(centre, lung_radii(body, openness))
    return lungs


def draw_vessels(hu: np.ndarray, lungs: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Vessels: small discs of soft-tissue density, clipped to the lungs."""
    rows, cols = np.nonzero(lungs)
    if len(rows) == 0:
        return
    for pick in rng.integers(len(rows), size=count):
        radius = float(rng.uniform(1.5, 3.5))
        _paint(hu, (float(rows[pick]), float(cols[pick])), (radius, radius), VESSEL_HU, lungs)


def lung_openness(n_top: int, n_open: int, n_bottom: int, rng: np.random.Generator) -> np.ndarray:
    """Lung openness of each slice of a series, head to feet: ``n_top`` closed slices rising
    to ``CLOSED_MAX``, ``n_open`` slices in ``OPEN_RANGE`` (a sine bump), ``n_bottom`` falling
    back to 0; float64 (n_top + n_open + n_bottom,)."""
    top = np.linspace(0.0, CLOSED_MAX, n_top + 1)[:-1] if n_top else np.zeros(0)
    bottom = np.linspace(CLOSED_MAX, 0.0, n_bottom + 1)[1:] if n_bottom else np.zeros(0)
    bump = np.sin(np.pi * (np.arange(n_open) + 1) / (n_open + 1))
    low, high = OPEN_RANGE
    middle = low + (high - low) * bump + rng.uniform(-0.01, 0.0, n_open)
    return np.concatenate([top, np.clip(middle, low, high), bottom])


def apply_scanner(hu: np.ndarray, profile: ScannerProfile, rng: np.random.Generator) -> None:
    """Reconstruction kernel and noise, in place."""
    if profile.blur_sigma_px > 0:
        hu[:] = ndimage.gaussian_filter(hu, profile.blur_sigma_px)
    if profile.sharpen > 0:
        hu += np.float32(profile.sharpen) * (hu - ndimage.gaussian_filter(hu, 1.0))
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    if profile.blur_sigma_px > 0:  # soft kernel: correlated noise, rescaled to its sd
        noise = ndimage.gaussian_filter(noise, profile.blur_sigma_px)
        noise *= np.float32(2.0 * math.sqrt(math.pi) * profile.blur_sigma_px)
    hu += noise * np.float32(profile.noise_sd_hu)
