"""Scoring against known disease: COVID sensitivity by severity band and the Grad-CAM pointing
game, where the data carry truth (the synthetic phantom's lesion masks and involvement,
``covidct.batch.synth``; never read by training).

* Sensitivity by band is patient level: the share of COVID patients of a band whom the model
  called COVID, with the Wilson score interval (Wilson, JASA 1927; recommended for small n by
  Brown, Cai and DasGupta, Statistical Science 2001), since a band holds a handful of patients.
* The pointing game (Zhang et al., "Top-down neural attention by excitation backprop", IJCV
  2018) counts a hit when the heat map's maximum falls on the object, within a tolerance of 15
  pixels of the original image. A heat map of S x S pixels over a 512 x 512 slice locates its
  maximum only to a cell of 512 / S pixels, so the cell, widened by the tolerance, is searched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

#: Severity bands of the phantom's truth (share of the lung involved: none = a COVID-19 patient
#: with a normal CT, mild < 5%, moderate 5-25%, severe > 25%; covidct.batch.synth), mildest first.
SEVERITY_BANDS: tuple[str, ...] = ("none", "mild", "moderate", "severe")
#: Pointing-game tolerance in pixels of the original slice (Zhang et al. 2018).
POINTING_TOLERANCE_PX = 15


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: (low, high), fractions; (nan, nan) when
    ``trials`` is 0. Raises ValueError when ``successes`` is outside 0..trials or ``level``
    outside (0, 1)."""
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in 0..{trials}, got {successes}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if trials == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def sensitivity_by_band(
    called_covid: Mapping[str, bool], bands: Mapping[str, str], level: float = 0.95
) -> dict[str, dict[str, Any]]:
    """COVID sensitivity per severity band.

    ``called_covid``: COVID patient key -> whether the model called the patient COVID (patient
    level, the deployed threshold). ``bands``: patient key -> band (:data:`SEVERITY_BANDS`);
    patients without a band are left out. Returns band -> ``{"patients", "detected", "value",
    "ci_low", "ci_high"}`` (fractions, None where undefined), bands in
    :data:`SEVERITY_BANDS` order, only those with patients.
    """
    out: dict[str, dict[str, Any]] = {}
    for band in SEVERITY_BANDS:
        members = [key for key, value in bands.items() if value == band and key in called_covid]
        if not members:
            continue
        detected = sum(bool(called_covid[key]) for key in members)
        low, high = wilson_interval(detected, len(members), level)
        out[band] = {
            "patients": len(members),
            "detected": detected,
            "value": detected / len(members),
            "ci_low": low,
            "ci_high": high,
        }
    return out


def pointing_hit(
    heatmap: np.ndarray, lesion: np.ndarray, tolerance_px: int = POINTING_TOLERANCE_PX
) -> bool:
    """Whether a heat map's maximum points at a lesion.

    ``heatmap``: float (h, w), any scale (the model's input size); ``lesion``: bool (H, W), the
    slice's lesion mask at its stored size. The maximum's cell, ``H / h`` x ``W / w`` pixels,
    widened by ``tolerance_px`` on each side, must hold a lesion pixel. Raises ValueError on a
    heat map or mask that is not 2-D, or an empty one.
    """
    heat, mask = np.asarray(heatmap, dtype=np.float64), np.asarray(lesion, dtype=bool)
    if heat.ndim != 2 or mask.ndim != 2 or heat.size == 0 or mask.size == 0:
        raise ValueError(f"expected 2-D heat map and mask, got {heat.shape} and {mask.shape}")
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    box = _cell_box(mask.shape, (int(row), int(col)), heat.shape, tolerance_px)
    return bool(mask[box].any())


def _cell_box(
    shape: tuple[int, int], cell: tuple[int, int], heat_shape: tuple[int, int], tolerance_px: int
) -> tuple[slice, slice]:
    scale_r, scale_c = shape[0] / heat_shape[0], shape[1] / heat_shape[1]
    r0 = max(int(math.floor(cell[0] * scale_r)) - tolerance_px, 0)
    r1 = min(int(math.ceil((cell[0] + 1) * scale_r)) + tolerance_px, shape[0])
    c0 = max(int(math.floor(cell[1] * scale_c)) - tolerance_px, 0)
    c1 = min(int(math.ceil((cell[1] + 1) * scale_c)) + tolerance_px, shape[1])
    return slice(r0, r1), slice(c0, c1)


def pointing_chance(
    heat_shape: tuple[int, ...], lesion: np.ndarray, tolerance_px: int = POINTING_TOLERANCE_PX
) -> float:
    """Share of the ``heat_shape`` (h, w) cells whose box, widened as in :func:`pointing_hit`,
    holds a lesion pixel of ``lesion`` (bool (H, W)): what a maximum drawn at random would
    score, the game's chance level for this slice."""
    mask = np.asarray(lesion, dtype=bool)
    h, w = int(heat_shape[0]), int(heat_shape[1])
    hits = [
        bool(mask[_cell_box(mask.shape, (r, c), (h, w), tolerance_px)].any())
        for r in range(h)
        for c in range(w)
    ]
    return float(np.mean(hits))


def true_positive_slices(predictions: pd.DataFrame, slice_threshold: float = 0.5) -> pd.DataFrame:
    """Rows of a predictions table (``y_true``, ``p_covid``, ``selected``, ``slice_id``) that are
    selected COVID slices predicted COVID (``p_covid > slice_threshold``)."""
    frame = predictions
    if "selected" in frame.columns:
        frame = frame[frame["selected"].astype(bool)]
    hit = (frame["y_true"] == "covid") & (frame["p_covid"] > slice_threshold)
    return frame[hit].reset_index(drop=True)
