"""Calibration of p(COVID): expected calibration error, Brier score, reliability diagram, and
temperature scaling.

Definitions (``y`` = 1 for COVID, ``p`` = the model's p(COVID), ``n`` predictions):

* **Reliability bins**: ``n_bins`` (default 15, as Guo et al. 2017) equal-width bins of ``p`` on
  [0, 1]; bin ``m`` holds ``(m/M, (m+1)/M]``, the first also holds 0.
* **Expected calibration error** (Guo, Pleiss, Sun & Weinberger, "On calibration of modern
  neural networks", ICML 2017, eq. 3): ``ECE = sum_m |B_m| / n * |ybar(B_m) - pbar(B_m)|``, where
  ``ybar`` is the fraction of COVID in the bin and ``pbar`` its mean p(COVID). Guo et al. bin
  the top-label confidence ``max(p, 1 - p)``; for two classes that differs only in folding bin
  ``p`` onto bin ``1 - p`` before the absolute value. We bin p(COVID) itself, so the reliability
  diagram reads as "of the slices given p = 0.8, how many had COVID" and its gaps sum to the ECE.
* **Brier score** (Brier 1950): ``mean((p - y)^2)``; 0 is perfect, 0.25 is ``p = 0.5`` always.
* **Temperature scaling** (Guo et al. 2017, section 4.2), for a binary output:
  ``p_T = sigmoid(logit(p) / T)``. For the seed's two-unit softmax with logits ``(z0, z1)``,
  ``p = sigmoid(z1 - z0)``, so this is exactly ``softmax(z / T)``. ``T > 1`` softens
  over-confident outputs; ``T = 1`` is the identity; the class decision ``p > 0.5`` and every
  ranking (ROC/PR AUC) are unchanged for any ``T > 0``. ``T`` is fitted by minimising the
  negative log-likelihood on development validation predictions: the NLL is convex in
  ``1 / T`` (a one-feature logistic regression without intercept), so bisection on its
  derivative over ``[1 / T_max, 1 / T_min]`` finds the bounded minimum exactly. ``p`` is clipped
  to ``[EPS, 1 - EPS]`` before the logit (``EPS`` = 1e-7, about float32's resolution near 1,
  where a saturated softmax output sits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from covidct.evaluation import P_COVID, Y_TRUE, validate_predictions
from covidct.evaluation.metrics import check_scores, encode_labels

DEFAULT_N_BINS = 15
EPS = 1e-7
#: Bounds of the fitted temperature.
TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)
#: Columns of :func:`reliability_table`.
RELIABILITY_COLUMNS: tuple[str, ...] = (
    "bin",
    "lower",
    "upper",
    "n",
    "mean_p_covid",
    "covid_fraction",
    "gap",
)


def _inputs(y_true: Iterable[object], p_covid: Iterable[object]) -> tuple[np.ndarray, np.ndarray]:
    truth = encode_labels(y_true).astype(np.float64)
    scores = check_scores(p_covid, name=P_COVID)
    if truth.shape != scores.shape:
        raise ValueError(f"y_true has {truth.size} values, {P_COVID} {scores.size}")
    if truth.size == 0:
        raise ValueError("calibration needs at least one prediction")
    return truth, scores


def _check_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")


def bin_index(p_covid: np.ndarray, n_bins: int = DEFAULT_N_BINS) -> np.ndarray:
    """Reliability bin (int64, 0..n_bins-1) of each p(COVID): bin m is (m/M, (m+1)/M], bin 0
    also holds 0."""
    _check_bins(n_bins)
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.searchsorted(inner, np.asarray(p_covid, dtype=np.float64), side="left")


def reliability_table(
    y_true: Iterable[object], p_covid: Iterable[object], *, n_bins: int = DEFAULT_N_BINS
) -> pd.DataFrame:
    """Reliability-diagram data: one row per bin (empty bins included), :data:`RELIABILITY_COLUMNS`.

    ``y_true``: ``covid``/``normal`` (or 1/0); ``p_covid``: floats in [0, 1], same length.
    ``bin`` (int), ``lower``/``upper`` (the bin's edges), ``n`` (predictions in it),
    ``mean_p_covid``, ``covid_fraction`` (observed share of COVID) and ``gap``
    (``covid_fraction - mean_p_covid``; negative: over-confident in COVID); NaN in empty bins.
    Raises ValueError on bad labels or scores, unequal lengths, or ``n_bins < 1``.
    """
    truth, scores = _inputs(y_true, p_covid)
    index = bin_index(scores, n_bins)
    counts = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=scores, minlength=n_bins) / counts
        fraction = np.bincount(index, weights=truth, minlength=n_bins) / counts
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "n": counts.astype(np.int64),
            "mean_p_covid": mean_p,
            "covid_fraction": fraction,
            "gap": fraction - mean_p,
        },
        columns=list(RELIABILITY_COLUMNS),
    )


def expected_calibration_error(
    y_true: Iterable[object], p_covid: Iterable[object], *, n_bins: int = DEFAULT_N_BINS
) -> float:
    """ECE (fraction in [0, 1]) over equal-width bins of p(COVID) (module doc; Guo et al. 2017)."""
    table = reliability_table(y_true, p_covid, n_bins=n_bins)
    filled = table[table["n"] > 0]
    return float((filled["n"] * filled["gap"].abs()).sum() / filled["n"].sum())


def brier_score(y_true: Iterable[object], p_covid: Iterable[object]) -> float:
    """Brier score ``mean((p_covid - y)^2)``, y = 1 for COVID (Brier 1950)."""
    truth, scores = _inputs(y_true, p_covid)
    return float(np.mean((scores - truth) ** 2))


def _logit(p_covid: np.ndarray) -> np.ndarray:
    clipped = np.clip(p_covid, EPS, 1.0 - EPS)
    return np.log(clipped) - np.log1p(-clipped)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _check_temperature(temperature: float) -> float:
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def apply_temperature(p_covid: Iterable[object], temperature: float) -> np.ndarray:
    """Scaled p(COVID), float64: ``sigmoid(logit(clip(p)) / T)`` (module doc).

    Raises ValueError on scores outside [0, 1] or a temperature that is not finite and > 0.
    """
    scale = _check_temperature(temperature)
    return _sigmoid(_logit(check_scores(p_covid, name=P_COVID)) / scale)


def negative_log_likelihood(
    y_true: Iterable[object], p_covid: Iterable[object], temperature: float = 1.0
) -> float:
    """Mean binary cross-entropy (nats) of the temperature-scaled p(COVID), clipped as above."""
    truth, scores = _inputs(y_true, p_covid)
    z = _logit(scores) / _check_temperature(temperature)
    # -log sigmoid(z) = logaddexp(0, -z): stable for large |z|
    return float(np.mean(truth * np.logaddexp(0.0, -z) + (1.0 - truth) * np.logaddexp(0.0, z)))


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and the validation NLL (nats per prediction) before and after."""

    temperature: float
    nll_before: float
    nll_after: float
    n_predictions: int
    at_bound: bool
    #: False when the fit is not applied (:func:`guarded_temperature`): ``temperature`` is then
    #: 1 and ``fitted`` the refused value, ``reason`` says why
    applied: bool = True
    fitted: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, float | int | bool | str | None]:
        """Plain dict, e.g. for MLflow params/tags of the registered model."""
        return {
            "temperature": self.temperature,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "n_predictions": self.n_predictions,
            "at_bound": self.at_bound,
            "applied": self.applied,
            "fitted": self.fitted,
            "reason": self.reason,
        }


def fit_temperature(
    y_true: Iterable[object],
    p_covid: Iterable[object],
    *,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    iterations: int = 100,
) -> TemperatureFit:
    """Fit ``T`` minimising the NLL of ``sigmoid(logit(p) / T)`` (module doc), within ``bounds``.

    ``y_true``/``p_covid``: development validation predictions, never the sequestered or test
    ones. ``at_bound``: the minimum lies at a bound (e.g. perfectly separable data, where the NLL
    keeps falling as ``T`` shrinks). Raises ValueError on bad input, on one class only (the NLL
    then has no interior minimum) or on invalid bounds.
    """
    truth, scores = _inputs(y_true, p_covid)
    if truth.min() == truth.max():
        raise ValueError("fit_temperature needs both classes (covid and normal) in y_true")
    t_min, t_max = (_check_temperature(b) for b in bounds)
    if not t_min < t_max:
        raise ValueError(f"temperature bounds must be increasing, got {bounds}")
    z = _logit(scores)

    def slope(beta: float) -> float:  # d NLL / d beta, beta = 1 / T; increasing (convex NLL)
        return float(np.mean((_sigmoid(beta * z) - truth) * z))

    low, high = 1.0 / t_max, 1.0 / t_min
    if slope(low) >= 0:
        beta, at_bound = low, True
    elif slope(high) <= 0:
        beta, at_bound = high, True
    else:
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if slope(middle) < 0 else (low, middle)
        beta, at_bound = 0.5 * (low + high), False
    temperature = 1.0 / beta
    return TemperatureFit(
        temperature,
        negative_log_likelihood(truth, scores, 1.0),
        negative_log_likelihood(truth, scores, temperature),
        int(truth.size),
        at_bound,
    )


def guarded_temperature(
    y_true: Iterable[object], p_covid: Iterable[object], folds: Iterable[object]
) -> TemperatureFit:
    """:func:`fit_temperature` on every prediction, applied only when it holds up: a fit at its
    search bound (the data say nothing about T) or one whose cross-fitted NLL (T fitted on the
    other folds, NLL on each fold in turn) is not below the unscaled NLL is refused: the result
    then has ``temperature`` 1, ``applied`` False, ``fitted`` the refused T and a ``reason``.

    ``folds``: each prediction's development fold (out-of-fold predictions). A fold whose
    complement lacks a class is left out of the cross-fit; with no fold left the check is the
    in-sample NLL. Raises ValueError as :func:`fit_temperature`.
    """
    truth, scores = _inputs(y_true, p_covid)
    groups = np.asarray(list(folds), dtype=object)
    fit = fit_temperature(truth, scores)
    if fit.at_bound:
        return _refused(fit, f"T = {fit.temperature:.3g} sits at its search bound")
    scaled, unscaled, count = 0.0, 0.0, 0
    for fold in pd.unique(groups):
        held, rest = groups == fold, groups != fold
        if truth[rest].min() == truth[rest].max():
            continue
        other = fit_temperature(truth[rest], scores[rest])
        scaled += negative_log_likelihood(truth[held], scores[held], other.temperature) * held.sum()
        unscaled += negative_log_likelihood(truth[held], scores[held], 1.0) * held.sum()
        count += int(held.sum())
    if count == 0:
        scaled, unscaled, count = fit.nll_after, fit.nll_before, 1
    if scaled >= unscaled:
        return _refused(
            fit,
            f"T = {fit.temperature:.3g} does not improve held-out calibration (cross-fitted NLL "
            f"{scaled / count:.4f} against {unscaled / count:.4f} unscaled)",
        )
    return fit


def _refused(fit: TemperatureFit, reason: str) -> TemperatureFit:
    return TemperatureFit(
        1.0, fit.nll_before, fit.nll_before, fit.n_predictions, fit.at_bound, False,
        fit.temperature, reason,
    )  # fmt: skip


def scale_predictions(predictions: pd.DataFrame, temperature: float) -> pd.DataFrame:
    """A validated copy of a predictions table with ``p_covid`` temperature-scaled; every other
    column unchanged (slice-level decisions at 0.5 do not change)."""
    frame = validate_predictions(predictions)
    frame[P_COVID] = apply_temperature(frame[P_COVID], temperature)
    return frame


def calibration_summary(
    predictions: pd.DataFrame,
    *,
    temperature: float | None = None,
    n_bins: int = DEFAULT_N_BINS,
) -> dict[str, float]:
    """Image-level ``ece``, ``brier``, ``nll`` and ``n_images`` of a predictions table, after
    scaling by ``temperature`` when given (then also ``temperature``)."""
    frame = validate_predictions(predictions)
    scores = frame[P_COVID].to_numpy(dtype=np.float64)
    if temperature is not None:
        scores = apply_temperature(scores, temperature)
    summary = {
        "ece": expected_calibration_error(frame[Y_TRUE], scores, n_bins=n_bins),
        "brier": brier_score(frame[Y_TRUE], scores),
        "nll": negative_log_likelihood(frame[Y_TRUE], scores),
        "n_images": float(len(frame)),
    }
    if temperature is not None:
        summary["temperature"] = float(temperature)
    return summary


def plot_reliability_diagram(
    curves: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    n_bins: int = DEFAULT_N_BINS,
    title: str = "",
) -> Figure:
    """Reliability diagram (Agg Figure): observed COVID fraction against mean p(COVID) per bin,
    one line per curve with its ECE and Brier score in the legend, the diagonal of perfect
    calibration, and below it the count of predictions per bin (log scale).

    ``curves``: a predictions table, or a mapping from a label (e.g. ``before scaling``,
    ``after scaling (T=1.83)``) to one. Raises ValueError on an invalid table.
    """
    named = {"model": curves} if isinstance(curves, pd.DataFrame) else dict(curves)
    figure = Figure(figsize=(5.6, 6.4), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="perfect calibration")
    width = 1.0 / n_bins
    for offset, (label, frame) in enumerate(named.items()):
        checked = validate_predictions(frame, source=label)
        truth, scores = checked[Y_TRUE], checked[P_COVID]
        table = reliability_table(truth, scores, n_bins=n_bins)
        ece = expected_calibration_error(truth, scores, n_bins=n_bins)
        brier = brier_score(truth, scores)
        filled = table[table["n"] > 0]
        (line,) = top.plot(
            filled["mean_p_covid"],
            filled["covid_fraction"],
            marker="o",
            lw=1.5,
            label=f"{label} (ECE {ece:.3f}, Brier {brier:.3f})",
        )
        share = width / max(len(named), 1)
        bottom.bar(
            table["lower"] + offset * share,
            table["n"],
            width=share,
            align="edge",
            alpha=0.7,
            color=line.get_color(),
        )
    top.set(xlim=(0, 1), ylim=(0, 1.01), ylabel="observed COVID fraction")
    top.set_title(title or f"reliability diagram ({n_bins} equal-width bins of p(COVID))")
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="predicted p(COVID)", ylabel="predictions", yscale="log")
    return figure
