"""Calibration (covidct.evaluation.calibration): ECE, Brier, reliability diagram, temperature
scaling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from covidct.evaluation.calibration import (
    RELIABILITY_COLUMNS,
    apply_temperature,
    bin_index,
    brier_score,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    guarded_temperature,
    negative_log_likelihood,
    plot_reliability_diagram,
    reliability_table,
    scale_predictions,
)


def _overconfident(n: int, seed: int, temperature: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from calibrated probabilities, then reported sharpened: p = sigmoid(T z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)  # true logits
    truth = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return truth, 1 / (1 + np.exp(-temperature * z))


def test_ece_matches_a_hand_computation() -> None:
    truth = [1, 0, 1, 1, 0, 0]
    p = [0.95, 0.90, 0.62, 0.55, 0.31, 0.02]
    # 5 equal-width bins: (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    bins = {0: [5], 1: [4], 2: [3], 3: [2], 4: [0, 1]}
    expected = 0.0
    for members in bins.values():
        observed = np.mean([truth[i] for i in members])
        confidence = np.mean([p[i] for i in members])
        expected += len(members) / len(p) * abs(observed - confidence)
    assert expected == pytest.approx((0.02 + 0.31 + 0.45 + 0.38 + 2 * 0.425) / 6)
    assert expected_calibration_error(truth, p, n_bins=5) == pytest.approx(expected)
    assert bin_index(np.array(p), 5).tolist() == [4, 4, 3, 2, 1, 0]


def test_bin_edges_are_right_closed() -> None:
    assert bin_index(np.array([0.0, 0.2, 0.2000001, 1.0]), 5).tolist() == [0, 0, 1, 4]


def test_reliability_table_keeps_empty_bins() -> None:
    table = reliability_table(["covid", "normal", "covid"], [0.9, 0.1, 0.7], n_bins=15)
    assert tuple(table.columns) == RELIABILITY_COLUMNS
    assert len(table) == 15 and table["n"].sum() == 3
    assert table["lower"].iloc[0] == 0.0 and table["upper"].iloc[-1] == 1.0
    empty = table[table["n"] == 0]
    assert empty["gap"].isna().all()
    top = table[table["n"] > 0].iloc[-1]
    assert (top["mean_p_covid"], top["covid_fraction"]) == (0.9, 1.0)
    assert top["gap"] == pytest.approx(0.1)


def test_brier_score() -> None:
    assert brier_score([1, 0, 1, 0], [1.0, 0.0, 1.0, 0.0]) == 0.0
    assert brier_score([1, 0], [0.5, 0.5]) == 0.25
    assert brier_score(["covid", "normal"], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0


def test_temperature_one_is_the_identity() -> None:
    p = np.linspace(1e-6, 1 - 1e-6, 1001)
    np.testing.assert_allclose(apply_temperature(p, 1.0), p, rtol=0, atol=1e-12)
    # and the class decision never changes
    for temperature in (0.3, 2.0, 7.5):
        scaled = apply_temperature(p, temperature)
        assert ((scaled > 0.5) == (p > 0.5)).all()
        assert (np.diff(scaled) >= 0).all()


def test_temperature_scaling_equals_a_softened_softmax() -> None:
    logits = np.array([[0.3, 2.1], [1.5, -0.4], [-2.0, 3.0]])
    p = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    soft = np.exp(logits / 2.5)
    np.testing.assert_allclose(apply_temperature(p, 2.5), soft[:, 1] / soft.sum(axis=1))


def test_fitted_temperature_undoes_overconfidence() -> None:
    truth, p = _overconfident(4000, seed=1, temperature=3.0)
    fit = fit_temperature(truth, p)
    assert fit.temperature > 1
    assert fit.temperature == pytest.approx(3.0, rel=0.15)
    assert fit.nll_after < fit.nll_before and not fit.at_bound
    # the fitted T minimises the NLL: a neighbour on each side is worse
    for other in (fit.temperature * 0.9, fit.temperature * 1.1):
        assert negative_log_likelihood(truth, p, other) > fit.nll_after
    # applied to fresh predictions of the same model, the ECE drops
    test_truth, test_p = _overconfident(4000, seed=2, temperature=3.0)
    before = expected_calibration_error(test_truth, test_p)
    after = expected_calibration_error(test_truth, apply_temperature(test_p, fit.temperature))
    assert after < before / 2, (before, after)


def test_underconfidence_gives_a_temperature_below_one() -> None:
    truth, p = _overconfident(4000, seed=3, temperature=0.5)
    assert fit_temperature(truth, p).temperature < 1


def test_separable_data_stops_at_the_bound() -> None:
    fit = fit_temperature([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], bounds=(0.1, 10.0))
    assert fit.at_bound and fit.temperature == pytest.approx(0.1)


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature([1, 1], [0.7, 0.8])
    with pytest.raises(ValueError, match="temperature must be"):
        apply_temperature([0.5], 0.0)
    with pytest.raises(ValueError, match="p_covid"):
        brier_score([1, 0], [0.5, 1.5])
    with pytest.raises(ValueError, match="y_true has 2 values"):
        expected_calibration_error([1, 0], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_table([1], [0.5], n_bins=0)


def _predictions(truth: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    labels = np.where(truth == 1, "covid", "normal")
    return pd.DataFrame(
        {
            "patient_id": [f"negin/{label}{i // 10}" for i, label in enumerate(labels)],
            "y_true": labels,
            "p_covid": p,
        }
    )


def test_frame_helpers_and_the_figure() -> None:
    truth, p = _overconfident(2000, seed=4)
    frame = _predictions(truth, p)
    scaled = scale_predictions(frame, 3.0)
    assert (scaled["patient_id"] == frame["patient_id"]).all()
    before, after = calibration_summary(frame), calibration_summary(frame, temperature=3.0)
    assert after["ece"] < before["ece"] and after["temperature"] == 3.0
    assert after["brier"] == pytest.approx(brier_score(frame["y_true"], scaled["p_covid"]))
    assert math.isclose(before["n_images"], 2000)
    figure = plot_reliability_diagram({"before scaling": frame, "after scaling (T=3)": scaled})
    top = figure.axes[0]
    labels = [line.get_label() for line in top.get_lines()]
    assert labels[0] == "perfect calibration"
    assert labels[1].startswith(f"before scaling (ECE {before['ece']:.3f}")
    assert len(figure.axes) == 2


def test_a_guarded_temperature_is_applied_when_it_holds_up_out_of_fold() -> None:
    truth, p = _overconfident(4000, seed=4, temperature=3.0)
    fit = guarded_temperature(truth, p, np.arange(4000) % 2)
    assert fit.applied and fit.temperature == pytest.approx(3.0, rel=0.15) and fit.reason == ""


def test_a_temperature_at_its_bound_is_not_applied() -> None:
    # separable: the NLL keeps falling as T shrinks, the fit stops at the bound (0.05)
    fit = guarded_temperature([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], [0, 1, 0, 1])
    assert not fit.applied and fit.temperature == 1.0
    assert fit.fitted == pytest.approx(0.05) and "search bound" in fit.reason
    assert fit.nll_after == fit.nll_before  # what is served is unscaled


def test_a_temperature_that_worsens_held_out_calibration_is_not_applied() -> None:
    # fold 0 is overconfident (T 3 would fit it), fold 1 underconfident (T 0.4): each fold's
    # temperature, fitted on the other, makes the held-out fold worse than no scaling
    t0, p0 = _overconfident(2000, seed=5, temperature=3.0)
    t1, p1 = _overconfident(2000, seed=6, temperature=0.4)
    truth, p = np.concatenate([t0, t1]), np.concatenate([p0, p1])
    folds = np.repeat([0, 1], 2000)
    fit = guarded_temperature(truth, p, folds)
    assert not fit.applied and fit.temperature == 1.0
    assert "does not improve held-out calibration" in fit.reason
    held_out = negative_log_likelihood(t1, p1, fit_temperature(t0, p0).temperature)
    assert held_out > negative_log_likelihood(t1, p1, 1.0)  # the reason, by hand
