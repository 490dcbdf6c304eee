"""COVID sensitivity evidence of the gate from prediction tables (issue 31).

Image-level COVID sensitivity (:data:`SENSITIVITY_METRIC`: COVID slices with ``p_covid`` above
0.5, among the COVID slices) is a ratio clustered in COVID patients; :func:`sensitivity_test`
compares two models on the same patients with the studentized patient bootstrap of
:func:`covidct.promotion.stats.studentized_noninferiority` (the resamples are
:func:`covidct.evaluation.bootstrap_weights` of the patients, stratified by label, as every other
interval of the gate). :func:`noninferiority_margin` is the margin the power analysis gives for
the number of COVID patients compared (``docs/gate.md``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from covidct.promotion.stats import ALPHA, NoninferiorityTest, studentized_noninferiority, z

#: power at which an equivalent candidate must pass the non-inferiority rule
NONINFERIORITY_POWER = 0.90


def noninferiority_margin(
    n_covid_patients: int, *, floor: float, planning_sd: float, alpha: float = ALPHA
) -> float:
    """The non-inferiority margin of COVID sensitivity for ``n_covid_patients``.

    The smallest margin at which a candidate exactly as sensitive as its comparator passes with
    90% power, ``(z_{1-alpha} + z_{0.90}) * planning_sd / sqrt(n)``, never below the clinical
    ``floor``. ``planning_sd``: standard deviation, across COVID patients, of the paired
    per-patient sensitivity difference (``GateSettings.sensitivity_planning_sd``, from the
    simulation of ``benchmarks/gate_null.py``). Fixed by the design (n), not by the data, so the
    test keeps its level.
    """
    if n_covid_patients < 1:
        return math.inf
    planned = (z(1 - alpha) + z(NONINFERIORITY_POWER)) * planning_sd / math.sqrt(n_covid_patients)
    return float(max(floor, planned))


def sensitivity_counts(frame: pd.DataFrame, patients: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Per patient of ``patients`` (sorted ids): COVID slices called COVID, and COVID slices.

    Normal patients have 0 and 0 (they do not enter sensitivity).
    """
    covid = frame["y_true"].astype(str).str.lower().eq("covid").to_numpy()
    called = frame["p_covid"].to_numpy(dtype=np.float64) > 0.5
    work = pd.DataFrame(
        {"patient_id": frame["patient_id"].to_numpy(), "hit": called & covid, "n": covid}
    )
    sums = work.groupby("patient_id", sort=True)[["hit", "n"]].sum().reindex(patients, fill_value=0)
    return sums["hit"].to_numpy(np.float64), sums["n"].to_numpy(np.float64)


def sensitivity_test(
    candidate: pd.DataFrame,
    comparator: pd.DataFrame,
    *,
    margin: float,
    n_boot: int,
    seed: int,
    alpha: float = ALPHA,
) -> NoninferiorityTest:
    """Studentized paired patient-bootstrap test of the COVID-sensitivity difference.

    Both tables hold the same patients (one row per slice; ``patient_id, y_true, p_covid``).
    Raises ValueError when the patient sets differ.
    """
    from covidct.evaluation import bootstrap_weights, encode_labels

    ids = pd.Index(sorted(set(candidate["patient_id"])))
    if set(comparator["patient_id"]) != set(ids):
        raise ValueError("sensitivity test: the two tables hold different patients")
    hits_a, totals = sensitivity_counts(candidate, ids)
    hits_b, totals_b = sensitivity_counts(comparator, ids)
    if not np.array_equal(totals, totals_b):
        raise ValueError("sensitivity test: the two tables hold different COVID slices")
    labels = candidate.groupby("patient_id", sort=True)["y_true"].first().reindex(ids)
    # the resamples of covidct.evaluation.paired_bootstrap on the same patients
    weights = bootstrap_weights(encode_labels(labels), n_boot=n_boot, seed=seed)
    return studentized_noninferiority(hits_a, hits_b, totals, weights, margin=margin, alpha=alpha)
