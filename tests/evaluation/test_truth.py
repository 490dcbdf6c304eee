"""covidct.evaluation.truth against hand-computed cases: Wilson intervals (published values),
sensitivity by band, the pointing game's cell and tolerance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from covidct.evaluation.truth import (
    pointing_chance,
    pointing_hit,
    sensitivity_by_band,
    true_positive_slices,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Brown, Cai and DasGupta 2001 / Newcombe 1998 (Stat Med) table I: 81/263 -> 0.2553-0.3662
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),  # Newcombe 1998 table I, example 2
        (0, 20, 0.0, 0.1611),  # Newcombe 1998 table I, example 3
        (1, 29, 0.0061, 0.1718),  # Newcombe 1998 table I, example 4
    ],
)
def test_wilson_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_edges() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_sensitivity_by_band_counts_patients_per_band_in_order() -> None:
    called = {"a": True, "b": False, "c": True, "d": True}
    bands = {"a": "severe", "b": "mild", "c": "mild", "d": "mild", "x": "moderate"}
    got = sensitivity_by_band(called, bands)
    assert list(got) == ["mild", "severe"]  # moderate's only patient has no call: left out
    assert got["mild"]["patients"] == 3 and got["mild"]["detected"] == 2
    assert got["mild"]["value"] == pytest.approx(2 / 3)
    assert got["mild"]["ci_low"] < 2 / 3 < got["mild"]["ci_high"]


def _mask(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((512, 512), bool)
    mask[rows, cols] = True
    return mask


@pytest.mark.parametrize(
    ("peak", "mask", "hit"),
    [
        ((0, 0), _mask(slice(0, 8), slice(0, 8)), True),  # inside the 8 px cell of (0, 0)
        ((0, 0), _mask(slice(22, 30), slice(0, 8)), True),  # 14 px below the cell: tolerated
        ((0, 0), _mask(slice(24, 30), slice(0, 8)), False),  # 16 px below: outside
        ((63, 63), _mask(slice(500, 512), slice(500, 512)), True),
        ((32, 10), _mask(slice(0, 100), slice(400, 512)), False),
    ],
)
def test_pointing_hit(peak: tuple[int, int], mask: np.ndarray, hit: bool) -> None:
    heat = np.zeros((64, 64))
    heat[peak] = 1.0
    assert pointing_hit(heat, mask) is hit


def test_true_positive_slices_are_selected_covid_slices_called_covid() -> None:
    frame = pd.DataFrame(
        {
            "slice_id": ["a", "b", "c", "d"],
            "y_true": ["covid", "covid", "normal", "covid"],
            "p_covid": [0.9, 0.2, 0.9, 0.8],
            "selected": [True, True, True, False],
        }
    )
    assert true_positive_slices(frame)["slice_id"].tolist() == ["a"]


def test_pointing_chance_counts_the_cells_a_random_maximum_would_hit() -> None:
    # an 8 px lesion at rows/cols 100-107: 1 of 4 quadrants; of the 8 px cells, rows 10-15
    # reach it within 15 px (8r - 15 < 108 and 8r + 23 > 100), likewise columns: 6 x 6 cells
    lesion = _mask(slice(100, 108), slice(100, 108))
    assert pointing_chance((2, 2), lesion) == pytest.approx(0.25)
    assert pointing_chance((64, 64), lesion) == pytest.approx(36 / 4096)
