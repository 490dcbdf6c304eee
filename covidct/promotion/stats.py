"""The gate's statistics on arrays (issue 31): patient-clustered tests that hold their level.

* :func:`weighted_patient_auc`: patient ROC AUC (Mann-Whitney, ties one half) per row of
  patient-bootstrap weights: the gate's primary endpoint.
* :func:`primary_test`: the paired patient-bootstrap test of an AUC difference: one-sided lower
  bound, bootstrap standard error and the smallest true gain it detects with 80% power.
* :func:`studentized_noninferiority`: non-inferiority of a clustered proportion (image-level
  COVID sensitivity: COVID slices called COVID, clustered in COVID patients) by the studentized
  (bootstrap-t) patient bootstrap with the ratio estimator's linearised standard error in every
  resample; the percentile interval the gate used before covered 95.2% instead of 97.5% on 19
  COVID patients (issue 31), bootstrap-t reaches the nominal level (``docs/gate.md``).
* :func:`holm`: Holm's step-down rejections (family-wise error control across subgroups).
* :func:`detectable_gain`: ``(z_{1-alpha} + z_{power}) * se``.
* :func:`selection_corrected`: the conditional maximum-likelihood difference given that the
  lower bound passed (a promoted candidate's figures are selected on the patients that decided).

numpy only: the benchmark (``benchmarks/gate_null.py``) calls the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: one-sided level of every test of the gate (two-sided 95% intervals' lower bounds)
ALPHA = 0.025
#: power the detectable gain is stated at
POWER = 0.80
_NORMAL = NormalDist()


@dataclass(frozen=True)
class PrimaryTest:
    """Paired patient-bootstrap comparison of the primary endpoint (candidate - comparator).

    ``lower``/``upper``: the (1 - alpha) one-sided bounds (together the two-sided 1 - 2 alpha
    interval); ``se``: standard deviation of the bootstrap differences; ``detectable``: the
    smallest true difference detected with 80% power at this ``se``; ``n_patients`` compared.
    """

    difference: float
    lower: float
    upper: float
    se: float
    detectable: float
    n_patients: int


@dataclass(frozen=True)
class NoninferiorityTest:
    """Studentized-bootstrap test of ``H0: difference <= -margin`` for a clustered proportion.

    ``lower``: the one-sided (1 - alpha) bound; ``p_value``: of H0 (small: non-inferior);
    ``p_harm``: of ``H0': difference >= -margin`` (small: worse by more than the margin, the
    subgroup rule's direction); ``se``: linearised standard error; ``n_clusters``: patients with
    at least one slice in the proportion's denominator.
    """

    difference: float
    lower: float
    upper: float
    se: float
    margin: float
    p_value: float
    p_harm: float
    n_clusters: int

    @property
    def noninferior(self) -> bool:
        """The lower bound is at or above ``-margin`` (NaN: not shown)."""
        return bool(self.lower >= -self.margin)


def z(p: float) -> float:
    """Standard normal quantile."""
    return _NORMAL.inv_cdf(p)


def detectable_gain(se: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true difference a one-sided level-``alpha`` test with standard error ``se``
    detects with probability ``power`` (normal approximation)."""
    return float((z(1 - alpha) + z(power)) * se)


def weighted_patient_auc(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Patient ROC AUC for each row of ``weights`` (n_boot, n_patients); ties count one half.

    ``scores`` (n_patients,): a patient's mean ``p_covid``; ``truth`` bool. A row without both
    classes gives NaN.
    """
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    weights = np.atleast_2d(np.asarray(weights, float))
    values, inverse = np.unique(scores, return_inverse=True)
    onehot = np.zeros((len(scores), len(values)))
    onehot[np.arange(len(scores)), inverse] = 1.0
    negatives = (weights * ~truth) @ onehot  # (B, U): negative weight at each distinct score
    below = np.cumsum(negatives, axis=1) - negatives
    credit = below + 0.5 * negatives  # (B, U)
    wins = (weights[:, truth] * credit[:, inverse[truth]]).sum(axis=1)
    total = weights[:, truth].sum(axis=1) * weights[:, ~truth].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1.0), np.nan)


def primary_test(
    point: float, distribution: np.ndarray, n_patients: int, *, alpha: float = ALPHA
) -> PrimaryTest:
    """Percentile bounds and standard error of a paired bootstrap ``distribution`` of differences.

    The percentile interval of a patient-clustered AUC difference holds its level on the
    gate's patients (``benchmarks/gate_null.py``: null promotion rates, ``docs/gate.md``).
    """
    finite = np.asarray(distribution, float)
    finite = finite[np.isfinite(finite)]
    if finite.size < 2:
        return PrimaryTest(float(point), math.nan, math.nan, math.nan, math.nan, n_patients)
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    se = float(finite.std(ddof=1))
    return PrimaryTest(
        float(point), float(low), float(high), se, detectable_gain(se, alpha=alpha), n_patients
    )


def studentized_noninferiority(
    hits_a: np.ndarray,
    hits_b: np.ndarray,
    totals: np.ndarray,
    weights: np.ndarray,
    *,
    margin: float,
    alpha: float = ALPHA,
) -> NoninferiorityTest:
    """Bootstrap-t test of a paired clustered proportion ``sum(hits) / sum(totals)``.

    ``hits_a``/``hits_b`` (n,): per patient, slices each model calls positive among its
    ``totals`` (n,) slices (patients with ``totals`` 0 do not count); ``weights`` (n_boot, n):
    patient-bootstrap resample counts of the same patients. The difference
    ``d = (sum a - sum b) / sum t`` has the linearised (ratio-estimator) variance
    ``n / (n - 1) * sum((a_i - b_i - d t_i)^2) / (sum t)^2`` in the data and in every resample;
    ``t* = (d* - d) / se*`` gives the bound ``d - q_{1-alpha}(t*) se`` (Efron & Tibshirani 1993,
    ch. 12). Identical models (every ``a_i == b_i``) are exactly equal: difference 0, se 0, and
    non-inferior for any margin >= 0.
    """
    a, b, t = (np.asarray(x, float) for x in (hits_a, hits_b, totals))
    keep = t > 0
    a, b, t = a[keep], b[keep], t[keep]
    w = np.atleast_2d(np.asarray(weights, float))[:, keep]
    n = int(keep.sum())
    if n < 2:
        return NoninferiorityTest(
            math.nan, math.nan, math.nan, math.nan, margin, math.nan, math.nan, n
        )
    diff = a - b
    d = float(diff.sum() / t.sum())
    se = math.sqrt(n / (n - 1) * float(((diff - d * t) ** 2).sum())) / float(t.sum())
    total_w = w @ t
    d_star = (w @ diff) / total_w
    resid2 = (diff[None, :] - d_star[:, None] * t[None, :]) ** 2
    m_star = w.sum(axis=1)  # = n for every resample; kept general
    se_star = np.sqrt(m_star / (m_star - 1) * (w * resid2).sum(axis=1)) / total_w
    if se == 0.0:
        lower = upper = d
        t_obs = math.inf if d + margin > 0 else (0.0 if d + margin == 0 else -math.inf)
        p_value = 0.0 if t_obs == math.inf else 1.0
        return NoninferiorityTest(d, lower, upper, 0.0, margin, p_value, 1.0 - p_value, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_star = np.where(se_star > 0, (d_star - d) / np.where(se_star > 0, se_star, 1.0), 0.0)
    q_low, q_high = np.quantile(t_star, [alpha, 1 - alpha])
    lower, upper = d - q_high * se, d - q_low * se
    t_obs = (d + margin) / se
    # the bootstrap law of t* stands for that of (d - truth) / se: at the boundary truth = -margin
    # H0 (d <= -margin) is rejected for a large t_obs, H0' (d >= -margin) for a small one
    p_value = float((np.sum(t_star >= t_obs) + 1) / (len(t_star) + 1))
    p_harm = float((np.sum(t_star <= t_obs) + 1) / (len(t_star) + 1))
    return NoninferiorityTest(d, float(lower), float(upper), se, margin, p_value, p_harm, n)


def holm(p_values: list[float] | np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down: which hypotheses are rejected at family-wise level ``alpha``.

    Sorted ascending, the j-th (0-based) of m is rejected while ``p <= alpha / (m - j)``; the
    first that is not stops the procedure. NaN p-values are never rejected.
    """
    p = np.asarray(p_values, float)
    rejected = np.zeros(len(p), bool)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    m = len(p)
    for j, i in enumerate(order):
        if not p[i] <= alpha / (m - j):
            break
        rejected[i] = True
    return rejected


def selection_corrected(
    difference: float, se: float, *, alpha: float = ALPHA, floor: float = -1.0
) -> float:
    """Conditional maximum-likelihood difference given that it was selected (promoted).

    A candidate is promoted when ``difference / se > z_{1-alpha}``; given that, the observed
    difference is optimistic (winner's curse). With ``difference ~ N(mu, se^2)`` truncated at
    ``c = z_{1-alpha} se``, the estimate is the ``mu`` whose truncated mean
    ``mu + se * phi(a) / (1 - Phi(a))``, ``a = (c - mu) / se``, equals the observation
    (Zhong & Prentice 2008); bisection on ``[floor, difference]``. NaN or ``se`` 0: unchanged.
    """
    if not (math.isfinite(difference) and math.isfinite(se)) or se <= 0:
        return difference
    c = z(1 - alpha) * se

    def truncated_mean(mu: float) -> float:
        a = (c - mu) / se
        tail = 1.0 - _NORMAL.cdf(a)
        if tail < 1e-300:
            return c  # mu far below c: the truncated mean is c
        return mu + se * _NORMAL.pdf(a) / tail

    if difference <= c:
        return difference  # not selected by the rule: nothing to correct
    low, high = floor, difference
    if truncated_mean(low) > difference:
        return low
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (middle, high) if truncated_mean(middle) < difference else (low, middle)
    return (low + high) / 2
